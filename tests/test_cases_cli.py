"""`safehold cases list|queues|show` over cases opened through the library."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from safehold.audit import AuditLog
from safehold.cases import Cases
from safehold.cli import app
from safehold.store import Database

RUNNER = CliRunner()


def run(db_url: str, *args: str, code: int = 0) -> str:
    result = RUNNER.invoke(app, ["--db", db_url, *args])
    assert result.exit_code == code, (result.output, result.exception)
    assert "Traceback" not in result.output
    return result.output


@pytest.fixture()
def seeded(db_url: str) -> dict[str, int]:
    with Database(db_url) as db:
        cases = Cases(db, AuditLog(db))

        def open_case(queue: str, labels: list[str], account: str, tenant: str = "default") -> int:
            return cases.open_or_attach(
                tenant=tenant,
                queue=queue,
                labels=labels,
                account_id=account,
                content_id=f"content-{account}",
                event_id=None,
                media_id=None,
                signals={"sha256": "d" * 64},
                matches=[
                    {
                        "bank": "demo",
                        "labels": labels,
                        "source": "local",
                        "distance": 3,
                        "signal_type": "pdq",
                    }
                ],
            ).case_id

        return {
            "a1": open_case("default", ["A1"], "acct-a"),
            "b2": open_case("default", ["B2"], "acct-b"),
            "ncii": open_case("ncii", ["ncii"], "acct-c"),
            "acme": open_case("default", ["A1"], "acct-d", tenant="acme"),
        }


def test_list_and_queues(db_url: str, seeded: dict[str, int]) -> None:
    page = json.loads(run(db_url, "cases", "list", "--json"))
    assert [c["id"] for c in page["cases"]] == [seeded["a1"], seeded["b2"], seeded["ncii"]]
    assert page["cases"][0]["labels"] == ["A1"] and page["cases"][0]["state"] == "new"
    only = json.loads(run(db_url, "cases", "list", "--queue", "ncii", "--json"))
    assert [c["id"] for c in only["cases"]] == [seeded["ncii"]]
    assert json.loads(run(db_url, "cases", "list", "--state", "closed", "--json"))["cases"] == []
    acme = json.loads(run(db_url, "cases", "list", "--tenant", "acme", "--json"))
    assert [c["id"] for c in acme["cases"]] == [seeded["acme"]]
    first = json.loads(run(db_url, "cases", "list", "--limit", "1", "--json"))
    rest = json.loads(
        run(db_url, "cases", "list", "--limit", "5", "--cursor", first["next_cursor"], "--json")
    )
    assert [c["id"] for c in rest["cases"]] == [seeded["b2"], seeded["ncii"]]
    assert "unknown state" in run(db_url, "cases", "list", "--state", "weird", code=2)
    table = run(db_url, "cases", "list")
    assert "acct-a" in table and "A1" in table
    queues = json.loads(run(db_url, "cases", "queues", "--json"))["queues"]
    assert [(q["queue"], q["new"], q["open"]) for q in queues] == [
        ("default", 2, 2),
        ("ncii", 1, 1),
    ]
    assert "default" in run(db_url, "cases", "queues")


def test_show_records_a_view(db_url: str, seeded: dict[str, int]) -> None:
    shown = json.loads(run(db_url, "cases", "show", str(seeded["a1"]), "--json"))
    assert shown["case"]["id"] == seeded["a1"]
    assert shown["items"][0]["matches"][0]["bank"] == "demo"
    text = run(db_url, "cases", "show", str(seeded["a1"]))
    assert f"case {seeded['a1']}" in text and 'bank="demo"' in text
    assert "no case" in run(db_url, "cases", "show", str(seeded["acme"]), code=2)
    assert "no case" in run(db_url, "cases", "show", "999", "--json", code=2)
    with Database(db_url) as db:
        views = AuditLog(db).list(action="view_case")
    assert [e.object for e in views] == [f"case:{seeded['a1']}"] * 2
    assert all(e.actor.startswith("cli:") for e in views)
