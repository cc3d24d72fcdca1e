"""Authentication and scopes on every route, and API keys (CLI and /v1/keys).

The route walk reads the live OpenAPI document, so a route added without an entry in
:data:`REQUIRED_SCOPE` fails here until someone decides which scope guards it.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest
from argon2 import PasswordHasher
from sqlalchemy import text
from typer.testing import CliRunner

import safehold.access.keys
from api_helpers import (
    PUBLIC_PATHS,
    assert_problem,
    bearer,
    cheap_argon2,
    key_id,
    new_key,
    serve,
)
from safehold.access import SCOPES, ApiKeys
from safehold.access.keys import KEY_FORMAT
from safehold.cli import app as cli
from safehold.store import Database

REQUIRED_SCOPE: dict[tuple[str, str], str] = {
    ("POST", "/v1/scan"): "scan",
    ("POST", "/v1/lookup"): "scan",
    ("GET", "/v1/banks"): "banks:read",
    ("POST", "/v1/banks"): "banks:write",
    ("GET", "/v1/banks/{name}"): "banks:read",
    ("PATCH", "/v1/banks/{name}"): "banks:write",
    ("DELETE", "/v1/banks/{name}"): "banks:write",
    ("GET", "/v1/banks/{name}/entries"): "banks:read",
    ("POST", "/v1/banks/{name}/entries"): "banks:write",
    ("GET", "/v1/banks/{name}/entries/{entry_id}"): "banks:read",
    ("DELETE", "/v1/banks/{name}/entries/{entry_id}"): "banks:write",
    ("POST", "/v1/banks/{name}/entries/remove"): "banks:write",
    ("GET", "/v1/banks/{name}/export"): "banks:read",
    ("PUT", "/v1/banks/{name}/shares/{tenant}"): "admin",
    ("DELETE", "/v1/banks/{name}/shares/{tenant}"): "admin",
    ("GET", "/v1/keys"): "admin",
    ("POST", "/v1/keys"): "admin",
    ("DELETE", "/v1/keys/{key_id}"): "admin",
    ("GET", "/v1/rules"): "admin",
    ("PUT", "/v1/rules"): "admin",
    ("POST", "/v1/rules/test"): "admin",
    ("GET", "/v1/rules/versions"): "admin",
    ("GET", "/v1/rules/versions/{version}"): "admin",
    ("POST", "/v1/rules/versions/{version}/activate"): "admin",
    ("GET", "/v1/webhooks/deliveries"): "admin",
    ("POST", "/v1/webhooks/deliveries/{delivery_id}/replay"): "admin",
    ("POST", "/v1/reports"): "reports",
    ("GET", "/v1/reports"): "reports",
    ("GET", "/v1/reports/{number}"): "reports",
    ("GET", "/v1/complaints/summary"): "reports",
    ("GET", "/v1/blocklist"): "blocklist",
}
"""The scope each operation of the OpenAPI document needs (``admin`` implies all)."""

PATH_VALUES = {
    "name": "no-such-bank",
    "entry_id": "1",
    "tenant": "other",
    "key_id": "0" * 12,
    "version": "1",
    "delivery_id": "999999",
    "number": "R-0000-0000",
}
METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
UNKNOWN_KEY = "shk_0123456789ab_" + "A" * 43
RUNNER = CliRunner()


@pytest.fixture(autouse=True)
def _cheap_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    cheap_argon2(monkeypatch)


def operations(spec: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method.upper(), path): op
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if method in METHODS
    }


def concrete(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: PATH_VALUES[m.group(1)], path)


def cli_run(db_url: str, *args: str) -> Any:
    result = RUNNER.invoke(cli, ["--db", db_url, *args])
    assert "Traceback" not in result.output
    return result


def assert_unauthorized(r: Any) -> None:
    assert_problem(r, 401, "unauthorized")
    assert r.headers["www-authenticate"].startswith("Bearer")


# --------------------------------------------------------------------------- the route walk


def test_every_operation_needs_a_key_with_its_scope(db: Database) -> None:
    keys = {scope: new_key(db, scope) for scope in SCOPES}
    revoked = new_key(db, "admin")
    ApiKeys(db).revoke(key_id(revoked))
    wrong_secret = revoked[:-1] + ("B" if revoked[-1] != "B" else "C")
    with serve(db) as c:
        spec = c.get("/openapi.json").json()
        ops = operations(spec)
        protected = {op for op in ops if op[1] not in PUBLIC_PATHS}
        assert {("GET", path) for path in PUBLIC_PATHS} <= set(ops)
        missing = sorted(protected - set(REQUIRED_SCOPE))
        assert not missing, f"routes without an entry in REQUIRED_SCOPE: {missing}"
        stale = sorted(set(REQUIRED_SCOPE) - protected)
        assert not stale, f"REQUIRED_SCOPE names routes the document lacks: {stale}"
        assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"

        for (method, path), op in sorted(ops.items()):
            url = concrete(path)
            if path in PUBLIC_PATHS:
                assert "security" not in op
                assert c.request(method, url).status_code < 400, (method, path)
                continue
            where = f"{method} {path}"
            assert op["security"] == [{"HTTPBearer": []}], where
            assert {"401", "403"} <= set(op["responses"]), where
            required = REQUIRED_SCOPE[(method, path)]

            assert_unauthorized(c.request(method, url))
            if "requestBody" in op:  # a bad body without a key is still a 401, not a 422
                bad_json = {"Content-Type": "application/json"}
                for extra in ({}, {"Authorization": "Bearer nope"}):
                    headers = {**bad_json, **extra}
                    assert_unauthorized(c.request(method, url, content=b"{", headers=headers))
            for header in (
                "Bearer",
                "Bearer not-a-key",
                f"Basic {keys['admin']}",
                f"Bearer {UNKNOWN_KEY}",
                f"Bearer {revoked}",
                f"Bearer {wrong_secret}",
                keys["admin"],
            ):
                assert_unauthorized(c.request(method, url, headers={"Authorization": header}))

            for scope, key in keys.items():
                r = c.request(method, url, headers=bearer(key))
                if scope == required or scope == "admin":
                    assert r.status_code not in (401, 403), (where, scope, r.text)
                    assert r.status_code < 500, (where, scope, r.text)
                else:
                    body = assert_problem(r, 403, "forbidden")
                    assert required in body["detail"], (where, body)


def test_public_and_documentation_routes_need_no_key(db: Database) -> None:
    with serve(db) as c:
        for path in ("/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"):
            assert c.get(path).status_code == 200, path


def test_guessing_a_key_secret_is_rate_limited(db: Database) -> None:
    """Each wrong secret for a real key id costs an argon2 verification: after 20
    attempts the id is refused with 429 until a token is back; a key already verified
    (cached) keeps working."""
    key = new_key(db, "banks:read")
    guess = key[:-3] + ("xyz" if not key.endswith("xyz") else "abc")
    with serve(db) as c:
        assert c.get("/v1/banks", headers=bearer(key)).status_code == 200
        statuses = [c.get("/v1/banks", headers=bearer(guess)).status_code for _ in range(30)]
        assert 429 in statuses, statuses
        first = statuses.index(429)  # 20 verifications per key id (the first was the key's)
        assert first >= 19 and statuses[:first] == [401] * first, statuses
        r = c.get("/v1/banks", headers=bearer(guess))
        assert_problem(r, 429, "rate_limited")
        assert int(r.headers["retry-after"]) >= 1
        assert c.get("/v1/banks", headers=bearer(key)).status_code == 200


# --------------------------------------------------------------------------- keys: CLI


def test_cli_key_create_use_list_revoke(
    db_url: str, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(safehold.access.keys, "_hasher", PasswordHasher())  # the real cost
    r = cli_run(db_url, "key", "create", "--scopes", "scan,banks:read", "--tenant", "T", "--json")
    assert r.exit_code == 0, r.output
    created = json.loads(r.stdout)
    key = created["key"]
    m = KEY_FORMAT.fullmatch(key)
    assert m is not None
    assert created["id"] == m.group(1)
    assert created["tenant"] == "T"
    assert created["scopes"] == ["scan", "banks:read"]
    assert created["last_used_at"] is None and created["revoked_at"] is None

    # the database holds an argon2id hash, never the key or its secret
    with db.engine.connect() as conn:
        rows = [dict(row._mapping) for row in conn.execute(text("SELECT * FROM api_keys"))]
    assert len(rows) == 1
    assert rows[0]["secret_hash"].startswith("$argon2id$")
    assert not PasswordHasher().check_needs_rehash(rows[0]["secret_hash"])  # default cost
    stored = repr(rows)
    secret = key.split("_", 2)[2]
    assert secret not in stored and key not in stored
    assert secret[:16] not in stored

    listed = [
        json.loads(line) for line in cli_run(db_url, "key", "list", "--json").stdout.splitlines()
    ]
    assert [k["id"] for k in listed] == [created["id"]]
    assert listed[0]["last_used_at"] is None
    assert "key" not in listed[0] and secret not in json.dumps(listed)

    with serve(db) as c:
        h = bearer(key)
        r1 = c.get("/v1/banks", headers=h)
        assert r1.status_code == 200, r1.text
        assert r1.json() == {"banks": [], "next_cursor": None}
        r2 = c.post("/v1/lookup", json={"signal_type": "md5", "values": ["0" * 32]}, headers=h)
        assert r2.status_code == 200, r2.text
        assert_problem(c.post("/v1/banks", json={"name": "x"}, headers=h), 403, "forbidden")

        listed = json.loads(cli_run(db_url, "key", "list", "--json").stdout)
        assert listed["last_used_at"] is not None
        table = cli_run(db_url, "key", "list")
        assert table.exit_code == 0 and "never" not in table.output

        r = cli_run(db_url, "key", "revoke", created["id"])
        assert r.exit_code == 0, r.output
        assert created["id"] in r.output
        # the revocation reaches this process through the change log
        c.app.state.service.replica.sync()  # type: ignore[attr-defined]
        assert_unauthorized(c.get("/v1/banks", headers=h))
        assert_unauthorized(c.post("/v1/lookup", json={"signal_type": "md5", "values": []}))

    assert cli_run(db_url, "key", "list", "--json").stdout.strip() == ""
    revoked = json.loads(cli_run(db_url, "key", "list", "--revoked", "--json").stdout)
    assert revoked["revoked_at"] is not None


def test_cli_revocation_reaches_a_running_replica(db_url: str, db: Database) -> None:
    """No explicit sync: the follower thread applies the change log on its own."""
    created = json.loads(
        cli_run(db_url, "key", "create", "--scopes", "banks:read", "--json").stdout
    )
    h = bearer(created["key"])
    with serve(db) as c:
        assert c.get("/v1/banks", headers=h).status_code == 200  # verified and cached
        assert cli_run(db_url, "key", "revoke", created["key"]).exit_code == 0  # the whole key
        deadline = time.monotonic() + 15
        status = 200
        while status == 200 and time.monotonic() < deadline:
            time.sleep(0.05)
            status = c.get("/v1/banks", headers=h).status_code
        assert status == 401


@pytest.mark.parametrize("as_json", [False, True])
def test_cli_refuses_unknown_scopes(db_url: str, db: Database, as_json: bool) -> None:
    args = ["key", "create", "--scopes", "scan,superuser", "--tenant", "T"]
    r = cli_run(db_url, *args, *(["--json"] if as_json else []))
    assert r.exit_code == 2
    if as_json:
        error = json.loads(r.stdout)["error"]
        assert error["code"] == "invalid_value"
        message = error["message"]
    else:
        assert "shk_" not in r.stdout
        message = " ".join(r.stderr.split())
    assert "unknown scope 'superuser'" in message
    assert "scan, banks:read, banks:write, reports, blocklist, admin" in message
    assert ApiKeys(db).list() == []


def test_cli_refuses_bad_tenant_and_rate(db_url: str, db: Database) -> None:
    for extra in (["--tenant", "../etc"], ["--rate", "-1"], ["--burst", "0"]):
        r = cli_run(db_url, "key", "create", "--scopes", "scan", "--json", *extra)
        assert r.exit_code == 2, (extra, r.output)
        assert json.loads(r.stdout)["error"]["code"] == "invalid_value"
    r = cli_run(db_url, "key", "revoke", "0" * 12, "--json")
    assert r.exit_code == 2 and json.loads(r.stdout)["error"]["code"] == "not_found"
    assert ApiKeys(db).list() == []


# --------------------------------------------------------------------------- keys: /v1/keys


def test_keys_api_is_limited_to_the_own_tenant(db: Database) -> None:
    admin_a = new_key(db, "admin", tenant="acme")
    admin_b = new_key(db, "admin", tenant="beta")
    ha, hb = bearer(admin_a), bearer(admin_b)
    with serve(db) as c:
        r = c.post("/v1/keys", json={"scopes": ["scan"], "name": "uploader"}, headers=ha)
        assert r.status_code == 201, r.text
        made = r.json()
        assert KEY_FORMAT.fullmatch(made["key"])
        assert made["tenant"] == "acme" and made["scopes"] == ["scan"]
        assert made["name"] == "uploader"
        assert made["created_by"] == f"key:{key_id(admin_a)}"
        new = bearer(made["key"])
        lookup = {"signal_type": "md5", "values": ["0" * 32]}
        assert c.post("/v1/lookup", json=lookup, headers=new).status_code == 200
        assert_problem(c.get("/v1/keys", headers=new), 403, "forbidden")

        listed = c.get("/v1/keys", headers=ha).json()["keys"]
        assert {k["id"] for k in listed} == {key_id(admin_a), made["id"]}
        assert all(k["tenant"] == "acme" for k in listed)
        assert all("key" not in k and "secret_hash" not in k for k in listed)
        assert {k["id"] for k in c.get("/v1/keys", headers=hb).json()["keys"]} == {key_id(admin_b)}

        # another tenant's key is not found, and keeps working
        assert_problem(c.delete(f"/v1/keys/{key_id(admin_b)}", headers=ha), 404, "not_found")
        assert_problem(c.delete(f"/v1/keys/{made['id']}", headers=hb), 404, "not_found")
        for bad in ("a%00b", "x" * 40, "ABCDEF012345", "%3Cscript%3E"):
            assert_problem(c.delete(f"/v1/keys/{bad}", headers=ha), 422)
        assert c.get("/v1/keys", headers=hb).status_code == 200
        assert c.post("/v1/lookup", json=lookup, headers=new).status_code == 200

        # a key cannot be made for another tenant or with an unknown scope
        for body, code in (
            ({"scopes": ["scan"], "tenant": "beta"}, "validation_error"),
            ({"scopes": ["root"]}, "invalid_value"),
            ({"scopes": []}, "validation_error"),
            ({"scopes": ["scan"], "rate": -1}, "validation_error"),
            ({"scopes": ["scan"], "name": "x\x00y"}, "invalid_value"),
        ):
            assert_problem(c.post("/v1/keys", json=body, headers=ha), 422, code)
        assert len(c.get("/v1/keys", headers=ha).json()["keys"]) == 2

        r = c.delete(f"/v1/keys/{made['id']}", headers=ha)
        assert r.status_code == 200 and r.json()["revoked_at"] is not None
        assert_unauthorized(c.post("/v1/lookup", json=lookup, headers=new))
        assert c.delete(f"/v1/keys/{made['id']}", headers=ha).status_code == 200  # idempotent
        assert {k["id"] for k in c.get("/v1/keys", headers=ha).json()["keys"]} == {key_id(admin_a)}


def test_revocation_through_one_replica_reaches_another(db: Database) -> None:
    admin = new_key(db, "admin")
    reader = new_key(db, "banks:read")
    with serve(db) as a, serve(db) as b:
        assert a.get("/v1/banks", headers=bearer(reader)).status_code == 200
        assert b.get("/v1/banks", headers=bearer(reader)).status_code == 200  # cached on b
        assert a.delete(f"/v1/keys/{key_id(reader)}", headers=bearer(admin)).status_code == 200
        assert_unauthorized(a.get("/v1/banks", headers=bearer(reader)))
        b.app.state.service.replica.sync()  # type: ignore[attr-defined]
        assert_unauthorized(b.get("/v1/banks", headers=bearer(reader)))


def test_keys_created_by_the_api_are_stored_hashed(db: Database) -> None:
    admin = new_key(db, "admin")
    with serve(db) as c:
        made = c.post("/v1/keys", json={"scopes": ["banks:read"]}, headers=bearer(admin)).json()
    secret = made["key"].split("_", 2)[2]
    with db.engine.connect() as conn:
        dump = repr([tuple(r) for r in conn.execute(text("SELECT * FROM api_keys"))])
    assert secret not in dump and made["key"] not in dump and "$argon2id$" in dump
