"""Import and export formats for bank entries.

Formats (``FORMATS``):

``jsonl``
    One JSON object per line: ``{"signal_type", "value", "labels", "source",
    "external_id", "note"}``; ``labels`` is a list (a ``|``-joined string is accepted).
``csv``
    Header ``signal_type,value,labels,source,external_id`` (``note`` optional), labels
    joined by ``|``.
``pytx-csv``
    python-threatexchange ``threatexchange dataset -P --csv``: header
    ``signal_type,signal_str,collab,category,tags`` (tags space-separated).
``pytx-lines``
    python-threatexchange's local file exchange (and HMA's file fetcher): one
    ``signal_type signal`` per line.
``te-csv``
    ``threatexchange api fb_threatexchange query`` output: header
    ``id,indicator,type,status,tags,owner_id`` with ThreatExchange indicator types
    (``HASH_PDQ``, ``HASH_MD5``, ``URI``, ...).

Signal type names of python-threatexchange and ThreatExchange (``video_md5``,
``HASH_PDQ``, ...) are mapped to ours. Tags that are known taxonomy labels become
labels; other tags are kept in the entry's note. Every row is validated; a bad row
is reported with its line number and nothing is imported unless the caller chooses
to skip bad rows.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from safehold.banks.entries import EntryInput, EntryRecord, make_entry
from safehold.errors import InvalidValue, SafeholdError
from safehold.taxonomy import LABELS, normalize_label

FORMATS = ("jsonl", "csv", "pytx-csv", "pytx-lines", "te-csv")
EXPORT_FORMATS = ("jsonl", "csv", "pytx-lines")
MAX_LINE = 1_000_000
MAX_REPORTED_ERRORS = 1000

SIGNAL_ALIASES = {
    "pdq": "pdq",
    "photo_pdq": "pdq",
    "hash_pdq": "pdq",
    "md5": "md5",
    "video_md5": "md5",
    "photo_md5": "md5",
    "hash_md5": "md5",
    "hash_video_md5": "md5",
    "sha256": "sha256",
    "video_sha256": "sha256",
    "hash_sha256": "sha256",
    "vpdq": "vpdq",
    "video_vpdq": "vpdq",
    "hash_vpdq": "vpdq",
    "url": "url",
    "uri": "url",
}

csv.field_size_limit(MAX_LINE)

_UNDECODABLE = re.compile("[\udc80-\udcff]")
"""Bytes that were not UTF-8, as ``surrogateescape`` decoding leaves them."""


@dataclass(frozen=True)
class RowError:
    line: int
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"line": self.line, "error": self.message}


@dataclass
class ParseResult:
    """Entries read from a file, and the rows that could not be read."""

    format: str
    entries: list[EntryInput] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    error_count: int = 0
    rows: int = 0

    def add_error(self, line: int, message: str) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(RowError(line, message))


def signal_name(raw: str) -> str:
    key = raw.strip().lower()
    try:
        return SIGNAL_ALIASES[key]
    except KeyError:
        raise InvalidValue(
            f"unsupported signal type {raw.strip()[:40]!r}; supported: "
            f"{', '.join(sorted(set(SIGNAL_ALIASES.values())))}"
        ) from None


def _split_tags(tags: Iterable[str]) -> tuple[list[str], list[str]]:
    labels: list[str] = []
    other: list[str] = []
    for tag in tags:
        t = tag.strip()
        if not t:
            continue
        try:
            labels.append(normalize_label(t))
        except SafeholdError:
            other.append(t)
    return labels, other


def detect_format(head: str, filename: str = "") -> str:
    """Guess the format from the first non-empty line that is not a ``#`` comment
    (and the file name)."""
    first = next(
        (t for t in (line.strip() for line in head.splitlines()) if t and not t.startswith("#")), ""
    )
    if first.startswith("{") or filename.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    cols = [c.strip().lower() for c in next(csv.reader([first]), [])] if first else []
    if "signal_str" in cols:
        return "pytx-csv"
    if "indicator" in cols and "type" in cols:
        return "te-csv"
    if "signal_type" in cols and "value" in cols:
        return "csv"
    parts = first.split(None, 1)
    if len(parts) == 2 and parts[0].lower() in SIGNAL_ALIASES:
        return "pytx-lines"
    raise InvalidValue(
        f"cannot tell the file's format from its first line; pass --format ({', '.join(FORMATS)})"
    )


def parse(
    stream: IO[str],
    fmt: str = "auto",
    *,
    filename: str = "",
    source: str | None = None,
    default_labels: list[str] | None = None,
    default_signal_type: str | None = None,
) -> ParseResult:
    """Read entries from a text stream. ``source``/``default_labels`` fill rows that
    have none; ``default_signal_type`` is for ``pytx-lines`` rows without a type."""
    lines: Iterable[str] = stream
    if fmt == "auto":
        head = stream.read(64 * 1024)
        if head and not head.endswith("\n"):
            head += stream.readline()  # finish the line the read cut
        fmt = detect_format(head, filename)
        lines = itertools.chain(io.StringIO(head, newline=""), stream)
    if fmt not in FORMATS:
        raise InvalidValue(f"unknown format {fmt[:40]!r}; use one of: {', '.join(FORMATS)}")
    result = ParseResult(fmt)
    reader = {
        "jsonl": _jsonl_rows,
        "csv": _csv_rows,
        "pytx-csv": _pytx_csv_rows,
        "pytx-lines": _pytx_line_rows,
        "te-csv": _te_csv_rows,
    }[fmt]
    defaults: dict[str, Any] = {
        "source": source,
        "labels": default_labels,
        "signal_type": default_signal_type,
    }
    for line, row in reader(lines, result, defaults):
        try:
            labels: list[str] = row.get("labels") or defaults["labels"] or []
            source_: str | None = row.get("source") or defaults["source"]
            result.entries.append(
                make_entry(
                    row["signal_type"],
                    row["value"],
                    labels,
                    source_,
                    row.get("external_id"),
                    row.get("note"),
                )
            )
        except SafeholdError as e:
            result.add_error(line, e.message)
        except (KeyError, TypeError, ValueError) as e:
            result.add_error(line, f"malformed row ({e})")
    result.rows = len(result.entries) + result.error_count
    return result


def parse_path(path: Path, fmt: str = "auto", **kwargs: Any) -> ParseResult:
    """Read a file. A UTF-8 byte-order mark is skipped; a line that is not UTF-8 is a
    bad row (reported with its number), not the end of the import."""
    try:
        with open(path, encoding="utf-8-sig", errors="surrogateescape", newline="") as f:
            return parse(f, fmt, filename=path.name, **kwargs)
    except OSError as e:
        raise InvalidValue(f"{path} cannot be read: {e.strerror or e}") from e


def _lines(stream: Iterable[str], result: ParseResult) -> Iterator[tuple[int, str]]:
    for n, line in enumerate(stream, start=1):
        if len(line) > MAX_LINE:
            result.add_error(n, f"line is longer than {MAX_LINE} characters")
            continue
        if "\x00" in line:
            result.add_error(n, "line contains a NUL character")
            continue
        if _UNDECODABLE.search(line):
            result.add_error(n, "line is not valid UTF-8 text")
            continue
        yield n, line


def _jsonl_rows(
    stream: Iterable[str], result: ParseResult, defaults: dict[str, Any]
) -> Iterator[tuple[int, dict[str, Any]]]:
    for n, line in _lines(stream, result):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as e:
            result.add_error(n, f"not valid JSON ({e.args[0][:80]})")
            continue
        except RecursionError:
            result.add_error(n, "not valid JSON (nested too deeply)")
            continue
        if not isinstance(obj, dict):
            result.add_error(n, "each line must be a JSON object")
            continue
        labels = obj.get("labels")
        if isinstance(labels, str):
            labels = [x for x in labels.split("|") if x]
        if "signal_type" not in obj or "value" not in obj:
            result.add_error(n, "missing 'signal_type' or 'value'")
            continue
        try:
            st = signal_name(str(obj["signal_type"]))
        except SafeholdError as e:
            result.add_error(n, e.message)
            continue
        for key in ("source", "external_id", "note"):
            if obj.get(key) is not None and not isinstance(obj[key], str | int):
                result.add_error(n, f"'{key}' must be text")
                break
        else:
            ext = obj.get("external_id")
            yield (
                n,
                {
                    "signal_type": st,
                    "value": obj["value"],
                    "labels": labels,
                    "source": obj.get("source"),
                    "external_id": None if ext is None else str(ext),
                    "note": None if obj.get("note") is None else str(obj["note"]),
                },
            )


def _csv_dicts(
    stream: Iterable[str], result: ParseResult, required: tuple[str, ...]
) -> Iterator[tuple[int, dict[str, str]]]:
    lines = _lines(stream, result)
    numbered: list[int] = []

    def feed() -> Iterator[str]:
        for n, line in lines:
            numbered.append(n)
            yield line

    reader = csv.reader(feed())
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        return
    except csv.Error as e:
        raise InvalidValue(f"cannot read the CSV header: {e}") from e
    missing = [c for c in required if c not in header]
    if missing:
        raise InvalidValue(
            f"the CSV header lacks column(s) {', '.join(missing)}; expected {','.join(required)}"
        )
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            result.add_error(numbered[-1] if numbered else 0, f"malformed CSV ({e})")
            continue
        n = numbered[-1] if numbered else 0
        if not any(c.strip() for c in row):
            continue
        if len(row) != len(header):
            result.add_error(n, f"expected {len(header)} columns, found {len(row)}")
            continue
        yield n, dict(zip(header, row, strict=True))


def _csv_rows(
    stream: Iterable[str], result: ParseResult, defaults: dict[str, Any]
) -> Iterator[tuple[int, dict[str, Any]]]:
    for n, row in _csv_dicts(stream, result, ("signal_type", "value")):
        try:
            st = signal_name(row["signal_type"])
        except SafeholdError as e:
            result.add_error(n, e.message)
            continue
        raw_labels = row.get("labels")
        yield (
            n,
            {
                "signal_type": st,
                "value": row["value"],
                "labels": None
                if raw_labels is None
                else [x for x in raw_labels.split("|") if x.strip()],
                "source": row.get("source") or None,
                "external_id": row.get("external_id") or None,
                "note": row.get("note") or None,
            },
        )


def _te_row(
    signal_type: str,
    value: str,
    tags: str | None,
    notes: list[tuple[str, str | None]],
    defaults: dict[str, Any],
    external_id: str | None = None,
) -> dict[str, Any]:
    """A ThreatExchange-style row: known tags become labels, the rest goes in the note."""
    labels, other = _split_tags((tags or "").split())
    parts = [f"{key}: {text}" for key, text in notes if text]
    if other:
        parts.append(f"tags: {' '.join(other)}")
    return {
        "signal_type": signal_type,
        "value": value,
        "labels": labels or None,
        "source": defaults["source"] or "threatexchange",
        "external_id": external_id or None,
        "note": "; ".join(parts) or None,
    }


def _pytx_csv_rows(
    stream: Iterable[str], result: ParseResult, defaults: dict[str, Any]
) -> Iterator[tuple[int, dict[str, Any]]]:
    for n, row in _csv_dicts(stream, result, ("signal_type", "signal_str")):
        try:
            st = signal_name(row["signal_type"])
        except SafeholdError as e:
            result.add_error(n, e.message)
            continue
        notes = [("collab", row.get("collab")), ("category", row.get("category"))]
        yield n, _te_row(st, row["signal_str"], row.get("tags"), notes, defaults)


def _pytx_line_rows(
    stream: Iterable[str], result: ParseResult, defaults: dict[str, Any]
) -> Iterator[tuple[int, dict[str, Any]]]:
    for n, line in _lines(stream, result):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        st_raw, _, value = text.partition(" ")
        if not value and defaults["signal_type"]:
            st_raw, value = defaults["signal_type"], st_raw
        try:
            st = signal_name(st_raw)
        except SafeholdError as e:
            result.add_error(n, e.message)
            continue
        yield n, {"signal_type": st, "value": value.strip()}


def _te_csv_rows(
    stream: Iterable[str], result: ParseResult, defaults: dict[str, Any]
) -> Iterator[tuple[int, dict[str, Any]]]:
    for n, row in _csv_dicts(stream, result, ("indicator", "type")):
        try:
            st = signal_name(row["type"])
        except SafeholdError as e:
            result.add_error(n, e.message)
            continue
        notes = [("status", row.get("status")), ("owner", row.get("owner_id"))]
        yield n, _te_row(st, row["indicator"], row.get("tags"), notes, defaults, row.get("id"))


def write(records: Iterable[EntryRecord], out: IO[str], fmt: str = "jsonl") -> int:
    """Write entries; every format here reads back with :func:`parse`. Returns the count."""
    if fmt not in EXPORT_FORMATS:
        raise InvalidValue(
            f"cannot export as {fmt[:40]!r}; use one of: {', '.join(EXPORT_FORMATS)}"
        )
    n = 0
    if fmt == "csv":
        w = csv.writer(out, lineterminator="\n")
        w.writerow(["signal_type", "value", "labels", "source", "external_id", "note", "added_at"])
        for r in records:
            w.writerow(
                [
                    r.signal_type,
                    r.value,
                    "|".join(r.labels),
                    r.source,
                    r.external_id or "",
                    r.note or "",
                    r.added_at.isoformat(),
                ]
            )
            n += 1
        return n
    for r in records:
        if fmt == "jsonl":
            obj = {
                "signal_type": r.signal_type,
                "value": r.value,
                "labels": r.labels,
                "source": r.source,
                "external_id": r.external_id,
                "note": r.note,
                "added_at": r.added_at.isoformat(),
            }
            out.write(json.dumps(obj, ensure_ascii=False) + "\n")
        else:
            out.write(f"{_PYTX_NAMES.get(r.signal_type, r.signal_type)} {r.value}\n")
        n += 1
    return n


_PYTX_NAMES = {"md5": "video_md5", "sha256": "video_sha256"}
"""python-threatexchange's names for our exact digests (it has no photo MD5 type)."""

KNOWN_LABELS = tuple(LABELS)
