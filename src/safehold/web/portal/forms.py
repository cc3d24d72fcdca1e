"""Reading the portal's forms: streamed, bounded, every byte hostile until checked.

``multipart/form-data`` bodies are parsed as they stream (python-multipart's push
parser, as :mod:`safehold.web.upload` does for the API): each file part goes to its
own temporary file (``SAFEHOLD_TMPDIR``) and the files together may not pass the
upload limit of :func:`safehold.web.upload.max_upload_bytes`; text fields are kept
up to :data:`MAX_FIELD_BYTES`. Url-encoded bodies are read up to
:data:`MAX_URLENCODED`. A field that is not UTF-8 or longer than its limit is not an
error of the whole request: it is recorded in :attr:`PortalForm.problems` so that
the page can say which field is wrong and keep the rest of what the person typed.

File names are only shown back, never used as paths. The temporary files are
deleted by :meth:`PortalForm.discard` (the routes call it in ``finally``).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qsl, unquote_plus

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from safehold.errors import InvalidValue, TooLarge

MAX_FIELD_BYTES = 64 * 1024
"""Bytes kept of one text field (a 10 000-character description in any script fits)."""
MAX_URLENCODED = 256 * 1024
MAX_PARTS = 64
MAX_FILE_PARTS = 30
OVERHEAD = 1024 * 1024
"""Room for part headers and text fields on top of the files."""


class MalformedForm(InvalidValue):
    code = "malformed_form"
    status = 400


@dataclass
class FormFile:
    path: Path
    name: str
    size: int
    field: str


@dataclass
class PortalForm:
    fields: dict[str, list[str]] = field(default_factory=dict)
    files: list[FormFile] = field(default_factory=list)
    problems: dict[str, str] = field(default_factory=dict)
    """``field: "not_utf8" | "too_long"`` for fields that could not be kept whole."""

    def get(self, name: str) -> str:
        values = self.fields.get(name)
        return values[-1] if values else ""

    def files_of(self, name: str) -> list[FormFile]:
        return [f for f in self.files if f.field == name]

    def discard(self) -> None:
        for f in self.files:
            with contextlib.suppress(OSError):
                os.unlink(f.path)
        self.files = []


def _decode(raw: bytes, name: str, problems: dict[str, str]) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        problems.setdefault(name, "not_utf8")
        return ""


def display_name(raw: bytes | None) -> str:
    """A file name fit to show: its last path part, no control characters, short."""
    if not raw:
        return ""
    text = raw.decode("utf-8", "replace")
    text = text.replace("\\", "/").rsplit("/", 1)[-1]
    text = "".join(c for c in text if unicodedata.category(c)[0] != "C")
    return text.strip()[:120]


class _Sink:
    def __init__(self, form: PortalForm, max_bytes: int, tmpdir: str | None) -> None:
        self.form = form
        self.max_bytes = max_bytes
        self.tmpdir = tmpdir
        self.total = 0
        self.parts = 0
        self.file_parts = 0
        self._headers: dict[bytes, bytes] = {}
        self._hname = b""
        self._hvalue = b""
        self._name = ""
        self._kind = "skip"
        self._buf = bytearray()
        self._out: IO[bytes] | None = None
        self._file: FormFile | None = None

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
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise MalformedForm(f"the form has more than {MAX_PARTS} parts")

    def _hfield(self, data: bytes, start: int, end: int) -> None:
        self._hname += data[start:end]
        if len(self._hname) > 1024:
            raise MalformedForm("a form part has an overlong header")

    def _hval(self, data: bytes, start: int, end: int) -> None:
        self._hvalue += data[start:end]
        if len(self._hvalue) > 8192:
            raise MalformedForm("a form part has an overlong header")

    def _hend(self) -> None:
        self._headers[self._hname.lower()] = self._hvalue
        self._hname, self._hvalue = b"", b""

    def _headers_done(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        self._name = options.get(b"name", b"").decode("utf-8", "replace")[:64]
        filename = options.get(b"filename")
        if filename is not None:
            self.file_parts += 1
            if self.file_parts > MAX_FILE_PARTS:
                raise MalformedForm(f"the form has more than {MAX_FILE_PARTS} files")
            fd, name = tempfile.mkstemp(prefix="safehold-portal-", dir=self.tmpdir)
            self._out = os.fdopen(fd, "wb")
            self._file = FormFile(Path(name), display_name(filename), 0, self._name)
            self.form.files.append(self._file)
            self._kind = "file"
        else:
            self._kind = "field"
            self._buf = bytearray()

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self._kind == "file" and self._out is not None and self._file is not None:
            n = end - start
            self.total += n
            if self.total > self.max_bytes:
                raise TooLarge(
                    f"the files are larger than {self.max_bytes} bytes together",
                    limit=self.max_bytes,
                )
            self._file.size += n
            self._out.write(data[start:end])
        elif self._kind == "field":
            room = MAX_FIELD_BYTES - len(self._buf)
            if end - start > room:
                self.form.problems.setdefault(self._name, "too_long")
            self._buf += data[start : start + max(0, min(room, end - start))]

    def _end(self) -> None:
        if self._kind == "file" and self._out is not None:
            self._out.close()
            self._out = None
            if self._file is not None and self._file.size == 0 and not self._file.name:
                # an empty file input: browsers send a part without a name or bytes
                with contextlib.suppress(OSError):
                    os.unlink(self._file.path)
                self.form.files.remove(self._file)
            self._file = None
        elif self._kind == "field":
            raw = bytes(self._buf)
            if self.form.problems.get(self._name) == "too_long":
                text = raw.decode("utf-8", "ignore")  # the kept start, cut at a character
            else:
                text = _decode(raw, self._name, self.form.problems)
            self.form.fields.setdefault(self._name, []).append(text)
        self._kind = "skip"

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None


async def read_form(request: Request, *, max_file_bytes: int, tmpdir: str | None) -> PortalForm:
    """The fields and files of a POSTed form; the caller must ``discard()`` it."""
    ctype, options = parse_options_header(request.headers.get("content-type", ""))
    declared = request.headers.get("content-length", "")
    form = PortalForm()
    if ctype == b"application/x-www-form-urlencoded":
        if declared.isdigit() and int(declared) > MAX_URLENCODED:
            raise TooLarge(f"the form is larger than {MAX_URLENCODED} bytes", limit=MAX_URLENCODED)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_URLENCODED:
                raise TooLarge(
                    f"the form is larger than {MAX_URLENCODED} bytes", limit=MAX_URLENCODED
                )
        pairs: list[tuple[str, str]] = []
        try:
            for item in bytes(body).split(b"&")[: MAX_PARTS + 1]:
                if not item:
                    continue
                if len(pairs) >= MAX_PARTS:
                    raise MalformedForm(f"the form has more than {MAX_PARTS} fields")
                try:
                    pairs.extend(
                        parse_qsl(
                            item.decode("utf-8"),
                            keep_blank_values=True,
                            encoding="utf-8",
                            errors="strict",
                        )
                    )
                except UnicodeDecodeError:
                    # not UTF-8: say which field, keep the others
                    raw_name = item.partition(b"=")[0].decode("latin-1")
                    name = unquote_plus(raw_name, errors="replace")[:64]
                    form.problems.setdefault(name, "not_utf8")
                    pairs.append((name, ""))
        except ValueError as e:
            raise MalformedForm(f"the form could not be read ({e})") from None
        for name, value in pairs:
            if len(value.encode()) > MAX_FIELD_BYTES:
                form.problems.setdefault(name, "too_long")
                value = value.encode()[:MAX_FIELD_BYTES].decode("utf-8", "ignore")
            form.fields.setdefault(name[:64], []).append(value)
        return form
    if ctype != b"multipart/form-data":
        raise MalformedForm("send the form from the page (multipart or url-encoded)")
    boundary = options.get(b"boundary")
    if not boundary or len(boundary) > 200:
        raise MalformedForm("the form has no multipart boundary")
    limit = max_file_bytes + OVERHEAD
    if declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"the form is larger than {limit} bytes", limit=max_file_bytes)
    sink = _Sink(form, max_file_bytes, tmpdir)
    try:
        parser = MultipartParser(boundary, sink.callbacks())
        total = 0
        async for chunk in request.stream():
            total += len(chunk)
            if total > limit:
                raise TooLarge(f"the form is larger than {limit} bytes", limit=max_file_bytes)
            try:
                parser.write(chunk)
            except MultipartParseError as e:
                raise MalformedForm(f"the form could not be read ({e})") from None
        try:
            parser.finalize()
        except MultipartParseError as e:
            raise MalformedForm(f"the form could not be read ({e})") from None
        if sink.parts == 0:
            raise MalformedForm("the form is empty")
    except BaseException:
        sink.close()
        form.discard()
        raise
    sink.close()
    return form
