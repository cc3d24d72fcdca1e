"""Typed errors shared by every layer.

Each error has a stable ``code`` (used as the problem+json ``type`` suffix by the
HTTP API and as ``error.code`` in CLI JSON output), an HTTP status, and a message
that says what was wrong and what to do about it.
"""

from __future__ import annotations

from typing import Any, ClassVar


def preview(value: object, limit: int = 60) -> str:
    """``repr`` of a user-supplied value, cut to ``limit`` characters for messages."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


class SafeholdError(Exception):
    """Base class of every error safehold raises on purpose."""

    code: ClassVar[str] = "error"
    status: ClassVar[int] = 400

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            out["details"] = self.details
        return out


class MediaError(SafeholdError):
    """Untrusted bytes could not be decoded within the limits."""

    code = "media_error"


class UnsupportedFormat(MediaError):
    code = "unsupported_format"
    status = 415


class TooLarge(MediaError):
    code = "too_large"
    status = 413


class TooManyPixels(MediaError):
    code = "too_many_pixels"
    status = 413


class TooManyFrames(MediaError):
    code = "too_many_frames"
    status = 413


class TooLong(MediaError):
    code = "too_long"
    status = 413


class DecodeTimeout(MediaError):
    code = "timeout"
    status = 422


class Corrupt(MediaError):
    code = "corrupt"
    status = 422


class EmptyFile(MediaError):
    code = "empty"
    status = 422


class Unreadable(MediaError):
    """The file could not be read at all (missing, a directory, no permission)."""

    code = "unreadable"
    status = 422


class InvalidValue(SafeholdError):
    """A value given by the user (hash, label, name, setting) is not valid."""

    code = "invalid_value"
    status = 422


class InvalidSignal(InvalidValue):
    code = "invalid_signal"


class UnknownSignalType(InvalidValue):
    code = "unknown_signal_type"


class UnknownLabel(InvalidValue):
    code = "unknown_label"


class Unauthorized(SafeholdError):
    """No credentials, or credentials that are not (or no longer) valid."""

    code = "unauthorized"
    status = 401


class Forbidden(SafeholdError):
    """Valid credentials without the right to do this."""

    code = "forbidden"
    status = 403


class RateLimited(SafeholdError):
    """Too many requests for this key; ``retry_after`` says when to try again (seconds)."""

    code = "rate_limited"
    status = 429

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class NotFound(SafeholdError):
    code = "not_found"
    status = 404


class Conflict(SafeholdError):
    code = "conflict"
    status = 409


class ImportFailed(SafeholdError):
    """An import file had bad rows; nothing was written."""

    code = "import_failed"
    status = 422
