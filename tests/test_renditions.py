"""Review renditions: blurred greyscale JPEGs and frame strips, decoded only through the
hardened media module; revealed renditions in colour; a small cache."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

import safehold.actions.renditions as renditions
from media_factory import exif_orientation, photo_like, png_bomb, write_image, write_video
from safehold.errors import InvalidValue, MediaError, TooManyPixels, UnsupportedFormat


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    renditions.clear_cache()


@pytest.fixture()
def picture(tmp_path: Path) -> Path:
    exif = exif_orientation(1)
    return write_image(tmp_path / "p.jpg", photo_like(800, 600, seed=5), "jpeg", exif=exif)


def _open(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    assert im.format == "JPEG"
    im.load()
    return im


def _detail(im: Image.Image) -> float:
    """Mean edge strength: high for sharp pictures, low for blurred ones."""
    edges = np.asarray(im.convert("L").filter(ImageFilter.FIND_EDGES), dtype=np.float64)
    return float(edges[2:-2, 2:-2].mean())


def test_blurred_is_a_small_grey_blurred_jpeg_without_metadata(picture: Path) -> None:
    data = renditions.blurred(picture, "image", radius=24)
    im = _open(data)
    assert im.mode == "L"
    assert max(im.size) == 480 and im.size == (480, 360)
    assert "exif" not in im.info and "icc_profile" not in im.info
    sharp = _open(renditions.revealed(picture, "image"))
    assert sharp.mode == "RGB" and max(sharp.size) == 800  # never scaled up
    assert _detail(im) < _detail(sharp) / 4


def test_blur_strength_follows_the_radius(picture: Path) -> None:
    light = _open(renditions.blurred(picture, "image", radius=4))
    heavy = _open(renditions.blurred(picture, "image", radius=48))
    assert _detail(heavy) < _detail(light)
    colour = _open(renditions.blurred(picture, "image", radius=8, greyscale=False))
    assert colour.mode == "RGB"


def test_revealed_is_limited_in_size(tmp_path: Path) -> None:
    big = write_image(tmp_path / "big.png", photo_like(1600, 900, seed=1), "png")
    assert max(_open(renditions.revealed(big, "image")).size) == 960
    assert max(_open(renditions.revealed(big, "image", max_side=300)).size) == 300


def test_bad_parameters(picture: Path) -> None:
    for radius in (-1, 65, True):
        with pytest.raises(InvalidValue):
            renditions.blurred(picture, "image", radius=radius)
    with pytest.raises(InvalidValue):
        renditions.blurred(picture, "image", radius=8, max_side=5)
    with pytest.raises(InvalidValue):
        renditions.blurred(picture, "audio", radius=8)
    with pytest.raises(InvalidValue):
        renditions.frame_strip(picture, count=0, radius=8, greyscale=True)


def test_hostile_files_fail_with_media_errors(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_bomb())
    with pytest.raises(TooManyPixels):
        renditions.blurred(bomb, "image", radius=8)
    text = tmp_path / "notes.jpg"
    text.write_bytes(b"<svg xmlns='http://www.w3.org/2000/svg'></svg>")
    with pytest.raises(UnsupportedFormat):
        renditions.revealed(text, "image")
    truncated = tmp_path / "cut.jpg"
    truncated.write_bytes((tmp_path / "bomb.png").read_bytes()[:40])
    with pytest.raises(MediaError):
        renditions.blurred(truncated, "image", radius=8)
    # an image stored as "video" goes through the video decoder, which refuses it
    still = write_image(tmp_path / "still.png", photo_like(64, 48), "png")
    with pytest.raises(UnsupportedFormat):
        renditions.frame_strip(still, radius=8, greyscale=True)


def test_cache_decodes_once(picture: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Path] = []
    real = renditions.open_image

    def counting(path: Path, *args: object, **kw: object) -> Image.Image:
        calls.append(path)
        return real(path, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(renditions, "open_image", counting)
    first = renditions.blurred(picture, "image", radius=24)
    assert renditions.blurred(picture, "image", radius=24) is first
    assert len(calls) == 1
    renditions.blurred(picture, "image", radius=12)  # other parameters: rendered again
    assert len(calls) == 2


@pytest.fixture()
def video(tmp_path: Path) -> Path:
    return write_video(tmp_path / "clip.mp4", seconds=6.0, fps=10, size=(320, 240), seed=2)


def test_frame_strip_blurred_and_revealed(video: Path) -> None:
    strip = renditions.frame_strip(video, count=8, radius=16, greyscale=True)
    assert len(strip) == 8
    frames = [_open(b) for b in strip]
    assert all(f.mode == "L" and max(f.size) <= renditions.STRIP_SIDE for f in frames)
    shown = [
        _open(b)
        for b in renditions.frame_strip(video, count=8, radius=0, greyscale=False, reveal=True)
    ]
    assert all(f.mode == "RGB" for f in shown)
    assert sum(map(_detail, frames)) < sum(map(_detail, shown)) / 3
    # frames spread over the clip: not all the same picture
    arrays = [np.asarray(f, dtype=np.int16) for f in shown]
    assert np.abs(arrays[0] - arrays[-1]).mean() > 2
    poster = _open(renditions.blurred(video, "video", radius=16))
    assert poster.mode == "L"


def test_short_video_gives_fewer_frames(tmp_path: Path) -> None:
    clip = write_video(tmp_path / "short.mp4", seconds=1.0, fps=10, size=(160, 120))
    strip = renditions.frame_strip(clip, count=8, radius=8, greyscale=True)
    assert 1 <= len(strip) <= 8


def test_long_video_memory_stays_bounded(tmp_path: Path) -> None:
    clip = write_video(tmp_path / "long.mp4", seconds=40.0, fps=5, size=(96, 64))
    strip = renditions.frame_strip(clip, count=4, radius=8, greyscale=True)
    assert len(strip) == 4
