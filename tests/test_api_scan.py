"""``POST /v1/scan`` and ``POST /v1/lookup``: signals, matches, bank selection, errors.

Every upload is a picture or clip drawn by code; the labels attached to bank entries
label nothing but those synthetic shapes.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

import media_factory as mf
from api_helpers import (
    assert_problem,
    bearer,
    cheap_argon2,
    hamming,
    new_key,
    picture_bytes,
    serve,
)
from safehold.hashing import hash_file, hash_image_bytes
from safehold.store import Database

PDQ_SEED = 11


def md5_of(i: int) -> str:
    return hashlib.md5(f"value {i}".encode()).hexdigest()


@pytest.fixture(autouse=True)
def _cheap_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    cheap_argon2(monkeypatch)


@dataclass
class ScanApi:
    c: TestClient
    scan_h: dict[str, str]
    write_h: dict[str, str]
    uploads: Path

    def scan(self, upload: bytes, /, *, ctype: str = "image/png", **kw: Any) -> Any:
        files = {"file": ("upload.bin", upload, ctype)}
        return self.c.post("/v1/scan", files=files, headers=self.scan_h, **kw)

    def scan_raw(self, upload: Any, /, *, ctype: str | None = "image/png", **kw: Any) -> Any:
        headers = {**self.scan_h, **({"Content-Type": ctype} if ctype else {})}
        return self.c.post("/v1/scan", content=upload, headers=headers, **kw)

    def lookup(self, body: Any) -> Any:
        return self.c.post("/v1/lookup", json=body, headers=self.scan_h)

    def bank(self, name: str, *entries: dict[str, Any], **kw: Any) -> list[int]:
        r = self.c.post("/v1/banks", json={"name": name, **kw}, headers=self.write_h)
        assert r.status_code == 201, r.text
        if not entries:
            return []
        r = self.c.post(
            f"/v1/banks/{name}/entries", json={"entries": list(entries)}, headers=self.write_h
        )
        assert r.status_code == 201, r.text
        return r.json()["ids"]  # type: ignore[no-any-return]

    def assert_no_temp_files(self) -> None:
        assert os.listdir(self.uploads) == []


@pytest.fixture()
def api(db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ScanApi]:
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    monkeypatch.setenv("SAFEHOLD_TMPDIR", str(uploads))
    monkeypatch.setenv("SAFEHOLD_MEDIA_DIR", str(tmp_path / "media"))  # matches are kept
    scan_key = new_key(db, "scan")
    write_key = new_key(db, "banks:read,banks:write")
    with serve(db) as c:
        yield ScanApi(c, bearer(scan_key), bearer(write_key), uploads)


def expected_json(path: Path) -> dict[str, Any]:
    return json.loads(json.dumps(hash_file(path).to_json()))  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- signals


@pytest.mark.parametrize(("fmt", "ctype"), [("PNG", "image/png"), ("JPEG", "image/jpeg")])
def test_scan_returns_the_signals_of_the_library(
    api: ScanApi, tmp_path: Path, fmt: str, ctype: str
) -> None:
    data = picture_bytes(3, fmt)
    path = tmp_path / f"p.{fmt.lower()}"
    path.write_bytes(data)
    want = hash_file(path)
    for r in (api.scan(data, ctype=ctype), api.scan_raw(data, ctype=ctype)):
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["signals"] == expected_json(path)
        assert body["signals"]["md5"] == hashlib.md5(data).hexdigest()
        assert body["media"] == {
            "kind": "image",
            "format": fmt.lower(),
            "bytes": len(data),
            "width": want.width,
            "height": want.height,
        }
        assert body["decision"] == "allow" and body["matches"] == []
        assert "content_id" not in body and "account_id" not in body
        api.assert_no_temp_files()


def test_scan_of_a_video_returns_vpdq_frames(api: ScanApi, tmp_path: Path) -> None:
    if mf.pick_codec("mp4") is None:
        pytest.skip("no MP4 encoder in this PyAV build")
    clip = mf.write_video(tmp_path / "clip.mp4", seconds=2.0, fps=10, size=(160, 120), seed=4)
    r = api.scan(clip.read_bytes(), ctype="video/mp4")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["media"]["kind"] == "video" and body["media"]["format"] == "mp4"
    assert (body["media"]["width"], body["media"]["height"]) == (160, 120)
    assert body["signals"] == expected_json(clip)
    assert len(body["signals"]["vpdq"]) >= 2
    api.assert_no_temp_files()


def test_raw_body_of_any_content_type_is_sniffed(api: ScanApi) -> None:
    data = picture_bytes(5, "PNG")
    for ctype in ("application/octet-stream", "image/jpeg", None):
        r = api.scan_raw(data, ctype=ctype)
        assert r.status_code == 200, (ctype, r.text)
        assert r.json()["media"]["format"] == "png"


# --------------------------------------------------------------------------- matches


def test_banked_pdq_matches_with_entry_labels_source_and_distance(api: ScanApi) -> None:
    png = picture_bytes(PDQ_SEED, "PNG")
    pdq = hash_image_bytes(png).pdq
    assert pdq is not None
    [entry_id] = api.bank(
        "known",
        {
            "signal_type": "pdq",
            "value": pdq,
            "labels": ["A1"],
            "source": "ncmec",
            "external_id": "ncmec-1",
        },
    )
    body = api.scan(png).json()
    assert body["decision"] == "block"
    assert body["matches"] == [
        {
            "bank": "known",
            "entry_id": entry_id,
            "external_id": "ncmec-1",
            "labels": ["A1"],
            "source": "ncmec",
            "distance": 0,
            "signal_type": "pdq",
        }
    ]
    # the same picture as a JPEG: other bytes, a PDQ a few bits away
    jpeg = picture_bytes(PDQ_SEED, "JPEG")
    jpeg_pdq = hash_image_bytes(jpeg).pdq
    assert jpeg_pdq is not None
    body = api.scan_raw(jpeg, ctype="image/jpeg").json()
    assert body["decision"] == "block"
    [m] = body["matches"]
    assert m["entry_id"] == entry_id and m["distance"] == hamming(pdq, jpeg_pdq) <= 31
    # another picture does not match
    assert api.scan(picture_bytes(PDQ_SEED + 1)).json()["decision"] == "allow"


def test_banked_md5_matches_exactly(api: ScanApi) -> None:
    data = picture_bytes(2, "JPEG")
    [entry_id] = api.bank("exact", {"signal_type": "md5", "value": hashlib.md5(data).hexdigest()})
    [m] = api.scan(data, ctype="image/jpeg").json()["matches"]
    assert m["signal_type"] == "md5" and m["distance"] == 0 and m["entry_id"] == entry_id
    assert m["source"] == "local" and m["labels"] == []


def test_content_and_account_ids_are_echoed(api: ScanApi) -> None:
    data = picture_bytes(4)
    form = api.scan(data, data={"content_id": "post/123", "account_id": "user-9"}).json()
    assert (form["content_id"], form["account_id"]) == ("post/123", "user-9")
    query = api.scan_raw(data, params={"content_id": "c-\u00e9", "account_id": "a b"}).json()
    assert (query["content_id"], query["account_id"]) == ("c-\u00e9", "a b")
    both = api.scan(data, data={"content_id": "from-form"}, params={"content_id": "from-query"})
    assert both.json()["content_id"] == "from-form"
    for bad in ("x" * 257, "a\x00b"):
        assert_problem(api.scan(data, data={"content_id": bad}), 422)
        assert_problem(api.scan_raw(data, params={"account_id": bad}), 422)
    api.assert_no_temp_files()


def test_banks_parameter_selects_the_banks(api: ScanApi) -> None:
    data = picture_bytes(PDQ_SEED)
    hashes = hash_image_bytes(data)
    api.bank("by-pdq", {"signal_type": "pdq", "value": hashes.pdq})
    api.bank("by-md5", {"signal_type": "md5", "value": hashes.md5})
    api.bank("empty")

    def banks_of(r: Any) -> set[str]:
        assert r.status_code == 200, r.text
        return {m["bank"] for m in r.json()["matches"]}

    assert banks_of(api.scan(data)) == {"by-pdq", "by-md5"}
    assert banks_of(api.scan(data, data={"banks": "by-pdq"})) == {"by-pdq"}
    assert banks_of(api.scan(data, data={"banks": "by-md5, by-pdq"})) == {"by-pdq", "by-md5"}
    assert banks_of(api.scan_raw(data, params={"banks": "by-md5"})) == {"by-md5"}
    assert banks_of(api.scan_raw(data, params=[("banks", "by-md5"), ("banks", "by-pdq")])) == {
        "by-pdq",
        "by-md5",
    }
    r = api.scan(data, data={"banks": "empty"})
    assert banks_of(r) == set() and r.json()["decision"] == "allow"

    for r in (
        api.scan(data, data={"banks": "by-pdq,nope"}),
        api.scan_raw(data, params={"banks": "nope"}),
        api.lookup({"signal_type": "md5", "values": [hashes.md5], "banks": ["nope"]}),
    ):
        body = assert_problem(r, 404, "not_found")
        assert "nope" in body["detail"]
    lookup = api.lookup({"signal_type": "md5", "values": [hashes.md5], "banks": ["by-pdq"]})
    assert lookup.json()["results"][0]["decision"] == "no_match"
    api.assert_no_temp_files()


# --------------------------------------------------------------------------- lookup


def test_lookup_batches_of_up_to_1000(api: ScanApi) -> None:
    values = [md5_of(i) for i in range(1000)]
    api.bank("b", {"signal_type": "md5", "value": values[500], "labels": ["B1"]})
    r = api.lookup({"signal_type": "md5", "values": values})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["value"] for x in results] == values
    assert [i for i, x in enumerate(results) if x["decision"] == "match"] == [500]
    assert results[500]["matches"][0]["labels"] == ["B1"]
    assert results[0] == {
        "signal_type": "md5",
        "value": values[0],
        "decision": "no_match",
        "matches": [],
    }

    signals = [{"signal_type": "md5", "value": v.upper()} for v in values]
    r = api.lookup({"signals": signals})
    assert r.status_code == 200 and len(r.json()["results"]) == 1000
    assert r.json()["results"][500]["value"] == values[500]  # normalised

    too_many = [*values, md5_of(1000)]
    assert_problem(api.lookup({"signal_type": "md5", "values": too_many}), 422)
    assert_problem(api.lookup({"signals": [*signals, signals[0]]}), 422)
    mixed = {"signals": signals[:600], "signal_type": "md5", "values": values[:401]}
    body = assert_problem(api.lookup(mixed), 422, "invalid_value")
    assert "1000" in body["detail"]


def test_lookup_reports_invalid_values_by_index(api: ScanApi) -> None:
    pdq = hash_image_bytes(picture_bytes(1)).pdq
    body = {
        "signals": [
            {"signal_type": "md5", "value": md5_of(1)},
            {"signal_type": "md5", "value": "zz"},
            {"signal_type": "pdq", "value": pdq},
            {"signal_type": "pdq", "value": "abc"},
            {"signal_type": "nope", "value": "1"},
        ]
    }
    problem = assert_problem(api.lookup(body), 422, "invalid_value")
    assert [e["index"] for e in problem["errors"]] == [1, 3, 4]
    assert all(e["message"] for e in problem["errors"])
    for bad in (
        {},
        {"values": [md5_of(1)]},
        {"signal_type": "md5"},
        {"signals": []},
        {"signals": [{"signal_type": "md5"}]},
        {"signals": [{"signal_type": "md5", "value": md5_of(1), "extra": 1}]},
        {"signal_type": "md5", "values": "abc"},
        [],
    ):
        assert_problem(api.lookup(bad), 422)


def test_lookup_matches_near_pdq_values(api: ScanApi) -> None:
    from api_helpers import flip_bits

    pdq = hash_image_bytes(picture_bytes(PDQ_SEED)).pdq
    assert pdq is not None
    [entry_id] = api.bank("near", {"signal_type": "pdq", "value": pdq, "source": "stopncii"})
    r = api.lookup({"signal_type": "pdq", "values": [flip_bits(pdq, 12), flip_bits(pdq, 80)]})
    near, far = r.json()["results"]
    assert near["decision"] == "match"
    assert near["matches"][0]["entry_id"] == entry_id and near["matches"][0]["distance"] == 12
    assert near["matches"][0]["source"] == "stopncii"
    assert far["decision"] == "no_match"


# --------------------------------------------------------------------------- media errors


def test_unsupported_and_empty_uploads(api: ScanApi) -> None:
    text = b"just some text, not a picture\n" * 10
    for r in (api.scan_raw(text, ctype="text/plain"), api.scan(text, ctype="text/plain")):
        body = assert_problem(r, 415, "unsupported_format")
        assert str(api.uploads) not in body["detail"] and "safehold-upload" not in body["detail"]
        api.assert_no_temp_files()
    for r in (api.scan_raw(b""), api.scan(b"")):
        assert_problem(r, 422, "empty")
        api.assert_no_temp_files()
    assert_problem(api.scan(mf.png_garbage_data()), 422, "corrupt")
    assert_problem(api.scan_raw(mf.png_bomb()), 413, "too_many_pixels")
    api.assert_no_temp_files()
    # the process is still up and well
    assert api.scan(picture_bytes(1)).status_code == 200


def test_malformed_multipart_is_422(api: ScanApi) -> None:
    headers = {**api.scan_h, "Content-Type": "multipart/form-data"}
    assert_problem(api.c.post("/v1/scan", content=b"--x\r\n", headers=headers), 422)
    headers["Content-Type"] = "multipart/form-data; boundary=xyz"
    body = b'--xyz\r\nContent-Disposition: form-data; name="content_id"\r\n\r\nc1\r\n--xyz--\r\n'
    problem = assert_problem(api.c.post("/v1/scan", content=body, headers=headers), 422)
    assert "file" in problem["detail"]
    two = {"file": ("a.png", picture_bytes(1), "image/png")}
    r = api.c.post(
        "/v1/scan",
        files=[("file", two["file"]), ("file", two["file"])],
        headers=api.scan_h,
    )
    assert_problem(r, 422)
    api.assert_no_temp_files()


def test_uploads_over_the_limit_are_413(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    monkeypatch.setenv("SAFEHOLD_TMPDIR", str(uploads))
    monkeypatch.setenv("SAFEHOLD_MAX_UPLOAD_BYTES", "10000")
    small = picture_bytes(1, "JPEG", (160, 120))
    big = picture_bytes(1, "PNG", (320, 240))
    assert len(small) < 10_000 < len(big)
    h = bearer(new_key(db, "scan"))

    def chunks(data: bytes) -> Iterator[bytes]:
        for i in range(0, len(data), 4096):
            yield data[i : i + 4096]

    with serve(db) as c:
        for r in (
            c.post("/v1/scan", content=big, headers={**h, "Content-Type": "image/png"}),
            c.post("/v1/scan", files={"file": ("big.png", big, "image/png")}, headers=h),
        ):
            body = assert_problem(r, 413, "too_large")
            assert "10000" in body["detail"]
            assert os.listdir(uploads) == []
        r = c.post("/v1/scan", content=chunks(big), headers={**h, "Content-Type": "image/png"})
        assert "content-length" not in {k.lower() for k in r.request.headers}
        assert_problem(r, 413, "too_large")
        assert os.listdir(uploads) == []
        # a lying Content-Length does not help either
        r = c.post(
            "/v1/scan",
            content=chunks(big),
            headers={**h, "Content-Type": "image/png", "Content-Length": "100"},
        )
        assert r.status_code in (400, 413, 422), r.text
        assert os.listdir(uploads) == []

        for r in (
            c.post("/v1/scan", content=small, headers={**h, "Content-Type": "image/jpeg"}),
            c.post("/v1/scan", content=chunks(small), headers={**h, "Content-Type": "image/jpeg"}),
            c.post("/v1/scan", files={"file": ("s.jpg", small, "image/jpeg")}, headers=h),
        ):
            assert r.status_code == 200, r.text
            assert r.json()["media"]["bytes"] == len(small)
        assert os.listdir(uploads) == []


def test_scan_needs_the_index_loaded(db: Database) -> None:
    """Before the index is loaded (no lifespan yet) scans and lookups answer 503."""
    from safehold.web.app import create_app

    h = bearer(new_key(db, "scan"))
    c = TestClient(create_app(db), base_url="http://127.0.0.1")
    body = {"signal_type": "md5", "values": [md5_of(1)]}
    assert_problem(c.post("/v1/lookup", json=body, headers=h), 503, "not_ready")
    r = c.post("/v1/scan", content=picture_bytes(1), headers={**h, "Content-Type": "image/png"})
    assert_problem(r, 503, "not_ready")


def test_entry_file_imports_leave_no_temp_files(api: ScanApi) -> None:
    """Bulk imports stream through the same temporary files as uploads."""
    api.bank("b")
    csv = {**api.write_h, "Content-Type": "text/csv"}
    good = f"signal_type,value\nmd5,{md5_of(1)}\n".encode()
    bad = f"signal_type,value\nmd5,{md5_of(2)}\nmd5,zz\n".encode()
    r = api.c.post("/v1/banks/b/entries", content=good, headers=csv)
    assert r.status_code == 201 and r.json()["added"] == 1
    api.assert_no_temp_files()
    assert_problem(api.c.post("/v1/banks/b/entries", content=bad, headers=csv), 422)
    api.assert_no_temp_files()
    assert_problem(api.c.post("/v1/banks/nope/entries", content=good, headers=csv), 404)
    api.assert_no_temp_files()
