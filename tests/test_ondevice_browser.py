"""On-device hashing in Debian's Chromium (Playwright) equals safehold's Python values.

:func:`tests.ondevice_vectors.build` writes synthetic pictures and videos (and the
shared BSD-licensed reference vectors) with the values ``safehold.hashing.hash_file``
gives. The portal's static directory is served on 127.0.0.1 under the portal's
strict Content-Security-Policy, at the path the portal mounts it (``/report/static``);
``ondevice/test.html`` imports ``hash.js``, and every file goes through a real
``<input type=file>`` (``page.set_input_files``), as a person picks it. MD5, PDQ and
quality — for videos the selected frames, their timestamps, PDQ and quality — must be
equal; refused files must be refused with the expected code.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.browser import chromium, require_chromium
from tests.conftest import VECTORS
from tests.live_server import serve_app
from tests.ondevice_vectors import NO_WEBGL_MAX_DISTANCE, build

STATIC = Path(__file__).resolve().parents[1] / "src" / "safehold" / "web" / "portal" / "static"
CSP = (
    "default-src 'self'; script-src 'self'; worker-src 'self'; img-src 'self' blob: data:; "
    "media-src 'self' blob:; style-src 'self'; connect-src 'self'"
)
HEADERS = {  # the portal's (safehold.web.portal.routes.SECURITY_HEADERS)
    "Content-Security-Policy": CSP,
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    "Cache-Control": "no-store",
}
TIMED = {
    "png-640x480.png": "640x480 PNG",
    "jpeg-640x480-q92.jpg": "640x480 JPEG",
    "png-3000x2000.png": "3000x2000 PNG",
    "jpeg-3000x2000.jpg": "3000x2000 JPEG",
    "video-h264-640x480-10s.mp4": "10 s 640x480 H.264 video (1 fps)",
    "ref-doorknob-hd-no-bar.mp4": "4 s 1280x720 H.264 video (1 fps)",
}

pytestmark = [pytest.mark.browser, pytest.mark.slow]

require_chromium()

from playwright.sync_api import Browser  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.middleware.base import BaseHTTPMiddleware  # noqa: E402
from starlette.staticfiles import StaticFiles  # noqa: E402


def pdq_distance(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


@pytest.fixture(scope="module")
def vectors_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("ondevice-vectors")
    reference = VECTORS if (VECTORS / "pdq" / "manifest.json").exists() else None
    build(directory, reference=reference)
    return directory


def _app(vectors_dir: Path) -> Starlette:
    async def csp(request: Any, call_next: Any) -> Any:
        response = await call_next(request)
        response.headers.update(HEADERS)
        return response

    app = Starlette()
    app.add_middleware(BaseHTTPMiddleware, dispatch=csp)
    app.mount("/report/static", StaticFiles(directory=str(STATIC)), name="static")
    app.mount("/vectors", StaticFiles(directory=str(vectors_dir)), name="vectors")
    return app


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


@pytest.fixture(scope="module")
def run(browser: Browser, vectors_dir: Path) -> dict[str, Any]:
    """Every vector hashed in the browser (and the transparent ones again without WebGL):
    {"entries", "results", "no_webgl", "runs", "console"}."""
    manifest = json.loads((vectors_dir / "manifest.json").read_text())
    console: list[str] = []
    runs = []
    results: dict[str, Any] = {}
    with serve_app(_app(vectors_dir)) as url:
        page = browser.new_page()
        page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
        page.goto(f"{url}/report/static/ondevice/test.html")
        page.wait_for_selector("body[data-state=ready]", timeout=15_000)

        def pick(entries: list[dict[str, Any]], fps: float, webgl: bool = True) -> dict[str, Any]:
            page.fill("#fps", str(fps))
            page.set_checked("#webgl", webgl)
            page.evaluate("document.body.dataset.state = 'ready'")
            page.set_input_files("#files", [str(vectors_dir / e["file"]) for e in entries])
            page.wait_for_selector("body[data-state=done]", timeout=120_000)
            run = dict(json.loads(page.inner_text("#results")))
            run["csp"] = json.loads(page.get_attribute("body", "data-csp-violations") or "[]")
            runs.append(run)
            return {item["name"]: item for item in run["files"]}

        for fps in sorted({e["fps"] for e in manifest}):
            results.update(pick([e for e in manifest if e["fps"] == fps], fps))
        no_webgl = pick([e for e in manifest if e.get("alpha")], 1.0, webgl=False)
        page.close()
    timings = {label: results[name]["ms"] for name, label in TIMED.items() if name in results}
    print("\non-device hashing times (ms):", json.dumps(timings, indent=1))
    return {
        "entries": manifest,
        "results": results,
        "no_webgl": no_webgl,
        "runs": runs,
        "console": console,
    }


def _compare(entry: dict[str, Any], got: dict[str, Any]) -> str | None:
    """None when the browser's answer is what the manifest expects, else why not."""
    expect = entry["expect"]
    if "error" in got:
        code = got["error"]["code"]
        if expect in ("error", "exact_or_error") and code == entry["error"]:
            return None
        return f"refused ({code}: {got['error']['message']})"
    if expect == "error":
        return f"hashed, but should be refused with {entry['error']}"
    r = got["result"]
    problems = []
    for key in ("kind", "md5", "width", "height"):
        if r.get(key) != entry.get(key):
            problems.append(f"{key} {r.get(key)!r} != {entry.get(key)!r}")
    limit = entry.get("max_distance", 0)
    if entry["kind"] == "image":
        d = pdq_distance(r["pdq"], entry["pdq"])
        if d > limit or (expect != "distance" and r["quality"] != entry["quality"]):
            problems.append(f"pdq distance {d}, quality {r['quality']} vs {entry['quality']}")
    else:
        ours, theirs = r["vpdq"], entry["vpdq"]
        if [(f["frame"], f["timestamp"]) for f in ours] != [
            (f["frame"], f["timestamp"]) for f in theirs
        ]:
            problems.append(f"frames/timestamps differ: {len(ours)} vs {len(theirs)} frames")
        else:
            worst = max(
                (pdq_distance(a["pdq"], b["pdq"]) for a, b in zip(ours, theirs, strict=True)),
                default=0,
            )
            quality = [f["quality"] for f in ours] == [f["quality"] for f in theirs]
            if worst > limit or (expect != "distance" and not quality):
                problems.append(f"worst frame distance {worst}, qualities equal: {quality}")
    return "; ".join(problems) or None


def _check(run: dict[str, Any], select: Any) -> None:
    entries = [e for e in run["entries"] if select(e)]
    assert entries
    failures = {}
    for e in entries:
        got = run["results"].get(e["file"])
        why = "no result" if got is None else _compare(e, got)
        if why:
            failures[e["file"]] = why
    assert not failures, json.dumps(failures, indent=1)


def test_pictures_equal_python(run: dict[str, Any]) -> None:
    """PNG of every size, JPEG, WebP, GIF, BMP, AVIF, alpha, 16-bit, EXIF orientation,
    the bridge photos: MD5, PDQ and quality exactly Python's."""
    _check(run, lambda e: e.get("kind") == "image" and e["expect"] != "error")


def test_videos_equal_python(run: dict[str, Any]) -> None:
    """H.264 (MP4, MOV, MKV), VP8/VP9 (WebM), AV1, B-frames, 29.97 fps, variable frame
    rate, BT.709 full range, the doorknob video: same frames, timestamps, PDQ, quality."""
    _check(run, lambda e: e.get("kind") == "video" and e["expect"] != "error")


def test_refused_files(run: dict[str, Any]) -> None:
    """Empty, not media, damaged, decompression bombs, too many pixels, formats and
    codecs the browser cannot decode: refused with a clear code."""
    _check(run, lambda e: e["expect"] == "error")
    for e in run["entries"]:
        got = run["results"][e["file"]]
        if "error" in got:
            assert got["error"]["message"], e["file"]


def test_transparent_pictures_without_webgl(run: dict[str, Any]) -> None:
    """Without WebGL, pixels are read premultiplied from a 2D canvas: fully transparent
    ones are put back from the file (exact); partly transparent ones are a few bits off,
    and the result says so."""
    for e in [e for e in run["entries"] if e.get("alpha")]:
        got = run["no_webgl"][e["file"]]["result"]
        d = pdq_distance(got["pdq"], e["pdq"])
        if e["alpha"] == "binary":
            assert (d, got["quality"], got["warnings"]) == (0, e["quality"], []), e["file"]
        else:
            assert d <= NO_WEBGL_MAX_DISTANCE and got["warnings"], (e["file"], d)
            print(f"{e['file']}: {d} bits without WebGL")


def test_hashing_runs_in_a_worker_under_the_portal_csp(run: dict[str, Any]) -> None:
    assert all(r["runsIn"] == "worker" for r in run["runs"]), [r["runsIn"] for r in run["runs"]]
    assert not [v for r in run["runs"] for v in r["csp"]]
    assert not [
        line for line in run["console"] if "Content Security Policy" in line or "pageerror" in line
    ]
    print(
        "longest pause of the page while hashing (ms):", [r["longestPauseMs"] for r in run["runs"]]
    )
