"""Receiving an upload without holding it in memory.

The request body is streamed to a temporary file in chunks, counting bytes; the
upload is refused with 413 as soon as it passes the limit (at once when
``Content-Length`` already says so). A ``multipart/form-data`` body is parsed as it
streams (python-multipart's push parser): the part named ``file`` goes to the
temporary file, the few small text fields (``content_id``, ``account_id``, ``banks``)
are kept. Any other content type is taken as the raw bytes of the file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from fastapi import Request
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from safehold.errors import InvalidValue, TooLarge
from safehold.media import Limits

MiB = 1024 * 1024
DEFAULT_MAX_UPLOAD = 1024 * MiB
MAX_FIELD_BYTES = 4096
MAX_FIELDS = 16
MULTIPART_OVERHEAD = 64 * 1024
"""Room for part headers and text fields on top of the file limit."""


def max_upload_bytes(limits: Limits) -> int:
    """The largest accepted upload: the larger media limit, capped by
    ``SAFEHOLD_MAX_UPLOAD_BYTES`` (default 1 GiB)."""
    cap = int(float(os.environ.get("SAFEHOLD_MAX_UPLOAD_BYTES") or DEFAULT_MAX_UPLOAD))
    return min(cap, max(limits.max_image_bytes, limits.max_video_bytes))


@dataclass
class Upload:
    path: Path
    size: int
    filename: str | None = None
    content_type: str | None = None
    fields: dict[str, list[str]] = field(default_factory=dict)

    def field(self, name: str) -> str | None:
        values = self.fields.get(name)
        return values[-1] if values else None

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self.path)


class _Multipart:
    """Callbacks for python-multipart: route the ``file`` part to disk, keep fields."""

    def __init__(self, out: IO[bytes], max_bytes: int) -> None:
        self.out = out
        self.max_bytes = max_bytes
        self.size = 0
        self.files = 0
        self.filename: str | None = None
        self.content_type: str | None = None
        self.fields: dict[str, list[str]] = {}
        self._headers: dict[bytes, bytes] = {}
        self._hname = b""
        self._hvalue = b""
        self._kind = "skip"
        self._name = ""
        self._buf = bytearray()

    def callbacks(self) -> Any:
        return {
            "on_part_begin": self._begin,
            "on_header_field": self._hfield,
            "on_header_value": self._hval,
            "on_header_end": self._hend,
            "on_headers_finished": self._headers_done,
            "on_part_data": self._data,
            "on_part_end": self._end,
        }

    def _begin(self) -> None:
        self._headers, self._hname, self._hvalue = {}, b"", b""

    def _hfield(self, data: bytes, start: int, end: int) -> None:
        self._hname += data[start:end]

    def _hval(self, data: bytes, start: int, end: int) -> None:
        self._hvalue += data[start:end]

    def _hend(self) -> None:
        self._headers[self._hname.lower()] = self._hvalue
        self._hname, self._hvalue = b"", b""

    def _headers_done(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = options.get(b"name", b"").decode("utf-8", "replace")
        filename = options.get(b"filename")
        self._name = name
        if name == "file":
            self.files += 1
            if self.files > 1:
                raise InvalidValue("send one file per request in the field 'file'")
            self._kind = "file"
            self.filename = filename.decode("utf-8", "replace")[:255] if filename else None
            ctype = self._headers.get(b"content-type")
            self.content_type = ctype.decode("latin-1")[:100] if ctype else None
        else:
            if sum(len(v) for v in self.fields.values()) >= MAX_FIELDS:
                raise InvalidValue(f"too many form fields (at most {MAX_FIELDS})")
            self._kind = "field"
            self._buf = bytearray()

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self._kind == "file":
            self.size += end - start
            if self.size > self.max_bytes:
                raise TooLarge(
                    f"the upload is larger than the limit of {self.max_bytes} bytes "
                    "(SAFEHOLD_MAX_UPLOAD_BYTES)"
                )
            self.out.write(data[start:end])
        elif self._kind == "field":
            self._buf += data[start:end]
            if len(self._buf) > MAX_FIELD_BYTES:
                raise InvalidValue(
                    f"form field {self._name[:40]!r} is longer than {MAX_FIELD_BYTES} bytes"
                )

    def _end(self) -> None:
        if self._kind == "field":
            text = bytes(self._buf).decode("utf-8", "replace")
            self.fields.setdefault(self._name, []).append(text)
        self._kind = "skip"


async def receive_upload(request: Request, limits: Limits, tmpdir: str | None = None) -> Upload:
    """Stream the request body to a temporary file; the caller must ``discard()`` it."""
    max_bytes = max_upload_bytes(limits)
    ctype_header = request.headers.get("content-type", "")
    ctype, options = parse_options_header(ctype_header)
    multipart = ctype == b"multipart/form-data"
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit():
        allowed = max_bytes + (MULTIPART_OVERHEAD if multipart else 0)
        if int(declared) > allowed:
            raise TooLarge(
                f"the upload ({declared} bytes) is larger than the limit of {max_bytes} bytes "
                "(SAFEHOLD_MAX_UPLOAD_BYTES)"
            )
    fd, name = tempfile.mkstemp(prefix="safehold-upload-", dir=tmpdir)
    upload = Upload(Path(name), 0)
    try:
        with os.fdopen(fd, "wb") as out:
            if multipart:
                boundary = options.get(b"boundary")
                if not boundary:
                    raise InvalidValue(
                        "multipart/form-data without a boundary: let your HTTP client build "
                        "the body (curl -F file=@picture.jpg)"
                    )
                sink = _Multipart(out, max_bytes)
                parser = MultipartParser(boundary, sink.callbacks())
                total = 0
                async for chunk in request.stream():
                    total += len(chunk)
                    if total > max_bytes + MULTIPART_OVERHEAD:
                        raise TooLarge(f"the upload is larger than the limit of {max_bytes} bytes")
                    try:
                        parser.write(chunk)
                    except MultipartParseError as e:
                        raise InvalidValue(f"malformed multipart body: {e}") from None
                try:
                    parser.finalize()
                except MultipartParseError as e:
                    raise InvalidValue(f"malformed multipart body: {e}") from None
                if sink.files == 0:
                    raise InvalidValue(
                        "no file in the request: send it in the multipart field 'file' "
                        "(curl -F file=@picture.jpg) or as the raw body"
                    )
                upload.size = sink.size
                upload.filename = sink.filename
                upload.content_type = sink.content_type
                upload.fields = sink.fields
            else:
                size = 0
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > max_bytes:
                        raise TooLarge(
                            f"the upload is larger than the limit of {max_bytes} bytes "
                            "(SAFEHOLD_MAX_UPLOAD_BYTES)"
                        )
                    out.write(chunk)
                upload.size = size
                upload.content_type = ctype.decode("latin-1")[:100] or None
    except BaseException:
        upload.discard()
        raise
    return upload
