"""The small interface every signal type implements.

A signal type knows how to validate and normalise a value, and how to compare two
values: exactly (``md5``, ``sha256``, ``url``) or by a distance with a threshold
(``pdq``: Hamming distance; ``vpdq``: share of frames matched both ways). Computing a
signal from content lives next to the type, in plain functions of the same module.

Adding a signal type: write one module with a :class:`SignalType` subclass, then list
it in :mod:`safehold.signals` (``SIGNAL_TYPES``).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from typing import ClassVar, Literal

from safehold.errors import InvalidSignal, preview

Comparison = Literal["exact", "hamming", "vpdq"]


class SignalType(ABC):
    """One kind of signal; used as a class, never instantiated."""

    name: ClassVar[str]
    comparison: ClassVar[Comparison]
    content_types: ClassVar[tuple[str, ...]]
    default_threshold: ClassVar[int] = 0
    max_threshold: ClassVar[int] = 0
    description: ClassVar[str] = ""

    @classmethod
    @abstractmethod
    def normalize(cls, value: str) -> str:
        """The canonical form of ``value``; raises :class:`InvalidSignal` if invalid."""

    @classmethod
    def distance(cls, a: str, b: str) -> int:
        """0 for equal values; exact types return 1 for different values."""
        return 0 if cls.normalize(a) == cls.normalize(b) else 1

    @classmethod
    def matches(cls, a: str, b: str, threshold: int | None = None) -> bool:
        limit = cls.default_threshold if threshold is None else threshold
        return cls.distance(a, b) <= limit

    @classmethod
    def check_threshold(cls, threshold: int) -> int:
        if not 0 <= threshold <= cls.max_threshold:
            raise InvalidSignal(
                f"threshold {threshold} is out of range for {cls.name}: "
                f"use 0 to {cls.max_threshold}"
            )
        return threshold


class HexDigestSignal(SignalType):
    """A fixed-length hexadecimal digest compared exactly."""

    comparison: ClassVar[Comparison] = "exact"
    hex_length: ClassVar[int]

    @classmethod
    def normalize(cls, value: str) -> str:
        v = value.strip().lower() if isinstance(value, str) else ""
        if len(v) != cls.hex_length or not _HEX.fullmatch(v):
            raise InvalidSignal(
                f"not a valid {cls.name} value: expected {cls.hex_length} hexadecimal "
                f"characters, got {preview(value, 40)}"
            )
        return v


_HEX = re.compile(r"[0-9a-f]+")
