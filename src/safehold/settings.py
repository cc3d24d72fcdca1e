"""Reading numeric settings from ``SAFEHOLD_*`` environment variables."""

from __future__ import annotations

import os


def env_float(name: str, default: float) -> float:
    """The positive number in ``$name``; ``default`` when it is unset, empty, not a
    number, zero or negative (a typo in a setting must not stop the service)."""
    raw = os.environ.get(name, "").strip()
    try:
        value = float(raw) if raw else default
    except ValueError:
        return default
    return value if value > 0 else default
