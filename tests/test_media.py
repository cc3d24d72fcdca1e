"""Hardened decoding of untrusted bytes (safehold.media via safehold.hashing).

Every hostile input is built in code. Whatever the bytes, ``hash_file`` returns a
result or raises a :class:`~safehold.errors.MediaError` with the right ``code``;
nothing else may escape, and nothing may hang or allocate what the header claims.
"""

from __future__ import annotations

import hashlib
import io
import os
import resource
import struct
import sys
import time
import zipfile
from collections.abc import Callable
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import media_factory as mf
from safehold import errors
from safehold.errors import MediaError
from safehold.hashing import ContentHashes, hash_file, hash_image_bytes
from safehold.media import (
    ALLOWED_FORMATS,
    Limits,
    VideoInfo,
    identify_bytes,
    iter_video_frames,
    open_image,
    sniff,
    to_rgb,
)


def expect_code(code: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> MediaError:
    """Call ``fn``; it must raise a MediaError with ``code`` (anything else fails the test)."""
    with pytest.raises(MediaError) as info:
        fn(*args, **kwargs)
    assert info.value.code == code, f"expected {code!r}, got {info.value.code!r}: {info.value}"
    return info.value


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@cache
def small_photo() -> Image.Image:
    return mf.photo_like(96, 72, seed=11)


@cache
def jpeg_bytes() -> bytes:
    return mf.encode_image(small_photo(), "jpeg", quality=90)


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One 2 s, 10 fps, 160x120 clip per container that has an encoder here."""
    d = tmp_path_factory.mktemp("videos")
    out = {}
    for name, vf in mf.VIDEO_FORMATS.items():
        if mf.pick_codec(name) is not None:
            out[name] = mf.write_video(d / f"clip{vf.suffix}", fmt=name, seconds=2.0, fps=10)
    return out


def _video(videos: dict[str, Path], name: str) -> Path:
    if name not in videos:
        pytest.skip(f"this PyAV build has no encoder for {name}")
    return videos[name]


# --------------------------------------------------------------------------- good input


@pytest.mark.parametrize("fmt", mf.IMAGE_FORMATS)
def test_every_allowed_image_format_hashes(tmp_path: Path, fmt: str) -> None:
    data = mf.encode_image(small_photo(), fmt, quality=90)
    # The name lies on purpose: the format comes from the bytes, never the suffix.
    path = write(tmp_path / "picture.dat", data)
    result = hash_file(path)
    assert isinstance(result, ContentHashes)
    assert (result.kind, result.format) == ("image", fmt)
    assert (result.width, result.height) == small_photo().size
    assert result.size == len(data)
    assert result.md5 == hashlib.md5(data).hexdigest()
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert result.pdq is not None and len(result.pdq) == 64
    assert result.pdq_quality is not None and result.pdq_quality >= 50
    assert result.warnings == []
    from_bytes = hash_image_bytes(data)
    assert (from_bytes.pdq, from_bytes.md5, from_bytes.format) == (
        result.pdq,
        result.md5,
        result.format,
    )


@pytest.mark.parametrize("fmt", list(mf.VIDEO_FORMATS))
def test_every_allowed_video_format_hashes(videos: dict[str, Path], fmt: str) -> None:
    path = _video(videos, fmt)
    result = hash_file(path)
    assert (result.kind, result.format) == ("video", fmt)
    assert (result.width, result.height) == (160, 120)
    assert result.md5 == hashlib.md5(path.read_bytes()).hexdigest()
    assert result.vpdq is not None
    # 10 fps, 20 frames, one hash per second: frames 0 and 10.
    assert [(f.frame, f.timestamp) for f in result.vpdq] == [(0, 0.0), (10, 1.0)]
    assert all(f.quality >= 50 for f in result.vpdq)
    assert result.warnings == []
    assert result.pdq is None
    assert "vpdq" in result.to_json() and "pdq" not in result.to_json()


def test_sniff_recognises_every_allowed_format(videos: dict[str, Path]) -> None:
    seen = set()
    for fmt in mf.IMAGE_FORMATS:
        found = sniff(mf.encode_image(small_photo(), fmt)[:64])
        assert found is not None and found.name == fmt and found.kind == "image"
        seen.add(fmt)
    for fmt, path in videos.items():
        found = sniff(path.read_bytes()[:64])
        assert found is not None and found.name == fmt and found.kind == "video"
        seen.add(fmt)
    assert seen <= set(ALLOWED_FORMATS)


def test_sniff_rejects_near_misses() -> None:
    assert sniff(b"") is None
    assert sniff(b"\xff\xd8") is None  # two bytes of a JPEG marker are not a JPEG
    assert sniff(b"BM") is None  # too short for a BMP header
    assert sniff(b"RIFF\x00\x00\x00\x00WAVEfmt ") is None
    assert sniff(b"GIF90a") is None


# --------------------------------------------------------------------------- hostile files


def test_zero_byte_file(tmp_path: Path) -> None:
    path = write(tmp_path / "empty.jpg", b"")
    err = expect_code("empty", hash_file, path)
    assert isinstance(err, errors.EmptyFile) and err.status == 422
    expect_code("empty", hash_image_bytes, b"")


def test_text_file_renamed_jpg(tmp_path: Path) -> None:
    path = write(tmp_path / "holiday.jpg", b"Dear diary,\nthis is not a picture.\n" * 20)
    err = expect_code("unsupported_format", hash_file, path)
    assert isinstance(err, errors.UnsupportedFormat) and err.status == 415
    assert err.details["allowed"] == list(ALLOWED_FORMATS)


@pytest.mark.parametrize("cut", [3, 20, 0.3, 0.7, -2])
def test_truncated_jpeg(tmp_path: Path, cut: float) -> None:
    data = jpeg_bytes()
    n = int(len(data) * cut) if isinstance(cut, float) else (cut if cut > 0 else len(data) + cut)
    path = write(tmp_path / "cut.jpg", data[:n])
    expect_code("corrupt", hash_file, path)
    expect_code("corrupt", hash_image_bytes, data[:n])


def _max_rss_bytes() -> int:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024


def test_png_decompression_bomb_is_refused_fast_without_allocating(tmp_path: Path) -> None:
    bomb = mf.png_bomb(30000, 30000)
    assert len(bomb) < 2000  # ~2.7 GB of RGB pixels declared in a few hundred bytes
    path = write(tmp_path / "bomb.png", bomb)
    rss_before = _max_rss_bytes()
    started = time.perf_counter()
    err = expect_code("too_many_pixels", hash_file, path)
    expect_code("too_many_pixels", hash_image_bytes, bomb)
    expect_code("too_many_pixels", open_image, bomb)
    elapsed = time.perf_counter() - started
    assert elapsed < 1.0
    # The peak resident size may not grow by anything like the 2.7 GB declared.
    assert _max_rss_bytes() - rss_before < 100 * 1024 * 1024
    assert isinstance(err, errors.TooManyPixels) and err.status == 413
    assert (err.details["width"], err.details["height"]) == (30000, 30000)


def test_bomb_is_never_decoded(monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import ImageFile

    def refuse(self: ImageFile.ImageFile) -> None:
        raise AssertionError("the pixel data of a bomb must never be decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)
    expect_code("too_many_pixels", hash_image_bytes, mf.png_bomb(30000, 30000))


def test_jpeg_declaring_huge_dimensions(tmp_path: Path) -> None:
    data = bytearray(jpeg_bytes())
    sof = data.find(b"\xff\xc0")
    assert sof > 0
    data[sof + 5 : sof + 9] = struct.pack(">HH", 60000, 60000)  # height, width
    expect_code("too_many_pixels", hash_file, write(tmp_path / "huge.jpg", bytes(data)))


def test_pixel_limit_is_configurable(tmp_path: Path) -> None:
    path = write(tmp_path / "p.png", mf.encode_image(small_photo(), "png"))
    w, h = small_photo().size
    assert hash_file(path, limits=Limits(max_pixels=w * h)).pdq is not None
    expect_code("too_many_pixels", hash_file, path, limits=Limits(max_pixels=w * h - 1))


def test_png_with_good_header_and_garbage_data(tmp_path: Path) -> None:
    path = write(tmp_path / "garbage.png", mf.png_garbage_data())
    expect_code("corrupt", hash_file, path)


def test_png_with_bad_header_crc(tmp_path: Path) -> None:
    ihdr = mf.png_ihdr(16, 16)
    bad_ihdr = ihdr[:-4] + b"\xde\xad\xbe\xef"
    data = mf.PNG_SIGNATURE + bad_ihdr + mf.png_chunk(b"IDAT", zlib_rows(16, 16))
    expect_code(
        "corrupt", hash_file, write(tmp_path / "crc.png", data + mf.png_chunk(b"IEND", b""))
    )


def test_png_with_bad_data_crc_but_intact_data_decodes(tmp_path: Path) -> None:
    # Pillow (like browsers) does not check the CRC of image data; the pixels are intact,
    # so the picture hashes as it would with the right CRC.
    good = mf.png_chunk(b"IDAT", zlib_rows(16, 16))
    bad = mf.png_chunk(b"IDAT", zlib_rows(16, 16), crc=0xDEADBEEF)
    head, tail = mf.PNG_SIGNATURE + mf.png_ihdr(16, 16), mf.png_chunk(b"IEND", b"")
    a = hash_file(write(tmp_path / "good.png", head + good + tail))
    b = hash_file(write(tmp_path / "bad.png", head + bad + tail))
    assert a.pdq == b.pdq and a.md5 != b.md5


def zlib_rows(width: int, height: int) -> bytes:
    import zlib

    return zlib.compress((b"\x00" + b"\x80" * width * 3) * height)


def test_hand_made_png_decodes(tmp_path: Path) -> None:
    """The hand-made PNG helpers are right: a well-formed one decodes."""
    data = (
        mf.PNG_SIGNATURE
        + mf.png_ihdr(16, 16)
        + mf.png_chunk(b"IDAT", zlib_rows(16, 16))
        + mf.png_chunk(b"IEND", b"")
    )
    result = hash_file(write(tmp_path / "ok.png", data))
    assert (result.width, result.height) == (16, 16)


def test_polyglot_jpeg_with_zip_appended_hashes_as_the_jpeg(tmp_path: Path) -> None:
    jpeg = jpeg_bytes()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("payload.txt", "not for the image decoder")
    polyglot = jpeg + buf.getvalue()
    assert zipfile.is_zipfile(io.BytesIO(polyglot))  # really is both
    plain = hash_file(write(tmp_path / "plain.jpg", jpeg))
    result = hash_file(write(tmp_path / "poly.jpg", polyglot))
    assert result.format == "jpeg"
    assert (result.pdq, result.pdq_quality) == (plain.pdq, plain.pdq_quality)
    assert result.md5 == hashlib.md5(polyglot).hexdigest() != plain.md5


def test_zip_with_a_jpeg_inside_is_not_an_image(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("photo.jpg", jpeg_bytes())
    expect_code("unsupported_format", hash_file, write(tmp_path / "photo.jpg", buf.getvalue()))


PLAYLISTS = {
    "hls.m3u8": b"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n"
    b"#EXTINF:10.0,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n",
    "hls.mp4": b"#EXTM3U\n#EXTINF:1,\nhttp://127.0.0.1:1/secret\n",
    "concat.mkv": b"ffconcat version 1.0\nfile '/etc/passwd'\n",
    "sdp.mov": b"v=0\no=- 0 0 IN IP4 127.0.0.1\ns=x\nc=IN IP4 127.0.0.1\nm=video 5000 RTP/AVP 96\n",
    "image.svg": b'<svg xmlns="http://www.w3.org/2000/svg"><image href="file:///etc/passwd"/></svg>',
    "page.webm": b"<!doctype html><html><body>hello</body></html>",
}


@pytest.mark.parametrize("name", sorted(PLAYLISTS))
def test_playlists_and_text_ffmpeg_would_open_are_refused(tmp_path: Path, name: str) -> None:
    expect_code("unsupported_format", hash_file, write(tmp_path / name, PLAYLISTS[name]))


def test_mp4_header_in_front_of_a_playlist_reaches_only_the_mp4_demuxer(tmp_path: Path) -> None:
    # Sniffed as MP4, so FFmpeg is told to use the mov demuxer, never the HLS one.
    data = struct.pack(">I", 24) + b"ftypisom\x00\x00\x02\x00isomiso2" + PLAYLISTS["hls.m3u8"]
    expect_code("corrupt", hash_file, write(tmp_path / "fake.mp4", data))


def test_truncated_mp4_with_index_at_the_end_is_corrupt(
    videos: dict[str, Path], tmp_path: Path
) -> None:
    data = _video(videos, "mp4").read_bytes()
    for frac in (0.1, 0.5, 0.9):
        cut = write(tmp_path / f"cut{frac}.mp4", data[: int(len(data) * frac)])
        expect_code("corrupt", hash_file, cut)


def test_truncated_mp4_with_index_first_hashes_what_is_there_with_a_warning(tmp_path: Path) -> None:
    """moov before mdat ("faststart"): FFmpeg decodes the frames that are present and
    stops without an error. media.py compares with the frame count the index declares,
    marks the result incomplete and says so in ``warnings``."""
    if mf.pick_codec("mp4") is None:
        pytest.skip("no MP4 encoder")
    full = mf.write_video(tmp_path / "fs.mp4", fmt="mp4", seconds=3.0, fps=10, faststart=True)
    assert hash_file(full).warnings == []
    data = full.read_bytes()
    cut = write(tmp_path / "fs-cut.mp4", data[: int(len(data) * 0.6)])
    result = hash_file(cut)
    assert result.vpdq is not None and 1 <= len(result.vpdq) < 3
    assert len(result.warnings) == 1 and "truncated" in result.warnings[0]
    info = VideoInfo(0, 0, 0.0, "", None)
    frames = list(iter_video_frames(cut, seconds_per_frame=0, info=info))
    assert info.complete is False and info.warning
    assert 0 < info.decoded_frames == len(frames) < 30
    # Too little left to decode a single frame: corrupt.
    expect_code("corrupt", hash_file, write(tmp_path / "fs-tiny.mp4", data[: len(data) // 12]))


@pytest.mark.parametrize("fmt", ["mkv", "webm"])
def test_truncated_matroska_hashes_what_is_there_with_a_warning(
    videos: dict[str, Path], tmp_path: Path, fmt: str
) -> None:
    data = _video(videos, fmt).read_bytes()
    cut = write(tmp_path / f"cut.{fmt}", data[: int(len(data) * 0.5)])
    result = hash_file(cut, fps=0)
    assert result.vpdq is not None and 0 < len(result.vpdq) < 20
    assert len(result.warnings) == 1 and "truncated" in result.warnings[0]


def test_complete_videos_have_no_warning(videos: dict[str, Path]) -> None:
    for path in videos.values():
        info = VideoInfo(0, 0, 0.0, "", None)
        frames = list(iter_video_frames(path, seconds_per_frame=0, info=info))
        assert (len(frames), info.decoded_frames, info.complete, info.warning) == (
            20,
            20,
            True,
            None,
        )
        assert (info.width, info.height, info.frame_rate) == (160, 120, 10.0)
        assert info.duration == pytest.approx(2.0, abs=0.15)


@pytest.mark.parametrize(
    ("fmt", "codec"), [("mp4", "mpeg4"), ("webm", "libvpx-vp9"), ("mkv", "ffv1"), ("mov", "mpeg4")]
)
def test_other_video_codecs(tmp_path: Path, fmt: str, codec: str) -> None:
    if not mf.encoder_available(codec):
        pytest.skip(f"no {codec} encoder in this PyAV build")
    path = mf.write_video(
        tmp_path / f"clip{mf.VIDEO_FORMATS[fmt].suffix}", fmt=fmt, codec=codec, seconds=1.0
    )
    result = hash_file(path, fps=2)
    assert result.format == fmt and result.warnings == []
    assert result.vpdq is not None and [f.frame for f in result.vpdq] == [0, 5]


def test_video_codec_without_decoder(videos: dict[str, Path], tmp_path: Path) -> None:
    data = _video(videos, "mp4").read_bytes()
    if b"avc1" not in data:
        pytest.skip("the MP4 encoder here is not H.264")
    # The sample entry names a codec FFmpeg has no decoder for (PyAV gives no codec context).
    path = write(tmp_path / "odd.mp4", data.replace(b"avc1", b"zzzz"))
    expect_code("unsupported_format", hash_file, path)


def test_video_limits(videos: dict[str, Path]) -> None:
    path = _video(videos, "mp4")
    assert hash_file(path, limits=Limits(max_video_seconds=2.5)).vpdq
    expect_code("too_long", hash_file, path, limits=Limits(max_video_seconds=1.0))
    # fps=1 on a 2 s clip hashes 2 frames; fps=0 hashes all 20.
    assert hash_file(path, limits=Limits(max_hashed_frames=2)).vpdq
    err = expect_code("too_many_frames", hash_file, path, limits=Limits(max_hashed_frames=1))
    assert err.details["limit"] == 1
    expect_code("too_many_frames", hash_file, path, fps=0, limits=Limits(max_hashed_frames=19))
    assert hash_file(path, fps=0, limits=Limits(max_decoded_frames=20)).vpdq
    expect_code("too_many_frames", hash_file, path, limits=Limits(max_decoded_frames=5))
    assert hash_file(path, limits=Limits(max_video_pixels=160 * 120)).vpdq
    err = expect_code("too_many_pixels", hash_file, path, limits=Limits(max_video_pixels=160 * 119))
    assert (err.details["width"], err.details["height"]) == (160, 120)


@pytest.mark.parametrize("fmt", ["mkv", "webm", "mov"])
def test_video_limits_in_other_containers(videos: dict[str, Path], fmt: str) -> None:
    path = _video(videos, fmt)
    expect_code("too_long", hash_file, path, limits=Limits(max_video_seconds=1.0))
    expect_code("too_many_frames", hash_file, path, limits=Limits(max_decoded_frames=5))
    expect_code("too_many_pixels", hash_file, path, limits=Limits(max_video_pixels=100))


def test_decode_time_limit(videos: dict[str, Path]) -> None:
    err = expect_code(
        "timeout", hash_file, _video(videos, "mp4"), limits=Limits(max_decode_seconds=0)
    )
    assert isinstance(err, errors.DecodeTimeout)


def test_size_limits(tmp_path: Path, videos: dict[str, Path]) -> None:
    data = jpeg_bytes()
    path = write(tmp_path / "p.jpg", data)
    assert hash_file(path, limits=Limits(max_image_bytes=len(data))).pdq
    err = expect_code("too_large", hash_file, path, limits=Limits(max_image_bytes=len(data) - 1))
    assert err.details == {"size": len(data), "limit": len(data) - 1}
    assert err.status == 413
    expect_code("too_large", hash_image_bytes, data, limits=Limits(max_image_bytes=100))
    # Videos have their own cap; the image cap does not apply to them.
    video = _video(videos, "mp4")
    size = video.stat().st_size
    assert hash_file(video, limits=Limits(max_image_bytes=10)).vpdq
    expect_code("too_large", hash_file, video, limits=Limits(max_video_bytes=size - 1))


def test_directory_and_missing_path(tmp_path: Path) -> None:
    expect_code("unreadable", hash_file, tmp_path)
    expect_code("unreadable", hash_file, tmp_path / "nope.jpg")
    expect_code("unreadable", open_image, tmp_path / "nope.jpg")
    with pytest.raises(MediaError) as info:
        list(iter_video_frames(tmp_path / "nope.mp4"))
    assert info.value.code == "unreadable"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX named pipes")
def test_named_pipe_is_refused_without_blocking(tmp_path: Path) -> None:
    # Opening a FIFO for reading blocks until a writer appears: it must not be opened.
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    expect_code("unreadable", hash_file, fifo)


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_device_is_refused() -> None:
    expect_code("unreadable", hash_file, Path("/dev/zero"))


def test_image_and_video_apis_refuse_each_other(tmp_path: Path, videos: dict[str, Path]) -> None:
    video = _video(videos, "mp4")
    expect_code("unsupported_format", open_image, video)
    expect_code("unsupported_format", hash_image_bytes, video.read_bytes())
    picture = write(tmp_path / "p.jpg", jpeg_bytes())
    with pytest.raises(MediaError) as info:
        list(iter_video_frames(picture))
    assert info.value.code == "unsupported_format"


def test_malformed_exif_is_ignored() -> None:
    for exif in (
        b"Exif\x00\x00II*\x00\xff\xff\xff\xff",  # IFD offset far outside the block
        b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\x00\x01\x01\x12\x00\x03\x00\x00\x00\x01\x00\x09\x00\x00",
        b"garbage",
    ):
        data = mf.encode_image(small_photo(), "jpeg", exif=exif)
        result = hash_image_bytes(data)
        assert (result.width, result.height) == small_photo().size


def test_hash_file_rejects_unknown_mode(tmp_path: Path) -> None:
    path = write(tmp_path / "p.jpg", jpeg_bytes())
    with pytest.raises(ValueError, match="mode"):
        hash_file(path, mode="quick")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- errors, modes, limits


def test_every_media_error_has_its_code() -> None:
    expected = {
        errors.UnsupportedFormat: ("unsupported_format", 415),
        errors.TooLarge: ("too_large", 413),
        errors.TooManyPixels: ("too_many_pixels", 413),
        errors.TooManyFrames: ("too_many_frames", 413),
        errors.TooLong: ("too_long", 413),
        errors.DecodeTimeout: ("timeout", 422),
        errors.Corrupt: ("corrupt", 422),
        errors.EmptyFile: ("empty", 422),
        errors.Unreadable: ("unreadable", 422),
    }
    for cls, (code, status) in expected.items():
        assert issubclass(cls, MediaError) and issubclass(cls, errors.SafeholdError)
        err = cls("what went wrong", limit=3)
        assert (err.code, err.status, str(err)) == (code, status, "what went wrong")
        assert err.to_dict() == {
            "code": code,
            "message": "what went wrong",
            "details": {"limit": 3},
        }
    assert errors.MediaError("x").to_dict() == {"code": "media_error", "message": "x"}


def test_to_rgb_handles_every_mode() -> None:
    grey = np.arange(256, dtype=np.uint8).reshape(16, 16)
    cases: dict[str, Image.Image] = {
        "L": Image.fromarray(grey),
        "I;16": Image.fromarray(grey.astype("<u2") * 257),
        "I": Image.fromarray(grey.astype(np.int32) * 257),
        "F": Image.fromarray(grey.astype(np.float32) / 255.0),
        "1": Image.fromarray(grey).point(lambda v: 255 * (v >= 128)).convert("1"),
        "PA": Image.fromarray(grey).convert("P").convert("PA"),
        "LA": Image.fromarray(grey).convert("LA"),
        "CMYK": Image.fromarray(np.stack([grey] * 3, axis=2)).convert("CMYK"),
    }
    for mode, im in cases.items():
        assert im.mode == mode
        rgb = to_rgb(im)
        assert rgb.mode == "RGB" and rgb.size == (16, 16), mode
        arr = np.asarray(rgb)
        expected = np.where(grey >= 128, 255, 0) if mode == "1" else grey
        np.testing.assert_array_equal(arr[:, :, 0], expected, err_msg=mode)
        np.testing.assert_array_equal(arr[:, :, 0], arr[:, :, 2], err_msg=mode)


def test_limits_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAFEHOLD_MAX_PIXELS", "1e6")
    monkeypatch.setenv("SAFEHOLD_MAX_VIDEO_SECONDS", "90.5")
    monkeypatch.setenv("SAFEHOLD_MAX_HASHED_FRAMES", "")
    limits = Limits.from_env()
    assert limits.max_pixels == 1_000_000 and isinstance(limits.max_pixels, int)
    assert limits.max_video_seconds == 90.5
    assert limits.max_hashed_frames == Limits().max_hashed_frames


def test_identify_bytes() -> None:
    assert identify_bytes(jpeg_bytes()).mime == "image/jpeg"
    expect_code("empty", identify_bytes, b"")
    expect_code("unsupported_format", identify_bytes, b"%PDF-1.7\n")


# --------------------------------------------------------------------------- fuzzing

# Small limits keep every example cheap: a mutated header may declare any size.
FUZZ_LIMITS = Limits(
    max_pixels=2_000_000,
    max_video_pixels=2_000_000,
    max_decoded_frames=2_000,
    max_hashed_frames=500,
    max_decode_seconds=5.0,
)
FUZZ_SETTINGS = settings(
    max_examples=120,
    deadline=timedelta(seconds=5),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
)
MAGICS = [
    b"",
    b"\xff\xd8\xff",
    b"\x89PNG\r\n\x1a\n",
    b"GIF89a",
    b"RIFF\x00\x01\x00\x00WEBPVP8 ",
    b"BM",
    b"II*\x00",
    b"MM\x00*",
    b"\x1aE\xdf\xa3",
    b"\x00\x00\x00\x18ftypisom",
    b"\x00\x00\x00\x18ftypheic",
    b"\x00\x00\x00\x18ftypavif",
    b"\x00\x00\x00\x08moov",
]


def _hash_or_media_error(path: Path) -> None:
    try:
        result = hash_file(path, limits=FUZZ_LIMITS)
    except MediaError as e:
        assert e.code in {
            "unsupported_format",
            "too_large",
            "too_many_pixels",
            "too_many_frames",
            "too_long",
            "timeout",
            "corrupt",
            "empty",
        }
        return
    assert result.kind in ("image", "video")
    if result.kind == "image":
        assert result.pdq is not None and len(result.pdq) == 64


def test_fuzz_random_bytes(tmp_path_factory: pytest.TempPathFactory) -> None:
    path = tmp_path_factory.mktemp("fuzz-random") / "random.bin"

    @FUZZ_SETTINGS
    @given(magic=st.sampled_from(MAGICS), body=st.binary(max_size=1024))
    def run(magic: bytes, body: bytes) -> None:
        path.write_bytes(magic + body)
        _hash_or_media_error(path)

    run()


@cache
def fuzz_seeds() -> dict[str, bytes]:
    """Small valid files to mutate (tens of KB at most, so each example is quick)."""
    import tempfile

    picture = mf.photo_like(40, 32, seed=5)
    seeds = {fmt: mf.encode_image(picture, fmt, quality=80) for fmt in mf.IMAGE_FORMATS}
    with tempfile.TemporaryDirectory() as d:
        for fmt in ("mp4", "webm"):
            if mf.pick_codec(fmt) is not None:
                path = mf.write_video(
                    Path(d) / f"seed{mf.VIDEO_FORMATS[fmt].suffix}",
                    fmt=fmt,
                    seconds=0.5,
                    fps=10,
                    size=(48, 32),
                )
                seeds[fmt] = path.read_bytes()
    return seeds


_mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 1 << 20), st.integers(0, 255)),
    st.tuples(st.just("truncate"), st.integers(0, 1 << 20), st.just(0)),
    st.tuples(st.just("splice"), st.integers(0, 1 << 20), st.integers(1, 64)),
)


def _mutate(data: bytes, ops: list[tuple[str, int, int]], noise: bytes) -> bytes:
    out = bytearray(data)
    for kind, where, arg in ops:
        if not out:
            break
        pos = where % len(out)
        if kind == "flip":
            out[pos] ^= arg or 0xFF
        elif kind == "truncate":
            del out[pos:]
        else:
            chunk = (noise * (arg // max(len(noise), 1) + 1))[:arg] if noise else b"\xff" * arg
            out[pos : pos + arg] = chunk
    return bytes(out)


FUZZ_FORMATS = ["jpeg", "png", "gif", "webp", "bmp", "tiff", "heic", "avif", "mp4", "webm"]


@pytest.mark.parametrize("fmt", FUZZ_FORMATS)
def test_fuzz_mutated_files(tmp_path_factory: pytest.TempPathFactory, fmt: str) -> None:
    _fuzz_mutations(tmp_path_factory, fmt, FUZZ_SETTINGS)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", FUZZ_FORMATS)
def test_fuzz_mutated_files_long(tmp_path_factory: pytest.TempPathFactory, fmt: str) -> None:
    """More examples, and new ones on every run (not derandomized)."""
    long_run = settings(FUZZ_SETTINGS, max_examples=1500, derandomize=False, database=None)
    _fuzz_mutations(tmp_path_factory, fmt, long_run)


def _fuzz_mutations(
    tmp_path_factory: pytest.TempPathFactory, fmt: str, fuzz_settings: settings
) -> None:
    seeds = fuzz_seeds()
    if fmt not in seeds:
        pytest.skip(f"no {fmt} encoder here")
    seed = seeds[fmt]
    directory = tmp_path_factory.mktemp(f"mutate-{fmt}")

    @fuzz_settings
    @given(ops=st.lists(_mutation, min_size=1, max_size=6), noise=st.binary(max_size=64))
    def run(ops: list[tuple[str, int, int]], noise: bytes) -> None:
        path = directory / f"mutant-{fmt}"
        path.write_bytes(_mutate(seed, ops, noise))
        _hash_or_media_error(path)

    run()
