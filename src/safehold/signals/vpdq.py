"""vPDQ: a PDQ hash per sampled video frame, and the reference video match rule.

Frames are selected and timed as the reference vPDQ does (see
:func:`safehold.media.iter_video_frames`); each frame is hashed with the same PDQ
core as photos. The signal value shared in banks is python-threatexchange's
serialisation: a JSON list of ``"pdq_hex,quality,timestamp"`` strings.

Two videos match when, after dropping duplicate and low-quality frames, at least
``query_pct`` per cent of the query's frames have a frame in the other video within
``distance`` bits, and at least ``target_pct`` per cent the other way round.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from safehold.errors import InvalidSignal, preview
from safehold.media import Limits, VideoInfo, iter_video_frames
from safehold.signals import _pdqcore
from safehold.signals.base import SignalType
from safehold.signals.pdq import PdqSignal, pack

QUALITY_THRESHOLD = 50
FRAME_DISTANCE = 31
MATCH_PERCENT = 80
TIMESTAMP_PRECISION = 3


@dataclass(frozen=True)
class VpdqFrame:
    frame: int
    timestamp: float
    pdq: str
    quality: int

    def to_dict(self) -> dict[str, object]:
        return {
            "frame": self.frame,
            "timestamp": round(self.timestamp, TIMESTAMP_PRECISION),
            "pdq": self.pdq,
            "quality": self.quality,
        }


@dataclass(frozen=True)
class VpdqMatch:
    query_pct: float
    target_pct: float

    def is_match(self, query_pct: float = MATCH_PERCENT, target_pct: float = MATCH_PERCENT) -> bool:
        return self.query_pct >= query_pct and self.target_pct >= target_pct

    @property
    def distance(self) -> int:
        """100 minus the lower of the two percentages, rounded (0: every frame matched)."""
        return round(100 - min(self.query_pct, self.target_pct))


class VpdqSignal(SignalType):
    name = "vpdq"
    comparison = "vpdq"
    content_types = ("video",)
    default_threshold = MATCH_PERCENT
    max_threshold = 100
    description = "vPDQ frame hashes of a video (share of frames matched both ways, %)"

    @classmethod
    def normalize(cls, value: str) -> str:
        return serialize(parse(value))

    @classmethod
    def distance(cls, a: str, b: str) -> int:
        """100 minus the lower of the two match percentages (0 = every frame matched)."""
        return match(parse(a), parse(b)).distance

    @classmethod
    def matches(cls, a: str, b: str, threshold: int | None = None) -> bool:
        pct = cls.default_threshold if threshold is None else threshold
        return match(parse(a), parse(b)).is_match(pct, pct)


def vpdq_from_video(
    path: Path,
    *,
    fps: float = 1.0,
    limits: Limits | None = None,
    info: VideoInfo | None = None,
) -> list[VpdqFrame]:
    """Hash a video: ``fps`` hashed frames per second of video; 0 hashes every frame."""
    if fps < 0:
        raise InvalidSignal(f"fps must be 0 (every frame) or positive, not {fps}")
    seconds = 0.0 if fps == 0 else 1.0 / fps
    out = []
    for fr in iter_video_frames(path, limits, seconds_per_frame=seconds, info=info):
        value, quality = _pdqcore.hash_rgb(fr.rgb)
        out.append(VpdqFrame(fr.number, fr.timestamp, value, quality))
    return out


def serialize(frames: list[VpdqFrame]) -> str:
    """python-threatexchange's vPDQ signal string."""
    return json.dumps(
        [f"{f.pdq},{f.quality},{f.timestamp:.{TIMESTAMP_PRECISION}f}" for f in frames]
    )


def parse(value: str) -> list[VpdqFrame]:
    """Read a vPDQ signal string (python-threatexchange JSON, or one
    ``frame,quality,pdq,timestamp`` line per frame as the reference tool writes)."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidSignal("not a valid vpdq value: empty")
    text = value.strip()
    try:
        if text.startswith("["):
            items = json.loads(text)
            if not isinstance(items, list):
                raise ValueError("not a list")
            return [_parse_compact(i, str(s)) for i, s in enumerate(items)]
        return [_parse_line(line) for line in text.splitlines() if line.strip()]
    except (ValueError, TypeError, RecursionError) as e:  # RecursionError: "[[[[..."
        raise InvalidSignal(f"not a valid vpdq value ({e}): {preview(value, 40)}") from e


def _parse_compact(index: int, item: str) -> VpdqFrame:
    pdq_hex, quality, ts = item.split(",")
    return _frame(index, float(ts), pdq_hex, int(quality))


def _parse_line(line: str) -> VpdqFrame:
    frame, quality, pdq_hex, ts = line.strip().split(",")
    if int(frame) < 0:
        raise ValueError(f"frame number {frame} is negative")
    return _frame(int(frame), float(ts), pdq_hex, int(quality))


def _frame(frame: int, ts: float, pdq_hex: str, quality: int) -> VpdqFrame:
    if not 0 <= quality <= 100:
        raise ValueError(f"quality {quality} is not 0-100")
    if ts < 0 or ts != ts or ts == float("inf"):
        raise ValueError(f"timestamp {ts} is not valid")
    return VpdqFrame(frame, ts, PdqSignal.normalize(pdq_hex), quality)


def _usable(frames: list[VpdqFrame], quality: int) -> np.ndarray:
    seen: set[str] = set()
    keep = []
    for f in frames:
        if f.pdq not in seen:
            seen.add(f.pdq)
            if f.quality >= quality:
                keep.append(f.pdq)
    return pack(keep)


def _matched_share(a: np.ndarray, b: np.ndarray, distance: int) -> float:
    if len(a) == 0:
        return 0.0
    if len(b) == 0:
        return 0.0
    a64 = a.view(np.uint64)
    b64 = b.view(np.uint64)
    hit = np.zeros(len(a), dtype=bool)
    step = max(1, 4_000_000 // max(len(b), 1))
    for s in range(0, len(a), step):
        x = a64[s : s + step, None, :] ^ b64[None, :, :]
        d = np.bitwise_count(x).sum(axis=2)
        hit[s : s + step] = (d <= distance).any(axis=1)
    return float(hit.sum()) * 100.0 / len(a)


def match(
    query: list[VpdqFrame],
    target: list[VpdqFrame],
    *,
    quality: int = QUALITY_THRESHOLD,
    distance: int = FRAME_DISTANCE,
) -> VpdqMatch:
    """The reference vPDQ comparison of two videos' frame hashes."""
    q = _usable(query, quality)
    t = _usable(target, quality)
    return VpdqMatch(_matched_share(q, t, distance), _matched_share(t, q, distance))
