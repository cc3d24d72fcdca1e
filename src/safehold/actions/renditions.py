"""Renditions of stored media for review: blurred greyscale by default, revealed on request.

Media is decoded only through :mod:`safehold.media` (sniffed format, allow-list, pixel,
size, frame and time limits), scaled down first, then turned grey and blurred, and
re-encoded as a baseline JPEG without any metadata (no EXIF, no ICC profile, no
comments): the reviewer's browser never parses the original file.

* :func:`blurred` — the default view: greyscale, Gaussian blur of ``radius`` pixels
  (the reviewer's own strength) on a picture of at most ``max_side`` pixels; a video
  gives its first frame.
* :func:`revealed` — the unblurred colour rendition, sent only after an audited reveal.
* :func:`frame_strip` — ``count`` frames spread evenly over a video, each blurred
  (or revealed) like an image.

Results are cached in memory (a small LRU bounded by bytes) keyed by the file, its
size and modification time and the parameters, so a page of frames decodes a video once.
"""

from __future__ import annotations

import io
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from PIL import Image, ImageFilter

from safehold.errors import InvalidValue
from safehold.media import Limits, iter_video_frames, open_image

MAX_RADIUS = 64
JPEG_QUALITY = 82
STRIP_SIDE = 320
CACHE_BYTES = 64 * 1024 * 1024
CACHE_ITEMS = 256

T = TypeVar("T")


class _Cache:
    """A thread-safe LRU of rendered bytes, bounded by count and total size."""

    def __init__(self, max_bytes: int = CACHE_BYTES, max_items: int = CACHE_ITEMS) -> None:
        self.max_bytes, self.max_items = max_bytes, max_items
        self._data: OrderedDict[tuple[Any, ...], tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get_or_make(
        self, key: tuple[Any, ...], make: Callable[[], T], size: Callable[[T], int]
    ) -> T:
        with self._lock:
            hit = self._data.get(key)
            if hit is not None:
                self._data.move_to_end(key)
                return hit[0]  # type: ignore[no-any-return]
        value = make()
        n = size(value)
        with self._lock:
            if key not in self._data and n <= self.max_bytes:
                self._data[key] = (value, n)
                self._bytes += n
                while self._data and (
                    self._bytes > self.max_bytes or len(self._data) > self.max_items
                ):
                    _, (_, dropped) = self._data.popitem(last=False)
                    self._bytes -= dropped
        return value

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._bytes = 0


_cache = _Cache()


def clear_cache() -> None:
    _cache.clear()


def _file_key(path: Path) -> tuple[str, int, int]:
    st = os.stat(path)
    return (str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


def _check(radius: int, max_side: int) -> None:
    if isinstance(radius, bool) or not isinstance(radius, int) or not 0 <= radius <= MAX_RADIUS:
        raise InvalidValue(f"blur radius must be a whole number from 0 to {MAX_RADIUS}")
    if isinstance(max_side, bool) or not isinstance(max_side, int) or not 16 <= max_side <= 4096:
        raise InvalidValue("max_side must be a whole number from 16 to 4096")


def _render(im: Image.Image, *, radius: int, greyscale: bool, max_side: int) -> bytes:
    """Scale down, grey, blur, encode: a fresh JPEG without metadata."""
    im = im.convert("RGB")
    if max(im.size) > max_side:
        im.thumbnail((max_side, max_side), Image.Resampling.LANCZOS, reducing_gap=3.0)
    if greyscale:
        im = im.convert("L")
    if radius > 0:
        # blur relative to the picture: the same strength on small and large renditions
        scaled = max(1.0, radius * max(im.size) / 480.0)
        im = im.filter(ImageFilter.GaussianBlur(scaled))
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=JPEG_QUALITY, optimize=True)
    return buf.getvalue()


def _first_frame(path: Path, limits: Limits | None) -> Image.Image:
    frames = iter_video_frames(path, limits, seconds_per_frame=1.0)
    try:
        first = next(frames)
    finally:
        frames.close()  # type: ignore[attr-defined]
    return Image.fromarray(first.rgb, "RGB")


def _picture(path: Path, kind: str, limits: Limits | None) -> Image.Image:
    if kind == "video":
        return _first_frame(path, limits)
    if kind == "image":
        return open_image(path, limits)
    raise InvalidValue(f"unknown media kind {kind!r}: image or video")


def blurred(
    path: str | Path,
    kind: str,
    *,
    radius: int,
    greyscale: bool = True,
    max_side: int = 480,
    limits: Limits | None = None,
) -> bytes:
    """The default rendition: a blurred (and by default greyscale) JPEG.

    ``radius`` 0 would not blur: the default view never passes it (users' blur
    strength is 4-64, :data:`safehold.access.users.BLUR_RANGE`)."""
    _check(radius, max_side)
    p = Path(path)
    key = ("blurred", _file_key(p), kind, radius, greyscale, max_side)
    return _cache.get_or_make(
        key,
        lambda: _render(
            _picture(p, kind, limits), radius=radius, greyscale=greyscale, max_side=max_side
        ),
        len,
    )


def revealed(
    path: str | Path, kind: str, max_side: int = 960, *, limits: Limits | None = None
) -> bytes:
    """The unblurred colour rendition (send only after an audited reveal)."""
    _check(0, max_side)
    p = Path(path)
    key = ("revealed", _file_key(p), kind, max_side)
    return _cache.get_or_make(
        key,
        lambda: _render(_picture(p, kind, limits), radius=0, greyscale=False, max_side=max_side),
        len,
    )


def _sample_frames(path: Path, count: int, side: int, limits: Limits | None) -> list[Image.Image]:
    """``count`` frames spread evenly over the video (fewer for short clips), small.

    Frames are taken every 0.5 s and thinned by halves while decoding, so memory stays
    bounded whatever the video's length."""
    cap = max(4 * count, 32)
    kept: list[Image.Image] = []
    stride = 1
    for n, frame in enumerate(iter_video_frames(path, limits, seconds_per_frame=0.5)):
        if n % stride:
            continue
        im = Image.fromarray(frame.rgb, "RGB")
        im.thumbnail((side, side), Image.Resampling.LANCZOS, reducing_gap=3.0)
        kept.append(im)
        if len(kept) > cap:
            kept = kept[::2]
            stride *= 2
    if len(kept) <= count:
        return kept
    step = (len(kept) - 1) / (count - 1) if count > 1 else 0
    return [kept[round(i * step)] for i in range(count)]


def frame_strip(
    path: str | Path,
    *,
    count: int = 8,
    radius: int,
    greyscale: bool,
    reveal: bool = False,
    max_side: int = STRIP_SIDE,
    limits: Limits | None = None,
) -> list[bytes]:
    """``count`` frames of a video as JPEGs, spread evenly from start to end: blurred
    (and greyscale) by default, in colour and unblurred with ``reveal=True``."""
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 32:
        raise InvalidValue("count must be a whole number from 1 to 32")
    if reveal:
        radius, greyscale = 0, False
    _check(radius, max_side)
    p = Path(path)
    key = ("strip", _file_key(p), count, radius, greyscale, max_side)

    def make() -> list[bytes]:
        frames = _cache.get_or_make(
            ("frames", _file_key(p), count, max_side),
            lambda: _sample_frames(p, count, max_side, limits),
            lambda ims: sum(im.width * im.height * 3 for im in ims),
        )
        return [_render(im, radius=radius, greyscale=greyscale, max_side=max_side) for im in frames]

    return _cache.get_or_make(key, make, lambda parts: sum(len(b) for b in parts))
