"""Synthetic test media, drawn by code.

No image or video file is ever committed: every picture used by the tests is made
here from gradients, shapes, noise and text, and written to pytest's ``tmp_path``.

* :func:`photo_like` — an RGB picture with the statistics PDQ expects of a photo
  (smooth gradients, hard-edged shapes, text, mild blur), fully determined by a seed.
* :func:`encode_image` — that picture in any allow-listed still format.
* :func:`mode_variants` / :func:`orientation_variants` — the same picture stored in
  other colour modes, or with its pixels turned and an EXIF orientation tag that turns
  them back, each with the upright RGB picture a person would see.
* :func:`write_video` / :func:`reencode_video` — short videos of moving shapes at a
  known frame rate, written with PyAV (FFmpeg).
* :func:`png_chunk` / :func:`png_bomb` — hand-made PNG files for hostile cases.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

# --------------------------------------------------------------------------- pictures

IMAGE_FORMATS: tuple[str, ...] = ("jpeg", "png", "gif", "webp", "bmp", "tiff", "heic", "avif")
"""Every still format on safehold's allow-list."""

SUFFIX = {
    "jpeg": ".jpg",
    "png": ".png",
    "gif": ".gif",
    "webp": ".webp",
    "bmp": ".bmp",
    "tiff": ".tif",
    "heic": ".heic",
    "avif": ".avif",
}


@cache
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (OSError, ImportError):  # pragma: no cover - Pillow built without FreeType
        return ImageFont.load_default()


def _background(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """Smooth low-frequency colour gradients, different in each channel."""
    y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    x = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    out = np.empty((height, width, 3), dtype=np.uint8)
    for c in range(3):
        fx, fy = rng.uniform(0.5, 2.5, size=2)
        px, py = rng.uniform(0, 2 * np.pi, size=2)
        gx, gy = rng.uniform(-60, 60, size=2)
        plane = (
            128.0
            + 55.0 * np.sin(2 * np.pi * fx * x + px) * np.cos(2 * np.pi * fy * y + py)
            + gx * (x - 0.5)
            + gy * (y - 0.5)
        )
        out[:, :, c] = np.clip(plane, 0, 255).astype(np.uint8)
    return out


def _colour(rng: np.random.Generator) -> tuple[int, int, int]:
    r, g, b = (int(v) for v in rng.integers(0, 256, size=3))
    return (r, g, b)


def photo_like(width: int = 320, height: int = 240, seed: int = 0) -> Image.Image:
    """A deterministic, photo-like RGB picture: gradients, shapes and a line of text.

    Shapes are placed in relative coordinates, so the same seed at another size is
    the same picture scaled (useful for the fast-mode and re-encoding tests).
    """
    rng = np.random.default_rng(seed)
    # The background is smooth: for big pictures, draw it small and enlarge it.
    step = max(1, min(width, height) // 512)
    small = _background(-(-width // step), -(-height // step), rng)
    im = Image.fromarray(small, "RGB")
    if step > 1:
        im = im.resize((width, height), Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(im)
    unit = min(width, height)
    for i in range(9):
        cx, cy = rng.uniform(0.05, 0.95) * width, rng.uniform(0.05, 0.95) * height
        rx, ry = rng.uniform(0.06, 0.25, size=2) * unit
        box = (cx - rx, cy - ry, cx + rx, cy + ry)
        colour = _colour(rng)
        kind = i % 3
        if kind == 0:
            draw.ellipse(box, fill=colour)
        elif kind == 1:
            draw.rectangle(box, fill=colour, outline=_colour(rng), width=max(1, unit // 80))
        else:
            points = [
                (cx + rx * np.cos(a), cy + ry * np.sin(a))
                for a in np.sort(rng.uniform(0, 2 * np.pi, size=5))
            ]
            draw.polygon([(float(px), float(py)) for px, py in points], fill=colour)
    draw.text(
        (0.06 * width, 0.78 * height),
        f"safehold test {seed}",
        fill=(250, 250, 245),
        font=_font(max(8, unit // 10)),
        stroke_width=max(1, unit // 160),
        stroke_fill=(20, 20, 30),
    )
    # A little blur and grain, as a camera would give.
    im = im.filter(ImageFilter.GaussianBlur(radius=max(0.6, unit / 400)))
    grain = rng.integers(-3, 4, size=(height, width, 1), dtype=np.int16)
    arr = np.clip(np.asarray(im).astype(np.int16) + grain, 0, 255).astype(np.uint8)
    return Image.fromarray(arr, "RGB")


def encode_image(
    im: Image.Image,
    fmt: str,
    *,
    quality: int = 92,
    lossless: bool = False,
    exif: bytes | None = None,
) -> bytes:
    """``im`` saved as ``fmt`` (one of :data:`IMAGE_FORMATS`), in memory."""
    buf = io.BytesIO()
    kwargs: dict[str, object] = {}
    if exif is not None:
        kwargs["exif"] = exif
    if fmt == "jpeg":
        im.save(buf, "JPEG", quality=quality, **kwargs)
    elif fmt == "png":
        im.save(buf, "PNG", **kwargs)
    elif fmt == "gif":
        im.save(buf, "GIF", **kwargs)
    elif fmt == "webp":
        im.save(buf, "WEBP", quality=quality, lossless=lossless, exact=True, **kwargs)
    elif fmt == "bmp":
        im.save(buf, "BMP")
    elif fmt == "tiff":
        im.save(buf, "TIFF", **kwargs)
    elif fmt == "heic":
        import pillow_heif

        pillow_heif.register_heif_opener()
        im.save(buf, "HEIF", quality=quality, **kwargs)
    elif fmt == "avif":
        im.save(buf, "AVIF", quality=quality, **kwargs)
    else:
        raise ValueError(f"unknown image format {fmt!r}")
    return buf.getvalue()


def write_image(path: Path, im: Image.Image, fmt: str, **kwargs: object) -> Path:
    path.write_bytes(encode_image(im, fmt, **kwargs))  # type: ignore[arg-type]
    return path


@dataclass(frozen=True)
class ImageVariant:
    """One way of storing a picture, and what it must hash as."""

    name: str
    data: bytes
    suffix: str
    upright: Image.Image
    """The 8-bit RGB picture a person sees (alpha ignored): what the hash must equal."""
    lossless: bool
    """True when decoding must give ``upright`` pixel for pixel."""
    fmt: str


def _variant(
    name: str, image: Image.Image, fmt: str, upright: Image.Image, exact: bool, **kw: object
) -> ImageVariant:
    return ImageVariant(
        name=name,
        data=encode_image(image, fmt, **kw),  # type: ignore[arg-type]
        suffix=SUFFIX[fmt],
        upright=upright,
        lossless=exact,
        fmt=fmt,
    )


def _alpha_ramp(size: tuple[int, int]) -> Image.Image:
    """A non-trivial alpha plane (diagonal ramp, never fully transparent)."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    ramp = 40 + (215 * (xx + yy) / max(1, w + h - 2))
    return Image.fromarray(ramp.astype(np.uint8), "L")


def mode_variants(original: Image.Image) -> list[ImageVariant]:
    """``original`` (RGB) stored in every colour mode that needs a conversion.

    ``upright`` is what the stored pixels look like as 8-bit RGB: the original itself
    where the mode can hold it exactly (CMYK with no black, RGBA, lossless formats),
    otherwise Pillow's conversion of the stored pixels (palette colours, grey levels).
    """
    assert original.mode == "RGB"
    grey = original.convert("L")
    grey_rgb = grey.convert("RGB")
    palette = original.quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    palette_rgb = palette.convert("RGB")
    # Palette with a transparent entry: the most used index becomes transparent.
    # Alpha is ignored by the hash, so the picture is the colours under it.
    counts = np.bincount(np.asarray(palette).ravel(), minlength=256)
    transparent = palette.copy()
    transparent.info["transparency"] = int(counts.argmax())
    rgba = original.copy()
    rgba.putalpha(_alpha_ramp(original.size))
    la = grey.copy()
    la.putalpha(_alpha_ramp(original.size))
    cmyk = original.convert("CMYK")  # K = 0: converts back to the same RGB exactly
    ycbcr = original.convert("YCbCr")
    i16 = Image.fromarray(np.asarray(grey).astype("<u2") * 257)
    assert i16.mode == "I;16", i16.mode
    return [
        _variant("rgb-png", original, "png", original, True),
        _variant("rgb-bmp", original, "bmp", original, True),
        _variant("rgb-tiff", original, "tiff", original, True),
        _variant("rgb-webp-lossless", original, "webp", original, True, lossless=True),
        _variant("cmyk-tiff", cmyk, "tiff", original, True),
        _variant("cmyk-jpeg", cmyk, "jpeg", original, False, quality=95),
        _variant("p-png", palette, "png", palette_rgb, True),
        _variant("p-gif", palette, "gif", palette_rgb, True),
        _variant("p-bmp", palette, "bmp", palette_rgb, True),
        _variant("p-transparent-png", transparent, "png", palette_rgb, True),
        _variant("p-transparent-gif", transparent, "gif", palette_rgb, True),
        _variant("rgba-png", rgba, "png", original, True),
        _variant("rgba-tiff", rgba, "tiff", original, True),
        _variant("rgba-webp-lossless", rgba, "webp", original, True, lossless=True),
        _variant("la-png", la, "png", grey_rgb, True),
        _variant("l-png", grey, "png", grey_rgb, True),
        _variant("l-tiff", grey, "tiff", grey_rgb, True),
        _variant("l-jpeg", grey, "jpeg", grey_rgb, False, quality=95),
        _variant("i16-png", i16, "png", grey_rgb, True),
        _variant("ycbcr-jpeg", ycbcr, "jpeg", original, False, quality=95),
        _variant("rgb-jpeg", original, "jpeg", original, False, quality=95),
        _variant("rgb-webp", original, "webp", original, False, quality=95),
        _variant("rgb-heic", original, "heic", original, False, quality=95),
        _variant("rgb-avif", original, "avif", original, False, quality=95),
    ]


# EXIF orientation: the transpose that turns the stored pixels upright
# (as ImageOps.exif_transpose applies it), and its inverse that a camera applies
# when it stores a picture taken with the sensor turned.
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_STORE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}
ORIENTATIONS: tuple[int, ...] = tuple(range(2, 9))


def stored_pixels(upright: Image.Image, orientation: int) -> Image.Image:
    """The pixels a camera stores for ``upright`` with EXIF ``orientation``."""
    return upright.transpose(_STORE[orientation])


def exif_orientation(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


def orientation_variants(
    original: Image.Image, fmt: str, *, orientations: tuple[int, ...] = ORIENTATIONS
) -> list[ImageVariant]:
    """``original`` stored turned, with an EXIF tag that turns it upright again."""
    lossless = fmt in ("png", "tiff")
    kw: dict[str, object] = {"exif": None}
    if fmt in ("jpeg", "webp", "heic", "avif"):
        kw["quality"] = 95
    out = []
    for o in orientations:
        kw["exif"] = exif_orientation(o)
        out.append(
            _variant(f"exif{o}-{fmt}", stored_pixels(original, o), fmt, original, lossless, **kw)
        )
    return out


# --------------------------------------------------------------------------- hand-made PNG


def png_chunk(kind: bytes, data: bytes, *, crc: int | None = None) -> bytes:
    """One PNG chunk with a correct CRC (unless ``crc`` is given)."""
    value = zlib.crc32(kind + data) if crc is None else crc
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", value & 0xFFFFFFFF)


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_ihdr(width: int, height: int, *, bit_depth: int = 8, colour_type: int = 2) -> bytes:
    return png_chunk(
        b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    )


def png_bomb(width: int = 30000, height: int = 30000) -> bytes:
    """A PNG declaring ``width`` x ``height`` RGB whose IDAT is a few hundred bytes.

    The IDAT holds only the first rows (zeros compress ~1000:1); a decoder that
    believed the header would allocate width x height x 3 bytes before noticing.
    """
    row = b"\x00" + b"\x00" * (width * 3)
    idat = zlib.compress(row * 4, 9)
    return (
        PNG_SIGNATURE + png_ihdr(width, height) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")
    )


def png_garbage_data(width: int = 64, height: int = 64, seed: int = 0) -> bytes:
    """A PNG with a valid header and chunk CRCs, but IDAT bytes that are not zlib data."""
    rng = np.random.default_rng(seed)
    junk = rng.integers(0, 256, size=2048, dtype=np.uint8).tobytes()
    return (
        PNG_SIGNATURE
        + png_ihdr(width, height)
        + png_chunk(b"IDAT", b"\x00\xff" + junk)  # 0x00ff is not a valid zlib header
        + png_chunk(b"IEND", b"")
    )


# --------------------------------------------------------------------------- video


@dataclass(frozen=True)
class VideoFormat:
    name: str
    container: str
    """FFmpeg muxer name."""
    suffix: str
    codecs: tuple[str, ...]
    """Encoders to try, best first."""


VIDEO_FORMATS: dict[str, VideoFormat] = {
    "mp4": VideoFormat("mp4", "mp4", ".mp4", ("libx264", "h264", "mpeg4")),
    "webm": VideoFormat("webm", "webm", ".webm", ("libvpx", "libvpx-vp9")),
    "mkv": VideoFormat("mkv", "matroska", ".mkv", ("libx264", "h264", "mpeg4", "ffv1")),
    "mov": VideoFormat("mov", "mov", ".mov", ("libx264", "h264", "mpeg4")),
}


@cache
def encoder_available(codec: str) -> bool:
    import av

    try:
        av.codec.Codec(codec, "w")
    except Exception:
        return False
    return True


def pick_codec(fmt: str) -> str | None:
    """The first encoder of :data:`VIDEO_FORMATS` ``fmt`` this PyAV build has."""
    for codec in VIDEO_FORMATS[fmt].codecs:
        if encoder_available(codec):
            return codec
    return None


def video_frame(index: int, fps: float, size: tuple[int, int], seed: int = 0) -> np.ndarray:
    """Frame ``index`` of a synthetic clip: a still photo-like scene with shapes moving over it."""
    width, height = size
    scene = _scene(width, height, seed)
    im = scene.copy()
    draw = ImageDraw.Draw(im)
    t = index / fps
    rng = np.random.default_rng(seed + 1000)
    unit = min(width, height)
    for k in range(4):
        vx, vy = rng.uniform(-0.35, 0.35, size=2)
        x0, y0 = rng.uniform(0.2, 0.8, size=2)
        x = ((x0 + vx * t) % 1.0) * width
        y = ((y0 + vy * t) % 1.0) * height
        r = rng.uniform(0.08, 0.18) * unit
        colour = _colour(rng)
        if k % 2:
            draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)
        else:
            draw.rectangle((x - r, y - r * 0.6, x + r, y + r * 0.6), fill=colour)
    # A slow pan of the whole picture, so consecutive seconds differ.
    shift = int(0.04 * width * t) % width
    return np.ascontiguousarray(np.roll(np.asarray(im), shift, axis=1))


@cache
def _scene(width: int, height: int, seed: int) -> Image.Image:
    return photo_like(width, height, seed)


def write_video(
    path: Path,
    *,
    fmt: str = "mp4",
    codec: str | None = None,
    seconds: float = 2.0,
    fps: int = 10,
    size: tuple[int, int] = (160, 120),
    seed: int = 0,
    bit_rate: int | None = None,
    faststart: bool = False,
    frame_source: Callable[[int], np.ndarray] | None = None,
) -> Path:
    """A clip of ``seconds`` at ``fps`` frames per second, ``size`` = (width, height).

    ``faststart`` moves the MP4/MOV index (``moov``) to the front of the file.
    """
    import av

    vf = VIDEO_FORMATS[fmt]
    chosen = codec or pick_codec(fmt)
    if chosen is None:
        raise RuntimeError(f"no encoder for {fmt} in this PyAV build")
    width, height = size
    options = {"movflags": "+faststart"} if faststart else {}
    frames = round(seconds * fps)
    with av.open(str(path), mode="w", format=vf.container, options=options) as out:
        stream = out.add_stream(chosen, rate=Fraction(fps))
        assert isinstance(stream, av.VideoStream)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        if bit_rate is not None:
            stream.bit_rate = bit_rate
        if chosen in ("libvpx", "libvpx-vp9"):
            stream.options = {"deadline": "realtime", "cpu-used": "8"}
        elif chosen == "libx264":
            stream.options = {"preset": "ultrafast"}
        for i in range(frames):
            arr = frame_source(i) if frame_source else video_frame(i, fps, size, seed)
            frame = av.VideoFrame.from_ndarray(arr, format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def reencode_video(
    src: Path,
    dst: Path,
    *,
    fmt: str = "mp4",
    size: tuple[int, int] | None = None,
    bit_rate: int | None = None,
) -> Path:
    """Decode ``src`` and encode it again (another size, bit rate or container)."""
    import av

    with av.open(str(src)) as inp:
        stream = inp.streams.video[0]
        fps = stream.average_rate or Fraction(10)
        w = size[0] if size else stream.codec_context.width
        h = size[1] if size else stream.codec_context.height
        frames = [
            f.reformat(width=w, height=h, format="rgb24").to_ndarray() for f in inp.decode(stream)
        ]
    return write_video(
        dst,
        fmt=fmt,
        seconds=len(frames) / float(fps),
        fps=round(float(fps)),
        size=(w, h),
        bit_rate=bit_rate,
        frame_source=lambda i: frames[i],
    )
