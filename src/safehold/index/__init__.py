"""In-memory matching: exact maps for digests and URLs, exact range search for PDQ.

The index knows entry ids and hash values only; :mod:`safehold.banks.matcher` adds
banks, labels, thresholds, dihedral variants and negative-bank suppression.
"""

from safehold.index.exact import ExactIndex
from safehold.index.pdq import MAX_RADIUS, PdqIndex, SearchResult

__all__ = ["MAX_RADIUS", "ExactIndex", "PdqIndex", "SearchResult"]
