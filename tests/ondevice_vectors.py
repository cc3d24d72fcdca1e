"""Shared test vectors for on-device hashing: synthetic files and the values Python gives.

:func:`build` writes a directory of pictures and videos drawn by code (plus, when the
shared reference vectors are available, the BSD-licensed bridge photos and doorknob
video from facebook/ThreatExchange), hashes every file with
:func:`safehold.hashing.hash_file` — exactly what ``safehold hash`` does — and writes
``manifest.json``: one object per file::

    {"file": "png-320x240.png", "kind": "image", "format": "png", "md5": "...",
     "pdq": "...", "quality": 100, "width": 320, "height": 240,
     "fps": 1.0, "expect": "exact", "max_distance": 0, "note": "..."}

videos have ``"vpdq": [{"frame", "timestamp", "pdq", "quality"}, ...]`` instead of
``pdq``/``quality``. ``expect`` is what the browser must give:

* ``"exact"`` — the same MD5, PDQ and quality (for a video: the same frames,
  timestamps, PDQ and quality of every frame);
* ``"distance"`` — the same MD5 (and frames), PDQ within ``max_distance`` bits;
* ``"error"`` — the browser refuses the file with ``MediaError.code == error`` (and
  Python's own error code, if any, is in ``python_error``);
* ``"exact_or_error"`` — either exact, or refused with ``error`` (codecs that some
  browsers decode and others do not).

``alpha`` marks transparent pictures: ``"binary"`` (fully transparent pixels only)
or ``"partial"``; without WebGL the browser is exact on the first and a few bits off
on the second (``NO_WEBGL_MAX_DISTANCE``).

``scripts/ondevice-vectors`` writes the same directory for manual checks (open
``/report/static/ondevice/test.html`` and pick the files); ``tests/test_ondevice_browser.py``
feeds every file through a real ``<input type=file>`` in Chromium and compares.
"""

from __future__ import annotations

import io
import json
import shutil
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tests.media_factory import (
    ImageVariant,
    encoder_available,
    mode_variants,
    orientation_variants,
    photo_like,
    png_bomb,
    png_chunk,
    png_garbage_data,
    png_ihdr,
    video_frame,
    write_video,
)

MANIFEST = "manifest.json"
NO_WEBGL_MAX_DISTANCE = 12
"""PDQ bits a partly transparent picture may be off when read premultiplied (no WebGL);
measured 2-8 on these vectors."""
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class Spec:
    """One file to write: ``make(path)`` writes it."""

    file: str
    make: Callable[[Path], Any]
    fps: float = 1.0
    expect: str = "exact"
    max_distance: int = 0
    error: str | None = None
    note: str = ""
    python: bool = True
    """False: do not hash it in Python (a refused file that Python would take long on)."""
    alpha: str | None = None
    """"partial" (alpha between 0 and 255) or "binary" (only fully transparent pixels)."""


# --------------------------------------------------------------------------- pictures


Picture = Image.Image | Callable[[], Image.Image]


@cache
def _photo(width: int, height: int, seed: int) -> Image.Image:
    return photo_like(width, height, seed)


def _save(im: Picture, fmt: str, **kw: Any) -> Callable[[Path], None]:
    """Save ``im`` (a picture, or a function drawing it when the file is written)."""

    def make(path: Path) -> None:
        picture = im() if callable(im) else im
        if fmt == "PNG" and picture.width * picture.height > 1_000_000:
            kw.setdefault("compress_level", 1)
        picture.save(path, fmt, **kw)

    return make


def _bytes(data: bytes | Callable[[], bytes]) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        path.write_bytes(data() if callable(data) else data)

    return make


def _png(
    width: int, height: int, depth: int, colour: int, rows: bytes, extra: bytes = b""
) -> bytes:
    """A hand-made PNG (for modes Pillow does not write: 16-bit RGB/RGBA, tRNS)."""
    return (
        PNG_SIGNATURE
        + png_ihdr(width, height, bit_depth=depth, colour_type=colour)
        + extra
        + png_chunk(b"IDAT", zlib.compress(rows, 6))
        + png_chunk(b"IEND", b"")
    )


def _png16(width: int, height: int, channels: int, seed: int) -> bytes:
    rgb = np.asarray(photo_like(width, height, seed)).astype(">u2") * 257
    rng = np.random.default_rng(seed)
    rgb = rgb + rng.integers(0, 257, size=rgb.shape).astype(">u2")  # low bytes that matter
    if channels == 4:
        yy, xx = np.mgrid[0:height, 0:width]
        alpha = (20000 + 45000 * (xx + yy) / (width + height)).astype(">u2")
        rgb = np.concatenate([rgb, alpha[:, :, None]], axis=2)
    colour = {3: 2, 4: 6}[channels]
    rows = b"".join(b"\x00" + rgb[y].astype(">u2").tobytes() for y in range(height))
    return _png(width, height, 16, colour, rows)


def _png_trns(width: int, height: int, colour: int, seed: int) -> bytes:
    """Grey (colour 0) or RGB (colour 2) 8-bit PNG whose most common value is transparent."""
    im = photo_like(width, height, seed)
    if colour == 0:
        arr = np.asarray(im.convert("L")).copy()
        arr[: height // 3, : width // 3] = 77
        rows = b"".join(b"\x00" + arr[y].tobytes() for y in range(height))
        trns = png_chunk(b"tRNS", struct.pack(">H", 77))
    else:
        arr = np.asarray(im).copy()
        arr[: height // 3, : width // 3] = (77, 99, 11)
        rows = b"".join(b"\x00" + arr[y].tobytes() for y in range(height))
        trns = png_chunk(b"tRNS", struct.pack(">HHH", 77, 99, 11))
    return _png(width, height, 8, colour, rows, trns)


def _png_with_chunk(im: Image.Image, chunk: bytes) -> bytes:
    """``im`` as PNG with one more ancillary chunk right after IHDR."""
    buf = io.BytesIO()
    im.save(buf, "PNG")
    data = buf.getvalue()
    at = 8 + 8 + 13 + 4  # signature, IHDR length+type, IHDR data, CRC
    return data[:at] + chunk + data[at:]


def _flat(width: int, height: int, level: int = 128, amplitude: float = 0.0) -> Image.Image:
    """A flat picture (quality 0) or a very gentle gradient (low quality)."""
    y = np.linspace(0, 1, height)[:, None]
    x = np.linspace(0, 1, width)[None, :]
    plane = level + amplitude * (x + 0.5 * y)
    arr = np.clip(np.repeat(plane[:, :, None], 3, axis=2), 0, 255).astype(np.uint8)
    return Image.fromarray(arr, "RGB")


def _jpeg(im: Picture, **kw: Any) -> Callable[[Path], None]:
    return _save(im, "JPEG", **kw)


def picture_specs(big: bool = True) -> list[Spec]:
    out: list[Spec] = []
    # PNG (lossless): every size class, including below the 128-pixel threshold where
    # safehold switches from its own filter to the reference core end to end.
    sizes = [
        (1, 1), (4, 9), (5, 5), (7, 5), (63, 64), (64, 64), (64, 63), (127, 200),
        (128, 128), (129, 127), (200, 127), (320, 240), (640, 480), (1283, 977),
        (1000, 40), (40, 1000), (4000, 300), (2, 700),
    ]  # fmt: skip
    if big:
        sizes.append((3000, 2000))
    for i, (w, h) in enumerate(sizes):
        im = (lambda w=w, h=h, i=i: _photo(w, h, i)) if min(w, h) >= 8 else _noise(w, h, seed=i)
        out.append(Spec(f"png-{w}x{h}.png", _save(im, "PNG")))
    out.append(Spec("png-flat-320x240.png", _save(_flat(320, 240), "PNG"), note="quality 0"))
    out.append(
        Spec("png-gentle-640x480.png", _save(_flat(640, 480, 100, 20.0), "PNG"), note="quality 0")
    )
    out.append(
        Spec("png-gentle-64x64.png", _save(_flat(64, 64, 60, 9.0), "PNG"), note="quality < 50")
    )
    out.append(
        Spec("png-noise-faint-300x200.png", _save(_faint_noise(300, 200), "PNG"), note="quality 0")
    )
    out.append(
        Spec("png-stripe-320x240.png", _save(_stripes(320, 240, 40, 1), "PNG"), note="quality 21")
    )
    out.append(
        Spec("png-stripes-320x240.png", _save(_stripes(320, 240, 80, 1), "PNG"), note="quality 44")
    )
    out.append(
        Spec(
            "jpeg-stripes-320x240.jpg",
            _jpeg(_stripes(320, 240, 40, 2), quality=90),
            note="quality < 50",
        )
    )
    # Colour modes (media_factory.mode_variants): alpha, palettes, grey, 16-bit, CMYK.
    alpha = {"rgba-png": "partial", "rgba-webp-lossless": "partial", "la-png": "partial"}
    alpha |= {"p-transparent-png": "binary", "p-transparent-gif": "binary"}
    for v in _modes():
        name = f"mode-{v.name}{v.suffix}"
        if v.fmt in ("tiff", "heic"):
            note = "Chromium cannot decode it (Safari can: then hashed with a warning)"
            out.append(
                Spec(name, _bytes(v.data), expect="error", error="unsupported_browser", note=note)
            )
        else:
            out.append(Spec(name, _bytes(v.data), alpha=alpha.get(v.name)))
    out.append(Spec("png16-rgb.png", _bytes(lambda: _png16(161, 121, 3, 7)), note="16-bit RGB"))
    out.append(
        Spec(
            "png16-rgba.png",
            _bytes(lambda: _png16(161, 121, 4, 8)),
            note="16-bit RGBA",
            alpha="partial",
        )
    )
    out.append(
        Spec(
            "png-grey-trns.png",
            _bytes(lambda: _png_trns(150, 100, 0, 9)),
            note="grey + tRNS",
            alpha="binary",
        )
    )
    out.append(
        Spec(
            "png-rgb-trns.png",
            _bytes(lambda: _png_trns(150, 100, 2, 10)),
            note="RGB + tRNS",
            alpha="binary",
        )
    )
    gama = png_chunk(b"gAMA", struct.pack(">I", 100000))
    out.append(
        Spec(
            "png-gama.png",
            _bytes(lambda: _png_with_chunk(_photo(200, 150, 11), gama)),
            note="gAMA 1.0",
        )
    )
    out.append(
        Spec(
            "webp-lossy-alpha.webp",
            _save(_rgba, "WEBP", quality=90, exact=True),
            note="lossy + alpha",
            alpha="partial",
        )
    )

    # JPEG: subsampling, progressive, sizes that end inside an MCU, grey.
    def photo() -> Image.Image:
        return _photo(640, 480, 20)

    out.append(Spec("jpeg-640x480-q75.jpg", _jpeg(photo, quality=75)))
    out.append(Spec("jpeg-640x480-q92.jpg", _jpeg(photo, quality=92)))
    out.append(Spec("jpeg-640x480-444.jpg", _jpeg(photo, quality=90, subsampling=0)))
    out.append(Spec("jpeg-640x480-422.jpg", _jpeg(photo, quality=90, subsampling=1)))
    out.append(Spec("jpeg-640x480-progressive.jpg", _jpeg(photo, quality=90, progressive=True)))
    out.append(Spec("jpeg-640x480-optimized.jpg", _jpeg(photo, quality=85, optimize=True)))
    for w, h in ((1, 1), (7, 5), (17, 13), (127, 200), (333, 251)):
        im = (lambda w=w, h=h: _photo(w, h, 21)) if min(w, h) >= 8 else _noise(w, h, 21)
        out.append(Spec(f"jpeg-{w}x{h}.jpg", _jpeg(im)))
    out.append(
        Spec("jpeg-grey-300x200.jpg", _jpeg(lambda: _photo(300, 200, 22).convert("L"), quality=90))
    )
    out.append(
        Spec(
            "jpeg-flat-320x240.jpg", _jpeg(_flat(320, 240, 90, 6.0), quality=90), note="low quality"
        )
    )
    if big:
        out.append(
            Spec(
                "jpeg-3000x2000.jpg", _jpeg(lambda: _photo(3000, 2000, len(sizes) - 1), quality=90)
            )
        )
    # WebP, GIF, BMP beyond mode_variants
    out.append(Spec("webp-640x480-q80.webp", _save(photo, "WEBP", quality=80)))
    out.append(Spec("gif-200x150.gif", _save(lambda: _photo(200, 150, 24).quantize(256), "GIF")))
    out.append(Spec("bmp-201x149.bmp", _save(lambda: _photo(201, 149, 25), "BMP")))
    # EXIF orientation: stored turned, with the tag that turns them upright.
    for fmt in ("jpeg", "png", "webp", "avif"):
        for v in _orientations(fmt):
            out.append(Spec(f"orient-{v.name}{v.suffix}", _bytes(v.data)))
    # What must be refused.
    out.append(Spec("empty.jpg", _bytes(b""), expect="error", error="empty"))
    out.append(
        Spec(
            "not-media.txt",
            _bytes(b"hello, this is not a picture\n" * 10),
            expect="error",
            error="unsupported_format",
        )
    )
    out.append(Spec("garbage.png", _bytes(png_garbage_data()), expect="error", error="corrupt"))
    out.append(
        Spec(
            "bomb.png",
            _bytes(lambda: png_bomb(30000, 30000)),
            expect="error",
            error="too_many_pixels",
        )
    )
    out.append(
        Spec(
            "over-50mp.png",
            _bytes(lambda: png_bomb(7500, 7000)),
            expect="error",
            error="too_many_pixels",
            note="52.5 MP: over the on-device limit of 50 MP (Python's limit is 100 MP)",
            python=False,
        )
    )
    out.append(Spec("truncated.jpg", _truncated_jpeg, expect="error", error="corrupt"))
    return out


@cache
def _modes() -> list[ImageVariant]:
    return mode_variants(_photo(321, 243, 3))


@cache
def _orientations(fmt: str) -> list[ImageVariant]:
    return orientation_variants(_photo(200, 120, 4), fmt)


def _rgba() -> Image.Image:
    rgba = _photo(300, 200, 12).convert("RGBA")
    rgba.putalpha(Image.fromarray((np.indices((200, 300)).sum(0) % 256).astype(np.uint8), "L"))
    return rgba


def _noise(width: int, height: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")


def _stripes(width: int, height: int, step: int, count: int) -> Image.Image:
    """Flat grey with a few vertical stripes: a PDQ quality between 1 and 49."""
    arr = np.full((height, width, 3), 100, np.uint8)
    for k in range(count):
        arr[:, 40 + 100 * k : 70 + 100 * k] += step
    return Image.fromarray(arr, "RGB")


def _faint_noise(width: int, height: int) -> Image.Image:
    rng = np.random.default_rng(5)
    arr = 120 + rng.integers(0, 3, (height, width, 1), dtype=np.uint8)
    return Image.fromarray(np.repeat(arr, 3, axis=2), "RGB")


def _truncated_jpeg(path: Path) -> None:
    buf = io.BytesIO()
    _photo(400, 300, 26).save(buf, "JPEG", quality=90)
    data = buf.getvalue()
    path.write_bytes(data[: len(data) * 6 // 10])


# --------------------------------------------------------------------------- videos


def _write_av(
    path: Path,
    *,
    codec: str,
    container: str,
    size: tuple[int, int],
    frames: int,
    rate: Fraction,
    options: dict[str, str] | None = None,
    colorspace: int | None = None,
    color_range: int | None = None,
    pts: list[int] | None = None,
    time_base: Fraction | None = None,
    audio: bool = False,
    pix_fmt: str = "yuv420p",
) -> None:
    """A clip with codec options, colour tags, irregular timestamps or a sound track
    (which write_video has not)."""
    import av

    w, h = size
    with av.open(str(path), mode="w", format=container) as out:
        stream = out.add_stream(codec, rate=rate)
        sound = out.add_stream("aac", rate=48000) if audio else None
        samples = 0
        assert isinstance(stream, av.VideoStream)
        stream.width, stream.height = w, h
        stream.pix_fmt = pix_fmt
        if options:
            stream.options = options
        if colorspace is not None:
            stream.codec_context.colorspace = colorspace
        if color_range is not None:
            stream.codec_context.color_range = color_range
        if time_base is not None:
            stream.codec_context.time_base = time_base
            stream.time_base = time_base
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(
                video_frame(i, float(rate), size, seed=3), format="rgb24"
            )
            if colorspace is not None or color_range is not None:
                frame = frame.reformat(
                    format=pix_fmt,
                    dst_colorspace=colorspace,
                    dst_color_range=color_range,
                )
            if pts is not None:
                frame.pts = pts[i]
                frame.time_base = time_base
            for packet in stream.encode(frame):
                out.mux(packet)
            while sound is not None and samples < 48000 * (i + 1) / float(rate):
                tone = np.sin(np.arange(samples, samples + 1024) * 0.05) * 3000
                chunk = av.AudioFrame.from_ndarray(
                    tone.astype(np.int16)[None, :], format="s16", layout="mono"
                )
                chunk.sample_rate, chunk.pts = 48000, samples
                samples += 1024
                for packet in sound.encode(chunk):
                    out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
        if sound is not None:
            for packet in sound.encode(None):
                out.mux(packet)


def _truncated_video(path: Path) -> None:
    write_video(path, seconds=3.0, fps=10, size=(160, 120), faststart=True)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 7 // 10])


def video_specs(big: bool = True) -> list[Spec]:
    out: list[Spec] = []

    def clip(**kw: Any) -> Callable[[Path], None]:
        return lambda path: write_video(path, **kw)

    def av_clip(**kw: Any) -> Callable[[Path], None]:
        return lambda path: _write_av(path, **kw)

    out.append(Spec("video-h264-160x120.mp4", clip(seconds=2.0, fps=10, size=(160, 120))))
    out.append(
        Spec("video-h264-160x120-every.mp4", clip(seconds=2.0, fps=10, size=(160, 120)), fps=0.0)
    )
    out.append(
        Spec("video-h264-160x120-fps2.mp4", clip(seconds=2.0, fps=10, size=(160, 120)), fps=2.0)
    )
    out.append(
        Spec("video-h264-170x130.mp4", clip(seconds=2.0, fps=10, size=(170, 130)), note="cropped")
    )
    out.append(Spec("video-h264.mov", clip(fmt="mov", seconds=2.0, fps=10, size=(160, 120))))
    out.append(Spec("video-h264.mkv", clip(fmt="mkv", seconds=2.0, fps=10, size=(160, 120))))
    out.append(
        Spec(
            "video-vp8.webm", clip(fmt="webm", codec="libvpx", seconds=2.0, fps=10, size=(160, 120))
        )
    )
    if encoder_available("libvpx-vp9"):
        out.append(
            Spec(
                "video-vp9.webm",
                clip(fmt="webm", codec="libvpx-vp9", seconds=2.0, fps=10, size=(320, 240)),
            )
        )
    if encoder_available("libsvtav1"):
        out.append(
            Spec(
                "video-av1.mp4",
                clip(codec="libsvtav1", seconds=2.0, fps=10, size=(320, 240)),
                note="AV1",
            )
        )
    out.append(
        Spec(
            "video-h264-bframes.mp4",
            av_clip(
                codec="libx264",
                container="mp4",
                size=(320, 240),
                frames=45,
                rate=Fraction(15),
                options={"preset": "medium", "bf": "3"},
            ),
            fps=0.0,
            note="B-frames and an edit list",
        )
    )
    out.append(
        Spec(
            "video-h264-ntsc.mp4",
            av_clip(
                codec="libx264",
                container="mp4",
                size=(192, 108),
                frames=50,
                rate=Fraction(30000, 1001),
                options={"preset": "ultrafast"},
            ),
            fps=0.0,
            note="29.97 fps",
        )
    )
    out.append(
        Spec(
            "video-h264-bt709-full.mp4",
            av_clip(
                codec="libx264",
                container="mp4",
                size=(160, 120),
                frames=20,
                rate=Fraction(10),
                options={"preset": "ultrafast"},
                colorspace=1,
                color_range=2,
            ),
            fps=0.0,
            note="BT.709, full range",
        )
    )
    out.append(
        Spec(
            "video-h264-vfr.mp4",
            av_clip(
                codec="libx264",
                container="mp4",
                size=(160, 120),
                frames=30,
                rate=Fraction(10),
                options={"preset": "ultrafast"},
                pts=[0, 90, 200, 260, 400, 470, 500, 610, 700, 850]
                + [900 + 100 * k for k in range(20)],
                time_base=Fraction(1, 1000),
            ),
            fps=2.0,
            note="variable frame rate",
        )
    )
    out.append(
        Spec(
            "video-h264-sound.mp4",
            av_clip(
                codec="libx264",
                container="mp4",
                size=(160, 120),
                frames=30,
                rate=Fraction(10),
                options={"preset": "ultrafast"},
                audio=True,
            ),
            note="with an AAC sound track",
        )
    )
    out.append(
        Spec(
            "video-truncated.mp4",
            _truncated_video,
            fps=0.0,
            note="cut at 70 %: the frames before the cut",
        )
    )
    out.append(
        Spec(
            "video-h264-422.mp4",
            av_clip(
                codec="libx264",
                container="mp4",
                size=(320, 240),
                frames=20,
                rate=Fraction(10),
                options={"preset": "ultrafast"},
                pix_fmt="yuv422p",
            ),
            fps=0.0,
            note="4:2:2 (libswscale's yuv2rgb converter, as 4:2:0)",
        )
    )
    out.append(
        Spec(
            "video-h264-444.mp4",
            av_clip(
                codec="libx264",
                container="mp4",
                size=(320, 240),
                frames=20,
                rate=Fraction(10),
                options={"preset": "ultrafast"},
                pix_fmt="yuv444p",
            ),
            fps=0.0,
            expect="distance",
            max_distance=2,
            note="4:4:4: FFmpeg's general scaler, approximated (measured 0 bits)",
        )
    )
    if encoder_available("libsvtav1"):
        out.append(
            Spec(
                "video-av1-10bit.mp4",
                av_clip(
                    codec="libsvtav1",
                    container="mp4",
                    size=(320, 240),
                    frames=20,
                    rate=Fraction(10),
                    pix_fmt="yuv420p10le",
                ),
                fps=0.0,
                expect="distance",
                max_distance=4,
                note="10-bit: FFmpeg's general scaler, approximated (measured at most 2 bits)",
            )
        )
    out.append(
        Spec(
            "video-hevc.mp4",
            clip(codec="libx265", seconds=1.0, fps=10, size=(160, 120)),
            expect="exact_or_error",
            error="unsupported_codec",
            note="HEVC: decoded only where the browser can",
        )
    )
    out.append(
        Spec(
            "video-mpeg4.mp4",
            clip(codec="mpeg4", seconds=1.0, fps=10, size=(160, 120)),
            expect="error",
            error="unsupported_codec",
            note="MPEG-4 part 2: no WebCodecs decoder",
        )
    )
    if big:
        out.append(
            Spec(
                "video-h264-640x480-10s.mp4",
                clip(seconds=10.0, fps=30, size=(640, 480)),
                note="10 s, 30 fps",
            )
        )
    return out


# --------------------------------------------------------------------------- reference vectors


def reference_specs(reference: Path | None) -> list[Spec]:
    """The shared BSD-licensed vectors (bridge photos, doorknob video), copied over."""
    if reference is None or not (reference / "pdq" / "manifest.json").exists():
        return []
    out = []
    for f in sorted((reference / "pdq").glob("*.jpg")):
        out.append(
            Spec(
                f"ref-{f.name}",
                lambda p, f=f: shutil.copyfile(f, p),
                note="ThreatExchange PDQ vector",
            )
        )
    video = reference / "vpdq" / "doorknob-hd-no-bar.mp4"
    if video.exists():
        out.append(
            Spec(
                f"ref-{video.name}",
                lambda p: shutil.copyfile(video, p),
                note="ThreatExchange vPDQ vector",
            )
        )
    return out


# --------------------------------------------------------------------------- building


def expected(path: Path, fps: float) -> dict[str, Any]:
    """What safehold's Python side computes for the file (or the error it raises)."""
    from safehold.errors import MediaError
    from safehold.hashing import hash_file

    try:
        h = hash_file(path, fps=fps)
    except MediaError as e:
        return {"python_error": e.code}
    out: dict[str, Any] = {
        "kind": h.kind,
        "format": h.format,
        "md5": h.md5,
        "width": h.width,
        "height": h.height,
    }
    if h.kind == "image":
        out["pdq"], out["quality"] = h.pdq, h.pdq_quality
    else:
        out["vpdq"] = [f.to_dict() for f in h.vpdq or []]
    return out


def build(
    directory: Path,
    *,
    big: bool = True,
    reference: Path | None = None,
    only: Callable[[str], bool] | None = None,
) -> list[dict[str, Any]]:
    """Write every vector file and ``manifest.json`` into ``directory``; return the manifest.

    ``big`` adds the 3000x2000 pictures and the 10-second video; ``reference`` is the
    shared vectors directory (``tests.conftest.VECTORS``), whose files are copied in;
    ``only`` keeps the files whose name it accepts.
    """
    directory.mkdir(parents=True, exist_ok=True)
    manifest = []
    for spec in [*picture_specs(big), *video_specs(big), *reference_specs(reference)]:
        if only is not None and not only(spec.file):
            continue
        path = directory / spec.file
        spec.make(path)
        entry: dict[str, Any] = {"file": spec.file, "fps": spec.fps, "expect": spec.expect}
        if spec.expect == "distance":
            entry["max_distance"] = spec.max_distance
        if spec.error:
            entry["error"] = spec.error
        if spec.note:
            entry["note"] = spec.note
        if spec.alpha:
            entry["alpha"] = spec.alpha
        if spec.python:
            entry.update(expected(path, spec.fps))
        manifest.append(entry)
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def load(directory: Path) -> list[dict[str, Any]]:
    return list(json.loads((directory / MANIFEST).read_text()))
