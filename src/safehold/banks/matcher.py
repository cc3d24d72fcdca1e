"""Matching content signals against banks: the index plus bank policy.

A :class:`Matcher` loads the entries of the chosen banks into in-memory indexes
(:mod:`safehold.index`) and answers lookups with :class:`Match` objects that carry
everything needed for a decision: bank, entry id, external id, labels, source and
distance. Bank policy applied here:

* each bank's threshold per signal type (PDQ: Hamming distance, vPDQ: percentage
  of frames matched both ways);
* dihedral matching (rotated and flipped copies) only for banks that enable it;
* negative banks: when content matches an entry of a negative bank (a known false
  positive) by some signal type, block-bank matches by that signal type are
  suppressed and reported as such.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from safehold.banks.entries import BankInfo, EntryRecord
from safehold.banks.repository import Banks
from safehold.errors import NotFound
from safehold.hashing import ContentHashes
from safehold.index import MAX_RADIUS, ExactIndex, PdqIndex
from safehold.signals import SIGNAL_TYPES, get_signal_type
from safehold.signals.pdq import DIHEDRAL_NAMES, MIN_QUALITY
from safehold.signals.vpdq import (
    FRAME_DISTANCE,
    QUALITY_THRESHOLD,
    VpdqFrame,
)
from safehold.signals.vpdq import (
    match as vpdq_match,
)
from safehold.signals.vpdq import (
    parse as vpdq_parse,
)
from safehold.store.db import Database


@dataclass(frozen=True)
class Match:
    """A content signal matched a bank entry."""

    bank: str
    bank_kind: str
    entry_id: int
    external_id: str | None
    labels: list[str]
    source: str
    signal_type: str
    value: str
    distance: int
    query: str | None = None
    variant: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "bank": self.bank,
            "entry_id": self.entry_id,
            "external_id": self.external_id,
            "labels": list(self.labels),
            "source": self.source,
            "distance": self.distance,
            "signal_type": self.signal_type,
        }
        if self.bank_kind != "block":
            out["bank_kind"] = self.bank_kind
        if self.variant and self.variant != "original":
            out["variant"] = self.variant
        if self.details:
            out.update(self.details)
        return out


@dataclass
class MatchResult:
    """Matches of one piece of content, after negative-bank suppression."""

    matches: list[Match] = field(default_factory=list)
    suppressed: list[Match] = field(default_factory=list)
    negative: list[Match] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def matched(self) -> bool:
        return bool(self.matches)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"matches": [m.to_dict() for m in self.matches]}
        if self.suppressed:
            out["suppressed"] = [m.to_dict() for m in self.suppressed]
            out["suppressed_by"] = [m.to_dict() for m in self.negative]
        if self.notes:
            out["notes"] = list(self.notes)
        return out


@dataclass
class _Hit:
    entry_id: int
    bank_id: int
    signal_type: str
    distance: int
    query: str | None
    variant: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


class _EntryBanks:
    """entry id -> bank id, compact for millions of entries (sorted arrays + a dict)."""

    def __init__(self) -> None:
        self._ids = np.zeros(0, dtype=np.int64)
        self._banks = np.zeros(0, dtype=np.int64)
        self._extra: dict[int, int] = {}

    def bulk(self, ids: np.ndarray, banks: np.ndarray) -> None:
        ids = np.concatenate([self._ids, ids])
        banks = np.concatenate([self._banks, banks])
        order = np.argsort(ids, kind="stable")
        self._ids, self._banks = ids[order], banks[order]

    def set(self, entry_id: int, bank_id: int) -> None:
        self._extra[entry_id] = bank_id
        if len(self._extra) >= self.FOLD_AT:
            self._fold()

    FOLD_AT = 65_536

    def _fold(self) -> None:
        """Move the dict into the sorted arrays (a later value wins for a repeated id)."""
        extra_ids = np.fromiter(self._extra.keys(), dtype=np.int64, count=len(self._extra))
        extra_banks = np.fromiter(self._extra.values(), dtype=np.int64, count=len(self._extra))
        ids = np.concatenate([self._ids, extra_ids])
        banks = np.concatenate([self._banks, extra_banks])
        order = np.argsort(ids, kind="stable")
        ids, banks = ids[order], banks[order]
        keep = np.ones(len(ids), dtype=bool)
        keep[:-1] = ids[1:] != ids[:-1]  # the last of each run of equal ids
        self._ids, self._banks = ids[keep], banks[keep]
        self._extra = {}

    def of_bank(self, bank_id: int) -> list[int]:
        """Every entry id held for a bank (used when a bank is deleted)."""
        ids: list[int] = self._ids[self._banks == bank_id].tolist()
        ids.extend(e for e, b in self._extra.items() if b == bank_id)
        return ids

    def get(self, entry_id: int) -> int | None:
        if entry_id in self._extra:
            return self._extra[entry_id]
        pos = int(np.searchsorted(self._ids, entry_id))
        if pos < len(self._ids) and self._ids[pos] == entry_id:
            return int(self._banks[pos])
        return None


class Matcher:
    """Look signals up in banks. Build once, query many times; thread-safe for queries.

    ``banks``: names of the block banks to load (default: all). Negative banks are
    always loaded: they are policy (known false positives), not a choice of lists.
    ``signal_types``: load only these (default: all), e.g. ``["md5"]``.
    """

    def __init__(
        self,
        db: Database,
        *,
        banks: Sequence[str] | None = None,
        signal_types: Sequence[str] | None = None,
    ) -> None:
        self.db = db
        self.repo = Banks(db)
        self._lock = threading.Lock()
        all_banks = {b.id: b for b in self.repo.list()}
        if banks is not None:
            wanted = set(banks)
            unknown = wanted - {b.name for b in all_banks.values()}
            if unknown:
                self.repo.get(sorted(unknown)[0])  # raises NotFound with the list of banks
            all_banks = {
                i: b for i, b in all_banks.items() if b.name in wanted or b.kind == "negative"
            }
        self._selection = set(banks) if banks is not None else None
        self.banks: dict[int, BankInfo] = all_banks
        self.bank_names = [b.name for b in all_banks.values()]
        self.signal_types = [get_signal_type(s).name for s in (signal_types or SIGNAL_TYPES)]
        self._entry_banks = _EntryBanks()
        self._exact: dict[str, ExactIndex] = {}
        self._pdq = PdqIndex()
        self._vpdq_frames = PdqIndex()
        self._vpdq_frame_entry: dict[int, int] = {}
        self._vpdq_entries: dict[int, list[VpdqFrame]] = {}
        self._next_frame_row = 1
        self._load()

    # ------------------------------------------------------------------ loading

    def _load(self) -> None:
        names = self.bank_names
        for st in self.signal_types:
            sig = SIGNAL_TYPES[st]
            if st == "pdq":
                self._load_pdq(names)
                continue
            all_ids: list[np.ndarray] = []
            all_banks: list[np.ndarray] = []
            codes: list[np.ndarray] = []
            for ids, bank_ids, values in self.repo.signals(st, banks=names):
                id_arr = np.asarray(ids, dtype=np.int64)
                all_ids.append(id_arr)
                all_banks.append(np.asarray(bank_ids, dtype=np.int64))
                if sig.comparison == "exact":
                    self._exact.setdefault(st, ExactIndex()).add(ids, values)
                elif st == "pdq":
                    codes.append(
                        np.frombuffer(bytes.fromhex("".join(values)), dtype=np.uint8).reshape(
                            -1, 32
                        )
                    )
                elif st == "vpdq":
                    for entry_id, value in zip(ids, values, strict=True):
                        self._add_vpdq(entry_id, value)
            if all_ids:
                self._entry_banks.bulk(np.concatenate(all_ids), np.concatenate(all_banks))
            if codes:
                self._pdq = PdqIndex.build(np.concatenate(all_ids), np.concatenate(codes))

    def _load_pdq(self, names: list[str]) -> None:
        ids: list[np.ndarray] = []
        banks: list[np.ndarray] = []
        codes: list[np.ndarray] = []
        for i, b, c in self.repo.pdq_codes(banks=names):
            ids.append(i)
            banks.append(b)
            codes.append(c)
        if ids:
            all_ids = np.concatenate(ids)
            self._entry_banks.bulk(all_ids, np.concatenate(banks))
            self._pdq = PdqIndex.build(all_ids, np.concatenate(codes))

    def _add_vpdq(self, entry_id: int, value: str) -> None:
        if entry_id in self._vpdq_entries:
            self._drop_vpdq({entry_id})
        frames = vpdq_parse(value)
        self._vpdq_entries[entry_id] = frames
        usable = list(dict.fromkeys(f.pdq for f in frames if f.quality >= QUALITY_THRESHOLD))
        if not usable:
            return
        rows = list(range(self._next_frame_row, self._next_frame_row + len(usable)))
        self._next_frame_row += len(usable)
        for r in rows:
            self._vpdq_frame_entry[r] = entry_id
        self._vpdq_frames.add(rows, usable)

    def _wants(self, info: BankInfo) -> bool:
        return self._selection is None or info.name in self._selection or info.kind == "negative"

    def set_bank(self, info: BankInfo) -> None:
        """A bank was created or changed (thresholds, kind, shares): use its new settings."""
        if not self._wants(info):
            return
        with self._lock:
            self.banks[info.id] = info
            self.bank_names = [b.name for b in self.banks.values()]

    def drop_bank(self, bank_id: int) -> None:
        """A bank was deleted: forget it and its entries."""
        with self._lock:
            info = self.banks.pop(bank_id, None)
            self.bank_names = [b.name for b in self.banks.values()]
        if info is not None:
            self.remove(self._entry_banks.of_bank(bank_id))

    def add(self, bank: str, entries: Iterable[tuple[int, str, str]]) -> None:
        """Make entries (id, signal type, value) added in this process matchable at once."""
        info = next((b for b in self.banks.values() if b.name == bank), None)
        if info is None:
            info = self.repo.get(bank)  # created after this matcher was built
            if not self._wants(info):
                return
            self.set_bank(info)
        self.add_to(info.id, entries)

    def add_to(self, bank_id: int, entries: Iterable[tuple[int, str, str]]) -> None:
        """Add entries of a loaded bank by bank id (idempotent: re-adding an id is a no-op)."""
        if bank_id not in self.banks:
            return
        with self._lock:
            pdq_ids: list[int] = []
            pdq_values: list[str] = []
            for entry_id, st, value in entries:
                if st not in self.signal_types:
                    continue
                self._entry_banks.set(entry_id, bank_id)
                if SIGNAL_TYPES[st].comparison == "exact":
                    self._exact.setdefault(st, ExactIndex()).add([entry_id], [value])
                elif st == "pdq":
                    pdq_ids.append(entry_id)
                    pdq_values.append(value)
                elif st == "vpdq":
                    self._add_vpdq(entry_id, value)
            if pdq_ids:
                self._pdq.remove(pdq_ids)
                self._pdq.add(pdq_ids, pdq_values)

    def remove(self, entry_ids: Iterable[int]) -> None:
        ids = [int(i) for i in entry_ids]
        with self._lock:
            for index in self._exact.values():
                index.remove(ids)
            self._pdq.remove(ids)
            gone = set(ids) & set(self._vpdq_entries)
            if gone:
                self._drop_vpdq(gone)

    def _drop_vpdq(self, gone: set[int]) -> None:
        rows = [r for r, e in self._vpdq_frame_entry.items() if e in gone]
        self._vpdq_frames.remove(rows)
        for r in rows:
            del self._vpdq_frame_entry[r]
        for e in gone:
            del self._vpdq_entries[e]

    def __len__(self) -> int:
        return sum(len(i) for i in self._exact.values()) + len(self._pdq) + len(self._vpdq_entries)

    # ------------------------------------------------------------------ lookups

    def _allowed(self, banks: Sequence[str] | None, tenant: str | None) -> set[int] | None:
        """Ids of the banks a lookup may match: the chosen block banks (default: all the
        tenant can see) plus every negative bank the tenant can see. ``None``: all."""
        if banks is None and tenant is None:
            return None
        visible = {i: b for i, b in self.banks.items() if b.visible_to(tenant)}
        if banks is None:
            return set(visible)
        wanted = set(banks)
        unknown = wanted - {b.name for b in visible.values()}
        if unknown:
            raise NotFound(f"bank(s) not found: {', '.join(sorted(unknown))}")
        return {i for i, b in visible.items() if b.name in wanted or b.kind == "negative"}

    def check_banks(self, banks: Sequence[str] | None, tenant: str | None = None) -> None:
        """Raise :class:`NotFound` if a named bank does not exist or ``tenant`` cannot see it."""
        self._allowed(banks, tenant)

    def _bank_ok(self, bank_id: int | None, allowed: set[int] | None) -> BankInfo | None:
        if bank_id is None:
            return None
        if allowed is not None and bank_id not in allowed:
            return None
        return self.banks.get(bank_id)

    def _radius(self, signal_type: str, allowed: set[int] | None) -> int:
        limits = [
            b.threshold(signal_type)
            for i, b in self.banks.items()
            if allowed is None or i in allowed
        ]
        return min(max(limits, default=0), MAX_RADIUS)

    def _hits(
        self,
        signal_type: str,
        values: list[str],
        banks: set[int] | None,
        variants: list[list[str]] | None = None,
    ) -> list[list[_Hit]]:
        """Raw hits per query value, filtered by each bank's threshold."""
        out: list[list[_Hit]] = [[] for _ in values]
        if signal_type not in self.signal_types:
            return out
        sig = SIGNAL_TYPES[signal_type]
        if sig.comparison == "exact":
            index = self._exact.get(signal_type)
            if index is None:
                return out
            for i, ids in enumerate(index.search(values)):
                for entry_id in ids:
                    if self._bank_ok(self._entry_banks.get(entry_id), banks):
                        out[i].append(
                            _Hit(
                                entry_id,
                                self._entry_banks.get(entry_id) or 0,
                                signal_type,
                                0,
                                values[i],
                            )
                        )
            return out
        if signal_type == "pdq":
            radius = self._radius("pdq", banks)
            groups = variants or [[v] for v in values]
            flat = [v for g in groups for v in g]
            results = self._pdq.search(flat, radius) if flat and len(self._pdq) else []
            k = 0
            for i, group in enumerate(groups):
                best: dict[int, _Hit] = {}
                for vi, value in enumerate(group):
                    res = results[k] if results else None
                    k += 1
                    if res is None:
                        continue
                    for entry_id, dist in res.pairs():
                        bank_id = self._entry_banks.get(entry_id)
                        info = self._bank_ok(bank_id, banks)
                        if info is None or dist > info.threshold("pdq"):
                            continue
                        if vi > 0 and not info.dihedral:
                            continue
                        if entry_id not in best or dist < best[entry_id].distance:
                            best[entry_id] = _Hit(
                                entry_id,
                                info.id,
                                "pdq",
                                dist,
                                value,
                                DIHEDRAL_NAMES[vi] if variants else None,
                            )
                out[i] = list(best.values())
            return out
        if signal_type == "vpdq":
            for i, value in enumerate(values):
                out[i] = self._vpdq_hits(vpdq_parse(value), value, banks)
        return out

    def _vpdq_hits(self, frames: list[VpdqFrame], query: str, banks: set[int] | None) -> list[_Hit]:
        usable = list(dict.fromkeys(f.pdq for f in frames if f.quality >= QUALITY_THRESHOLD))
        if not usable or not len(self._vpdq_frames):
            return []
        candidates: set[int] = set()
        for res in self._vpdq_frames.search(usable, FRAME_DISTANCE):
            candidates.update(
                self._vpdq_frame_entry[r] for r in res.ids.tolist() if r in self._vpdq_frame_entry
            )
        hits = []
        for entry_id in sorted(candidates):
            info = self._bank_ok(self._entry_banks.get(entry_id), banks)
            if info is None:
                continue
            m = vpdq_match(frames, self._vpdq_entries[entry_id])
            pct = info.threshold("vpdq")
            if m.is_match(pct, pct):
                hits.append(
                    _Hit(
                        entry_id,
                        info.id,
                        "vpdq",
                        m.distance,
                        query,
                        None,
                        {
                            "query_match_pct": round(m.query_pct, 2),
                            "target_match_pct": round(m.target_pct, 2),
                        },
                    )
                )
        return hits

    def _hydrate(self, groups: list[list[_Hit]]) -> list[list[Match]]:
        """Turn hits into matches (one database read for all of them), group by group."""
        ids = {h.entry_id for hits in groups for h in hits}
        records: dict[int, EntryRecord] = self.repo.records(ids) if ids else {}
        out = []
        for hits in groups:
            matches = []
            for h in hits:
                rec = records.get(h.entry_id)
                if rec is None:  # removed from the database since loading
                    continue
                info = self.banks.get(h.bank_id)
                if info is None:  # its bank was deleted meanwhile
                    continue
                value = rec.value if h.signal_type != "vpdq" else ""
                matches.append(
                    Match(
                        info.name,
                        info.kind,
                        h.entry_id,
                        rec.external_id,
                        rec.labels,
                        rec.source,
                        h.signal_type,
                        value,
                        h.distance,
                        h.query,
                        h.variant,
                        h.details,
                    )
                )
            matches.sort(key=lambda m: (m.distance, m.bank, m.entry_id))
            out.append(matches)
        return out

    def lookup(
        self,
        signal_type: str,
        values: Sequence[str],
        *,
        banks: Sequence[str] | None = None,
        tenant: str | None = None,
    ) -> list[MatchResult]:
        """Look up many values of one signal type; one :class:`MatchResult` per value.

        Values are normalised first (a bad value raises :class:`InvalidValue`).
        ``banks`` chooses block banks by name; ``tenant`` limits matching to the banks
        that tenant can see (its own and those shared with it).
        """
        sig = get_signal_type(signal_type)
        normalized = [sig.normalize(v) for v in values]
        wanted = self._allowed(banks, tenant)
        return [_suppress(m) for m in self._hydrate(self._hits(sig.name, normalized, wanted))]

    def match_content(
        self,
        hashes: ContentHashes,
        *,
        banks: Sequence[str] | None = None,
        tenant: str | None = None,
    ) -> MatchResult:
        """Every match of one hashed item (image or video), after negative suppression."""
        wanted = self._allowed(banks, tenant)
        hits: list[_Hit] = []
        for st in ("md5", "sha256"):
            hits.extend(self._hits(st, [getattr(hashes, st)], wanted)[0])
        notes = []
        if hashes.pdq is not None:
            if (hashes.pdq_quality or 0) < MIN_QUALITY:
                # flat, featureless pictures hash alike; PDQ matches on them are noise
                notes.append(
                    f"pdq quality {hashes.pdq_quality} is below {MIN_QUALITY}: not matched by pdq"
                )
            else:
                variants = [hashes.pdq_dihedral] if hashes.pdq_dihedral else None
                hits.extend(self._hits("pdq", [hashes.pdq], wanted, variants)[0])
        if hashes.vpdq is not None:
            hits.extend(self._vpdq_hits(hashes.vpdq, "", wanted))
        result = _suppress(self._hydrate([hits])[0])
        result.notes = notes
        return result


def _suppress(matches: list[Match]) -> MatchResult:
    negative = [m for m in matches if m.bank_kind == "negative"]
    if not negative:
        return MatchResult(matches=matches)
    negated = {m.signal_type for m in negative}
    kept = [m for m in matches if m.bank_kind != "negative" and m.signal_type not in negated]
    suppressed = [m for m in matches if m.bank_kind != "negative" and m.signal_type in negated]
    return MatchResult(matches=kept, suppressed=suppressed, negative=negative)
