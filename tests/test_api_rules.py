"""``/v1/rules``: read, store (YAML or JSON), errors with line and column, replay,
versions and activation; scope ``admin``; each tenant sees only its own rules."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from api_helpers import assert_problem, bearer, cheap_argon2, new_key, serve
from safehold.audit import AuditLog
from safehold.rules import Context, RuleSets
from safehold.store import Database
from safehold.store.models import Event

YAML = {"Content-Type": "application/yaml"}
RULES = """\
rules:
  - name: known-csam
    priority: 10
    when: {match: {labels: [csam]}}
    actions: [block, {review: {queue: csam}}]
  - name: reported
    shadow: true
    when: {reports: {min: 1}}
    actions: [hold]
"""


@pytest.fixture(autouse=True)
def _cheap_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    cheap_argon2(monkeypatch)


def test_store_read_and_activate_rules(db: Database) -> None:
    admin = bearer(new_key(db, "admin"))
    with serve(db) as c:
        r = c.get("/v1/rules", headers=admin)
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["version"], body["builtin"], body["tenant"]) == (0, True, "acme")
        assert [(x["name"], x["hits"]) for x in body["rules"]] == [("block-bank-match", 0)]

        r = c.put("/v1/rules", content=RULES, headers={**admin, **YAML}, params={"note": "v1"})
        assert r.status_code == 200, r.text
        stored = r.json()
        assert (stored["version"], stored["active"], stored["note"]) == (1, True, "v1")
        assert stored["created_by"].startswith("key:") and stored["source"] == RULES
        assert [(x["name"], x["shadow"], x["hits"]) for x in stored["rules"]] == [
            ("known-csam", False, 0),
            ("reported", True, 0),
        ]

        r = c.put(
            "/v1/rules",
            json={"source": RULES.replace("10", "20"), "note": "json", "activate": False},
            headers=admin,
        )
        assert r.status_code == 200, r.text
        assert (r.json()["version"], r.json()["active"]) == (2, False)

        sets = RuleSets(db)
        v1 = sets.get(1, "acme")
        sets.record_hits(v1.id, ["known-csam"], ["reported"])
        body = c.get("/v1/rules", headers=admin).json()
        assert body["version"] == 1
        assert [(x["name"], x["hits"]) for x in body["rules"]] == [
            ("known-csam", 1),
            ("reported", 1),
        ]

        versions = c.get("/v1/rules/versions", headers=admin).json()["versions"]
        assert [(v["version"], v["active"]) for v in versions] == [(2, False), (1, True)]
        assert "source" not in versions[0]
        v2 = c.get("/v1/rules/versions/2", headers=admin).json()
        assert v2["note"] == "json" and "priority: 20" in v2["source"]
        r = c.post("/v1/rules/versions/2/activate", headers=admin)
        assert r.status_code == 200 and r.json()["active"] is True
        assert c.get("/v1/rules", headers=admin).json()["version"] == 2
        body = assert_problem(c.get("/v1/rules/versions/9", headers=admin), 404, "not_found")
        assert "versions: 1, 2" in body["detail"]
        assert_problem(c.post("/v1/rules/versions/9/activate", headers=admin), 404)

    actors = {e.actor for e in AuditLog(db).list(action="rules_change")}
    assert len(actors) == 1 and actors.pop().startswith("key:")


def test_invalid_rules_are_a_422_with_line_and_column(db: Database) -> None:
    admin = bearer(new_key(db, "admin"))
    bad = "rules:\n  - name: r\n    when: {match: {lables: [csam]}}\n    actions: [block, hold]\n"
    with serve(db) as c:
        body = assert_problem(
            c.put("/v1/rules", content=bad, headers={**admin, **YAML}), 422, "invalid_rules"
        )
        assert [(e["line"], e["column"]) for e in body["errors"]] == [(3, 20), (4, 22)]
        assert "did you mean 'labels'?" in body["errors"][0]["message"]
        assert "<body>:3:20: unknown key 'lables'" in body["detail"]

        syntax = assert_problem(
            c.put("/v1/rules", json={"source": "rules: [\n"}, headers=admin), 422
        )
        assert syntax["errors"][0]["line"] == 2 and "YAML syntax" in syntax["detail"]
        assert_problem(c.put("/v1/rules", content=b"", headers={**admin, **YAML}), 422)
        assert_problem(c.put("/v1/rules", content=b"rules: \xff", headers={**admin, **YAML}), 422)
        for payload in (b"{", b"[]", b'{"source": 1}', b'{"source": "", "x": 1}'):
            r = c.put(
                "/v1/rules", content=payload, headers={**admin, "Content-Type": "application/json"}
            )
            assert_problem(r, 422)
        r = c.put("/v1/rules", content=RULES, headers={**admin, "Content-Type": "image/png"})
        assert_problem(r, 415, "unsupported_media_type")
        r = c.put("/v1/rules", json={"source": RULES, "activate": "yes"}, headers=admin)
        assert_problem(r, 422)
        assert c.get("/v1/rules", headers=admin).json()["version"] == 0  # nothing stored


def test_replay_through_the_api(db: Database) -> None:
    admin = bearer(new_key(db, "admin"))
    match = {"bank": "b", "entry_id": 1, "labels": ["A2"], "source": "local", "distance": 3}
    with db.session() as s:
        for tenant, ctx in [
            ("acme", Context(content_id="x", matches=[match])),
            ("acme", Context(content_id="y", reports=1)),
            ("other", Context(content_id="z", matches=[match])),
        ]:
            s.add(
                Event(tenant=tenant, at=datetime.now(UTC), context=ctx.to_json(), decision="allow")
            )
    with serve(db) as c:
        r = c.post("/v1/rules/test", content=RULES, headers={**admin, **YAML})
        assert r.status_code == 200, r.text
        report = r.json()
        assert report["events"] == 2  # the key's tenant only
        assert report["fired"] == {"known-csam": 1}
        assert report["shadow"] == {"reported": 1}
        assert report["changes"] == {"allow -> block": 1}
        assert report["examples"][0]["new"] == "block"
        r = c.post(
            "/v1/rules/test",
            json={"source": RULES},
            params={"limit": 1, "since": "1h"},
            headers=admin,
        )
        assert r.status_code == 200 and r.json()["events"] == 1
        assert_problem(
            c.post("/v1/rules/test", json={"source": RULES}, params={"since": "x"}, headers=admin),
            422,
        )
        body = assert_problem(
            c.post("/v1/rules/test", json={"source": "rules: [{name: a}]"}, headers=admin), 422
        )
        assert {e["line"] for e in body["errors"]} == {1}
        assert c.get("/v1/rules", headers=admin).json()["version"] == 0  # a test stores nothing


def test_only_admin_keys_and_only_their_tenant(db: Database) -> None:
    acme, other = bearer(new_key(db, "admin")), bearer(new_key(db, "admin", tenant="other"))
    scan = bearer(new_key(db, "scan,banks:read,banks:write"))
    with serve(db) as c:
        assert c.put("/v1/rules", content=RULES, headers={**acme, **YAML}).status_code == 200
        assert c.get("/v1/rules", headers=other).json()["version"] == 0
        assert_problem(c.get("/v1/rules/versions/1", headers=other), 404)
        for method, path in [
            ("GET", "/v1/rules"),
            ("PUT", "/v1/rules"),
            ("POST", "/v1/rules/test"),
            ("GET", "/v1/rules/versions"),
        ]:
            r = c.request(method, path, content=RULES, headers={**scan, **YAML})
            body = assert_problem(r, 403, "forbidden")
            assert "admin" in body["detail"]
            assert_problem(c.request(method, path), 401, "unauthorized")
