"""safehold: open child-safety platform.

Everything the CLI and the HTTP API do is available here as plain Python::

    from safehold import Database, Banks, Matcher, hash_file, make_entry

    db = Database("sqlite:///safehold.db")
    banks = Banks(db)
    banks.create("csam-hashes")
    banks.add("csam-hashes", [make_entry("pdq", "f8f8f0ce...", ["A1"], "ncmec")])
    matcher = Matcher(db)
    result = matcher.match_content(hash_file("upload.jpg"))

Names are imported on first use, so ``import safehold.media`` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Banks": "safehold.banks",
    "Match": "safehold.banks",
    "MatchResult": "safehold.banks",
    "Matcher": "safehold.banks",
    "make_entry": "safehold.banks",
    "MediaError": "safehold.errors",
    "SafeholdError": "safehold.errors",
    "ContentHashes": "safehold.hashing",
    "hash_file": "safehold.hashing",
    "hash_image_bytes": "safehold.hashing",
    "Database": "safehold.store",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'safehold' has no attribute {name!r}")
