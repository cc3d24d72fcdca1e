"""`safehold reports|notices|hosts|blocklist` over complaints made through the library."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import update
from tests.intake_helpers import Hotline, cheap_hashing, hotline
from typer.testing import CliRunner

from safehold.cli import app
from safehold.store import Database
from safehold.store.models import Notice, utcnow

RUNNER = CliRunner()


def run(db_url: str, *args: str, code: int = 0, stdin: str | None = None) -> str:
    result = RUNNER.invoke(app, ["--db", db_url, *args], input=stdin)
    assert result.exit_code == code, (result.output, result.exception)
    assert "Traceback" not in result.output
    return result.output


@pytest.fixture(autouse=True)
def _cheap(monkeypatch: pytest.MonkeyPatch) -> None:
    cheap_hashing(monkeypatch)


@pytest.fixture()
def h(db: Database) -> Hotline:
    return hotline(db)


def test_reports_list_show_summary(h: Hotline, db_url: str) -> None:
    a = h.report(contact={"email": "me@example.org"}, description="\u202eevil [red]markup[/red]")
    b = h.report()
    listed = json.loads(run(db_url, "reports", "list", "--json"))
    assert [r["number"] for r in listed["reports"]][-1] == a.display_number
    assert all("contact" not in r for r in listed["reports"])
    dupes = json.loads(run(db_url, "reports", "list", "--flag", "duplicate", "--json"))
    assert [r["number"] for r in dupes["reports"]] == [b.display_number]
    shown = run(db_url, "reports", "show", a.display_number.lower())
    assert "me@example.org" in shown and "\\u202e" in shown and "[red]markup[/red]" in shown
    assert json.loads(run(db_url, "reports", "show", a.display_number, "--json"))["case_id"]
    run(db_url, "reports", "show", "R-0000-0000", code=2)
    summary = json.loads(run(db_url, "reports", "summary", "--json"))
    assert summary["open_by_stage"]["assess"] == 1


def test_hosts_notices_and_blocklist(h: Hotline, db_url: str, tmp_path: Path) -> None:
    csv_text = "domain,name,email\nexample.com,Example Inc,abuse@ex.example\n"
    assert "1 host contacts imported" in run(db_url, "hosts", "import", "-", stdin=csv_text)
    run(
        db_url,
        "hosts",
        "add",
        "other.example",
        "--email",
        "x@other.example",
        "--jurisdiction",
        "MY",
    )
    hosts = json.loads(run(db_url, "hosts", "list", "--json"))["hosts"]
    assert [x["domain"] for x in hosts] == ["example.com", "other.example"]
    run(db_url, "hosts", "add", "not a domain", code=2)
    r = h.report(urls="https://www.example.com/p")
    lee = h.people["lee"]
    block = h.svc.notices.draft(
        r.case_id, lee, kind="block", url="https://www.example.com/p", scope="host"
    )
    h.svc.notices.send(block.id, lee, via="manual")
    out = tmp_path / "zone.rpz"
    run(db_url, "blocklist", "--format", "rpz", "--zone", "rpz.isp.example", "-o", str(out))
    assert "www.example.com CNAME ." in out.read_text()
    assert run(db_url, "blocklist").splitlines()[-1] == "www.example.com"
    run(db_url, "blocklist", "--format", "xml", code=2)
    notices = json.loads(run(db_url, "notices", "list", "--json"))["notices"]
    assert [n["status"] for n in notices] == ["sent"]
    assert "no rechecks are due" in run(db_url, "notices", "recheck")
    with h.db.session() as s:
        s.execute(update(Notice).values(next_check_at=utcnow()))
    assert json.loads(run(db_url, "notices", "list", "--due", "--json"))["notices"]
    assert "removed example.com" in run(db_url, "hosts", "remove", "example.com")
