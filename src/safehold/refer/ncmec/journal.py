"""The journal of one CyberTipline submission: what was sent, what NCMEC confirmed.

A report is filed in steps (submit, upload and fileinfo for each file, finish), and a
process can stop between any two. The client writes the journal *before* each request
that changes something at NCMEC and again when the answer arrives, through the
``save`` callback the caller gives it; the caller stores it (it is JSON, see
:meth:`Journal.to_json`) with the case or referral. Given the stored journal again,
the client continues from the last confirmed step and never repeats a step whose
outcome it cannot know:

* ``phase`` ``submitting`` found on resume means a submit may have reached NCMEC with
  its answer lost. That becomes ``submit_unknown``: nothing is submitted again until
  a person has asked NCMEC and called :meth:`Journal.resolve_unknown_submit`.
* A file ``uploading`` on resume may or may not be in the report; the report is
  retracted (an unfinished report is not a filed one) rather than risk a file twice.
* ``finishing`` on resume is safe to repeat: NCMEC answers 5102 "Report already
  finished" to a second finish, which the client takes as done.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

from safehold.errors import InvalidValue, preview

S = TypeVar("S", bound=StrEnum)

JOURNAL_VERSION = 1
EVENT_LIMIT = 200
"""Most events kept; the oldest go first (the first events are kept too: see ``record``)."""


class Phase(StrEnum):
    """Where the submission stands."""

    NEW = "new"
    """Nothing is open at NCMEC (nothing sent yet, or a submit NCMEC refused)."""
    SUBMITTING = "submitting"
    """A submit is being sent; its answer is not recorded yet."""
    SUBMIT_UNKNOWN = "submit_unknown"
    """A submit was sent and its answer lost: a person must check with NCMEC."""
    OPEN = "open"
    """NCMEC opened report ``report_id``; files are being added."""
    FINISHING = "finishing"
    """Finish is being sent (safe to send again)."""
    FINISHED = "finished"
    """Filed: the report is with NCMEC."""
    RETRACTING = "retracting"
    """A retract is being sent (after a failure), not yet confirmed."""
    RETRACTED = "retracted"
    """The report was retracted: nothing was filed."""
    EXPIRED = "expired"
    """NCMEC no longer knows the open report (it deletes unfinished reports): nothing
    was filed."""


class FileStage(StrEnum):
    PENDING = "pending"
    UPLOADING = "uploading"
    """Upload sent, answer not recorded: if found on resume, the file may be in the report."""
    UPLOADED = "uploaded"
    DESCRIBED = "described"
    """fileinfo confirmed."""


@dataclass
class FileRecord:
    """One file of the report: which bytes (``sha256``), and how far it got."""

    file_name: str
    sha256: str
    stage: FileStage = FileStage.PENDING
    file_id: str | None = None
    md5: str | None = None
    """The MD5 NCMEC computed of the bytes it received."""


@dataclass
class Event:
    at: str
    step: str
    outcome: str
    detail: str = ""


@dataclass
class Journal:
    """The state of one submission; JSON-serialisable (``to_dict``/``to_json``).

    Make an empty ``Journal()`` for a new report; the client binds it to its base URL
    (test or production) and to the report's files on first use, and refuses to use
    it with another environment or other files.
    """

    base_url: str | None = None
    phase: Phase = Phase.NEW
    report_id: int | None = None
    files: list[FileRecord] = field(default_factory=list)
    filed_file_ids: list[str] = field(default_factory=list)
    """The file ids NCMEC's answer to finish listed."""
    error: str | None = None
    """The last error, in words."""
    events: list[Event] = field(default_factory=list)
    version: int = JOURNAL_VERSION

    @property
    def filed(self) -> bool:
        """True once NCMEC confirmed the report finished."""
        return self.phase is Phase.FINISHED

    @property
    def closed(self) -> bool:
        """True when nothing more will happen: filed, retracted or expired."""
        return self.phase in (Phase.FINISHED, Phase.RETRACTED, Phase.EXPIRED)

    def record(self, step: str, outcome: str, detail: str = "") -> None:
        self.events.append(
            Event(datetime.now(UTC).isoformat(timespec="seconds"), step, outcome, detail[:500])
        )
        if len(self.events) > EVENT_LIMIT:
            del self.events[10 : len(self.events) - EVENT_LIMIT + 10]

    def resolve_unknown_submit(self, report_id: int | None, *, by: str) -> None:
        """After a lost submit answer, record what NCMEC said: the ``report_id`` it
        opened (the client then continues with that report: uploads, details, finish;
        or retracts it if that fails), or None when no report was opened or the
        unfinished one has expired (the next run submits again). ``by`` names who
        checked, for the record."""
        if self.phase not in (Phase.SUBMIT_UNKNOWN, Phase.SUBMITTING):
            raise InvalidValue(
                f"resolve_unknown_submit: the journal is {self.phase.value!r}, "
                "not 'submit_unknown'",
                field="phase",
            )
        if report_id is not None and (
            isinstance(report_id, bool) or not isinstance(report_id, int) or report_id < 1
        ):
            raise InvalidValue(
                "resolve_unknown_submit: report_id must be a positive number "
                f"(got {preview(report_id)})"
            )
        self.report_id = report_id
        self.phase = Phase.NEW if report_id is None else Phase.OPEN
        self.error = None
        self.record(
            "submit",
            "resolved",
            f"by {by}: " + ("no report" if report_id is None else f"report {report_id}"),
        )

    # ------------------------------------------------------------- serialising

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only (enums as their string values)."""
        out: dict[str, Any] = json.loads(json.dumps(asdict(self)))
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> Journal:
        try:
            data = json.loads(text)
        except ValueError as e:
            raise InvalidValue(f"journal: not JSON ({e})") from None
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: object) -> Journal:
        """A journal from stored data, checked field by field (InvalidValue if bad)."""
        d = _mapping(data, "journal")
        if d.get("version") != JOURNAL_VERSION:
            raise InvalidValue(
                f"journal: version {preview(d.get('version'))} is not {JOURNAL_VERSION}"
            )
        files = [_file(f, i) for i, f in enumerate(_list(d.get("files", []), "journal.files"))]
        events = [_event(e) for e in _list(d.get("events", []), "journal.events")]
        report_id = d.get("report_id")
        if report_id is not None and (
            isinstance(report_id, bool) or not isinstance(report_id, int)
        ):
            raise InvalidValue(f"journal.report_id: not a number ({preview(report_id)})")
        journal = cls(
            base_url=_opt_str(d.get("base_url"), "journal.base_url"),
            phase=_choice(Phase, d.get("phase"), "journal.phase"),
            report_id=report_id,
            files=files,
            filed_file_ids=[
                _str(x, "journal.filed_file_ids")
                for x in _list(d.get("filed_file_ids", []), "journal.filed_file_ids")
            ],
            error=_opt_str(d.get("error"), "journal.error"),
            events=events,
        )
        needs_id = journal.phase not in (Phase.NEW, Phase.SUBMITTING, Phase.SUBMIT_UNKNOWN)
        if needs_id and journal.report_id is None and journal.phase is not Phase.EXPIRED:
            raise InvalidValue(f"journal: phase {journal.phase.value!r} without a report_id")
        return journal


def _mapping(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidValue(f"{where}: not an object ({preview(value)})")
    return value


def _list(value: object, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise InvalidValue(f"{where}: not a list ({preview(value)})")
    return value


def _str(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise InvalidValue(f"{where}: not text ({preview(value)})")
    return value


def _opt_str(value: object, where: str) -> str | None:
    return None if value is None else _str(value, where)


def _choice(kind: type[S], value: object, where: str) -> S:
    try:
        return kind(_str(value, where))
    except ValueError:
        raise InvalidValue(f"{where}: unknown value {preview(value)}") from None


def _file(value: object, i: int) -> FileRecord:
    d = _mapping(value, f"journal.files[{i}]")
    where = f"journal.files[{i}]"
    return FileRecord(
        file_name=_str(d.get("file_name"), f"{where}.file_name"),
        sha256=_str(d.get("sha256"), f"{where}.sha256"),
        stage=_choice(FileStage, d.get("stage"), f"{where}.stage"),
        file_id=_opt_str(d.get("file_id"), f"{where}.file_id"),
        md5=_opt_str(d.get("md5"), f"{where}.md5"),
    )


def _event(value: object) -> Event:
    d = _mapping(value, "journal.events[]")
    return Event(
        at=_str(d.get("at"), "journal.events[].at"),
        step=_str(d.get("step"), "journal.events[].step"),
        outcome=_str(d.get("outcome"), "journal.events[].outcome"),
        detail=_str(d.get("detail", ""), "journal.events[].detail"),
    )
