"""vPDQ: the reference video, frame selection, serialisation and the match rule."""

from __future__ import annotations

import importlib
import json
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import media_factory as mf
from conftest import VECTORS
from safehold.errors import InvalidSignal
from safehold.hashing import hash_file
from safehold.signals.pdq import hamming
from safehold.signals.vpdq import (
    FRAME_DISTANCE,
    MATCH_PERCENT,
    QUALITY_THRESHOLD,
    VpdqFrame,
    VpdqMatch,
    VpdqSignal,
    match,
    parse,
    serialize,
    vpdq_from_video,
)

VPDQ_DIR = VECTORS / "vpdq"
VIDEO = VPDQ_DIR / "doorknob-hd-no-bar.mp4"
NO_VECTORS = f"reference vectors not found at {VPDQ_DIR} (see /work/shared/vectors/README.md)"
needs_vectors = pytest.mark.skipif(not VIDEO.exists(), reason=NO_VECTORS)

REFERENCE_FRAME_BITS = 24
"""Our decode is FFmpeg via PyAV; the reference hashes were made with an older FFmpeg
whose YUV->RGB conversion differs slightly. Measured on frames of reference quality
>= 50: max 22 bits, mean ~5."""


@pytest.fixture(scope="module")
def reference() -> list[dict[str, Any]]:
    if not VIDEO.exists():
        pytest.skip(NO_VECTORS)
    frames: list[dict[str, Any]] = json.loads((VPDQ_DIR / "manifest.json").read_text())[0]["frames"]
    return frames


@pytest.fixture(scope="module")
def every_frame() -> list[VpdqFrame]:
    """Our hashes of every frame of the reference video (fps=0, as the reference)."""
    if not VIDEO.exists():
        pytest.skip(NO_VECTORS)
    result = hash_file(VIDEO, fps=0)
    assert result.vpdq is not None and result.warnings == []
    return result.vpdq


# --------------------------------------------------------------------------- reference video


def test_reference_files_agree(reference: list[dict[str, Any]]) -> None:
    """The manifest and the reference tool's .vpdq.txt hold the same values."""
    lines = parse((VPDQ_DIR / "doorknob-hd-no-bar.vpdq.txt").read_text())
    assert [f.to_dict() for f in lines] == reference


def test_same_frames_and_timestamps(
    every_frame: list[VpdqFrame], reference: list[dict[str, Any]]
) -> None:
    assert len(every_frame) == len(reference) == 120
    assert [f.frame for f in every_frame] == [r["frame"] for r in reference]
    assert [round(f.timestamp, 3) for f in every_frame] == [r["timestamp"] for r in reference]


def test_quality_within_one(every_frame: list[VpdqFrame], reference: list[dict[str, Any]]) -> None:
    assert (
        max(abs(f.quality - r["quality"]) for f, r in zip(every_frame, reference, strict=True)) <= 1
    )


def test_frame_hashes_close_to_reference(
    every_frame: list[VpdqFrame], reference: list[dict[str, Any]], record_property: Any
) -> None:
    distances = [
        hamming(f.pdq, r["pdq"])
        for f, r in zip(every_frame, reference, strict=True)
        if r["quality"] >= QUALITY_THRESHOLD
    ]
    assert len(distances) >= 50
    record_property("max_bits", max(distances))
    record_property("mean_bits", float(np.mean(distances)))
    print(f"vPDQ vs reference: max {max(distances)} bits, mean {np.mean(distances):.1f}")
    assert max(distances) <= REFERENCE_FRAME_BITS
    assert float(np.mean(distances)) <= 8


def test_video_match_with_reference_is_complete(
    every_frame: list[VpdqFrame], reference: list[dict[str, Any]]
) -> None:
    ref = parse((VPDQ_DIR / "doorknob-hd-no-bar.vpdq.txt").read_text())
    assert match(every_frame, ref) == VpdqMatch(100.0, 100.0)
    assert match(ref, every_frame) == VpdqMatch(100.0, 100.0)
    assert match(every_frame, ref).is_match()
    assert VpdqSignal.matches(serialize(every_frame), serialize(ref))
    assert VpdqSignal.distance(serialize(every_frame), serialize(ref)) == 0


@needs_vectors
def test_default_fps_selects_one_frame_per_second() -> None:
    result = hash_file(VIDEO)  # fps=1 by default; the video is 30 fps, 4 s
    assert result.vpdq is not None
    assert [(f.frame, f.timestamp) for f in result.vpdq] == [
        (0, 0.0),
        (30, 1.0),
        (60, 2.0),
        (90, 3.0),
    ]
    assert (result.width, result.height) == (1280, 720)


@needs_vectors
def test_fps_two_selects_every_fifteenth_frame() -> None:
    frames = vpdq_from_video(VIDEO, fps=2)
    assert [f.frame for f in frames] == list(range(0, 120, 15))
    assert [f.timestamp for f in frames] == [n / 30 for n in range(0, 120, 15)]


def test_negative_fps_is_invalid(tmp_path: Path) -> None:
    with pytest.raises(InvalidSignal):
        vpdq_from_video(tmp_path / "any.mp4", fps=-1)


# --------------------------------------------------------------------------- serialisation

H1 = "dadb999c25266273529cadac89cb52c22324ad3bce99726c38668d93c799f07c"
H2 = "0" * 63 + "1"
FRAMES = [
    VpdqFrame(0, 0.0, H1, 100),
    VpdqFrame(30, 1.0, H2, 49),
    VpdqFrame(61, 2.0333333, H1, 0),
    VpdqFrame(400, 13.3456, H2, 77),
]


def test_serialize_is_python_threatexchange_json() -> None:
    text = serialize(FRAMES)
    assert json.loads(text) == [
        f"{H1},100,0.000",
        f"{H2},49,1.000",
        f"{H1},0,2.033",
        f"{H2},77,13.346",
    ]
    back = parse(text)
    # The compact format has no frame numbers: they come back as positions.
    assert [f.frame for f in back] == [0, 1, 2, 3]
    assert [(f.pdq, f.quality) for f in back] == [(f.pdq, f.quality) for f in FRAMES]
    assert [f.timestamp for f in back] == [0.0, 1.0, 2.033, 13.346]
    assert serialize(back) == text
    assert VpdqSignal.normalize(" " + text.upper().replace("[", "[ ") + "\n") == text


def test_reference_line_format_round_trip() -> None:
    text = "\n".join(f"{f.frame},{f.quality},{f.pdq},{f.timestamp:.3f}" for f in FRAMES) + "\n"
    back = parse(text)
    assert [f.frame for f in back] == [0, 30, 61, 400]
    assert [f.to_dict() for f in back] == [f.to_dict() for f in FRAMES]
    assert parse(serialize(back)) == parse(serialize(FRAMES))


@pytest.fixture
def pytx_vpdq(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """python-threatexchange's own vPDQ serialisation code.

    Its module imports the ``vpdq`` extension (a C++ build we do not install) only for
    hashing; a stand-in lets us use its (de)serialisers as they are.
    """
    if "vpdq" not in sys.modules or not hasattr(sys.modules["vpdq"], "computeHash"):
        stub = types.ModuleType("vpdq")
        stub.VpdqFeature = object  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, "vpdq", stub)
    try:
        return importlib.import_module("threatexchange.extensions.vpdq.vpdq_util")
    except ImportError as e:  # pragma: no cover - depends on the installed version
        pytest.skip(f"python-threatexchange vPDQ utilities not importable: {e}")


def test_python_threatexchange_reads_our_values(pytx_vpdq: types.ModuleType) -> None:
    features = pytx_vpdq.json_to_vpdq(serialize(FRAMES))
    assert [(f.pdq_hex, f.quality, f.timestamp) for f in features] == [
        (f.pdq, f.quality, round(f.timestamp, 3)) for f in FRAMES
    ]


def test_we_read_python_threatexchange_values(pytx_vpdq: types.ModuleType) -> None:
    features = [pytx_vpdq.VpdqCompactFeature(f.pdq, f.quality, f.timestamp) for f in FRAMES]
    text = pytx_vpdq.vpdq_to_json(features)
    back = parse(text)
    assert [(f.pdq, f.quality) for f in back] == [(f.pdq, f.quality) for f in FRAMES]
    # python-threatexchange writes timestamps with 3 significant digits ("13.3"), not
    # 3 decimals; we read whatever it wrote.
    assert [f.timestamp for f in back] == [float(f"{f.timestamp:.3}") for f in FRAMES]
    assert match(back, FRAMES) == VpdqMatch(100.0, 100.0)


INVALID = [
    "",
    "   ",
    "[",
    "[[[[" * 50_000,  # nesting deep enough to exhaust the JSON decoder's recursion
    "{}",
    '{"a": 1}',
    "[1]",
    '[["x"]]',
    f'["{H1},100"]',
    f'["{H1},100,0.0,extra"]',
    f'["{H1[:-1]},100,0.0"]',
    f'["{"g" * 64},100,0.0"]',
    f'["{H1},101,0.0"]',
    f'["{H1},-1,0.0"]',
    f'["{H1},50.5,0.0"]',
    f'["{H1},50,-1"]',
    f'["{H1},50,nan"]',
    f'["{H1},50,inf"]',
    f'["{H1},50,1e999"]',
    f'["{H1},50,abc"]',
    f"0,100,{H1}",
    f"x,100,{H1},0.0",
    f"0,100,{H1},0.0\n1,100,zz,0.1",
    "\x00",
    "\u202e[]",
]


@pytest.mark.parametrize("value", INVALID, ids=range(len(INVALID)))
def test_invalid_values(value: str) -> None:
    with pytest.raises(InvalidSignal):
        parse(value)
    with pytest.raises(InvalidSignal):
        VpdqSignal.normalize(value)


def test_non_string_values_are_invalid() -> None:
    for value in (None, 1, [f"{H1},100,0.0"], b"[]"):
        with pytest.raises(InvalidSignal):
            parse(value)  # type: ignore[arg-type]


def test_empty_list_parses_and_matches_nothing() -> None:
    assert parse("[]") == []
    assert match([], FRAMES) == VpdqMatch(0.0, 0.0)
    assert not match(FRAMES, []).is_match()


# --------------------------------------------------------------------------- match rule


def _frame(i: int, pdq: str, quality: int = 100) -> VpdqFrame:
    return VpdqFrame(i, float(i), pdq, quality)


def _flip(value: str, bits: int) -> str:
    return f"{int(value, 16) ^ ((1 << bits) - 1):064x}"


def test_match_rule_thresholds() -> None:
    a = [_frame(0, H1)]
    assert match(a, [_frame(0, _flip(H1, FRAME_DISTANCE))]) == VpdqMatch(100.0, 100.0)
    assert match(a, [_frame(0, _flip(H1, FRAME_DISTANCE + 1))]) == VpdqMatch(0.0, 0.0)
    assert match(a, [_frame(0, _flip(H1, 10))], distance=9) == VpdqMatch(0.0, 0.0)


def test_match_drops_low_quality_and_duplicate_frames() -> None:
    other = _flip(H1, 200)
    query = [_frame(0, H1), _frame(1, H1), _frame(2, H1), _frame(3, other, QUALITY_THRESHOLD - 1)]
    target = [_frame(0, H1)]
    # Duplicates count once and the low-quality frame is ignored: 1 of 1 matched.
    assert match(query, target) == VpdqMatch(100.0, 100.0)
    assert match(query, target, quality=0) == VpdqMatch(50.0, 100.0)


def test_match_percentages_and_is_match() -> None:
    rng = np.random.default_rng(5)
    # Random 256-bit hashes are ~128 bits apart: none matches another.
    hashes = [bytes(rng.integers(0, 256, 32, dtype=np.uint8)).hex() for _ in range(6)]
    query = [_frame(i, h) for i, h in enumerate(hashes[:5])]
    target = [_frame(i, _flip(h, 3)) for i, h in enumerate(hashes[:4])] + [_frame(4, hashes[5])]
    m = match(query, target)
    assert m == VpdqMatch(80.0, 80.0)  # 4 of 5 frames each way
    assert m.is_match() and not m.is_match(81, 80) and not m.is_match(80, 81)
    assert match(query, target[:2]) == VpdqMatch(40.0, 100.0)
    assert MATCH_PERCENT == 80


def test_signal_type_threshold() -> None:
    assert VpdqSignal.check_threshold(100) == 100
    with pytest.raises(InvalidSignal):
        VpdqSignal.check_threshold(101)


# --------------------------------------------------------------------------- synthetic videos


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    if mf.pick_codec("mp4") is None:
        pytest.skip("no MP4 encoder in this PyAV build")
    d = tmp_path_factory.mktemp("vpdq-clips")
    original = mf.write_video(d / "a.mp4", fmt="mp4", seconds=3.0, fps=10, size=(240, 180), seed=3)
    out = {
        "original": original,
        "smaller": mf.reencode_video(original, d / "a-small.mp4", size=(160, 120), bit_rate=80_000),
        "other": mf.write_video(
            d / "b.mp4", fmt="mp4", seconds=3.0, fps=10, size=(240, 180), seed=8
        ),
    }
    if mf.pick_codec("webm") is not None:
        out["webm"] = mf.reencode_video(original, d / "a.webm", fmt="webm", bit_rate=150_000)
    return out


def test_reencoded_video_matches(clips: dict[str, Path]) -> None:
    original = vpdq_from_video(clips["original"], fps=2)
    assert len(original) == 6
    assert sum(f.quality >= QUALITY_THRESHOLD for f in original) >= 5
    for name in ("smaller", "webm"):
        if name not in clips:
            continue
        copy = vpdq_from_video(clips[name], fps=2)
        assert len(copy) == len(original)
        m = match(copy, original)
        assert m.is_match(), (name, m)
        assert VpdqSignal.matches(serialize(copy), serialize(original))


def test_different_video_does_not_match(clips: dict[str, Path]) -> None:
    a = vpdq_from_video(clips["original"], fps=2)
    b = vpdq_from_video(clips["other"], fps=2)
    m = match(a, b)
    assert m.query_pct <= 20 and m.target_pct <= 20, m
    assert not m.is_match()
    assert not VpdqSignal.matches(serialize(a), serialize(b))
    assert VpdqSignal.distance(serialize(a), serialize(b)) >= 80
