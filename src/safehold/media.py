"""Hardened decoding of untrusted bytes.

Every upload, scanned file and partner sample is treated as hostile. This module is
the only place that hands bytes to an image or video decoder, and it does so only
after:

* sniffing the real format from the leading bytes (the file name is never trusted)
  and checking it against an allow-list,
* checking the byte size, the declared pixel count (decompression bombs) and, for
  video, the frame size, duration and number of frames,
* choosing the decoder explicitly (Pillow plugin or FFmpeg demuxer), so a file that
  claims to be one thing cannot reach another parser (FFmpeg playlists, for example,
  can make it read other files).

Every failure is a typed :class:`~safehold.errors.MediaError` with a stable code.
Images come back upright (EXIF orientation applied) and in 8-bit RGB, whatever their
mode (CMYK, palette, alpha, 16-bit, YCbCr), so every signal sees the picture a
person sees.
"""

from __future__ import annotations

import io
import os
import stat
import struct
import time
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Literal

import numpy as np
from PIL import Image, ImageFile, ImageOps

from safehold.errors import (
    Corrupt,
    DecodeTimeout,
    EmptyFile,
    MediaError,
    TooLarge,
    TooLong,
    TooManyFrames,
    TooManyPixels,
    Unreadable,
    UnsupportedFormat,
)

try:  # HEIC (and HEIF containers) through libheif
    import pillow_heif

    pillow_heif.register_heif_opener()
    _HEIF = True
except ImportError:  # pragma: no cover - pillow-heif is a hard dependency
    _HEIF = False

# Our own pixel limit is checked before decoding; Pillow's warning would only be noise.
Image.MAX_IMAGE_PIXELS = None
ImageFile.LOAD_TRUNCATED_IMAGES = False

Kind = Literal["image", "video"]

MiB = 1024 * 1024
GiB = 1024 * MiB


@dataclass(frozen=True)
class Limits:
    """Resource limits for decoding one item. All are enforced before or during decoding."""

    max_image_bytes: int = 256 * MiB
    max_video_bytes: int = 8 * GiB
    max_pixels: int = 100_000_000
    """Declared width x height of a still image (the first frame of an animation)."""
    max_video_pixels: int = 8192 * 4320
    """Width x height of one video frame (8K)."""
    max_video_seconds: float = 6 * 3600.0
    max_decoded_frames: int = 2_000_000
    max_hashed_frames: int = 50_000
    max_decode_seconds: float = 900.0
    """Wall-clock budget for decoding one video."""

    @classmethod
    def from_env(cls) -> Limits:
        """Limits with overrides from ``SAFEHOLD_MAX_*`` environment variables."""
        limits = cls()
        fields = {
            "SAFEHOLD_MAX_IMAGE_BYTES": "max_image_bytes",
            "SAFEHOLD_MAX_VIDEO_BYTES": "max_video_bytes",
            "SAFEHOLD_MAX_PIXELS": "max_pixels",
            "SAFEHOLD_MAX_VIDEO_PIXELS": "max_video_pixels",
            "SAFEHOLD_MAX_VIDEO_SECONDS": "max_video_seconds",
            "SAFEHOLD_MAX_HASHED_FRAMES": "max_hashed_frames",
            "SAFEHOLD_MAX_DECODE_SECONDS": "max_decode_seconds",
            "SAFEHOLD_MAX_DECODED_FRAMES": "max_decoded_frames",
        }
        changes: dict[str, float | int] = {}
        for env, name in fields.items():
            raw = os.environ.get(env)
            if raw:
                current = getattr(limits, name)
                changes[name] = type(current)(float(raw))
        return replace(limits, **changes)  # type: ignore[arg-type]


DEFAULT_LIMITS = Limits()
"""The built-in limits; ``None`` arguments mean :meth:`Limits.from_env` (these plus
any ``SAFEHOLD_MAX_*`` overrides)."""


def resolve_limits(limits: Limits | None) -> Limits:
    return limits if limits is not None else Limits.from_env()


@dataclass(frozen=True)
class MediaFormat:
    """A format on the allow-list."""

    name: str
    kind: Kind
    decoder: str
    """Pillow plugin name for images, FFmpeg demuxer name for video."""
    mime: str


_FORMATS = {
    "jpeg": MediaFormat("jpeg", "image", "JPEG", "image/jpeg"),
    "png": MediaFormat("png", "image", "PNG", "image/png"),
    "gif": MediaFormat("gif", "image", "GIF", "image/gif"),
    "webp": MediaFormat("webp", "image", "WEBP", "image/webp"),
    "bmp": MediaFormat("bmp", "image", "BMP", "image/bmp"),
    "tiff": MediaFormat("tiff", "image", "TIFF", "image/tiff"),
    "heic": MediaFormat("heic", "image", "HEIF", "image/heic"),
    "avif": MediaFormat("avif", "image", "AVIF", "image/avif"),
    "mp4": MediaFormat("mp4", "video", "mov", "video/mp4"),
    "mov": MediaFormat("mov", "video", "mov", "video/quicktime"),
    "webm": MediaFormat("webm", "video", "matroska", "video/webm"),
    "mkv": MediaFormat("mkv", "video", "matroska", "video/x-matroska"),
}

ALLOWED_FORMATS: tuple[str, ...] = tuple(_FORMATS)

_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs"}
_HEIF_GENERIC = {b"mif1", b"msf1", b"mif2"}
_AVIF_BRANDS = {b"avif", b"avis"}
_QUICKTIME_ATOMS = {b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"}
_SNIFF_BYTES = 64


def sniff(head: bytes) -> MediaFormat | None:
    """The allow-listed format the leading bytes belong to, or ``None``."""
    if head.startswith(b"\xff\xd8\xff"):
        return _FORMATS["jpeg"]
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return _FORMATS["png"]
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return _FORMATS["gif"]
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return _FORMATS["webp"]
    if head[:2] == b"BM" and len(head) >= 26:
        return _FORMATS["bmp"]
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return _FORMATS["tiff"]
    if head[:4] == b"\x1aE\xdf\xa3":
        return _FORMATS["webm"] if b"webm" in head[:_SNIFF_BYTES] else _FORMATS["mkv"]
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return _sniff_ftyp(head)
    if len(head) >= 8 and head[4:8] in _QUICKTIME_ATOMS:
        return _FORMATS["mov"]
    return None


def _sniff_ftyp(head: bytes) -> MediaFormat | None:
    (box_size,) = struct.unpack(">I", head[:4])
    major = head[8:12]
    end = min(len(head), box_size if box_size >= 16 else len(head))
    compatible = {head[i : i + 4] for i in range(16, end - 3, 4)}
    brands = {major} | compatible
    if major in _AVIF_BRANDS or (major in _HEIF_GENERIC and brands & _AVIF_BRANDS):
        return _FORMATS["avif"]
    if major in _HEIF_BRANDS or (major in _HEIF_GENERIC and brands & _HEIF_BRANDS):
        return _FORMATS["heic"]
    if major in _HEIF_GENERIC:
        return _FORMATS["heic"]
    if major == b"qt  ":
        return _FORMATS["mov"]
    return _FORMATS["mp4"]


def read_head(path: Path, n: int = _SNIFF_BYTES) -> bytes:
    """The first ``n`` bytes of a file, or a typed error if it cannot be read."""
    try:
        mode = os.stat(path).st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            # Opening a FIFO blocks until someone writes to it; devices never end.
            raise Unreadable(f"{path} is not a regular file (a pipe, socket or device)")
        with open(path, "rb") as f:
            return f.read(n)
    except IsADirectoryError as e:
        raise Unreadable(f"{path} is a directory, not a file") from e
    except FileNotFoundError as e:
        raise Unreadable(f"{path} does not exist") from e
    except PermissionError as e:
        raise Unreadable(f"{path} cannot be read: permission denied") from e
    except OSError as e:
        raise Unreadable(f"{path} cannot be read: {e.strerror or e}") from e


def identify(path: Path, limits: Limits | None = None) -> MediaFormat:
    """Check size and format of a file on disk; return its format or raise."""
    head = read_head(path)
    size = path.stat().st_size
    return _check(head, size, resolve_limits(limits), name=str(path))


def identify_bytes(data: bytes, limits: Limits | None = None) -> MediaFormat:
    return _check(data[:_SNIFF_BYTES], len(data), resolve_limits(limits), name="upload")


def _check(head: bytes, size: int, limits: Limits, *, name: str) -> MediaFormat:
    if size == 0:
        raise EmptyFile(f"{name} is empty (0 bytes); nothing to hash")
    fmt = sniff(head)
    if fmt is None:
        raise UnsupportedFormat(
            f"{name} is not an allowed image or video format "
            f"(allowed: {', '.join(ALLOWED_FORMATS)}); its leading bytes match none of them",
            allowed=list(ALLOWED_FORMATS),
        )
    cap = limits.max_image_bytes if fmt.kind == "image" else limits.max_video_bytes
    if size > cap:
        raise TooLarge(
            f"{name} is {size} bytes; the limit for {fmt.kind}s is {cap} bytes",
            size=size,
            limit=cap,
        )
    return fmt


# --------------------------------------------------------------------------- images

_PIL_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    struct.error,
    zlib.error,
    IndexError,
    TypeError,
    KeyError,
    AttributeError,
    RuntimeError,
)


def open_image(
    source: Path | bytes,
    limits: Limits | None = None,
    *,
    draft: int | None = None,
) -> Image.Image:
    """Decode an image from a path or bytes into an upright 8-bit RGB picture.

    ``draft``: if given, the picture is reduced by the largest factor (1, 2, 4 or 8
    for a JPEG, decoded at that scale in the DCT domain; any whole factor for other
    formats, after decoding) that keeps its long side at least ``draft`` pixels.
    Used by the fast hashing mode only.
    """
    limits = resolve_limits(limits)
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        fmt = identify_bytes(data, limits)
        stream: IO[bytes] = io.BytesIO(data)
        name = "upload"
    else:
        fmt = identify(source, limits)
        name = str(source)
        try:
            stream = open(source, "rb")  # noqa: SIM115 - closed below
        except OSError as e:
            raise Unreadable(f"{source} cannot be read: {e.strerror or e}") from e
    if fmt.kind != "image":
        stream.close()
        raise UnsupportedFormat(f"{name} is a {fmt.name} video, not an image")
    try:
        return _decode_image(stream, fmt, limits, name=name, draft=draft)
    finally:
        stream.close()


def _decode_image(
    stream: IO[bytes], fmt: MediaFormat, limits: Limits, *, name: str, draft: int | None
) -> Image.Image:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            im = Image.open(stream, formats=[fmt.decoder])
        except Image.DecompressionBombError as e:  # pragma: no cover - limit disabled above
            raise TooManyPixels(f"{name}: {e}") from e
        except _PIL_ERRORS as e:
            raise Corrupt(
                f"{name} looks like {fmt.name} but its header cannot be read ({e})"
            ) from e
        width, height = im.size
        if width <= 0 or height <= 0:
            raise Corrupt(f"{name} declares an empty picture ({width}x{height})")
        if width * height > limits.max_pixels:
            raise TooManyPixels(
                f"{name} declares {width}x{height} = {width * height} pixels; "
                f"the limit is {limits.max_pixels} (a decompression bomb, or raise "
                "SAFEHOLD_MAX_PIXELS)",
                width=width,
                height=height,
                limit=limits.max_pixels,
            )
        try:
            if draft and fmt.name == "jpeg":
                scale = next(s for s in (8, 4, 2, 1) if max(width, height) // s >= draft or s == 1)
                if scale > 1:
                    im.draft("RGB", (-(-width // scale), -(-height // scale)))
            im.load()
            upright = _upright(im)
            rgb = to_rgb(upright)
        except MemoryError as e:
            raise TooManyPixels(f"{name} needs more memory to decode than is available") from e
        except _PIL_ERRORS as e:
            raise Corrupt(f"{name} is a damaged or truncated {fmt.name} file ({e})") from e
        if draft:
            factor = max(rgb.size) // draft
            if factor >= 2:
                rgb = rgb.reduce(factor)
        return rgb


def _upright(im: Image.Image) -> Image.Image:
    """Apply the EXIF orientation; malformed EXIF is ignored, never fatal."""
    try:
        # exif_transpose copies the whole picture even when it is already upright
        if im.getexif().get(_ORIENTATION, 1) in (None, 1):
            return im
        return ImageOps.exif_transpose(im) or im
    except _PIL_ERRORS:
        return im


_ORIENTATION = 0x0112


def to_rgb(im: Image.Image) -> Image.Image:
    """8-bit RGB for any Pillow mode; alpha is dropped, 16-bit is scaled down."""
    mode = im.mode
    if mode == "RGB":
        return im
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        arr = np.asarray(im).astype(np.int64)
        arr = np.clip((arr + 128) // 257, 0, 255).astype(np.uint8)
        return Image.fromarray(arr, "L").convert("RGB")
    if mode == "F":
        arr32 = np.nan_to_num(np.asarray(im, dtype=np.float32), nan=0.0)
        scale = 255.0 if float(arr32.max(initial=0.0)) <= 1.0 else 1.0
        arr8 = np.clip(np.rint(arr32 * scale), 0, 255).astype(np.uint8)
        return Image.fromarray(arr8, "L").convert("RGB")
    if mode in ("P", "PA"):
        if "transparency" in im.info or mode == "PA":
            return im.convert("RGBA").convert("RGB")
        return im.convert("RGB")
    return im.convert("RGB")


def rgb_array(im: Image.Image) -> np.ndarray:
    """A C-contiguous (height, width, 3) uint8 array of an RGB picture."""
    arr = np.asarray(im)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise Corrupt(f"decoded picture has unexpected shape {arr.shape} {arr.dtype}")
    return np.ascontiguousarray(arr)


# --------------------------------------------------------------------------- video


@dataclass(frozen=True)
class VideoFrame:
    """One selected frame: its number in decode order, time in seconds, RGB pixels."""

    number: int
    timestamp: float
    rgb: np.ndarray


@dataclass
class VideoInfo:
    width: int
    height: int
    frame_rate: float
    codec: str
    duration: float | None
    decoded_frames: int = 0
    complete: bool = True
    warning: str | None = None


def iter_video_frames(
    path: Path,
    limits: Limits | None = None,
    *,
    seconds_per_frame: float = 1.0,
    info: VideoInfo | None = None,
) -> Iterator[VideoFrame]:
    """Decode a video file and yield the frames the reference vPDQ would hash.

    Frame selection follows the reference: with ``r`` the average frame rate, every
    ``int(seconds_per_frame * r)``-th decoded frame (every frame when that is 0),
    counting from 0, with timestamp ``frame_number / r``.
    """
    import av  # imported lazily: FFmpeg start-up is not needed for images

    limits = resolve_limits(limits)
    fmt = identify(path, limits)
    if fmt.kind != "video":
        raise UnsupportedFormat(f"{path} is a {fmt.name} image, not a video")
    deadline = time.monotonic() + limits.max_decode_seconds
    try:
        container = av.open(
            str(path),
            format=fmt.decoder,
            options={"probesize": str(32 * MiB), "analyzeduration": str(10_000_000)},
            metadata_errors="ignore",
        )
    except av.error.FFmpegError as e:
        raise Corrupt(f"{path} looks like {fmt.name} but cannot be opened ({e})") from e
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise Corrupt(f"{path} cannot be opened as {fmt.name} ({e})") from e
    try:
        yield from _decode_video(container, path, limits, seconds_per_frame, deadline, info)
    finally:
        container.close()


def _decode_video(
    container: object,
    path: Path,
    limits: Limits,
    seconds_per_frame: float,
    deadline: float,
    info: VideoInfo | None,
) -> Iterator[VideoFrame]:
    import av

    assert isinstance(container, av.container.InputContainer)
    if not container.streams.video:
        raise Corrupt(f"{path} has no video stream")
    stream = container.streams.video[0]
    ctx = stream.codec_context
    if ctx is None:  # FFmpeg has no decoder for the codec the stream declares
        raise UnsupportedFormat(f"{path}: the video codec cannot be decoded")
    width, height = int(ctx.width or 0), int(ctx.height or 0)
    if width <= 0 or height <= 0:
        raise Corrupt(f"{path}: the video stream declares no frame size")
    if width * height > limits.max_video_pixels:
        raise TooManyPixels(
            f"{path}: frames are {width}x{height}; the limit is {limits.max_video_pixels} pixels",
            width=width,
            height=height,
            limit=limits.max_video_pixels,
        )
    rate_q = stream.average_rate or stream.base_rate or stream.guessed_rate
    rate = float(rate_q) if rate_q else 0.0
    if not rate or rate != rate or rate <= 0:
        raise Corrupt(f"{path}: the video declares no frame rate")
    duration = None
    if container.duration is not None and container.duration > 0:
        duration = container.duration / 1_000_000
    elif stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    if duration is not None and duration > limits.max_video_seconds:
        raise TooLong(
            f"{path} lasts {duration:.0f} s; the limit is {limits.max_video_seconds:.0f} s",
            seconds=duration,
            limit=limits.max_video_seconds,
        )
    if info is not None:
        info.width, info.height, info.frame_rate = width, height, rate
        info.codec, info.duration = ctx.name, duration
    frame_mod = max(int(seconds_per_frame * rate), 1)
    stream.thread_type = "AUTO"
    number = 0
    hashed = 0
    decoder = container.decode(stream)
    while True:
        try:
            frame = next(decoder)
        except StopIteration:
            break
        except (av.error.FFmpegError, ValueError, OSError) as e:
            if number == 0:
                raise Corrupt(f"{path}: no frame could be decoded ({e})") from e
            if info is not None:
                info.complete = False
                info.warning = f"decoding stopped after frame {number - 1}: {e}"
            break
        if time.monotonic() > deadline:
            raise DecodeTimeout(
                f"{path}: decoding took longer than {limits.max_decode_seconds:.0f} s",
                limit=limits.max_decode_seconds,
            )
        if number >= limits.max_decoded_frames:
            raise TooManyFrames(
                f"{path} has more than {limits.max_decoded_frames} frames",
                limit=limits.max_decoded_frames,
            )
        if number % frame_mod == 0:
            hashed += 1
            if hashed > limits.max_hashed_frames:
                raise TooManyFrames(
                    f"{path} would give more than {limits.max_hashed_frames} frame hashes; "
                    "lower the frame rate (--fps) or raise SAFEHOLD_MAX_HASHED_FRAMES",
                    limit=limits.max_hashed_frames,
                )
            if frame.width * frame.height > limits.max_video_pixels:
                raise TooManyPixels(f"{path}: a frame grew to {frame.width}x{frame.height}")
            try:
                rgb = frame.to_ndarray(format="rgb24")
            except (av.error.FFmpegError, ValueError) as e:
                raise Corrupt(f"{path}: frame {number} cannot be converted ({e})") from e
            yield VideoFrame(number, number / rate, np.ascontiguousarray(rgb))
        number += 1
    if info is not None:
        info.decoded_frames = number
    if number == 0:
        raise Corrupt(f"{path}: the video stream has no frames")
    if info is not None and info.complete:
        info.warning = _truncation_warning(int(stream.frames or 0), duration, number, rate)
        info.complete = info.warning is None


def _truncation_warning(
    declared_frames: int, duration: float | None, decoded: int, rate: float
) -> str | None:
    """FFmpeg decodes a truncated file without an error: it just stops early. Say so
    when far fewer frames came out than the container declares (its frame count, as
    MP4 and MOV index every frame, else its duration)."""
    if declared_frames > 0:
        if decoded < declared_frames - 2:
            return (
                f"only {decoded} of the {declared_frames} frames the file declares could "
                "be decoded; it may be truncated"
            )
        return None
    if duration is not None and (decoded + 2) / rate < 0.9 * duration:
        return (
            f"only {decoded / rate:.1f} s of the {duration:.1f} s the file declares could "
            "be decoded; it may be truncated"
        )
    return None


__all__ = [
    "ALLOWED_FORMATS",
    "DEFAULT_LIMITS",
    "Limits",
    "MediaError",
    "MediaFormat",
    "VideoFrame",
    "VideoInfo",
    "identify",
    "identify_bytes",
    "iter_video_frames",
    "open_image",
    "resolve_limits",
    "rgb_array",
    "sniff",
    "to_rgb",
]
