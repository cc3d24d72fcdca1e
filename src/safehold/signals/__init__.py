"""Signals: values computed from content, and how to compare them.

``SIGNAL_TYPES`` maps each name to its :class:`~safehold.signals.base.SignalType`.
"""

from __future__ import annotations

from safehold.errors import UnknownSignalType, preview
from safehold.signals.base import SignalType
from safehold.signals.md5 import Md5Signal
from safehold.signals.pdq import PdqSignal
from safehold.signals.sha256 import Sha256Signal
from safehold.signals.url import UrlSignal
from safehold.signals.vpdq import VpdqSignal

SIGNAL_TYPES: dict[str, type[SignalType]] = {
    s.name: s for s in (Md5Signal, Sha256Signal, PdqSignal, VpdqSignal, UrlSignal)
}


def get_signal_type(name: str) -> type[SignalType]:
    """The signal type called ``name``; a clear error listing the valid ones otherwise."""
    key = name.strip().lower() if isinstance(name, str) else ""
    try:
        return SIGNAL_TYPES[key]
    except KeyError:
        raise UnknownSignalType(
            f"unknown signal type {preview(name)}; valid types: {', '.join(SIGNAL_TYPES)}",
            valid=list(SIGNAL_TYPES),
        ) from None


__all__ = [
    "SIGNAL_TYPES",
    "Md5Signal",
    "PdqSignal",
    "Sha256Signal",
    "SignalType",
    "UrlSignal",
    "VpdqSignal",
    "get_signal_type",
]
