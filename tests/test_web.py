"""The FastAPI app as a whole: operations endpoints, the overview page, problem+json,
the OpenAPI document and docs page, and banks as JSON behind a key."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api_helpers import BASE_URL, assert_problem, bearer, cheap_argon2, new_key, serve
from safehold import __version__
from safehold.banks import Banks, make_entry
from safehold.errors import Conflict, NotFound
from safehold.store import Database
from safehold.web.app import create_app

PDQ = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"
MD5 = "d41d8cd98f00b204e9800998ecf8427e"
SCRIPT = "<script>alert(1)</script>"


@pytest.fixture(autouse=True)
def _cheap_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    cheap_argon2(monkeypatch)


@pytest.fixture()
def client(db: Database) -> Iterator[TestClient]:
    with serve(db) as c:
        yield c


@pytest.fixture()
def filled(db: Database) -> Banks:
    """Two banks of the operator's ``default`` tenant, made through the Python API."""
    banks = Banks(db)
    banks.create("blk", description=f'evil {SCRIPT} & "quotes"', thresholds={"pdq": 20})
    banks.create("fp", kind="negative", dihedral=True)
    banks.add(
        "blk",
        [
            make_entry("pdq", PDQ, ["A1"], "ncmec", "e1"),
            make_entry("md5", MD5, ["B2"], "local", "e2"),
        ],
    )
    return banks


@pytest.fixture()
def reader(db: Database) -> dict[str, str]:
    return bearer(new_key(db, "banks:read", tenant="default"))


# --------------------------------------------------------------------------- operations


def test_healthz(client: TestClient) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "version": __version__}


def test_readyz_reports_the_index(db: Database, filled: Banks) -> None:
    with serve(db) as c:
        r = c.get("/readyz")
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["status"] == "ready" and body["database"] == "ok"
        index = body["index"]
        assert index["loaded"] is True and index["entries"] == 2 and index["lag_changes"] == 0
        assert index["error"] is None and index["change_id"] == index["latest_change_id"]
        filled.add("blk", [make_entry("md5", "0" * 32)])
        c.app.state.service.replica.sync()  # type: ignore[attr-defined]
        assert c.get("/readyz").json()["index"]["entries"] == 3


def test_readyz_is_503_until_the_index_is_loaded(db: Database) -> None:
    c = TestClient(create_app(db), base_url=BASE_URL)  # no lifespan: nothing loaded
    body = assert_problem(c.get("/readyz"), 503, "not_ready")
    assert "loading" in body["detail"]
    assert body["checks"]["index"]["loaded"] is False
    assert body["checks"]["database"] == "ok"
    assert c.get("/healthz").status_code == 200  # alive all the same


def metric(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in a Prometheus text exposition."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        m = re.fullmatch(r"([a-zA-Z_:]+)(?:\{(.*)\})? (\S+)", line)
        if m is None or m.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        if found == labels:
            return float(m.group(3))
    return None


def test_metrics_count_requests_by_route_template(
    db: Database, filled: Banks, reader: dict[str, str]
) -> None:
    with serve(db) as c:
        assert c.get("/v1/banks/blk", headers=reader).status_code == 200
        assert c.get("/v1/banks/fp", headers=reader).status_code == 200
        assert c.get("/v1/banks/nope", headers=reader).status_code == 404
        assert c.get("/v1/banks").status_code == 401
        assert c.get("/no/such/page").status_code == 404
        lookup = {"signal_type": "md5", "values": [MD5, "0" * 32]}
        assert c.post("/v1/lookup", json=lookup, headers=bearer(new_key(db, "scan"))).is_success
        r = c.get("/metrics")
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/plain")
        text = r.text
    requests = "safehold_http_requests_total"
    route = "/v1/banks/{name}"
    assert metric(text, requests, method="GET", route=route, status="200") == 2.0
    assert metric(text, requests, method="GET", route=route, status="404") == 1.0
    assert metric(text, requests, method="GET", route="/v1/banks", status="401") == 1.0
    assert metric(text, requests, method="GET", route="unmatched", status="404") == 1.0
    assert "/v1/banks/blk" not in text and "/no/such/page" not in text
    assert metric(text, "safehold_http_request_duration_seconds_count", method="GET", route=route)
    assert metric(text, "safehold_index_entries") == 2.0
    assert metric(text, "safehold_lookup_values_total", signal_type="md5") == 2.0
    assert metric(text, "safehold_index_change_id") is not None
    assert metric(text, "safehold_index_lag_seconds") is not None


# --------------------------------------------------------------------------- banks as JSON


def test_banks_json_needs_a_key(client: TestClient, filled: Banks) -> None:
    r = client.get("/v1/banks")
    assert_problem(r, 401, "unauthorized")
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert "blk" not in r.text


def test_banks_json_when_empty(client: TestClient, reader: dict[str, str]) -> None:
    r = client.get("/v1/banks", headers=reader)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    assert r.json() == {"banks": [], "next_cursor": None}


def test_banks_json(client: TestClient, filled: Banks, reader: dict[str, str]) -> None:
    body = client.get("/v1/banks", headers=reader).json()
    assert [b["name"] for b in body["banks"]] == ["blk", "fp"]
    blk, fp = body["banks"]
    assert blk["kind"] == "block" and fp["kind"] == "negative"
    assert blk["description"] == f'evil {SCRIPT} & "quotes"'  # JSON carries it as data
    assert blk["entries"] == 2 and blk["counts"] == {"md5": 1, "pdq": 1}
    assert blk["thresholds"]["pdq"] == 20
    assert blk["tenant"] == "default" and blk["read_only"] is False
    assert fp["dihedral"] is True and fp["entries"] == 0
    assert body == {
        "banks": [b.to_dict(viewer="default") for b in filled.list()],
        "next_cursor": None,
    }


# --------------------------------------------------------------------------- overview page


def test_index_page_lists_banks_and_escapes_descriptions(db: Database, filled: Banks) -> None:
    for host in ("127.0.0.1", "::1"):
        with serve(db, client=(host, 40000)) as c:
            r = c.get("/")
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/html")
        page = r.text
        assert "blk" in page and "fp" in page and "negative" in page
        assert "pdq: 1" in page and "md5: 1" in page
        assert SCRIPT not in page
        assert "<script" not in page.lower()
        assert html.escape(SCRIPT, quote=True) in page or html.escape(SCRIPT, quote=False) in page
        assert "&amp;" in page


@pytest.mark.parametrize("host", ["203.0.113.7", "10.0.0.2", "2001:db8::1"])
def test_index_page_hides_banks_from_other_hosts(db: Database, filled: Banks, host: str) -> None:
    with serve(db, client=(host, 40000)) as c:
        r = c.get("/")
    assert r.status_code == 200
    assert "blk" not in r.text and "evil" not in r.text and "pdq: 1" not in r.text
    assert "shown only to this machine" in r.text


def test_index_page_without_banks(client: TestClient) -> None:
    r = client.get("/")
    assert r.status_code == 200
    assert "No banks yet" in r.text
    assert "safehold demo" in r.text


# --------------------------------------------------------------------------- problems


def test_unknown_path_is_problem_json(client: TestClient) -> None:
    body = assert_problem(client.get("/no/such/page"), 404)
    assert body["type"] in ("about:blank", "https://safehold.dev/problems/not_found")


def test_wrong_method_is_problem_json(client: TestClient) -> None:
    r = client.delete("/v1/banks")
    assert_problem(r, 405)
    assert "GET" in r.headers.get("allow", "")


@pytest.mark.parametrize(
    ("exc", "status", "code"), [(NotFound, 404, "not_found"), (Conflict, 409, "conflict")]
)
def test_safehold_errors_are_problem_json(
    db: Database, exc: type[NotFound] | type[Conflict], status: int, code: str
) -> None:
    app = create_app(db)

    @app.get("/boom")
    def boom() -> None:
        raise exc(f"no bank named {SCRIPT!r}")

    with TestClient(app, base_url=BASE_URL) as c:
        r = c.get("/boom")
    assert r.status_code == status
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json() == {
        "type": f"https://safehold.dev/problems/{code}",
        "title": code.replace("_", " "),
        "status": status,
        "detail": f"no bank named {SCRIPT!r}",
    }


def test_unexpected_errors_are_500_problems_without_internals(db: Database) -> None:
    app = create_app(db)

    @app.get("/crash")
    def crash() -> None:
        raise RuntimeError("secret internal state /etc/safehold")

    with TestClient(app, base_url=BASE_URL, raise_server_exceptions=False) as c:
        r = c.get("/crash")
    body = assert_problem(r, 500, "internal_error")
    assert "secret" not in r.text and "Traceback" not in r.text
    assert body["title"] == "internal error"


# --------------------------------------------------------------------------- OpenAPI and docs


def test_openapi_document(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert spec["openapi"].startswith("3.1")
    assert spec["info"]["version"] == __version__
    assert {"/healthz", "/readyz", "/metrics", "/v1/scan", "/v1/lookup", "/v1/banks"} <= set(
        spec["paths"]
    )
    assert {"EntryIn", "EntriesIn"} <= set(spec["components"]["schemas"])
    assert "/docs" not in spec["paths"] and "/" not in spec["paths"]


def test_docs_page_is_served_locally(client: TestClient) -> None:
    r = client.get("/docs")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "/openapi.json" in r.text
    sources = re.findall(r'(?:src|href)="([^"]+)"', r.text) + re.findall(r"url: '([^']+)'", r.text)
    assert sources
    for src in sources:
        assert not src.startswith(("http://", "https://", "//")), src
    for asset in ("/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css"):
        assert client.get(asset).status_code == 200, asset
