"""Hostile input to the public portal: every form field, the JSON of ``/report/hash``,
headers, file names, encodings and multipart bodies.

Whatever comes in, the answer is a readable page (or JSON for the hashing page) below
500, nothing is rendered unescaped, user text is isolated for bidi, and a request
that fails leaves nothing behind: no report, no case, no stored file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.intake_helpers import cheap_hashing
from tests.media_factory import encode_image, photo_like
from tests.test_portal import BASE, Site, make_site, receipt_of

from safehold.store.models import Case, CaseItem, Media, Report, ReportHash

HOSTILE = {
    "script": "<script>alert(1)</script>",
    "attribute": '"><img src=x onerror=alert(1)>',
    "long": "A" * 100_000,
    "nul": "before\x00after",
    "rtl": "\u202eexe.cod\u202c evil \u2067x\u2069",
    "path": "../../etc/passwd",
    "template": "{{ 7*7 }} {% raw %} ${7*7} %(x)s {x}",
    "controls": "\x1b[31mred\x07\x08",
}
TEXT_FIELDS = (
    "urls",
    "platform",
    "username",
    "description",
    "name",
    "email",
    "phone",
    "age_band",
    "gender",
    "country",
    "relation",
    "category",
    "lang",
    "csrf",
)


STORED = (Report, Case, CaseItem, Media, ReportHash)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """One portal for the many small cases of this module (no rate limits)."""
    tmp = tmp_path_factory.mktemp("hostile")
    with pytest.MonkeyPatch.context() as mp:
        cheap_hashing(mp)
        mp.setenv("SAFEHOLD_PORTAL_RATE", "report=0,status=0,hash=0,secret=0")
        mp.setenv("SAFEHOLD_MEDIA_DIR", str(tmp / "media"))
        mp.setenv("SAFEHOLD_QUEUE_URL", f"sqlite:///{tmp / 'jobs.db'}")
        yield from make_site(f"sqlite:///{tmp / 'safehold.db'}", tmp)


@pytest.fixture()
def site(shared: Site) -> Iterator[Site]:
    """The shared portal; the test may not leave anything behind unless it succeeded."""
    shared.before = {m: shared.count(m) for m in STORED}  # type: ignore[attr-defined]
    yield shared


@pytest.fixture()
def fresh(sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    cheap_hashing(monkeypatch)
    monkeypatch.setenv("SAFEHOLD_PORTAL_RATE", "report=0,status=0,hash=0,secret=0")
    yield from make_site(sqlite_url, tmp_path)


def nothing_stored(site: Site) -> None:
    before = getattr(site, "before", {})
    for model in STORED:
        assert site.count(model) == before.get(model, 0), model.__name__


def assert_safe(text: str) -> None:
    """No markup of ours was injected: the only scripts and images are the page's own."""
    assert "<script>alert" not in text
    assert "<img" not in text and "onerror=alert(1)>" not in text.replace("&gt;", "")
    assert "\x00" not in text
    scripts = re.findall(r"<script[^>]*>", text)
    assert all(
        s in ('<script src="/report/static/portal.js" defer>',)
        or s.startswith('<script type="module" src="/report/static/')
        or s == '<script type="application/json" id="portal-strings">'
        for s in scripts
    ), scripts


def readable(r: Any, *, html: bool = True) -> None:
    assert r.status_code < 500, r.text[:2000]
    if html:
        assert r.headers["content-type"].startswith("text/html"), r.headers["content-type"]
        assert "<h1>" in r.text
        assert_safe(r.text)


# --------------------------------------------------------------------------- form fields


@pytest.mark.parametrize("field", TEXT_FIELDS)
@pytest.mark.parametrize("payload", list(HOSTILE), ids=list(HOSTILE))
def test_every_report_field_with_hostile_text(site: Site, field: str, payload: str) -> None:
    fields = {"category": "other", "description": "a plain description"}
    fields[field] = HOSTILE[payload]
    r = site.report(**fields)
    readable(r)
    if r.status_code == 200:  # stored: then it must come back escaped on the status page
        number, secret = receipt_of(r)
        s = site.status(number, secret)
        readable(s)
        info = site.svc.reports.by_number(number, "default")
        assert "\x00" not in info.description and "\x00" not in info.username
    else:
        assert r.status_code in (403, 422), r.status_code
        nothing_stored(site)


@pytest.mark.parametrize("payload", list(HOSTILE), ids=list(HOSTILE))
def test_hostile_text_added_to_a_report_is_shown_escaped_and_isolated(
    site: Site, payload: str
) -> None:
    number, secret = receipt_of(site.report(category="other", description="x"))
    data = {"csrf": site.csrf(), "number": number, "secret": secret, "text": HOSTILE[payload]}
    r = site.client.post("/report/status/add", data=data, files=[("files", ("", b"", ""))])
    readable(r)
    if r.status_code == 200 and payload in ("script", "attribute", "rtl"):
        body = re.search(r'<div class="message-body" dir="auto">(.*?)</div>', r.text, re.S)
        assert body, r.text[-3000:]
        assert "&lt;" in body.group(1) or "\u202e" in body.group(1)


@pytest.mark.parametrize("field", ["number", "secret", "lang", "csrf", "confirm"])
@pytest.mark.parametrize("payload", list(HOSTILE), ids=list(HOSTILE))
def test_status_and_withdraw_forms_with_hostile_text(site: Site, field: str, payload: str) -> None:
    for path in ("/report/status", "/report/status/withdraw"):
        data = {"csrf": site.csrf(), "number": "R-0000-0000", "secret": "0000-0000-0000-0000"}
        data[field] = HOSTILE[payload]
        readable(site.client.post(path, data=data))
    nothing_stored(site)


@pytest.mark.parametrize("payload", list(HOSTILE), ids=list(HOSTILE))
def test_query_and_headers_with_hostile_text(site: Site, payload: str) -> None:
    value = HOSTILE[payload].replace("\x00", "")[:4000]
    header = value.encode("utf-8")  # raw UTF-8 bytes in the header
    for path in ("/report", "/report/status", "/report/hash", "/report/help", "/report/x"):
        r = site.client.get(path, params={"lang": value}, headers={"Accept-Language": header})
        readable(r)
        assert '<html lang="en" dir="ltr">' in r.text
    r = site.client.get("/report", headers={"Accept-Language": "ms;q=" + "9" * 5000})
    readable(r)


def test_every_field_at_once_at_its_worst(site: Site) -> None:
    fields = {name: HOSTILE["long"] for name in TEXT_FIELDS if name != "csrf"}
    readable(site.report(**fields))
    nothing_stored(site)


# --------------------------------------------------------------------------- files and encodings


def test_a_non_image_named_jpg_is_refused_and_nothing_is_kept(fresh: Site) -> None:
    site = fresh
    good = encode_image(photo_like(160, 120, seed=3), "jpeg")
    r = site.report(
        files=[("fine.jpg", good), ("../../etc/passwd.jpg", b"#!/bin/sh\necho not a picture\n")],
        category="other",
        description="x",
    )
    readable(r)
    assert r.status_code == 422 and "passwd.jpg\u2069 is not a picture or video" in r.text
    assert "../" not in r.text.split('id="files-error"', 1)[1][:300]
    nothing_stored(site)
    assert not list(Path(site.tmp).rglob("passwd*"))


def test_a_file_that_sniffs_as_an_image_but_does_not_decode_leaves_nothing(site: Site) -> None:
    good = encode_image(photo_like(160, 120, seed=4), "png")
    broken = good[:200]  # a PNG header and then nothing
    r = site.report(files=[("a.png", good), ("b.png", broken)], category="other", description="x")
    readable(r)
    assert r.status_code == 422
    nothing_stored(site)


def test_the_library_leaves_no_stored_copy_when_a_later_file_fails(site: Site) -> None:
    """``Reports.submit`` decodes every file before keeping any (intake fix)."""
    from safehold.errors import MediaError
    from safehold.intake import NewReport, ReportFile

    good = site.tmp / "good.png"
    good.write_bytes(encode_image(photo_like(160, 120, seed=5), "png"))
    bad = site.tmp / "bad.jpg"
    bad.write_text("plain text")
    with pytest.raises(MediaError):
        site.svc.reports.submit(
            NewReport(category="other", description="x", files=[ReportFile(good), ReportFile(bad)])
        )
    nothing_stored(site)


def multipart(parts: list[tuple[str, bytes, str | None]], boundary: str = "b0undary") -> bytes:
    out = b""
    for name, value, filename in parts:
        disp = f'form-data; name="{name}"'
        if filename is not None:
            disp += f'; filename="{filename}"'
        out += f"--{boundary}\r\nContent-Disposition: {disp}\r\n\r\n".encode() + value + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def post_raw(site: Site, body: bytes, ctype: str, path: str = "/report") -> Any:
    return site.client.post(path, content=body, headers={"Content-Type": ctype})


def test_invalid_utf8_in_a_multipart_field_is_a_field_error(site: Site) -> None:
    token = site.csrf()
    body = multipart(
        [
            ("csrf", token.encode(), None),
            ("category", b"other", None),
            ("description", b"caf\xe9 \xff\xfe broken", None),
            ("platform", "Ünïcode fine".encode(), None),
        ]
    )
    r = post_raw(site, body, "multipart/form-data; boundary=b0undary")
    readable(r)
    assert r.status_code == 422 and "bytes that are not text" in r.text
    assert 'value="Ünïcode fine"' in r.text
    nothing_stored(site)


def test_invalid_utf8_in_a_url_encoded_form(site: Site) -> None:
    token = site.csrf()
    body = f"csrf={token}&number=R-%FF%FE&secret=%C3%28".encode()
    r = post_raw(site, body, "application/x-www-form-urlencoded", "/report/status")
    readable(r)
    assert r.status_code in (401, 422)
    body = f"csrf={token}&number=R-\xff".encode("latin-1")
    readable(post_raw(site, body, "application/x-www-form-urlencoded", "/report/status"))


@pytest.mark.parametrize(
    ("body", "ctype"),
    [
        (b'--b0undary\r\nContent-Disposition: form-data; name="x"\r\n\r\nno end', None),
        (b"garbage without any boundary at all", None),
        (b"--other\r\n\r\n\r\n--other--\r\n", None),
        (b"", None),
        (b"x" * 1000, "multipart/form-data"),
        (b"x" * 1000, "multipart/form-data; boundary=" + "b" * 500),
        (b"{}", "application/json"),
        (b"a=1&" * 100, "application/x-www-form-urlencoded"),
        (b"\x00\x01\x02", "text/plain"),
    ],
)
def test_malformed_bodies_are_readable_errors(site: Site, body: bytes, ctype: str | None) -> None:
    site.csrf()
    r = post_raw(site, body, ctype or "multipart/form-data; boundary=b0undary")
    readable(r)
    assert r.status_code in (400, 403, 413, 422)
    nothing_stored(site)


def test_too_many_parts_and_headers(site: Site) -> None:
    token = site.csrf()
    many = [("csrf", token.encode(), None)] + [(f"f{i}", b"x", None) for i in range(200)]
    r = post_raw(site, multipart(many), "multipart/form-data; boundary=b0undary")
    readable(r)
    assert r.status_code == 400
    files = [("csrf", token.encode(), None)] + [("files", b"x", f"{i}.jpg") for i in range(40)]
    r = post_raw(site, multipart(files), "multipart/form-data; boundary=b0undary")
    readable(r)
    assert r.status_code == 400
    huge_header = (
        b'--b0undary\r\nContent-Disposition: form-data; name="x"; '
        + b"a" * 20_000
        + b"\r\n\r\nv\r\n--b0undary--\r\n"
    )
    readable(post_raw(site, huge_header, "multipart/form-data; boundary=b0undary"))
    nothing_stored(site)


def test_huge_uploads_are_refused_while_streaming(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAFEHOLD_MAX_UPLOAD_BYTES", "200000")
    for s in make_site(sqlite_url, tmp_path):
        token = s.csrf()
        big = multipart(
            [("csrf", token.encode(), None), ("category", b"other", None)]
            + [("files", b"\xff\xd8\xff" + b"\0" * 120_000, f"{i}.jpg") for i in range(3)]
        )
        r = post_raw(s, big, "multipart/form-data; boundary=b0undary")
        readable(r)
        assert r.status_code == 413 and "too large" in r.text

        def chunks(big: bytes = big) -> Iterator[bytes]:  # no Content-Length: counted as it streams
            yield big[:1000]
            for i in range(1000, len(big), 65536):
                yield big[i : i + 65536]

        r = s.client.post(
            "/report",
            content=chunks(),
            headers={"Content-Type": "multipart/form-data; boundary=b0undary"},
        )
        readable(r)
        assert r.status_code == 413
        r = s.client.post(
            "/report",
            content=b"x",
            headers={
                "Content-Type": "multipart/form-data; boundary=b0undary",
                "Content-Length": str(10**12),
            },
        )
        assert r.status_code == 413
        assert s.count(Report) == s.count(Media) == 0
        assert not list(tmp_path.rglob("safehold-portal-*"))


def test_temporary_files_are_removed_after_every_request(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setenv("SAFEHOLD_TMPDIR", str(scratch))
    cheap_hashing(monkeypatch)
    for s in make_site(sqlite_url, tmp_path):
        good = encode_image(photo_like(160, 120, seed=6), "jpeg")
        receipt_of(s.report(files=[("a.jpg", good)], category="other", description="x"))
        readable(s.report(files=[("b.jpg", b"nope")], category="other", description="x"))
        readable(s.report(files=[("c.jpg", good)], category="nope"))
        assert list(scratch.iterdir()) == []


# --------------------------------------------------------------------------- the hashing JSON


def hash_post(
    site: Site, body: Any, *, raw: bytes | None = None, ctype: str = "application/json"
) -> Any:
    token = site.csrf(path="/report/hash")
    content = raw if raw is not None else json.dumps(body).encode()
    return site.client.post(
        "/report/hash", content=content, headers={"Content-Type": ctype, "X-CSRF-Token": token}
    )


GOOD_ITEM = {
    "md5": "c" * 32,
    "pdq": "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22",
    "quality": 90,
}


@pytest.mark.parametrize(
    "key", ["kind", "consent", "lang", "items", "pow", "md5", "pdq", "quality", "vpdq", "extra"]
)
@pytest.mark.parametrize("payload", list(HOSTILE), ids=list(HOSTILE))
def test_hash_json_with_hostile_values(site: Site, key: str, payload: str) -> None:
    body: dict[str, Any] = {
        "kind": "adult",
        "consent": True,
        "lang": "en",
        "items": [dict(GOOD_ITEM)],
    }
    if key in ("md5", "pdq", "quality", "vpdq", "extra"):
        body["items"][0][key] = HOSTILE[payload]
    else:
        body[key] = HOSTILE[payload]
    r = hash_post(site, body)
    assert r.status_code < 500, r.text
    assert r.headers["content-type"].startswith("application/json")
    answer = r.json()
    if r.status_code == 200:
        assert key in ("lang", "pow")  # ignored when unknown or when proof-of-work is off
        assert answer["number"].startswith("H-")
    else:
        assert isinstance(answer["error"], str) and answer["error"]
        assert HOSTILE[payload][:30] not in answer["error"]
        assert site.count(Report) == site.before[Report]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not json",
        b"\xff\xfe\x00{",
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
        b'{"kind": "adult", "consent": true, "items": [' + b"[]," * 100 + b"[]]}",
        b'{"kind": "adult", "consent": true, "items": [{"md5": NaN}]}',
        b'{"kind": "adult", "consent": true, "items": '
        + json.dumps([GOOD_ITEM] * 21).encode()
        + b"}",
        b'{"kind": "adult", "consent": true, "items": [{"md5": "'
        + b"c" * 32
        + b'", "vpdq": '
        + json.dumps([{"frame": 0, "timestamp": 1e308, "pdq": "0" * 64, "quality": 90}]).encode()
        + b"}]}",
        b'"just a string"',
        b"null",
        b"1e999999",
    ],
    ids=lambda b: repr(b[:24]),
)
def test_hash_json_malformed(site: Site, raw: bytes) -> None:
    r = hash_post(site, None, raw=raw)
    assert 400 <= r.status_code < 500, r.text[:500]
    assert "error" in r.json()
    nothing_stored(site)


def test_hash_json_too_large_or_wrong_type(site: Site) -> None:
    r = hash_post(site, None, raw=b" " * (9 * 1024 * 1024))
    assert r.status_code == 413
    assert hash_post(site, {"kind": "adult"}, ctype="text/plain").status_code == 415
    assert hash_post(site, {"kind": "adult"}, ctype="multipart/form-data").status_code == 415
    nothing_stored(site)


def test_nothing_half_written_when_the_bank_fails(
    fresh: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = fresh

    def boom(*_a: Any, **_kw: Any) -> Any:
        from safehold.errors import Conflict

        raise Conflict("the bank is being rebuilt")

    monkeypatch.setattr(site.svc.consent.banks, "add", boom)
    r = hash_post(site, {"kind": "adult", "consent": True, "items": [GOOD_ITEM]})
    assert r.status_code == 503 and "Nothing was saved" in r.json()["error"]
    with site.db.session() as s:  # the receipt row is withdrawn, its hashes inactive
        from sqlalchemy import select

        rows = list(s.scalars(select(Report)))
        assert all(row.withdrawn_at is not None for row in rows)
        assert not list(s.scalars(select(ReportHash).where(ReportHash.active.is_(True))))


def test_unexpected_failures_are_a_readable_page_not_a_trace(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_a: Any, **_kw: Any) -> Any:
        raise RuntimeError("database on fire /secret/path")

    monkeypatch.setattr(site.svc.reports, "submit", broken)
    r = site.report(category="other", description="x")
    assert r.status_code == 500 and r.headers["content-type"].startswith("text/html")
    assert "Something went wrong" in r.text and "/secret/path" not in r.text
    assert "Traceback" not in r.text


def test_base_url_is_loopback() -> None:
    assert BASE.startswith("http://127.0.0.1")


def test_user_text_quoted_in_a_message_is_bidi_isolated(site: Site) -> None:
    r = site.report(category="other", urls="\u202eevil.example/\u202c x")
    readable(r)
    assert "(\u2068\u202eevil.example/\u202c\u2069) is not a web address" in r.text
    assert 'dir="auto"' in r.text.split('id="urls"', 1)[1][:200]
