"""A local stand-in for NCMEC's CyberTipline Reporting API, for the tests.

NCMEC's servers are never contacted by safehold's tests: :class:`FakeCyberTipline` is
a real HTTP server on 127.0.0.1 (in a thread) that behaves as NCMEC documents
(https://report.cybertip.org/ispws/documentation), strictly:

* every endpoint needs HTTP Basic authentication (401 and code 2000 otherwise);
* ``POST /submit`` takes a ``report`` that must validate against the schema,
  element order included (4110 "Malformed XML submittal" for XML that is not well
  formed, 4100 "Validation failed" for XML the schema rejects) and opens a report;
* ``POST /upload`` (multipart ``id`` and ``file``) adds a file to an *open* report and
  answers its ``fileId`` and the MD5 ``hash`` of the bytes;
* ``POST /fileinfo`` takes a valid ``fileDetails`` for a file uploaded to that report
  (5002 "File does not exist" otherwise);
* ``POST /finish`` files an open report, once (5102 "Report already finished" after);
* ``POST /retract`` cancels an open report (5101 once retracted, 5102 once finished);
* a report that does not exist, or was deleted as unfinished (:meth:`expire`), is 5001.

The answer documents are NCMEC's (``reportResponse``, ``reportDoneResponse``). NCMEC
does not document the HTTP status that goes with each error code; this fake sends
401 with 2000, 403 with 3xxx, 500 with 1xxx and 400 with the rest, and safehold's
client decides by ``responseCode`` alone whenever there is one.

Faults for the failure tests (:meth:`fail`): ``drop`` does the request and then closes
the connection without answering (a lost answer); ``drop_before`` closes it without
doing anything; ``error`` answers 500 "Server error" without doing anything; ``slow``
does the request and answers ``delay`` seconds later.

At the end, :func:`report` and :func:`full_report` make reports for the tests, about
harmless synthetic pictures drawn by :func:`media_factory.photo_like` (labels such as
``A1`` are attached to them only to exercise the fields). Names, addresses and IPs are
reserved example values (example.com, 192.0.2.0/24, 203.0.113.0/24, 2001:db8::/32).
"""

from __future__ import annotations

import base64
import hashlib
import io
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, ClassVar

import python_multipart
from lxml import etree

from media_factory import encode_image, photo_like
from safehold.refer.ncmec import (
    Address,
    ChatIncident,
    CyberTiplineReport,
    Email,
    IncidentSummary,
    IncidentType,
    IntendedRecipient,
    IpCapture,
    LawEnforcement,
    PeerToPeerIncident,
    Person,
    Phone,
    ReportedFile,
    ReportedUser,
    Reporter,
    Victim,
    WebPageIncident,
)
from safehold.refer.ncmec.xml import MAX_DOCUMENT_BYTES, InvalidDocument, parse, schema

MAX_BODY = 32 << 20
FIRST_REPORT_ID = 4564654
"""NCMEC's own example report id; the fake counts up from it."""


@dataclass
class FakeFile:
    file_id: str
    name: str
    data: bytes
    md5: str
    details: bytes | None = None


@dataclass
class FakeReport:
    report_id: int
    xml: bytes
    state: str = "open"
    """``open``, ``finished`` or ``retracted``."""
    files: dict[str, FakeFile] = field(default_factory=dict)


@dataclass
class Fault:
    endpoint: str
    action: str
    nth: int
    times: int
    delay: float


class Answer(Exception):
    """Raised inside a handler to answer with an error code."""

    def __init__(self, code: int, description: str, report_id: int | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.report_id = report_id


class FakeCyberTipline:
    """Start with ``with FakeCyberTipline() as ncmec:``; ``ncmec.url`` is the base URL."""

    def __init__(self, username: str = "usr123", password: str = "pswd123") -> None:
        self.username = username
        self.password = password
        self.reports: dict[int, FakeReport] = {}
        self.calls: list[tuple[str, int]] = []
        """Every authenticated request: (endpoint, HTTP status, or 0 when dropped)."""
        self.submitted: list[bytes] = []
        """Every report document received by /submit, valid or not."""
        self._counts: dict[str, int] = {}
        self._faults: list[Fault] = []
        self._next_id = FIRST_REPORT_ID
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/ispws"

    def __enter__(self) -> FakeCyberTipline:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # ------------------------------------------------------------- test controls

    def fail(
        self, endpoint: str, action: str, *, nth: int = 1, times: int = 1, delay: float = 0.0
    ) -> None:
        """Make requests number ``nth`` to ``nth + times - 1`` to ``endpoint`` fail."""
        assert action in ("drop", "drop_before", "error", "slow"), action
        self._faults.append(Fault(endpoint, action, nth, times, delay))

    def expire(self, report_id: int) -> None:
        """Delete an unfinished report, as NCMEC does 1 hour after its last change."""
        with self._lock:
            assert self.reports[report_id].state == "open"
            del self.reports[report_id]

    def count(self, endpoint: str) -> int:
        """Requests received by ``endpoint`` (authenticated ones, dropped included)."""
        return sum(1 for e, _ in self.calls if e == endpoint)

    # ------------------------------------------------------------- the API

    def _fault(self, endpoint: str) -> Fault | None:
        with self._lock:
            n = self._counts[endpoint] = self._counts.get(endpoint, 0) + 1
        for f in self._faults:
            if f.endpoint == endpoint and f.nth <= n < f.nth + f.times:
                return f
        return None

    def handle(self, endpoint: str, headers: dict[str, str], body: bytes) -> bytes:
        with self._lock:
            if endpoint == "status":
                return response(0, "Success")
            if endpoint == "submit":
                return self._submit(body)
            if endpoint == "upload":
                return self._upload(headers, body)
            if endpoint == "fileinfo":
                return self._fileinfo(body)
            if endpoint == "finish":
                return self._finish(headers, body)
            if endpoint == "retract":
                return self._retract(headers, body)
        raise AssertionError(endpoint)

    def _submit(self, body: bytes) -> bytes:
        self.submitted.append(body)
        _document(body, "report")
        report_id = self._next_id
        self._next_id += 1
        self.reports[report_id] = FakeReport(report_id, body)
        return response(0, "Success", report_id=report_id)

    def _open(self, report_id: int) -> FakeReport:
        report = self.reports.get(report_id)
        if report is None:
            raise Answer(5001, "Report does not exist", report_id)
        if report.state == "retracted":
            raise Answer(5101, "Report already retracted", report_id)
        if report.state == "finished":
            raise Answer(5102, "Report already finished", report_id)
        return report

    def _upload(self, headers: dict[str, str], body: bytes) -> bytes:
        fields, files = _form(headers, body)
        if "file" not in files:
            raise Answer(4000, "Invalid request")
        report = self._open(_report_id(fields))
        name, data = files["file"]
        if not data:
            raise Answer(4200, "Malformed file submittal", report.report_id)
        file_id = uuid.uuid4().hex
        md5 = hashlib.md5(data).hexdigest()
        report.files[file_id] = FakeFile(file_id, name, data, md5)
        return response(0, "Success", report_id=report.report_id, file_id=file_id, hash=md5)

    def _fileinfo(self, body: bytes) -> bytes:
        root = _document(body, "fileDetails")
        report = self._open(int(root.findtext("reportId") or 0))
        file_id = (root.findtext("fileId") or "").strip()
        if file_id not in report.files:
            raise Answer(5002, "File does not exist", report.report_id)
        report.files[file_id].details = body
        return response(0, "Success", report_id=report.report_id)

    def _finish(self, headers: dict[str, str], body: bytes) -> bytes:
        fields, _ = _form(headers, body)
        report = self._open(_report_id(fields))
        report.state = "finished"
        return done_response(report.report_id, list(report.files))

    def _retract(self, headers: dict[str, str], body: bytes) -> bytes:
        fields, _ = _form(headers, body)
        report = self._open(_report_id(fields))
        report.state = "retracted"
        return response(0, "Success", report_id=report.report_id)

    def authorized(self, header: str | None) -> bool:
        if not header or not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except ValueError:
            return False
        return secrets.compare_digest(user.encode(), self.username.encode()) and (
            secrets.compare_digest(password.encode(), self.password.encode())
        )


# ----------------------------------------------------------------- documents


def _el(parent: Any, tag: str, text: object) -> None:
    if text is not None:
        etree.SubElement(parent, tag).text = str(text)


def response(
    code: int,
    description: str,
    *,
    report_id: int | None = None,
    file_id: str | None = None,
    hash: str | None = None,
) -> bytes:
    """A ``reportResponse``, checked against the schema."""
    root = etree.Element("reportResponse")
    _el(root, "responseCode", code)
    _el(root, "responseDescription", description)
    _el(root, "reportId", report_id)
    _el(root, "fileId", file_id)
    _el(root, "hash", hash)
    return _checked(root)


def done_response(report_id: int, file_ids: list[str]) -> bytes:
    root = etree.Element("reportDoneResponse")
    _el(root, "responseCode", 0)
    _el(root, "reportId", report_id)
    files = etree.SubElement(root, "files")
    for f in file_ids:
        _el(files, "fileId", f)
    return _checked(root)


def _checked(root: Any) -> bytes:
    data: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    schema().assertValid(etree.fromstring(data))
    return data


def _document(body: bytes, root_tag: str) -> Any:
    try:
        root = parse(body, max_bytes=MAX_DOCUMENT_BYTES)
    except InvalidDocument as e:
        raise Answer(4110, f"Malformed XML submittal: {e}") from None
    if root.tag != root_tag:
        raise Answer(4100, f"Validation failed: expected <{root_tag}>, got <{root.tag}>")
    checker = schema()
    if not checker.validate(root):
        raise Answer(4100, f"Validation failed: {str(checker.error_log).splitlines()[0]}")
    return root


def _form(
    headers: dict[str, str], body: bytes
) -> tuple[dict[str, str], dict[str, tuple[str, bytes]]]:
    fields: dict[str, str] = {}
    files: dict[str, tuple[str, bytes]] = {}

    def on_field(f: Any) -> None:
        fields[f.field_name.decode()] = (f.value or b"").decode()

    def on_file(f: Any) -> None:
        f.file_object.seek(0)
        files[f.field_name.decode()] = ((f.file_name or b"").decode(), f.file_object.read())

    content_type = headers.get("content-type", "")
    if not content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        raise Answer(4000, "Invalid request")
    try:
        python_multipart.parse_form(
            {"Content-Type": content_type.encode(), "Content-Length": str(len(body)).encode()},
            io.BytesIO(body),
            on_field,
            on_file,
        )
    except Exception:
        raise Answer(4000, "Invalid request") from None
    return fields, files


def _report_id(fields: dict[str, str]) -> int:
    try:
        return int(fields["id"])
    except (KeyError, ValueError):
        raise Answer(4000, "Invalid request") from None


def _status(code: int) -> int:
    return {1: 500, 2: 401, 3: 403}.get(code // 1000, 400)


# ----------------------------------------------------------------- HTTP


def _handler(api: FakeCyberTipline) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        endpoints: ClassVar[dict[str, str]] = {
            "status": "GET",
            "submit": "POST",
            "upload": "POST",
            "fileinfo": "POST",
            "finish": "POST",
            "retract": "POST",
        }

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def _serve(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self._send(413, b"", "text/plain")
                return
            body = self.rfile.read(length) if length else b""
            prefix, _, endpoint = self.path.partition("?")[0].rpartition("/")
            if prefix != "/ispws" or self.endpoints.get(endpoint) is None:
                self._send(404, b"not found", "text/plain")
                return
            if self.endpoints[endpoint] != method:
                self._send(405, b"method not allowed", "text/plain")
                return
            if not api.authorized(self.headers.get("Authorization")):
                self._send(
                    401,
                    response(2000, "Authentication required"),
                    extra={"WWW-Authenticate": 'Basic realm="ispws"'},
                )
                return
            fault = api._fault(endpoint)
            if fault is not None and fault.action in ("drop_before", "error"):
                if fault.action == "error":
                    api.calls.append((endpoint, 500))
                    self._send(500, response(1000, "Server error"))
                else:
                    api.calls.append((endpoint, 0))
                    self.close_connection = True
                return
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                answer, status = api.handle(endpoint, headers, body), 200
            except Answer as a:
                answer, status = (
                    response(a.code, a.description, report_id=a.report_id),
                    _status(a.code),
                )
            if fault is not None and fault.action == "drop":
                api.calls.append((endpoint, 0))
                self.close_connection = True
                return
            api.calls.append((endpoint, status))
            if fault is not None and fault.action == "slow":
                time.sleep(fault.delay)
            self._send(status, answer)

        def _send(
            self,
            status: int,
            body: bytes,
            content_type: str = "application/xml; charset=utf-8",
            extra: dict[str, str] | None = None,
        ) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting (the slow fault)
            self.close_connection = True

    return Handler


# ----------------------------------------------------------------- test reports

WHEN = datetime(2026, 3, 14, 9, 26, 53, tzinfo=UTC)


def picture(seed: int, fmt: str = "jpeg") -> bytes:
    """A synthetic picture (gradients, shapes, text), encoded."""
    return encode_image(photo_like(160, 120, seed=seed), fmt)


def reporter() -> Reporter:
    return Reporter(
        company_name="Example Platform Inc.",
        reporting_person=Person(
            first_name="Trust",
            last_name="Safety",
            emails=[Email(address="tns@example.com", type="Work")],
            phones=[Phone(number="555-0100", country_calling_code="+1", type="Business")],
        ),
        contact_person=Person(first_name="Legal", emails=[Email(address="legal@example.com")]),
        company_template="Legal process: legal@example.com. Data kept 90 days.",
        terms_of_service="Users may not share sexual content involving minors.",
        legal_url="https://example.com/terms",
    )


def files(n: int = 2) -> list[ReportedFile]:
    out = [
        ReportedFile(
            content=picture(1, "jpeg"),
            file_name="upload-1.jpg",
            original_file_name="holiday.jpg",
            viewed_by_esp=True,
            publicly_available=False,
            industry_classification="A1",
            annotations={"generativeAi"},
            upload_ip="203.0.113.7",
            uploaded_at=WHEN,
            location_of_file="https://cdn.example.com/u/1.jpg",
        ),
        ReportedFile(
            content=picture(2, "png"),
            file_name="upload-2.png",
            viewed_by_esp=False,
            publicly_available=True,
            industry_classification="B2",
            annotations={"possibleSelfProduction", "viral"},
            additional_info="matched a hash bank entry; not viewed",
        ),
    ]
    return out[:n]


def report(n_files: int = 2, **overrides: object) -> CyberTiplineReport:
    fields: dict[str, object] = {
        "incident": IncidentSummary(
            incident_type=IncidentType.CHILD_PORNOGRAPHY,
            incident_at=WHEN,
            platform="Example Chat",
        ),
        "reporter": reporter(),
        "internet_details": [WebPageIncident(urls=["https://example.com/p/1"])],
        "reported_user": ReportedUser(
            esp_identifier="user-9",
            esp_service="Example Chat",
            screen_name="someone",
            person=Person(emails=[Email(address="someone@example.net", verified=True)]),
            profile_urls=["https://example.com/u/someone"],
            ip_captures=[IpCapture(ip_address="192.0.2.10", event="Login", at=WHEN)],
        ),
        "files": files(n_files),
    }
    fields.update(overrides)
    return CyberTiplineReport(**fields)  # type: ignore[arg-type]


def full_report() -> CyberTiplineReport:
    """Every section the model has, with something in it."""
    return report(
        incident=IncidentSummary(
            incident_type=IncidentType.ONLINE_ENTICEMENT,
            incident_at=WHEN,
            platform="Example Chat",
            escalate_to_high_priority="The user says they will meet the child tonight.",
            annotations={"sextortion", "minorToMinorInteraction"},
            incident_at_description="Time of the first message.",
        ),
        internet_details=[
            WebPageIncident(urls=["https://example.com/p/1", "https://example.com/p/2"]),
            ChatIncident(chat_client="Example Chat", chat_room_name="lobby", content="(log)"),
            PeerToPeerIncident(
                client="ExampleShare",
                ip_captures=[IpCapture(ip_address="2001:db8::5", port=6881)],
            ),
        ],
        law_enforcement=LawEnforcement(
            agency_name="Example County Sheriff",
            case_number="2026-17",
            officer=Person(last_name="Officer", phones=[Phone(number="555-0199")]),
            reported_to_le=True,
            served_legal_process_international=True,
            flea_country="GB",
        ),
        reported_user=ReportedUser(
            esp_identifier="user-9",
            screen_name="someone",
            display_names=["Some One"],
            person=Person(
                first_name="Some",
                addresses=[Address(city="Springfield", state="IL", country="US", type="Home")],
                date_of_birth=date(1990, 1, 2),
            ),
            ip_captures=[
                IpCapture(ip_address="192.0.2.10", event="Upload", at=WHEN, possible_proxy=True)
            ],
            third_party_user_reported=False,
            prior_ct_reports=[123456],
            group_identifier="group-1",
            compromised_account=False,
            additional_info="Account disabled.",
        ),
        intended_recipients=[
            IntendedRecipient(screen_name="child-account", esp_identifier="user-10")
        ],
        victims=[
            Victim(person=Person(age=13), screen_name="child-account", school_name="Example Middle")
        ],
        additional_info="Found by a hash match and confirmed by a reviewer.",
    )
