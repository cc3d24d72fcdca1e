"""The FastAPI app: liveness, banks as JSON and as a page, problem+json errors."""

from __future__ import annotations

import html
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from safehold.banks import Banks, make_entry
from safehold.errors import Conflict, NotFound
from safehold.store import Database
from safehold.web.app import create_app

PDQ = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"
MD5 = "d41d8cd98f00b204e9800998ecf8427e"
SCRIPT = "<script>alert(1)</script>"


@pytest.fixture()
def client(db: Database) -> Iterator[TestClient]:
    with TestClient(create_app(db), base_url="http://127.0.0.1") as c:
        yield c


@pytest.fixture()
def filled(db: Database) -> Banks:
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


def test_healthz(client: TestClient) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


def test_banks_json_when_empty(client: TestClient) -> None:
    r = client.get("/v1/banks")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    assert r.json() == {"banks": []}


def test_banks_json(client: TestClient, filled: Banks) -> None:
    body = client.get("/v1/banks").json()
    assert [b["name"] for b in body["banks"]] == ["blk", "fp"]
    blk, fp = body["banks"]
    assert blk["kind"] == "block" and fp["kind"] == "negative"
    assert blk["description"] == f'evil {SCRIPT} & "quotes"'  # JSON carries it as data
    assert blk["entries"] == 2 and blk["counts"] == {"md5": 1, "pdq": 1}
    assert blk["thresholds"]["pdq"] == 20
    assert fp["dihedral"] is True and fp["entries"] == 0
    assert body == {"banks": [b.to_dict() for b in filled.list()]}


def test_index_page_lists_banks_and_escapes_descriptions(client: TestClient, filled: Banks) -> None:
    r = client.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    page = r.text
    assert "blk" in page and "fp" in page and "negative" in page
    assert "pdq: 1" in page and "md5: 1" in page
    assert SCRIPT not in page
    assert "<script" not in page.lower()
    assert html.escape(SCRIPT, quote=True) in page or html.escape(SCRIPT, quote=False) in page
    assert "&amp;" in page


def test_index_page_without_banks(client: TestClient) -> None:
    r = client.get("/")
    assert r.status_code == 200
    assert "No banks yet" in r.text
    assert "safehold demo" in r.text


def test_unknown_path_is_problem_json(client: TestClient) -> None:
    r = client.get("/no/such/page")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["status"] == 404
    assert body["title"] == "Not Found"
    assert body["type"] == "about:blank"
    assert "detail" in body


def test_wrong_method_is_problem_json(client: TestClient) -> None:
    r = client.delete("/v1/banks")
    assert r.status_code == 405
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["status"] == 405
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

    with TestClient(app, base_url="http://127.0.0.1") as c:
        r = c.get("/boom")
    assert r.status_code == status
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json() == {
        "type": f"https://safehold.dev/problems/{code}",
        "title": code.replace("_", " "),
        "status": status,
        "detail": f"no bank named {SCRIPT!r}",
    }


def test_openapi_lists_the_routes(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert {"/healthz", "/v1/banks"} <= set(spec["paths"])
