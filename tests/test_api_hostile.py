"""Hostile input through the HTTP API of a real ``safehold serve`` process.

The hostile files of the detection core (tests/media_factory.py, tests/test_media.py:
truncated and lying files, decompression bombs, playlists FFmpeg would follow, ...)
are sent to ``POST /v1/scan`` as multipart uploads and as raw bodies. Each must get
its exact status and problem type, the process must stay up (``/healthz`` after each),
and its peak resident memory (``VmHWM`` in /proc) may not grow by more than
:data:`PEAK_GROWTH` over the whole batch. Then: bodies whose declared or streamed size
is over the limit, malformed multipart bodies, and hostile strings in every field, on
SQLite and on PostgreSQL: never a 5xx, never reflected unescaped in HTML.
"""

from __future__ import annotations

import http.client
import io
import secrets
import socket
import struct
import threading
import zipfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import pytest

import media_factory as mf
from live_server import LiveServer, serve
from safehold.access import ApiKeys
from safehold.banks.repository import Banks
from safehold.store import Database
from test_media import PLAYLISTS, jpeg_bytes, zlib_rows

MiB = 1024 * 1024
UPLOAD_CAP = 8 * MiB
"""``SAFEHOLD_MAX_UPLOAD_BYTES`` of the server under test (small, to test it cheaply)."""
IMAGE_CAP = 2 * MiB
"""``SAFEHOLD_MAX_IMAGE_BYTES`` of the server under test."""
PEAK_GROWTH = 300 * MiB
"""How much the server's peak resident size may grow over the batch of hostile files."""
PROBLEM = "https://safehold.dev/problems/"
TENANT = "acme"
BANK = "known"
MD5 = "d41d8cd98f00b204e9800998ecf8427e"

pytestmark = pytest.mark.slow


# --------------------------------------------------------------------------- servers


@dataclass
class Api:
    server: LiveServer
    key: str
    client: httpx.Client
    uploads: Path
    """The server's ``SAFEHOLD_TMPDIR``: every upload is deleted before the response."""

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def assert_up(self) -> None:
        assert self.server.alive(), self.server.log_text()[-3000:]
        r = self.client.get("/healthz")
        assert r.status_code == 200, r.text
        assert "unexpected error" not in self.server.log_text()
        assert list(self.uploads.iterdir()) == []

    def scan(self, data: bytes, filename: str, media_type: str, how: str) -> httpx.Response:
        if how == "multipart":
            return self.client.post("/v1/scan", files={"file": (filename, data, media_type)})
        return self.client.post("/v1/scan", content=data, headers={"Content-Type": media_type})


@contextmanager
def running(db_url: str, directory: Path) -> Iterator[Api]:
    """A server on ``db_url`` with small upload limits, an admin key and a bank."""
    db = Database(db_url)
    try:
        key, _ = ApiKeys(db).create(scopes="admin", tenant=TENANT, name="hostile", rate=0)
        Banks(db).create(BANK, tenant=TENANT, description="for hostile input")
    finally:
        db.close()
    uploads = directory / "uploads"
    uploads.mkdir()
    env = {
        "SAFEHOLD_MAX_UPLOAD_BYTES": str(UPLOAD_CAP),
        "SAFEHOLD_MAX_IMAGE_BYTES": str(IMAGE_CAP),
        "SAFEHOLD_TMPDIR": str(uploads),
        "SAFEHOLD_MEDIA_DIR": str(directory / "media"),
        "SAFEHOLD_QUEUE_URL": f"sqlite:///{directory / 'jobs.db'}",
    }
    with serve(db_url, directory / "server.log", env=env) as server:
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=server.url, headers=headers, timeout=120) as client:
            api = Api(server, key, client, uploads)
            yield api
            api.assert_up()


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    directory = tmp_path_factory.mktemp("hostile-sqlite")
    with running(f"sqlite:///{directory / 'safehold.db'}", directory) as a:
        yield a


@pytest.fixture(scope="module")
def pg_api(pg_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    import psycopg

    admin = pg_server.replace("postgresql+psycopg://", "postgresql://")
    name = f"safehold_test_{secrets.token_hex(6)}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        directory = tmp_path_factory.mktemp("hostile-pg")
        with running(f"{pg_server.rsplit('/', 1)[0]}/{name}", directory) as a:
            yield a
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def any_api(request: pytest.FixtureRequest) -> Api:
    """The same test against the server on SQLite and the one on PostgreSQL."""
    api: Api = request.getfixturevalue("api" if request.param == "sqlite" else "pg_api")
    return api


def assert_problem(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text[:500]
    assert r.headers.get("content-type") == "application/problem+json", r.headers
    body: dict[str, Any] = r.json()
    assert body["type"] == PROBLEM + code, body
    assert body["status"] == status and body["detail"]
    return body


# --------------------------------------------------------------------------- hostile files


@dataclass(frozen=True)
class Hostile:
    name: str
    data: bytes
    status: int
    code: str | None
    """The problem type; ``None`` for a file that hashes (200)."""
    filename: str = "upload.jpg"
    media_type: str = "image/jpeg"


def _zip(name: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr(name, data)
    return buf.getvalue()


def _gif_bomb() -> bytes:
    """A small GIF whose logical screen and frame declare 65535 x 65535 pixels."""
    data = bytearray(mf.encode_image(mf.photo_like(32, 24, seed=7), "gif"))
    data[6:10] = struct.pack("<HH", 65535, 65535)
    frame = data.find(b"\x2c", 13)
    data[frame + 5 : frame + 9] = struct.pack("<HH", 65535, 65535)
    return bytes(data)


def _jpeg_declaring(width: int, height: int) -> bytes:
    data = bytearray(jpeg_bytes())
    sof = data.find(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def hostile_files(directory: Path) -> list[Hostile]:
    jpeg = jpeg_bytes()
    png_head = mf.PNG_SIGNATURE + mf.png_ihdr(16, 16)
    bad_crc = mf.png_ihdr(16, 16)[:-4] + b"\xde\xad\xbe\xef"
    cases = [
        Hostile("zero-byte", b"", 422, "empty"),
        Hostile(
            "text-named-jpg",
            b"Dear diary,\nthis is not a picture.\n" * 20,
            415,
            "unsupported_format",
        ),
        Hostile(
            "pdf",
            b"%PDF-1.7\n1 0 obj <<>> endobj\n%%EOF\n",
            415,
            "unsupported_format",
            "a.pdf",
            "application/pdf",
        ),
        *(
            Hostile(f"truncated-jpeg-{n}", jpeg[:n], 422, "corrupt")
            for n in (3, 20, int(len(jpeg) * 0.3), int(len(jpeg) * 0.7), len(jpeg) - 2)
        ),
        Hostile(
            "png-bomb-30000x30000",
            mf.png_bomb(30000, 30000),
            413,
            "too_many_pixels",
            "bomb.png",
            "image/png",
        ),
        Hostile(
            "jpeg-declaring-60000x60000", _jpeg_declaring(60000, 60000), 413, "too_many_pixels"
        ),
        Hostile(
            "gif-declaring-65535x65535",
            _gif_bomb(),
            413,
            "too_many_pixels",
            "bomb.gif",
            "image/gif",
        ),
        Hostile("png-garbage-data", mf.png_garbage_data(), 422, "corrupt", "g.png", "image/png"),
        Hostile(
            "png-bad-header-crc",
            mf.PNG_SIGNATURE
            + bad_crc
            + mf.png_chunk(b"IDAT", zlib_rows(16, 16))
            + mf.png_chunk(b"IEND", b""),
            422,
            "corrupt",
            "crc.png",
            "image/png",
        ),
        Hostile(
            "zip-with-a-jpeg-inside",
            _zip("photo.jpg", jpeg),
            415,
            "unsupported_format",
            "photo.jpg",
        ),
        *(
            Hostile(
                f"playlist-{name}",
                data,
                415,
                "unsupported_format",
                name,
                "application/octet-stream",
            )
            for name, data in sorted(PLAYLISTS.items())
        ),
        Hostile(
            "mp4-header-in-front-of-a-playlist",
            struct.pack(">I", 24) + b"ftypisom\x00\x00\x02\x00isomiso2" + PLAYLISTS["hls.m3u8"],
            422,
            "corrupt",
            "fake.mp4",
            "video/mp4",
        ),
        Hostile(
            "image-over-the-image-limit",
            jpeg + b"\x00" * (IMAGE_CAP + 1 - len(jpeg)),
            413,
            "too_large",
        ),
        # Accepted on purpose: a JPEG with a ZIP appended hashes as the JPEG.
        Hostile("polyglot-jpeg-zip", jpeg + _zip("payload.txt", b"not for the decoder"), 200, None),
        Hostile(
            "good-png",
            png_head + mf.png_chunk(b"IDAT", zlib_rows(16, 16)) + mf.png_chunk(b"IEND", b""),
            200,
            None,
            "ok.png",
            "image/png",
        ),
    ]
    if mf.pick_codec("mp4") is not None:
        clip = mf.write_video(directory / "clip.mp4", fmt="mp4", seconds=2.0, fps=10).read_bytes()
        cases.append(
            Hostile("truncated-mp4", clip[: len(clip) // 2], 422, "corrupt", "c.mp4", "video/mp4")
        )
        if b"avc1" in clip:
            cases.append(
                Hostile(
                    "mp4-codec-without-decoder",
                    clip.replace(b"avc1", b"zzzz"),
                    415,
                    "unsupported_format",
                    "odd.mp4",
                    "video/mp4",
                )
            )
        cases.append(Hostile("good-mp4", clip, 200, None, "clip.mp4", "video/mp4"))
    return cases


def test_hostile_files_get_their_problem_and_memory_stays_bounded(
    api: Api, tmp_path: Path, subtests: pytest.Subtests
) -> None:
    cases = hostile_files(tmp_path)
    # Warm up first (decoders, hashers, thread pool), so that the peak measured below is
    # what the hostile files add.
    for case in cases:
        if case.status == 200:
            assert api.scan(case.data, case.filename, case.media_type, "raw").status_code == 200
    before = api.server.memory()
    for case in cases:
        for how in ("multipart", "raw"):
            with subtests.test(case.name, how=how):
                r = api.scan(case.data, case.filename, case.media_type, how)
                if case.code is None:
                    assert r.status_code == 200, r.text[:500]
                    assert r.headers["content-type"] == "application/json"
                    assert r.json()["media"]["bytes"] == len(case.data)
                else:
                    body = assert_problem(r, case.status, case.code)
                    assert str(tmp_path) not in body["detail"]  # no temporary file names
                    assert "safehold-upload-" not in body["detail"]
                api.assert_up()
    after = api.server.memory()
    growth = after["VmHWM"] - before["VmHWM"]
    assert growth < PEAK_GROWTH, (
        f"peak RSS grew by {growth / MiB:.0f} MiB ({before} -> {after}) over the hostile files"
    )


# --------------------------------------------------------------------------- body sizes


def raw_exchange(
    port: int, head: bytes, chunks: Iterable[bytes], timeout: float = 60
) -> tuple[int, bytes]:
    """Send ``head`` then ``chunks`` on a thread while reading the response here, so a
    response sent before the body ends (and the connection closed) is still read."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)

    def send() -> None:
        try:
            sock.sendall(head)
            for chunk in chunks:
                sock.sendall(chunk)
        except OSError:
            pass  # the server answered and closed the connection

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        response = http.client.HTTPResponse(sock)
        response.begin()
        body = response.read()
        return response.status, body
    finally:
        sock.close()
        sender.join(timeout)


def _head(path: str, key: str, content_type: str, framing: str) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: {content_type}\r\n{framing}\r\n\r\n"
    ).encode()


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/v1/scan", "image/png"),
        ("/v1/scan", "multipart/form-data; boundary=xyz"),
        (f"/v1/banks/{BANK}/entries", "text/csv"),
        ("/v1/lookup", "application/json"),
        ("/v1/banks", "application/json"),
    ],
)
def test_declared_2gib_body_is_refused_before_it_is_read(
    api: Api, path: str, content_type: str
) -> None:
    head = _head(path, api.key, content_type, f"Content-Length: {2 * 1024**3}")
    # Only a few bytes follow: a server that waited for the body would time out.
    status, body = raw_exchange(api.server.port, head, [b"\x89PNG\r\n\x1a\n"], timeout=30)
    assert status == 413, body[:300]
    assert httpx.Response(413, content=body).json()["type"] == PROBLEM + "too_large"
    api.assert_up()


def _chunked(total: int, size: int = 256 * 1024) -> Iterator[bytes]:
    piece = b"\x89PNG" + b"\x00" * (size - 4)
    left = total
    while left > 0:
        n = min(size, left)
        yield f"{n:x}\r\n".encode() + piece[:n] + b"\r\n"
        left -= n
    yield b"0\r\n\r\n"


@pytest.mark.parametrize("content_type", ["image/png", "multipart/form-data; boundary=xyz"])
def test_streamed_body_over_the_limit_is_refused(api: Api, content_type: str) -> None:
    """No Content-Length (chunked): the limit is enforced while the body streams."""
    head = _head("/v1/scan", api.key, content_type, "Transfer-Encoding: chunked")
    chunks: Iterable[bytes] = _chunked(UPLOAD_CAP + 2 * MiB)
    if content_type.startswith("multipart"):
        part = b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n'
        chunks = [f"{len(part):x}\r\n".encode() + part + b"\r\n", *chunks]
    status, body = raw_exchange(api.server.port, head, chunks)
    assert status == 413, body[:300]
    assert httpx.Response(413, content=body).json()["type"] == PROBLEM + "too_large"
    api.assert_up()


def test_declared_length_over_the_limit_is_refused(api: Api) -> None:
    r = api.client.post(
        "/v1/scan", content=b"\x00" * (UPLOAD_CAP + 1), headers={"Content-Type": "image/png"}
    )
    assert_problem(r, 413, "too_large")
    big = b"\xff\xd8\xff" + b"\x00" * UPLOAD_CAP
    r = api.client.post("/v1/scan", files={"file": ("big.jpg", big, "image/jpeg")})
    assert_problem(r, 413, "too_large")
    api.assert_up()


# --------------------------------------------------------------------------- multipart


def _part(name: str, value: bytes, filename: str | None = None) -> bytes:
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
    return f"--B\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + value + b"\r\n"


MULTIPART = {
    "no-boundary": ("multipart/form-data", _part("file", b"x", "a.jpg") + b"--B--\r\n"),
    "two-files": (
        "multipart/form-data; boundary=B",
        _part("file", b"one", "a.jpg") + _part("file", b"two", "b.jpg") + b"--B--\r\n",
    ),
    "huge-field": (
        "multipart/form-data; boundary=B",
        _part("content_id", b"x" * 100_000) + _part("file", b"x", "a.jpg") + b"--B--\r\n",
    ),
    "too-many-fields": (
        "multipart/form-data; boundary=B",
        b"".join(_part(f"f{i}", b"v") for i in range(40)) + _part("file", b"x") + b"--B--\r\n",
    ),
    "no-file-part": ("multipart/form-data; boundary=B", _part("content_id", b"c") + b"--B--\r\n"),
    "garbage": ("multipart/form-data; boundary=B", b"--B\r\n\x00\x01 not a header\r\n\r\n" * 50),
    "wrong-boundary": (
        "multipart/form-data; boundary=NOPE",
        _part("file", b"x", "a.jpg") + b"--B--\r\n",
    ),
}


@pytest.mark.parametrize("name", sorted(MULTIPART))
def test_malformed_multipart_is_422(api: Api, name: str) -> None:
    content_type, body = MULTIPART[name]
    r = api.client.post("/v1/scan", content=body, headers={"Content-Type": content_type})
    assert_problem(r, 422, "invalid_value")
    api.assert_up()


# --------------------------------------------------------------------------- hostile strings

HOSTILE = {
    "script": "<script>alert(1)</script>",
    "long": "x" * 100_000,
    "nul": "a\x00b",
    "rtl-override": "invoice\u202egpj.exe",
    "traversal": "../../etc/passwd",
    "template": "{{7*7}}${7*7}<%= 7*7 %>",
    "sql": "'; DROP TABLE banks; --",
    "crlf": "a\r\nSet-Cookie: pwned=1",
    "lone-surrogate-escape": "\\ud800",
}


def assert_safe(r: httpx.Response | tuple[int, dict[str, str], bytes]) -> int:
    """No 5xx, no HTML, no header injection; returns the status."""
    if isinstance(r, httpx.Response):
        status, headers, body = r.status_code, dict(r.headers), r.content
    else:
        status, headers, body = r
    assert status < 500, body[:500]
    ctype = headers.get("content-type", "")
    assert ctype in ("application/json", "application/problem+json"), (ctype, body[:200])
    assert "set-cookie" not in {h.lower() for h in headers}
    return status


def query_post(
    api: Api, path: str, params: dict[str, str], body: bytes
) -> tuple[int, dict[str, str], bytes]:
    """A POST with a query string too long for httpx (it refuses URLs over 64 KiB)."""
    conn = http.client.HTTPConnection("127.0.0.1", api.server.port, timeout=60)
    try:
        conn.request(
            "POST",
            f"{path}?{urlencode(params)}",
            body=body,
            headers={**api.auth, "Content-Type": "image/jpeg"},
        )
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


@pytest.mark.parametrize("field", ["content_id", "account_id", "banks"])
@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_strings_in_scan_fields(any_api: Api, field: str, name: str) -> None:
    value = HOSTILE[name]
    jpeg = jpeg_bytes()
    files = {"file": ("p.jpg", jpeg, "image/jpeg")}
    form = any_api.client.post("/v1/scan", files=files, data={field: value})
    query = query_post(any_api, "/v1/scan", {field: value}, jpeg)
    if len(urlencode({field: value})) > 64 * 1024:
        # a request line this long is refused by the HTTP parser (httptools) before the
        # application sees it: a plain 400, and the server stays up
        assert query[0] in (400, 414), query
        any_api.assert_up()
        query = None
    for via, r in (("form", form), ("query", query)):
        if r is None:
            continue
        status = assert_safe(r)
        if field == "banks":  # none of them is a valid bank name
            assert status == 422, (via, r)
        else:
            bad = len(value) > 256 or "\x00" in value
            assert status == (422 if bad else 200), (via, r)
            if status == 200:
                body = form.json() if via == "form" else httpx.Response(200, content=r[2]).json()  # type: ignore[index]
                assert body[field] == value  # echoed exactly, as JSON
    any_api.assert_up()


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_strings_in_lookup(any_api: Api, name: str) -> None:
    value = HOSTILE[name]
    c = any_api.client
    assert assert_safe(c.post("/v1/lookup", json={"signal_type": value, "values": [MD5]})) == 422
    assert assert_safe(c.post("/v1/lookup", json={"signal_type": "md5", "values": [value]})) == 422
    body = {"signals": [{"signal_type": "md5", "value": value}]}
    assert assert_safe(c.post("/v1/lookup", json=body)) == 422
    body = {"signal_type": "md5", "values": [MD5], "banks": [value]}
    assert assert_safe(c.post("/v1/lookup", json=body)) == 422
    any_api.assert_up()


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_strings_in_banks_and_entries(any_api: Api, name: str) -> None:
    value = HOSTILE[name]
    c = any_api.client
    assert assert_safe(c.post("/v1/banks", json={"name": value})) == 422
    bank = f"hostile-{name}"
    status = assert_safe(c.post("/v1/banks", json={"name": bank, "description": value}))
    fits = len(value) <= 4000 and "\x00" not in value
    assert status == (201 if fits else 422)
    if not fits:
        assert assert_safe(c.post("/v1/banks", json={"name": bank})) == 201
    assert assert_safe(c.patch(f"/v1/banks/{bank}", json={"description": value})) == (
        200 if fits else 422
    )
    for field, limit in (("note", 4000), ("external_id", 256), ("source", 0)):
        entry = {"signal_type": "md5", "value": MD5, field: value}
        expected = 201 if len(value) <= limit and "\x00" not in value else 422
        assert assert_safe(c.post(f"/v1/banks/{bank}/entries", json=entry)) == expected, field
    entry = {"signal_type": "md5", "value": MD5, "labels": [value]}
    assert assert_safe(c.post(f"/v1/banks/{bank}/entries", json=entry)) == 422
    csv = f"signal_type,value,note\nmd5,{MD5},{value}\n".encode(errors="surrogatepass")
    r = c.post(f"/v1/banks/{bank}/entries", content=csv, headers={"Content-Type": "text/csv"})
    assert assert_safe(r) in (201, 422)
    remove = {"values": [{"signal_type": value, "value": value}]}
    assert assert_safe(c.post(f"/v1/banks/{bank}/entries/remove", json=remove)) == 422
    segment = quote(value, safe="")
    for method, path in (
        ("GET", f"/v1/banks/{segment}"),
        ("GET", f"/v1/banks/{segment}/entries"),
        ("GET", f"/v1/banks/{segment}/export"),
        ("DELETE", f"/v1/banks/{segment}"),
        ("PUT", f"/v1/banks/{bank}/shares/{segment}"),
        ("DELETE", f"/v1/keys/{segment}"),
    ):
        if len(segment) < 60_000:  # httpx refuses longer URLs
            assert assert_safe(c.request(method, path)) in (404, 422), (method, path[:80])
    for params in ({"signal_type": value}, {"cursor": value}, {"format": value}):
        if len(value) < 20_000:
            path = f"/v1/banks/{bank}/export" if "format" in params else f"/v1/banks/{bank}/entries"
            assert assert_safe(c.get(path, params=params)) == 422
    token = value.translate({0: None, 10: None, 13: None}).encode(errors="surrogatepass")
    r = c.get("/v1/banks", headers={"Authorization": b"Bearer " + token[:8000]})
    assert_problem(r, 401, "unauthorized")
    any_api.assert_up()


def test_hostile_descriptions_are_escaped_on_the_html_page(any_api: Api) -> None:
    c = any_api.client
    for name, value in HOSTILE.items():
        if len(value) <= 4000 and "\x00" not in value:
            r = c.post("/v1/banks", json={"name": f"page-{name}", "description": value})
            assert r.status_code == 201, r.text
    page = c.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert "page-script" in html  # the page lists the banks (it is asked from 127.0.0.1)
    assert HOSTILE["script"] not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "{{7*7}}${7*7}&lt;%= 7*7 %&gt;" in html  # shown as text, never evaluated
