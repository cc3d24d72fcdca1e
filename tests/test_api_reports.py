"""``/v1/reports``, ``/v1/complaints/summary`` and ``/v1/blocklist`` through the HTTP API."""

from __future__ import annotations

import pytest
from tests.api_helpers import assert_problem, bearer, cheap_argon2, new_key, serve
from tests.intake_helpers import cheap_hashing

from safehold.access.users import Users
from safehold.store import Database


@pytest.fixture(autouse=True)
def _cheap(monkeypatch: pytest.MonkeyPatch) -> None:
    cheap_argon2(monkeypatch)
    cheap_hashing(monkeypatch)


def test_partner_report_round_trip(db: Database) -> None:
    partner = new_key(db, "reports", tenant="default")
    admin = new_key(db, "admin", tenant="default")
    scanner = new_key(db, "scan", tenant="default")
    with serve(db) as client:
        body = {
            "category": "grooming",
            "urls": ["https://chat.example.org/room/7"],
            "platform": "ExampleChat",
            "username": "adult_user_1",
            "description": "An adult asks a 12-year-old for pictures.",
            "demographics": {"age_band": "under_13", "relation": "professional"},
            "contact": {"email": "caseworker@partner.example"},
            "source": "partner:netsafe",
        }
        r = client.post("/v1/reports", json=body, headers=bearer(partner))
        assert r.status_code == 201, r.text
        made = r.json()
        assert made["number"].startswith("R-") and len(made["secret"]) == 19
        assert made["case_id"] and made["flags"] == []
        again = client.post("/v1/reports", json=body, headers=bearer(partner)).json()
        assert again["case_id"] == made["case_id"] and again["flags"] == ["duplicate"]

        listed = client.get("/v1/reports?limit=1", headers=bearer(partner)).json()
        assert len(listed["reports"]) == 1 and listed["next_before"]
        assert "contact" not in listed["reports"][0]
        one = client.get(f"/v1/reports/{made['number']}", headers=bearer(admin)).json()["report"]
        assert one["contact"] == {"email": "caseworker@partner.example"}
        assert one["source"] == "partner:netsafe" and one["urls"][0]["domain"] == "example.org"
        assert_problem(client.get("/v1/reports/R-0000-0000", headers=bearer(partner)), 404)
        assert_problem(client.get("/v1/reports", headers=bearer(scanner)), 403)
        assert_problem(client.post("/v1/reports", json=body), 401)

        summary = client.get("/v1/complaints/summary", headers=bearer(partner)).json()
        assert summary["open_by_stage"] == {"assess": 1, "investigate": 0}


@pytest.mark.parametrize(
    "body",
    [
        {"category": "nope", "urls": ["https://x.example/"]},
        {"category": "other"},
        {"category": "other", "urls": ["javascript:alert(1)"]},
        {"category": "other", "urls": ["https://x.example/"], "extra": 1},
        {"category": "other", "description": "x" * 10_001},
        {"category": "other", "description": "nul\x00byte"},
        {"category": "other", "urls": [f"https://x.example/{i}" for i in range(21)]},
        {"category": "other", "urls": ["https://x.example/"], "demographics": {"age_band": 3}},
    ],
)
def test_bad_reports_are_422_problems(db: Database, body: dict[str, object]) -> None:
    partner = new_key(db, "reports", tenant="default")
    with serve(db) as client:
        assert_problem(client.post("/v1/reports", json=body, headers=bearer(partner)), 422)


def test_blocklist_for_network_operators(db: Database) -> None:
    operator = new_key(db, "blocklist", tenant="default")
    partner = new_key(db, "reports", tenant="default")
    with serve(db) as client:
        svc = client.app.state.service  # type: ignore[attr-defined]
        lee = Users(db, svc.audit).create("lee", "correct horse battery staple", "lead")
        made = client.post(
            "/v1/reports",
            json={"category": "child_sexual_abuse", "urls": ["https://bad.example.net/x"]},
            headers=bearer(partner),
        ).json()
        for scope in ("url", "host"):
            n = svc.notices.draft(
                made["case_id"], lee, kind="block", url="https://bad.example.net/x", scope=scope
            )
            svc.notices.send(n.id, lee, via="manual")
        plain = client.get("/v1/blocklist", headers=bearer(operator))
        assert plain.status_code == 200 and plain.headers["content-type"].startswith("text/plain")
        assert [x for x in plain.text.splitlines() if not x.startswith("#")] == [
            "https://bad.example.net/x",
            "bad.example.net",
        ]
        rpz = client.get(
            "/v1/blocklist?format=rpz&zone=rpz.isp.example", headers=bearer(operator)
        ).text
        assert "bad.example.net CNAME ." in rpz and "hostmaster.rpz.isp.example." in rpz
        js = client.get("/v1/blocklist?format=json", headers=bearer(operator)).json()
        assert [e["scope"] for e in js["entries"]] == ["url", "host"]
        assert_problem(client.get("/v1/blocklist?format=csv", headers=bearer(operator)), 422)
        assert_problem(
            client.get("/v1/blocklist?format=rpz&zone=a%20b", headers=bearer(operator)), 422
        )
        assert_problem(client.get("/v1/blocklist", headers=bearer(partner)), 403)
        exports = [e for e in svc.audit.list(object_type="blocklist")]
        assert len(exports) == 3 and all(e.actor.startswith("key:") for e in exports)
