"""Banks: named, versioned sets of signals with labels and provenance."""

from safehold.banks.entries import BankInfo, EntryInput, EntryRecord, make_entry
from safehold.banks.formats import EXPORT_FORMATS, FORMATS, ParseResult, parse, parse_path, write
from safehold.banks.matcher import Match, Matcher, MatchResult
from safehold.banks.repository import AddResult, Banks

__all__ = [
    "EXPORT_FORMATS",
    "FORMATS",
    "AddResult",
    "BankInfo",
    "Banks",
    "EntryInput",
    "EntryRecord",
    "Match",
    "MatchResult",
    "Matcher",
    "ParseResult",
    "make_entry",
    "parse",
    "parse_path",
    "write",
]
