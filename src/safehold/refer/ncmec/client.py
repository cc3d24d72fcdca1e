"""The CyberTipline Reporting API client: submit, upload, fileinfo, finish, retract.

NCMEC's API (https://report.cybertip.org/ispws/documentation) files a report in
steps, each a POST with HTTP Basic authentication:

1. ``/submit`` the ``report`` XML: NCMEC opens a report and answers its ``reportId``;
2. ``/upload`` each file (multipart ``id`` and ``file``): answers a ``fileId`` and the
   MD5 of the bytes received;
3. ``/fileinfo`` the ``fileDetails`` XML of each uploaded file;
4. ``/finish``: the report is filed (answer ``reportDoneResponse``).

``/retract`` cancels a report that is not finished. An unfinished report is not a
report: NCMEC deletes it 24 hours after it was opened or 1 hour after its last change.

:meth:`CyberTiplineClient.send` runs the steps with a :class:`~.journal.Journal` and
these retry rules:

* A request that provably never left (no connection could be made) is retried with
  backoff, whatever the step.
* ``fileinfo``, ``finish`` and ``retract`` are idempotent (a repeated finish is
  answered 5102 "Report already finished", taken as done): they are retried after
  timeouts, dropped connections and NCMEC server errors (1xxx).
* ``upload`` is retried after a server error (NCMEC says it stored nothing), but not
  after a lost answer: the file may be in the report, and a second copy would be
  filed with it. The report is retracted instead.
* ``submit`` reaches NCMEC at most once: it is retried only when no connection could
  be made. A lost answer leaves the journal ``submit_unknown``
  (:class:`~.errors.SubmitOutcomeUnknown`) until a person has checked with NCMEC; a
  refusal, even a server error, leaves it ``new``, for a later run.
* Any other failure after the submit retracts the report, so nothing half-made is
  filed; a finish that keeps failing with lost answers or server errors is left
  ``finishing``, to be sent again by the next run.
* When ``save`` raises, the error propagates and nothing more is sent. The stored
  journal is then at worst one step behind: on a step marked as sent, which the next
  run treats as of unknown outcome, or before a fileinfo, which it sends again.

Connections are not kept alive between requests, so a dropped connection never stems
from a stale pooled one.

Credentials come from the caller or the environment (:meth:`Credentials.from_env`),
never from the repository or the database.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import NoReturn
from urllib.parse import urlsplit

import httpx

from safehold.errors import InvalidValue
from safehold.refer.ncmec.errors import (
    CyberTiplineAuthError,
    CyberTiplineError,
    CyberTiplineForbidden,
    CyberTiplineServerError,
    CyberTiplineUnavailable,
    JournalMismatch,
    ReportAlreadyFinished,
    ReportAlreadyRetracted,
    ReportClosed,
    ReportNotFound,
    SubmitOutcomeUnknown,
    error_for_code,
)
from safehold.refer.ncmec.journal import FileRecord, FileStage, Journal, Phase
from safehold.refer.ncmec.model import CyberTiplineReport, ReportedFile
from safehold.refer.ncmec.xml import (
    MAX_RESPONSE_BYTES,
    InvalidDocument,
    Response,
    file_details_xml,
    parse_response,
    report_xml,
)

log = logging.getLogger("safehold.refer.ncmec")

TEST_URL = "https://exttest.cybertip.org/ispws"
"""NCMEC's test environment (reports there are never acted on)."""
PRODUCTION_URL = "https://report.cybertip.org/ispws"
"""NCMEC's production environment: reports there are real CyberTipline reports."""
ENVIRONMENTS = {"test": TEST_URL, "production": PRODUCTION_URL}

_XML = {"Content-Type": "text/xml; charset=utf-8"}
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
"""Transport errors raised before any byte of the request was written."""
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}

Save = Callable[[Journal], None]


@dataclass(frozen=True)
class Credentials:
    """The CyberTipline API username and password NCMEC issued (one pair for the test
    environment, another for production)."""

    username: str
    password: str = field(repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.username, str) or not self.username or ":" in self.username:
            raise InvalidValue("NCMEC username: must be given and contain no ':'", field="username")
        if not isinstance(self.password, str) or not self.password:
            raise InvalidValue("NCMEC password: must be given", field="password")
        for value in (self.username, self.password):
            if any(ord(c) < 32 or ord(c) == 127 for c in value):
                raise InvalidValue("NCMEC credentials: control characters are not allowed")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Credentials:
        """``SAFEHOLD_NCMEC_USERNAME`` and ``SAFEHOLD_NCMEC_PASSWORD``, or
        ``SAFEHOLD_NCMEC_PASSWORD_FILE`` (a file holding the password, e.g. a mounted
        secret; one trailing newline is ignored)."""
        env = os.environ if environ is None else environ
        username = env.get("SAFEHOLD_NCMEC_USERNAME", "")
        password = env.get("SAFEHOLD_NCMEC_PASSWORD", "")
        path = env.get("SAFEHOLD_NCMEC_PASSWORD_FILE", "")
        if not password and path:
            try:
                password = Path(path).read_text(encoding="utf-8").removesuffix("\n")
            except OSError as e:
                raise InvalidValue(
                    f"SAFEHOLD_NCMEC_PASSWORD_FILE: cannot read {path}: {e.strerror}"
                ) from None
        if not username or not password:
            raise InvalidValue(
                "NCMEC credentials: set SAFEHOLD_NCMEC_USERNAME and SAFEHOLD_NCMEC_PASSWORD "
                "(or SAFEHOLD_NCMEC_PASSWORD_FILE)"
            )
        return cls(username, password)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a step that may be repeated is tried: ``attempts``
    in all, waiting ``first_delay`` seconds, doubling to at most ``max_delay`` (each
    wait shortened by a random part of up to half, so clients do not retry in step)."""

    attempts: int = 4
    first_delay: float = 0.5
    max_delay: float = 8.0

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.first_delay < 0 or self.max_delay < self.first_delay:
            raise InvalidValue("RetryPolicy: attempts >= 1 and 0 <= first_delay <= max_delay")

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (0 for the first retry)."""
        full: float = min(self.max_delay, self.first_delay * 2**retry)
        return full * random.uniform(0.5, 1.0)


def check_base_url(url: str) -> str:
    """``url`` without a trailing slash; HTTPS required, except on this machine."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme == "https" and host:
        return url.rstrip("/")
    if parts.scheme == "http" and host in _LOOPBACK:
        return url.rstrip("/")
    raise InvalidValue(
        f"NCMEC base URL must be https:// (got {url!r}); the environments are "
        f"{TEST_URL} (test) and {PRODUCTION_URL} (production)",
        field="base_url",
    )


class CyberTiplineClient:
    """A client for one environment. The methods named after the endpoints send one
    request each and raise the typed errors of :mod:`safehold.refer.ncmec.errors`;
    :meth:`send` files a whole report, safely resumable.

    ``base_url`` defaults to NCMEC's **test** environment; production must be chosen
    (``base_url=PRODUCTION_URL`` or ``SAFEHOLD_NCMEC_ENVIRONMENT=production``).
    """

    def __init__(
        self,
        credentials: Credentials,
        *,
        base_url: str = TEST_URL,
        timeout: float = 60.0,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = check_base_url(base_url)
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._http = httpx.Client(
            auth=httpx.BasicAuth(credentials.username, credentials.password),
            timeout=httpx.Timeout(timeout, connect=min(timeout, 15.0)),
            limits=httpx.Limits(max_keepalive_connections=0),
            headers={"User-Agent": "safehold-cybertipline"},
            follow_redirects=False,
            transport=transport,
        )

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        timeout: float | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ) -> CyberTiplineClient:
        """A client configured from the environment: :meth:`Credentials.from_env`, and
        ``SAFEHOLD_NCMEC_ENVIRONMENT`` (``test``, the default, or ``production``) or
        ``SAFEHOLD_NCMEC_BASE_URL``; ``SAFEHOLD_NCMEC_TIMEOUT`` (seconds, default 60)."""
        env = os.environ if environ is None else environ
        base_url = env.get("SAFEHOLD_NCMEC_BASE_URL", "").strip()
        if not base_url:
            name = env.get("SAFEHOLD_NCMEC_ENVIRONMENT", "test").strip().lower() or "test"
            if name not in ENVIRONMENTS:
                raise InvalidValue(
                    f"SAFEHOLD_NCMEC_ENVIRONMENT: 'test' or 'production' (got {name!r})"
                )
            base_url = ENVIRONMENTS[name]
        if timeout is None:
            try:
                timeout = float(env.get("SAFEHOLD_NCMEC_TIMEOUT", "") or 60.0)
            except ValueError:
                raise InvalidValue("SAFEHOLD_NCMEC_TIMEOUT: a number of seconds") from None
        return cls(
            Credentials.from_env(env),
            base_url=base_url,
            timeout=timeout,
            retry=retry,
            sleep=sleep,
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> CyberTiplineClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # ------------------------------------------------------------- one request each

    def status(self) -> Response:
        """``GET /status``: can we connect and authenticate?"""
        return self._request("status", "GET", "status")

    def submit(self, report: bytes) -> Response:
        """``POST /submit`` a ``report`` document; the answer carries the ``report_id``."""
        return self._request("submit", "POST", "submit", content=report, headers=_XML)

    def upload(self, report_id: int, file_name: str, content: bytes) -> Response:
        """``POST /upload`` one file to an open report; answers ``file_id`` and ``hash``."""
        return self._request(
            "upload",
            "POST",
            "upload",
            data={"id": str(report_id)},
            files={"file": (file_name, content, "application/octet-stream")},
        )

    def fileinfo(self, file_details: bytes) -> Response:
        """``POST /fileinfo`` a ``fileDetails`` document."""
        return self._request("fileinfo", "POST", "fileinfo", content=file_details, headers=_XML)

    def finish(self, report_id: int) -> Response:
        """``POST /finish``: file the report. Answers ``reportDoneResponse``."""
        return self._request("finish", "POST", "finish", data={"id": str(report_id)})

    def retract(self, report_id: int) -> Response:
        """``POST /retract``: cancel an unfinished report (5102 once it is finished)."""
        return self._request("retract", "POST", "retract", data={"id": str(report_id)})

    def _request(
        self,
        step: str,
        method: str,
        path: str,
        *,
        content: bytes | None = None,
        data: dict[str, str] | None = None,
        files: dict[str, tuple[str, bytes, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        request = self._http.build_request(
            method,
            f"{self.base_url}/{path}",
            content=content,
            data=data,
            files=files,
            headers=headers,
        )
        try:
            response = self._http.send(request, stream=True)
            try:
                body = _read(response)
            finally:
                response.close()
        except _NOT_SENT as e:
            raise CyberTiplineUnavailable(
                f"{step}: could not connect to NCMEC ({type(e).__name__}: {e})",
                step=step,
                maybe_sent=False,
            ) from e
        except httpx.TransportError as e:
            raise CyberTiplineUnavailable(
                f"{step}: the request was sent but no answer came ({type(e).__name__}: {e})",
                step=step,
                maybe_sent=True,
            ) from e
        status = response.status_code
        try:
            answer = parse_response(body) if body is not None else None
        except InvalidDocument:
            answer = None
        if answer is None:
            if status == 401:
                raise CyberTiplineAuthError(
                    f"{step}: NCMEC refused the credentials (HTTP 401)",
                    step=step,
                    http_status=status,
                )
            if status == 403:
                raise CyberTiplineForbidden(
                    f"{step}: HTTP 403 from NCMEC", step=step, http_status=status
                )
            raise CyberTiplineUnavailable(
                f"{step}: HTTP {status} without a CyberTipline answer",
                step=step,
                http_status=status,
                maybe_sent=True,
            )
        if not answer.ok:
            raise error_for_code(
                answer.response_code, answer.description, step=step, http_status=status
            )
        if not 200 <= status < 300:
            raise CyberTiplineUnavailable(
                f"{step}: HTTP {status} with responseCode 0",
                step=step,
                http_status=status,
                maybe_sent=True,
            )
        return answer

    # ------------------------------------------------------------- the whole report

    def send(
        self, report: CyberTiplineReport, journal: Journal, *, save: Save | None = None
    ) -> int:
        """File ``report`` and return NCMEC's report id.

        ``journal`` records every step; ``save`` is called with it before each request
        that changes something at NCMEC and after each answer — store it (e.g.
        ``journal.to_json()`` on the referral) so that a later call with the stored
        journal and the same report resumes where this one stopped. Raises a
        :class:`~.errors.CyberTiplineError` when the report could not be filed; the
        journal then says why and what was done (``retracted``, ``submit_unknown``...).
        """
        store = save or _no_save
        self._bind(journal, report)
        if journal.phase is Phase.FINISHED:
            return _report_id(journal)
        if journal.phase in (Phase.RETRACTED, Phase.EXPIRED):
            raise ReportClosed(
                f"report {journal.report_id} was {journal.phase.value}: nothing was filed; "
                "start a new journal to report again",
                step="send",
            )
        if journal.phase in (Phase.SUBMITTING, Phase.SUBMIT_UNKNOWN):
            self._unknown_submit(journal, store)
        if journal.phase is Phase.RETRACTING:
            self._retract(journal, store)
            return self._after_retract(journal, None)
        if journal.phase is Phase.NEW:
            self._submit(journal, report, store)
        try:
            if journal.phase is Phase.OPEN:
                for record, file in zip(journal.files, report.files, strict=True):
                    if record.stage is FileStage.UPLOADING:
                        raise CyberTiplineUnavailable(
                            f"upload of {record.file_name}: an earlier run sent it and its answer "
                            "was lost; the file may be in the report once or not at all",
                            step="upload",
                            maybe_sent=True,
                        )
                    if record.stage is FileStage.PENDING:
                        self._upload(journal, record, file, store)
                    if record.stage is FileStage.UPLOADED:
                        self._fileinfo(journal, record, file, store)
                journal.phase = Phase.FINISHING
                journal.record("finish", "sending")
                store(journal)
            self._finish(journal, store)
        except CyberTiplineError as e:
            if journal.phase is Phase.FINISHING and e.retryable:
                # The report is complete and finish is safe to repeat: leave it to the
                # next run rather than retract it (NCMEC keeps it open for an hour).
                journal.error = str(e)
                journal.record("finish", "unconfirmed", str(e))
                store(journal)
                raise
            journal.error = str(e)
            self._retract(journal, store)
            return self._after_retract(journal, e)
        return _report_id(journal)

    def _after_retract(self, journal: Journal, error: CyberTiplineError | None) -> int:
        """The report id if the retract found the report filed after all; otherwise
        ``error`` (or, resuming, what the journal says) is raised."""
        if journal.phase is Phase.FINISHED:
            return _report_id(journal)
        if error is not None:
            raise error
        if journal.phase is Phase.RETRACTING:
            raise CyberTiplineUnavailable(
                f"report {journal.report_id}: the retract is still unconfirmed ({journal.error})",
                step="retract",
                maybe_sent=True,
            )
        raise ReportClosed(
            f"report {journal.report_id} was {journal.phase.value} after: {journal.error}",
            step="send",
        )

    def _bind(self, journal: Journal, report: CyberTiplineReport) -> None:
        if journal.base_url is None:
            journal.base_url = self.base_url
        elif journal.base_url != self.base_url:
            raise JournalMismatch(
                f"this journal belongs to {journal.base_url}, not {self.base_url}: a report id "
                "is only meaningful in its own environment"
            )
        expected = [(f.file_name, f.sha256) for f in report.files]
        if not journal.files and journal.phase is Phase.NEW:
            journal.files = [FileRecord(name, digest) for name, digest in expected]
        elif [(r.file_name, r.sha256) for r in journal.files] != expected:
            raise JournalMismatch("this journal was started for other files than this report's")

    def _attempt(
        self,
        step: str,
        call: Callable[[], Response],
        *,
        repeatable: bool,
        retry_server_errors: bool = True,
    ) -> Response:
        """``call`` with retries: always after a request that never left; after a lost
        answer only when ``repeatable``; after an NCMEC server error when
        ``retry_server_errors``."""
        last: CyberTiplineError | None = None
        for attempt in range(self.retry.attempts):
            if last is not None:
                wait = self.retry.delay(attempt - 1)
                log.info("retrying CyberTipline %s in %.1fs after: %s", step, wait, last)
                self._sleep(wait)
            try:
                return call()
            except CyberTiplineUnavailable as e:
                if e.maybe_sent and not repeatable:
                    raise
                last = e
            except CyberTiplineServerError as e:
                if not retry_server_errors:
                    raise
                last = e
        assert last is not None
        raise last

    def _unknown_submit(self, journal: Journal, store: Save) -> NoReturn:
        journal.phase = Phase.SUBMIT_UNKNOWN
        store(journal)
        raise SubmitOutcomeUnknown(
            "a submit was sent but its answer never arrived: NCMEC may have opened a report. "
            "It is not submitted again automatically. Ask NCMEC whether a report was opened "
            "(an unfinished one is deleted within 24 hours), then call "
            "journal.resolve_unknown_submit(report_id or None)",
            step="submit",
        )

    def _submit(self, journal: Journal, report: CyberTiplineReport, store: Save) -> None:
        document = report_xml(report)  # a report the schema rejects fails here, unsent
        journal.phase = Phase.SUBMITTING
        journal.error = None
        journal.record("submit", "sending")
        store(journal)
        try:
            answer = self._attempt(
                "submit", lambda: self.submit(document), repeatable=False, retry_server_errors=False
            )
        except CyberTiplineUnavailable as e:
            journal.error = str(e)
            if e.maybe_sent:
                journal.record("submit", "unknown", str(e))
                self._unknown_submit(journal, store)
            journal.phase = Phase.NEW
            journal.record("submit", "not sent", str(e))
            store(journal)
            raise
        except CyberTiplineError as e:
            journal.phase = Phase.NEW
            journal.error = str(e)
            journal.record("submit", "refused", str(e))
            store(journal)
            raise
        if answer.report_id is None:
            journal.record("submit", "unknown", "success without a reportId")
            self._unknown_submit(journal, store)
        journal.report_id = answer.report_id
        journal.phase = Phase.OPEN
        journal.record("submit", "opened", f"report {answer.report_id}")
        store(journal)

    def _upload(
        self, journal: Journal, record: FileRecord, file: ReportedFile, store: Save
    ) -> None:
        report_id = _report_id(journal)
        record.stage = FileStage.UPLOADING
        journal.record("upload", "sending", record.file_name)
        store(journal)
        try:
            answer = self._attempt(
                "upload",
                lambda: self.upload(report_id, file.file_name, file.content),
                repeatable=False,
            )
        except CyberTiplineUnavailable as e:
            if not e.maybe_sent:
                record.stage = FileStage.PENDING
            raise
        except CyberTiplineError:
            record.stage = FileStage.PENDING  # NCMEC answered: nothing was stored
            raise
        if not answer.file_id:
            raise CyberTiplineUnavailable(
                "upload: answer without a fileId", step="upload", maybe_sent=True
            )
        record.file_id = answer.file_id
        record.md5 = answer.hash
        record.stage = FileStage.UPLOADED
        journal.record("upload", "uploaded", f"{record.file_name} as {answer.file_id}")
        store(journal)
        if answer.hash is not None and answer.hash.lower() != file.md5:
            raise CyberTiplineError(
                f"upload of {file.file_name}: NCMEC received other bytes "
                f"(MD5 {answer.hash}, sent {file.md5})",
                step="upload",
            )

    def _fileinfo(
        self, journal: Journal, record: FileRecord, file: ReportedFile, store: Save
    ) -> None:
        assert record.file_id is not None
        document = file_details_xml(_report_id(journal), record.file_id, file)
        self._attempt("fileinfo", lambda: self.fileinfo(document), repeatable=True)
        record.stage = FileStage.DESCRIBED
        journal.record("fileinfo", "described", record.file_name)
        store(journal)

    def _finish(self, journal: Journal, store: Save) -> None:
        report_id = _report_id(journal)
        try:
            answer = self._attempt("finish", lambda: self.finish(report_id), repeatable=True)
        except ReportAlreadyFinished:
            journal.record(
                "finish", "finished", "NCMEC: report already finished (an earlier finish arrived)"
            )
        else:
            journal.filed_file_ids = list(answer.file_ids)
            journal.record("finish", "finished", f"files {', '.join(answer.file_ids) or 'none'}")
        journal.phase = Phase.FINISHED
        journal.error = None
        store(journal)
        log.info("CyberTipline report %s filed at %s", report_id, self.base_url)

    def _retract(self, journal: Journal, store: Save) -> None:
        report_id = _report_id(journal)
        journal.phase = Phase.RETRACTING
        journal.record("retract", "sending", journal.error or "")
        store(journal)
        try:
            self._attempt("retract", lambda: self.retract(report_id), repeatable=True)
            journal.phase = Phase.RETRACTED
            journal.record("retract", "retracted")
        except ReportAlreadyRetracted:
            journal.phase = Phase.RETRACTED
            journal.record("retract", "retracted", "NCMEC: already retracted")
        except ReportNotFound:
            journal.phase = Phase.EXPIRED
            journal.record("retract", "expired", "NCMEC no longer knows the report")
        except ReportAlreadyFinished:
            journal.phase = Phase.FINISHED
            journal.record(
                "retract", "finished", "NCMEC: the report had been finished; it is filed"
            )
        except CyberTiplineError as e:
            journal.record(
                "retract", "failed", f"{e}; NCMEC deletes an unfinished report within 24 hours"
            )
            log.warning("could not retract CyberTipline report %s: %s", report_id, e)
        store(journal)


def _report_id(journal: Journal) -> int:
    if journal.report_id is None:
        raise InvalidValue(
            f"journal in phase {journal.phase.value!r} has no report_id", field="report_id"
        )
    return journal.report_id


def _no_save(journal: Journal) -> None:
    return None


def _read(response: httpx.Response) -> bytes | None:
    """The body, or None past :data:`MAX_RESPONSE_BYTES` (not NCMEC's answer)."""
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
