"""The banks API: banks, entries (JSON, JSONL, CSV), pagination, export, hostile input."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from api_helpers import assert_problem, bearer, cheap_argon2, flip_bits, new_key, serve
from safehold.store import Database

PDQ = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"
SCRIPT = "<script>alert(1)</script>"
HOSTILE = {
    "script": SCRIPT,
    "huge": "x" * 100_000,
    "nul": "a\x00b",
    "rtl": "abc\u202etxt.exe\u202c",
    "traversal": "../../etc/passwd",
}
URL_MAX = 20_000
"""httpx refuses URLs over 64 KiB: hostile values in paths and queries are cut to this."""


def md5_of(i: int) -> str:
    return hashlib.md5(f"entry {i}".encode()).hexdigest()


@pytest.fixture(autouse=True)
def _cheap_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    cheap_argon2(monkeypatch)


@dataclass
class Api:
    c: TestClient
    h: dict[str, str]  # banks:read + banks:write + scan

    def get(self, path: str, **kw: Any) -> Any:
        return self.c.get(path, headers=self.h, **kw)

    def post(self, path: str, **kw: Any) -> Any:
        headers = {**self.h, **kw.pop("headers", {})}
        return self.c.post(path, headers=headers, **kw)

    def patch(self, path: str, **kw: Any) -> Any:
        return self.c.patch(path, headers=self.h, **kw)

    def delete(self, path: str) -> Any:
        return self.c.delete(path, headers=self.h)

    def bank(self, name: str, **kw: Any) -> dict[str, Any]:
        r = self.post("/v1/banks", json={"name": name, **kw})
        assert r.status_code == 201, r.text
        return r.json()  # type: ignore[no-any-return]

    def entries(self, bank: str) -> list[dict[str, Any]]:
        r = self.get(f"/v1/banks/{bank}/entries", params={"limit": 1000})
        assert r.status_code == 200, r.text
        return r.json()["entries"]  # type: ignore[no-any-return]

    def lookup(self, signal_type: str, value: str) -> dict[str, Any]:
        r = self.post("/v1/lookup", json={"signal_type": signal_type, "values": [value]})
        assert r.status_code == 200, r.text
        return r.json()["results"][0]  # type: ignore[no-any-return]


@pytest.fixture()
def api(db: Database) -> Iterator[Api]:
    key = new_key(db, "scan,banks:read,banks:write", tenant="acme")
    with serve(db) as c:
        yield Api(c, bearer(key))


def paginate(api: Api, path: str, item: str, limit: int = 2) -> tuple[list[Any], int]:
    """Every item over every page, and the number of pages."""
    items: list[Any] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": limit}
        if cursor is not None:
            params["cursor"] = cursor
        r = api.get(path, params=params)
        assert r.status_code == 200, r.text
        body = r.json()
        pages += 1
        assert len(body[item]) <= limit
        items.extend(body[item])
        cursor = body["next_cursor"]
        if cursor is None:
            return items, pages
        assert pages < 100


# --------------------------------------------------------------------------- banks


def test_create_show_duplicate_and_bad_names(api: Api) -> None:
    made = api.bank("csam-known", description="known items", thresholds={"pdq": 20})
    assert made["name"] == "csam-known" and made["tenant"] == "acme"
    assert made["kind"] == "block" and made["entries"] == 0 and made["version"] == 1
    assert made["thresholds"]["pdq"] == 20 and made["read_only"] is False
    assert api.get("/v1/banks/csam-known").json() == made
    negative = api.bank("fp", kind="negative", dihedral=True)
    assert negative["kind"] == "negative" and negative["dihedral"] is True

    r = api.post("/v1/banks", json={"name": "csam-known"})
    assert_problem(r, 409, "conflict")
    for bad in ("", " x", "-x", ".hidden", "a b", "a/b", "x" * 101, "é", "<b>"):
        r = api.post("/v1/banks", json={"name": bad})
        assert r.status_code == 422, (bad, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
    for body in (
        {"name": "k", "kind": "allow"},
        {"name": "k", "thresholds": {"pdq": 300}},
        {"name": "k", "thresholds": {"md5": 3}},
        {"name": "k", "thresholds": {"nope": 1}},
        {"name": "k", "owner": "beta"},
        {"name": "k", "tenant": "beta"},
        {},
        [],
        "k",
    ):
        r = api.post("/v1/banks", json=body)
        assert r.status_code == 422, (body, r.text)
    r = api.post("/v1/banks", content=b"{not json", headers={"Content-Type": "application/json"})
    assert_problem(r, 422, "validation_error")
    assert [b["name"] for b in api.get("/v1/banks").json()["banks"]] == ["csam-known", "fp"]


def test_list_banks_with_cursors(api: Api) -> None:
    names = [f"bank-{i:02d}" for i in range(9)]
    for name in reversed(names):
        api.bank(name)
    listed, pages = paginate(api, "/v1/banks", "banks", limit=2)
    assert [b["name"] for b in listed] == names
    assert pages == 5
    assert len(api.get("/v1/banks").json()["banks"]) == 9
    last = api.get("/v1/banks", params={"limit": 9}).json()
    assert last["next_cursor"] is None


def cursor(obj: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")


BAD_PAGES = [
    {"cursor": "!!!"},
    {"cursor": cursor({"after": "a\x00"})},
    {"cursor": cursor({"after": 10**30})},
    {"cursor": cursor({"after": -5})},
    {"cursor": "bm90IGpzb24"},  # "not json"
    {"cursor": cursor({"before": "a"})},
    {"cursor": cursor(["a"])},
    {"cursor": cursor({"after": True})},
    {"cursor": cursor({"after": None})},
    {"cursor": "A" * 600},
    {"limit": 0},
    {"limit": 1001},
    {"limit": "ten"},
]


@pytest.mark.parametrize(
    ("path", "params"),
    [("/v1/banks", p) for p in [*BAD_PAGES, {"cursor": cursor({"after": 5})}]]
    + [("/v1/banks/b1/entries", p) for p in [*BAD_PAGES, {"cursor": cursor({"after": "a"})}]],
)
def test_invalid_page_parameters_are_422(api: Api, path: str, params: dict[str, Any]) -> None:
    api.bank("b1")
    body = assert_problem(api.get(path, params=params), 422)
    if "cursor" in params and len(params["cursor"]) <= 512:
        assert "next_cursor" in body["detail"]


def test_patch_thresholds_changes_matching(api: Api) -> None:
    api.bank("blk")
    near = flip_bits(PDQ, 16)  # distance 16: inside the default 31
    r = api.post("/v1/banks/blk/entries", json={"signal_type": "pdq", "value": PDQ})
    assert r.status_code == 201
    hit = api.lookup("pdq", near)
    assert hit["decision"] == "match" and hit["matches"][0]["distance"] == 16

    r = api.patch("/v1/banks/blk", json={"thresholds": {"pdq": 10}})
    assert r.status_code == 200, r.text
    assert r.json()["thresholds"]["pdq"] == 10 and r.json()["version"] > 1
    assert api.lookup("pdq", near)["decision"] == "no_match"
    assert api.lookup("pdq", flip_bits(PDQ, 10))["decision"] == "match"

    r = api.patch("/v1/banks/blk", json={"description": "tight", "kind": "negative"})
    assert r.json()["description"] == "tight" and r.json()["kind"] == "negative"
    assert r.json()["thresholds"]["pdq"] == 10  # unchanged
    for bad in ({"thresholds": {"pdq": -1}}, {"kind": "x"}, {"name": "renamed"}):
        assert_problem(api.patch("/v1/banks/blk", json=bad), 422)
    assert_problem(api.patch("/v1/banks/nope", json={"description": "x"}), 404, "not_found")


def test_delete_bank(api: Api) -> None:
    api.bank("gone")
    api.post(
        "/v1/banks/gone/entries", json={"entries": [{"signal_type": "md5", "value": md5_of(1)}]}
    )
    assert api.lookup("md5", md5_of(1))["decision"] == "match"
    r = api.delete("/v1/banks/gone")
    assert r.status_code == 200
    assert r.json() == {"deleted": "gone", "entries": 1}
    assert_problem(api.get("/v1/banks/gone"), 404, "not_found")
    assert_problem(api.delete("/v1/banks/gone"), 404, "not_found")
    assert api.lookup("md5", md5_of(1))["decision"] == "no_match"
    api.bank("gone")  # the name is free again
    assert api.entries("gone") == []


# --------------------------------------------------------------------------- entries


def test_add_entries_as_json(api: Api) -> None:
    api.bank("b")
    one = {
        "signal_type": "pdq",
        "value": PDQ.upper(),
        "labels": ["A1"],
        "source": "ncmec",
        "external_id": "e1",
        "note": "first",
    }
    r = api.post("/v1/banks/b/entries", json=one)
    assert r.status_code == 201, r.text
    assert r.json()["added"] == 1 and len(r.json()["ids"]) == 1
    entry_id = r.json()["ids"][0]

    many = [{"signal_type": "md5", "value": md5_of(i), "labels": ["B2"]} for i in range(3)]
    r = api.post("/v1/banks/b/entries", json={"entries": many})
    assert r.status_code == 201 and r.json()["added"] == 3
    r = api.post("/v1/banks/b/entries", json=[{"signal_type": "sha256", "value": "ab" * 32}])
    assert r.status_code == 201 and r.json()["added"] == 1
    r = api.post("/v1/banks/b/entries", json=many)  # again: nothing new
    assert r.status_code == 201 and r.json()["added"] == 0 and r.json()["unchanged"] == 3

    entries = api.entries("b")
    assert len(entries) == 5
    first = api.get(f"/v1/banks/b/entries/{entry_id}").json()
    assert first == entries[0]
    assert first["value"] == PDQ and first["labels"] == ["A1"] and first["source"] == "ncmec"
    assert first["external_id"] == "e1" and first["note"] == "first"
    assert first["added_by"].startswith("key:")
    assert api.get("/v1/banks/b").json()["counts"] == {"pdq": 1, "md5": 3, "sha256": 1}
    assert api.lookup("pdq", PDQ)["matches"][0]["entry_id"] == entry_id
    assert_problem(api.get("/v1/banks/b/entries/999999"), 404, "not_found")
    assert_problem(api.get("/v1/banks/b/entries/0"), 422)
    assert_problem(api.get("/v1/banks/nope/entries"), 404, "not_found")


def test_bad_json_entries_are_refused_with_their_index(api: Api) -> None:
    api.bank("b")
    batch = [
        {"signal_type": "md5", "value": md5_of(0)},
        {"signal_type": "md5", "value": "xyz"},
        {"signal_type": "pdq", "value": PDQ, "labels": ["Z9"]},
        {"signal_type": "nope", "value": "1"},
    ]
    body = assert_problem(api.post("/v1/banks/b/entries", json=batch), 422, "import_failed")
    assert [e["index"] for e in body["errors"]] == [1, 2, 3]
    assert api.entries("b") == []
    for bad in (
        {"signal_type": "md5"},
        {"signal_type": "md5", "value": md5_of(0), "extra": 1},
        {"entries": "x"},
        {"entries": [{"signal_type": "md5", "value": md5_of(0)}] * 10_001},
        42,
    ):
        assert_problem(api.post("/v1/banks/b/entries", json=bad), 422)
    r = api.post(
        "/v1/banks/b/entries", content=b"\xff\xfe", headers={"Content-Type": "application/json"}
    )
    assert_problem(r, 422)
    assert api.entries("b") == []


JSONL = "\n".join(
    [
        json.dumps({"signal_type": "md5", "value": md5_of(1), "labels": ["A1"]}),
        json.dumps({"signal_type": "pdq", "value": PDQ, "source": "ncmec", "external_id": 7}),
        "",
        json.dumps({"signal_type": "md5", "value": md5_of(2), "labels": "A2|B1"}),
    ]
)
CSV = (
    "signal_type,value,labels,source,external_id,note\n"
    f"md5,{md5_of(1)},A1,local,,\n"
    f'pdq,{PDQ},A1|B2,ncmec,ex-1,"a note, with a comma"\n'
)


@pytest.mark.parametrize(
    ("ctype", "body", "n"),
    [("application/x-ndjson", JSONL, 3), ("text/csv", CSV, 2), ("text/csv; charset=utf-8", CSV, 2)],
)
def test_add_entries_from_files(api: Api, ctype: str, body: str, n: int) -> None:
    api.bank("b")
    r = api.post("/v1/banks/b/entries", content=body.encode(), headers={"Content-Type": ctype})
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["added"] == n and out["rows"] == n and out["skipped"] == 0
    assert out["format"] == ("jsonl" if "ndjson" in ctype else "csv")
    entries = api.entries("b")
    assert len(entries) == n
    pdq = next(e for e in entries if e["signal_type"] == "pdq")
    assert pdq["source"] == "ncmec"
    assert api.lookup("md5", md5_of(1))["matches"][0]["labels"] == ["A1"]


def test_bad_rows_refuse_the_file_unless_skip_invalid(api: Api) -> None:
    api.bank("b")
    lines = [
        json.dumps({"signal_type": "md5", "value": md5_of(1)}),
        json.dumps({"signal_type": "md5", "value": "not-a-hash"}),
        json.dumps({"signal_type": "md5", "value": md5_of(2)}),
        "{broken",
        json.dumps({"signal_type": "pdq", "value": PDQ, "labels": ["nope"]}),
        json.dumps({"signal_type": "md5", "value": md5_of(3)}),
    ]
    body = "\n".join(lines).encode()
    ndjson = {"Content-Type": "application/x-ndjson"}
    problem = assert_problem(
        api.post("/v1/banks/b/entries", content=body, headers=ndjson), 422, "import_failed"
    )
    assert [e["line"] for e in problem["errors"]] == [2, 4, 5]
    assert "line 2" in problem["detail"]
    assert api.entries("b") == []
    assert api.lookup("md5", md5_of(1))["decision"] == "no_match"

    r = api.post(
        "/v1/banks/b/entries", content=body, headers=ndjson, params={"skip_invalid": "true"}
    )
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["added"] == 3 and out["skipped"] == 3 and out["rows"] == 6
    assert [e["line"] for e in out["errors"]] == [2, 4, 5]
    assert sorted(e["value"] for e in api.entries("b")) == sorted(md5_of(i) for i in (1, 2, 3))

    csv_body = f"signal_type,value\nmd5,{md5_of(9)}\nmd5,zz\nmd5\n".encode()
    csv = {"Content-Type": "text/csv"}
    problem = assert_problem(
        api.post("/v1/banks/b/entries", content=csv_body, headers=csv), 422, "import_failed"
    )
    assert [e["line"] for e in problem["errors"]] == [3, 4]
    assert len(api.entries("b")) == 3
    r = api.post("/v1/banks/b/entries", content=b"no header at all\n", headers=csv)
    assert_problem(r, 422)
    r = api.post("/v1/banks/b/entries", content=csv_body, headers=csv, params={"format": "bogus"})
    assert_problem(r, 422)


def test_entries_pagination_and_filter(api: Api) -> None:
    api.bank("b")
    batch = [{"signal_type": "md5", "value": md5_of(i)} for i in range(7)]
    batch += [{"signal_type": "pdq", "value": flip_bits(PDQ, i)} for i in range(2)]
    ids = api.post("/v1/banks/b/entries", json=batch).json()["ids"]
    listed, pages = paginate(api, "/v1/banks/b/entries", "entries", limit=2)
    assert [e["id"] for e in listed] == sorted(ids)
    assert pages == 5
    r = api.get("/v1/banks/b/entries", params={"signal_type": "PDQ"}).json()
    assert [e["signal_type"] for e in r["entries"]] == ["pdq", "pdq"]
    assert_problem(api.get("/v1/banks/b/entries", params={"signal_type": "nope"}), 422)


def test_remove_entries_by_id_and_by_value(api: Api) -> None:
    api.bank("b")
    batch = [{"signal_type": "md5", "value": md5_of(i)} for i in range(4)]
    batch.append({"signal_type": "pdq", "value": PDQ})
    added = api.post("/v1/banks/b/entries", json=batch).json()["ids"]
    by_value = {e["value"]: e["id"] for e in api.entries("b")}
    assert sorted(by_value.values()) == sorted(added)
    ids = [by_value[e["value"]] for e in batch]  # the response's ids are not in input order

    r = api.delete(f"/v1/banks/b/entries/{ids[0]}")
    assert r.status_code == 200 and r.json() == {"removed": 1, "ids": [ids[0]]}
    assert_problem(api.delete(f"/v1/banks/b/entries/{ids[0]}"), 404, "not_found")
    assert api.lookup("md5", md5_of(0))["decision"] == "no_match"

    r = api.post(
        "/v1/banks/b/entries/remove",
        json={"ids": [ids[1]], "values": [{"signal_type": "MD5", "value": md5_of(2).upper()}]},
    )
    assert r.status_code == 200
    assert r.json()["removed"] == 2 and sorted(r.json()["ids"]) == sorted(ids[1:3])
    r = api.post(
        "/v1/banks/b/entries/remove", json={"values": [{"signal_type": "pdq", "value": PDQ}]}
    )
    assert r.json()["removed"] == 1
    assert [e["value"] for e in api.entries("b")] == [md5_of(3)]
    assert api.lookup("pdq", PDQ)["decision"] == "no_match"
    r = api.post("/v1/banks/b/entries/remove", json={"ids": [999999]})
    assert r.status_code == 200 and r.json()["removed"] == 0
    for bad in (
        {"values": [{"signal_type": "md5", "value": "zz"}]},
        {"values": [{"signal_type": "nope", "value": "1"}]},
        {"ids": ["x"]},
        {"other": 1},
    ):
        assert_problem(api.post("/v1/banks/b/entries/remove", json=bad), 422)
    assert len(api.entries("b")) == 1


def _comparable(entries: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return sorted(
        (e["signal_type"], e["value"], tuple(e["labels"]), e["source"], e["external_id"], e["note"])
        for e in entries
    )


@pytest.mark.parametrize(("fmt", "ctype"), [("jsonl", "application/x-ndjson"), ("csv", "text/csv")])
def test_export_round_trips_through_import(api: Api, fmt: str, ctype: str) -> None:
    api.bank("src")
    batch = [
        {
            "signal_type": "pdq",
            "value": PDQ,
            "labels": ["A1", "B2"],
            "source": "ncmec",
            "external_id": "x,1",
            "note": 'quote " comma , newline\nand <b>tags</b> \u202e',
        },
        {"signal_type": "md5", "value": md5_of(1)},
        {"signal_type": "sha256", "value": "cd" * 32, "labels": ["B1"], "note": "naïve ☃"},
    ]
    assert api.post("/v1/banks/src/entries", json=batch).status_code == 201
    r = api.get("/v1/banks/src/export", params={"format": fmt})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith(ctype)
    assert f'filename="src.{fmt}"' in r.headers["content-disposition"]
    api.bank("copy")
    r2 = api.post("/v1/banks/copy/entries", content=r.content, headers={"Content-Type": ctype})
    assert r2.status_code == 201, r2.text
    assert r2.json()["added"] == 3
    assert _comparable(api.entries("copy")) == _comparable(api.entries("src"))


def test_export_formats_and_errors(api: Api) -> None:
    api.bank("b")
    empty = api.get("/v1/banks/b/export", params={"format": "csv"})
    assert empty.status_code == 200 and empty.text.startswith("signal_type,value")
    api.post("/v1/banks/b/entries", json={"signal_type": "pdq", "value": PDQ})
    lines = api.get("/v1/banks/b/export", params={"format": "pytx-lines"})
    assert lines.status_code == 200 and PDQ in lines.text
    assert_problem(api.get("/v1/banks/b/export", params={"format": "xml"}), 422)
    assert_problem(api.get("/v1/banks/nope/export"), 404, "not_found")


# --------------------------------------------------------------------------- hostile input


def _stored_or_refused(r: Any) -> bool:
    """True when the value was stored, False when it was refused with a 4xx problem."""
    assert r.status_code < 500, r.text[:300]
    if r.status_code >= 400:
        assert r.headers["content-type"].startswith("application/problem+json")
        return False
    return True


STORED_AS_DATA = {"script", "rtl", "traversal"}
"""Hostile strings a free-text field keeps verbatim; ``huge`` and ``nul`` are refused."""


def test_hostile_bank_names_are_refused(api: Api) -> None:
    for kind, value in HOSTILE.items():
        assert not _stored_or_refused(api.post("/v1/banks", json={"name": value})), kind
        path = "/v1/banks/" + quote(value[:URL_MAX], safe="")
        for r in (
            api.get(path),
            api.get(path + "/entries"),
            api.get(path + "/export"),
            api.patch(path, json={"description": "x"}),
            api.delete(path),
            api.post(path + "/entries", json={"signal_type": "md5", "value": md5_of(1)}),
        ):
            assert not _stored_or_refused(r), kind
    assert api.get("/v1/banks").json()["banks"] == []


def test_hostile_descriptions_are_data_or_refused(api: Api) -> None:
    for i, (kind, value) in enumerate(sorted(HOSTILE.items())):
        created = _stored_or_refused(
            api.post("/v1/banks", json={"name": f"c{i}", "description": value})
        )
        assert created == (kind in STORED_AS_DATA), kind
        if created:
            assert api.get(f"/v1/banks/c{i}").json()["description"] == value
        api.bank(f"p{i}")
        patched = _stored_or_refused(api.patch(f"/v1/banks/p{i}", json={"description": value}))
        assert patched == (kind in STORED_AS_DATA), kind
        stored = api.get(f"/v1/banks/p{i}").json()["description"]
        assert stored == (value if patched else "")


@pytest.mark.parametrize("field", ["note", "external_id", "source", "labels"])
def test_hostile_entry_fields_are_data_or_refused(api: Api, field: str) -> None:
    api.bank("b")
    ndjson = {"Content-Type": "application/x-ndjson"}
    for kind, raw in HOSTILE.items():
        value: Any = [raw] if field == "labels" else raw
        entry = {"signal_type": "md5", "value": md5_of(1), field: value}
        expect = kind in STORED_AS_DATA and field in ("note", "external_id")
        for as_file in (False, True):
            if as_file:
                r = api.post("/v1/banks/b/entries", content=json.dumps(entry), headers=ndjson)
            else:
                r = api.post("/v1/banks/b/entries", json=entry)
            assert _stored_or_refused(r) == expect, (kind, as_file, r.text[:200])
            stored = api.entries("b")
            if expect:
                assert len(stored) == 1 and stored[0][field] == value
                api.post("/v1/banks/b/entries/remove", json={"ids": [stored[0]["id"]]})
            else:
                assert stored == []
                if as_file:
                    assert r.json()["errors"][0]["line"] == 1


def test_hostile_query_and_path_values_never_fail_the_server(api: Api) -> None:
    api.bank("b")
    for kind, raw in HOSTILE.items():
        value = raw[:URL_MAX]
        for r in (
            api.get("/v1/banks", params={"cursor": value}),
            api.get("/v1/banks/b/entries", params={"cursor": value}),
            api.get("/v1/banks/b/entries", params={"signal_type": value}),
            api.get("/v1/banks/b/export", params={"format": value}),
            api.get("/v1/banks/b/entries/" + quote(value, safe="")),
            api.post(
                "/v1/banks/b/entries",
                params={"format": value},
                content=b"x",
                headers={"Content-Type": "text/csv"},
            ),
            api.post("/v1/lookup", json={"signal_type": value, "values": [value]}),
            api.post(
                "/v1/lookup", json={"signal_type": "md5", "values": [md5_of(1)], "banks": [value]}
            ),
        ):
            assert not _stored_or_refused(r), kind
        # a well-formed cursor holding hostile text: a page (or 422), never a server error
        r = api.get("/v1/banks", params={"cursor": cursor({"after": value})})
        assert r.status_code in (200, 422), (kind, r.text[:200])
    assert api.entries("b") == []


def test_hostile_import_files_never_fail_the_server(api: Api) -> None:
    api.bank("b")
    bodies = [
        b"\x00" * 1000,
        b"\xff\xfe\xfa" * 100,
        b"{" * 100_000,
        b"[" * 100_000 + b"\n",
        ("signal_type,value\n" + "md5," + "f" * 2_000_000 + "\n").encode(),
        b'signal_type,value\nmd5,"unterminated\n',
        ("signal_type,value,note\n" + f"md5,{md5_of(1)},{SCRIPT}\x00\n").encode(),
    ]
    for body in bodies:
        for ctype in ("application/x-ndjson", "text/csv", "application/octet-stream"):
            r = api.post("/v1/banks/b/entries", content=body, headers={"Content-Type": ctype})
            assert not _stored_or_refused(r), (body[:40], ctype, r.text[:200])
    assert api.entries("b") == []
