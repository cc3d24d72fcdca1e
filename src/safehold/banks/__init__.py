"""Banks: named, versioned sets of signals with labels and provenance.

Names are imported on first use: the matcher pulls in the index (FAISS, numba),
which commands that only manage banks do not need.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "BankInfo": "safehold.banks.entries",
    "EntryInput": "safehold.banks.entries",
    "EntryRecord": "safehold.banks.entries",
    "make_entry": "safehold.banks.entries",
    "EXPORT_FORMATS": "safehold.banks.formats",
    "FORMATS": "safehold.banks.formats",
    "ParseResult": "safehold.banks.formats",
    "parse": "safehold.banks.formats",
    "parse_path": "safehold.banks.formats",
    "write": "safehold.banks.formats",
    "Match": "safehold.banks.matcher",
    "MatchResult": "safehold.banks.matcher",
    "Matcher": "safehold.banks.matcher",
    "AddResult": "safehold.banks.repository",
    "Banks": "safehold.banks.repository",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'safehold.banks' has no attribute {name!r}")
