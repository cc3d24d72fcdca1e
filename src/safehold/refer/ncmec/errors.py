"""Typed errors for NCMEC's response codes, and for answers that never came.

Every non-zero ``responseCode`` NCMEC documents maps to one class below (the list in
NCMEC's documentation is explicitly non-exhaustive, so an undocumented code maps by
its thousands: 1xxx server, 2xxx authentication, 3xxx authorization, 4xxx invalid
request, 5xxx state of the report). ``retryable`` says whether sending the same
request again may succeed.

=====  ==============================================  ===============================
code   NCMEC's description                             class
=====  ==============================================  ===============================
1000   Server error                                    :class:`CyberTiplineServerError`
1100   Save failed                                     :class:`CyberTiplineServerError`
1110   Upload failed                                   :class:`CyberTiplineServerError`
1111   File upload failed                              :class:`CyberTiplineServerError`
1210   Resource not found                              :class:`CyberTiplineNotFound`
1300   Update failed                                   :class:`CyberTiplineServerError`
2000   Authentication required                         :class:`CyberTiplineAuthError`
3000   User is not authorized to perform this action   :class:`CyberTiplineForbidden`
3100   ... to make submissions                         :class:`CyberTiplineForbidden`
3300   ... to make updates                             :class:`CyberTiplineForbidden`
4000   Invalid request                                 :class:`CyberTiplineRejected`
4100   Validation failed                               :class:`CyberTiplineRejected`
4110   Malformed XML submittal                         :class:`CyberTiplineRejected`
4200   Malformed file submittal                        :class:`CyberTiplineRejected`
5001   Report does not exist                           :class:`ReportNotFound`
5002   File does not exist                             :class:`FileNotFound`
5101   Report already retracted                        :class:`ReportAlreadyRetracted`
5102   Report already finished                         :class:`ReportAlreadyFinished`
=====  ==============================================  ===============================
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any, ClassVar

from safehold.errors import InvalidValue, SafeholdError


class ResponseCode(IntEnum):
    """``responseCode`` values documented by NCMEC (0 is success)."""

    SUCCESS = 0
    SERVER_ERROR = 1000
    SAVE_FAILED = 1100
    UPLOAD_FAILED = 1110
    FILE_UPLOAD_FAILED = 1111
    RESOURCE_NOT_FOUND = 1210
    UPDATE_FAILED = 1300
    AUTHENTICATION_REQUIRED = 2000
    NOT_AUTHORIZED = 3000
    NOT_AUTHORIZED_SUBMISSIONS = 3100
    NOT_AUTHORIZED_UPDATES = 3300
    INVALID_REQUEST = 4000
    VALIDATION_FAILED = 4100
    MALFORMED_XML = 4110
    MALFORMED_FILE = 4200
    REPORT_NOT_FOUND = 5001
    FILE_NOT_FOUND = 5002
    REPORT_ALREADY_RETRACTED = 5101
    REPORT_ALREADY_FINISHED = 5102


DESCRIPTIONS: dict[ResponseCode, str] = {
    ResponseCode.SUCCESS: "Success",
    ResponseCode.SERVER_ERROR: "Server error",
    ResponseCode.SAVE_FAILED: "Save failed",
    ResponseCode.UPLOAD_FAILED: "Upload failed",
    ResponseCode.FILE_UPLOAD_FAILED: "File upload failed",
    ResponseCode.RESOURCE_NOT_FOUND: "Resource not found",
    ResponseCode.UPDATE_FAILED: "Update failed",
    ResponseCode.AUTHENTICATION_REQUIRED: "Authentication required",
    ResponseCode.NOT_AUTHORIZED: "User is not authorized to perform this action",
    ResponseCode.NOT_AUTHORIZED_SUBMISSIONS: "User does not have authorization to make submissions",
    ResponseCode.NOT_AUTHORIZED_UPDATES: "User does not have authorization to make updates",
    ResponseCode.INVALID_REQUEST: "Invalid request",
    ResponseCode.VALIDATION_FAILED: "Validation failed",
    ResponseCode.MALFORMED_XML: "Malformed XML submittal",
    ResponseCode.MALFORMED_FILE: "Malformed file submittal",
    ResponseCode.REPORT_NOT_FOUND: "Report does not exist",
    ResponseCode.FILE_NOT_FOUND: "File does not exist",
    ResponseCode.REPORT_ALREADY_RETRACTED: "Report already retracted",
    ResponseCode.REPORT_ALREADY_FINISHED: "Report already finished",
}
"""NCMEC's own description of each documented code."""


class CyberTiplineError(SafeholdError):
    """NCMEC answered with an error, or did not answer usably.

    ``step`` is the API call (``submit``, ``upload``, ``fileinfo``, ``finish``,
    ``retract``, ``status``); ``response_code`` NCMEC's code (None without one);
    ``http_status`` the HTTP status (None without an answer).
    """

    code = "cybertipline_error"
    status = 502
    retryable: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        step: str,
        response_code: int | None = None,
        description: str | None = None,
        http_status: int | None = None,
        **details: Any,
    ) -> None:
        super().__init__(
            message,
            step=step,
            response_code=response_code,
            http_status=http_status,
            **details,
        )
        self.step = step
        self.response_code = response_code
        self.description = description
        self.http_status = http_status


class CyberTiplineServerError(CyberTiplineError):
    """NCMEC failed to do it (1000, 1100, 1110, 1111, 1300): trying again may work."""

    code = "cybertipline_server_error"
    retryable = True


class CyberTiplineAuthError(CyberTiplineError):
    """The credentials were refused (2000, or HTTP 401): check the username and password."""

    code = "cybertipline_auth_error"


class CyberTiplineForbidden(CyberTiplineError):
    """The account may not do this (3000, 3100, 3300): ask NCMEC to enable it."""

    code = "cybertipline_forbidden"


class CyberTiplineRejected(CyberTiplineError):
    """NCMEC rejected the request as invalid (4000, 4100, 4110, 4200): sending it
    again cannot help; the report or file must change."""

    code = "cybertipline_rejected"


class CyberTiplineNotFound(CyberTiplineError):
    """NCMEC does not know what the request names (1210, 5001, 5002)."""

    code = "cybertipline_not_found"


class ReportNotFound(CyberTiplineNotFound):
    """5001: no such report (never opened, or an unfinished report NCMEC deleted: it
    deletes them 24 hours after opening, or 1 hour after the last change)."""

    code = "cybertipline_report_not_found"


class FileNotFound(CyberTiplineNotFound):
    """5002: no such file in this report."""

    code = "cybertipline_file_not_found"


class CyberTiplineConflict(CyberTiplineError):
    """The report is no longer open (5101, 5102 and other 5xxx codes)."""

    code = "cybertipline_conflict"


class ReportAlreadyRetracted(CyberTiplineConflict):
    """5101: the report was retracted; nothing can be added to it."""

    code = "cybertipline_already_retracted"


class ReportAlreadyFinished(CyberTiplineConflict):
    """5102: the report was finished (it is filed); it can be neither changed nor
    retracted."""

    code = "cybertipline_already_finished"


class CyberTiplineUnavailable(CyberTiplineError):
    """No usable answer: the connection failed, timed out or was dropped, or the answer
    was not NCMEC's XML. ``retryable`` because the request may be sent again where
    that is safe (the client decides; a submit is never sent twice)."""

    code = "cybertipline_unavailable"
    retryable = True

    def __init__(self, message: str, *, step: str, maybe_sent: bool, **kwargs: Any) -> None:
        super().__init__(message, step=step, maybe_sent=maybe_sent, **kwargs)
        self.maybe_sent = maybe_sent
        """False when the request provably never reached NCMEC (no connection)."""


class SubmitOutcomeUnknown(CyberTiplineError):
    """A submit was sent but its answer was lost: NCMEC may or may not have opened a
    report. It is never submitted again automatically (that could file a second
    report). An unfinished report is deleted by NCMEC within 24 hours; ask NCMEC
    whether one was opened, then :meth:`Journal.resolve_unknown_submit`."""

    code = "cybertipline_submit_unknown"
    status = 409


class ReportClosed(CyberTiplineConflict):
    """The journal's report was retracted or has expired: nothing was filed, and
    nothing more can be added. Start a new journal to report again."""

    code = "cybertipline_report_closed"
    status = 409


class JournalMismatch(InvalidValue):
    """A journal was used with another environment (test/production) or other files
    than the report it was started for."""

    code = "cybertipline_journal_mismatch"


_BY_CODE: dict[int, type[CyberTiplineError]] = {
    1000: CyberTiplineServerError,
    1100: CyberTiplineServerError,
    1110: CyberTiplineServerError,
    1111: CyberTiplineServerError,
    1210: CyberTiplineNotFound,
    1300: CyberTiplineServerError,
    2000: CyberTiplineAuthError,
    3000: CyberTiplineForbidden,
    3100: CyberTiplineForbidden,
    3300: CyberTiplineForbidden,
    4000: CyberTiplineRejected,
    4100: CyberTiplineRejected,
    4110: CyberTiplineRejected,
    4200: CyberTiplineRejected,
    5001: ReportNotFound,
    5002: FileNotFound,
    5101: ReportAlreadyRetracted,
    5102: ReportAlreadyFinished,
}
_BY_FAMILY: dict[int, type[CyberTiplineError]] = {
    1: CyberTiplineServerError,
    2: CyberTiplineAuthError,
    3: CyberTiplineForbidden,
    4: CyberTiplineRejected,
    5: CyberTiplineConflict,
}


def error_for_code(
    response_code: int,
    description: str | None,
    *,
    step: str,
    http_status: int | None = None,
) -> CyberTiplineError:
    """The typed error for a non-zero ``responseCode``."""
    kind = _BY_CODE.get(response_code) or _BY_FAMILY.get(response_code // 1000, CyberTiplineError)
    known = DESCRIPTIONS.get(ResponseCode(response_code)) if response_code in _BY_CODE else None
    said = (description or "").strip()[:500] or known or "no description"
    return kind(
        f"NCMEC refused {step}: {response_code} {said}",
        step=step,
        response_code=response_code,
        description=description,
        http_status=http_status,
    )
