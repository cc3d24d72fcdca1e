"""PDQ: Meta's 256-bit perceptual hash for photos, compared by Hamming distance.

Values equal the reference implementation (facebook/ThreatExchange ``pdq``), as
published by python-threatexchange and HMA: the reference C++ core run on the full
decode of the picture, upright (EXIF orientation applied) and in 8-bit RGB. See
:mod:`safehold.signals._pdqcore` for how the core is called.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from PIL import Image

from safehold.media import rgb_array
from safehold.signals import _pdqcore
from safehold.signals.base import HexDigestSignal

PDQ_HEX_LENGTH = 64
DEFAULT_THRESHOLD = 31
"""Hamming distance at or below which two PDQ hashes are the same picture (as HMA)."""
MIN_QUALITY = 50
"""Hashes of lower quality (flat, featureless pictures) match too easily."""

DIHEDRAL_NAMES = (
    "original",
    "rotate90",
    "rotate180",
    "rotate270",
    "flipx",
    "flipy",
    "flip_plus1",
    "flip_minus1",
)


class PdqSignal(HexDigestSignal):
    name = "pdq"
    comparison = "hamming"
    hex_length = PDQ_HEX_LENGTH
    content_types = ("image",)
    default_threshold = DEFAULT_THRESHOLD
    max_threshold = 64
    description = "PDQ perceptual hash of a photo (Hamming distance)"

    @classmethod
    def distance(cls, a: str, b: str) -> int:
        return hamming(cls.normalize(a), cls.normalize(b))


class PdqHash(NamedTuple):
    value: str
    quality: int


def hamming(a: str, b: str) -> int:
    """Hamming distance between two hex strings of equal length."""
    return (int(a, 16) ^ int(b, 16)).bit_count()


def pdq_from_rgb(rgb: np.ndarray) -> PdqHash:
    value, quality = _pdqcore.hash_rgb(rgb)
    return PdqHash(value, quality)


def pdq_from_image(image: Image.Image) -> PdqHash:
    """PDQ of an upright RGB picture (see :func:`safehold.media.open_image`)."""
    return pdq_from_rgb(rgb_array(image))


def dihedral_from_rgb(rgb: np.ndarray) -> tuple[list[str], int]:
    """The hashes of the 8 rotations and flips, in :data:`DIHEDRAL_NAMES` order."""
    return _pdqcore.dihedral_rgb(rgb)


def dihedral_from_image(image: Image.Image) -> tuple[list[str], int]:
    return dihedral_from_rgb(rgb_array(image))


def to_bytes(value: str) -> bytes:
    return bytes.fromhex(value)


def pack(values: list[str]) -> np.ndarray:
    """(n, 32) uint8 array of many hex hashes (validated by the caller)."""
    if not values:
        return np.zeros((0, 32), dtype=np.uint8)
    return np.frombuffer(bytes.fromhex("".join(values)), dtype=np.uint8).reshape(-1, 32)
