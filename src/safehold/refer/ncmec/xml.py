"""CyberTipline XML: the ``report`` and ``fileDetails`` documents NCMEC takes, and the
``reportResponse``/``reportDoneResponse`` documents it answers with.

Element names, their order and the enumerations follow NCMEC's documentation of the
CyberTipline Reporting API (https://report.cybertip.org/ispws/documentation); the
schema they are checked against, ``schema/cybertipline.xsd``, was written from it (see
the sources listed there and in ``docs/ncmec.md``). Documents have no namespace and
name NCMEC's schema with ``xsi:noNamespaceSchemaLocation``, as in NCMEC's examples.

The ``report`` sections come in this order, each only when there is something in it::

    incidentSummary, internetDetails*, lawEnforcement, reporter,
    personOrUserReported, intendedRecipient*, victim*, additionalInfo

Every document built here is validated against the schema before it is returned, so
nothing the schema rejects is ever sent. Text is escaped by lxml; answers are parsed
without DTDs, entities or network access.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from importlib import resources

from lxml import etree

from safehold.errors import InvalidValue
from safehold.refer.ncmec.model import (
    Account,
    Address,
    CellPhoneIncident,
    ChatIncident,
    CyberTiplineReport,
    Email,
    EmailIncident,
    EventName,
    FileAnnotation,
    IncidentSummary,
    IntendedRecipient,
    InternetDetail,
    IpCapture,
    LawEnforcement,
    NewsgroupIncident,
    NonInternetIncident,
    OnlineGamingIncident,
    PeerToPeerIncident,
    Person,
    Phone,
    ReportAnnotation,
    ReportedFile,
    ReportedUser,
    Reporter,
    Victim,
    WebPageIncident,
)

SCHEMA_LOCATION = "https://report.cybertip.org/ispws/xsd"
"""Where NCMEC serves its authoritative schema (to holders of API credentials)."""

XSI = "http://www.w3.org/2001/XMLSchema-instance"

REPORT_SECTIONS = (
    "incidentSummary",
    "internetDetails",
    "lawEnforcement",
    "reporter",
    "personOrUserReported",
    "intendedRecipient",
    "victim",
    "additionalInfo",
)
"""The children of ``report``, in the order NCMEC's schema requires."""

MAX_RESPONSE_BYTES = 1 << 20
"""Most bytes of an answer from NCMEC that are parsed."""
MAX_DOCUMENT_BYTES = 16 << 20
"""Most bytes of a ``report`` or ``fileDetails`` document validated."""

Element = etree._Element


class InvalidDocument(InvalidValue):
    """An XML document is not well formed or not valid against the schema."""

    code = "invalid_cybertipline_xml"


# ----------------------------------------------------------------- schema


@cache
def schema() -> etree.XMLSchema:
    """safehold's schema of the CyberTipline documents (``schema/cybertipline.xsd``)."""
    return load_schema(
        resources.files("safehold.refer.ncmec").joinpath("schema/cybertipline.xsd").read_bytes()
    )


def load_schema(xsd: bytes) -> etree.XMLSchema:
    """An XSD given as bytes, e.g. NCMEC's own from ``GET /xsd``, to validate with."""
    return etree.XMLSchema(etree.fromstring(xsd, _parser()))


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
        remove_comments=True,
    )


def parse(data: bytes, *, max_bytes: int = MAX_RESPONSE_BYTES) -> Element:
    """Parse XML from outside safely: no DTD (a ``DOCTYPE`` is refused), no entities,
    no network, at most ``max_bytes``."""
    if len(data) > max_bytes:
        raise InvalidDocument(f"XML document too large ({len(data)} bytes)")
    if b"<!doctype" in data.lower():
        raise InvalidDocument("XML with a DOCTYPE is refused")
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as e:
        raise InvalidDocument(f"not well-formed XML: {e}") from None
    if root is None:
        raise InvalidDocument("empty XML document")
    return root


def validate(data: bytes, xsd: etree.XMLSchema | None = None) -> Element:
    """``data`` parsed and validated against ``xsd`` (default :func:`schema`); raises
    :class:`InvalidDocument` with the schema's first errors."""
    root = parse(data, max_bytes=MAX_DOCUMENT_BYTES)
    checker = xsd or schema()
    if not checker.validate(root):
        errors = "; ".join(str(checker.error_log).splitlines()[:5])
        raise InvalidDocument(f"<{root.tag}> does not match the CyberTipline schema: {errors}")
    return root


# ----------------------------------------------------------------- writing


def _root(tag: str) -> Element:
    root = etree.Element(tag, nsmap={"xsi": XSI})
    root.set(f"{{{XSI}}}noNamespaceSchemaLocation", SCHEMA_LOCATION)
    return root


def _sub(parent: Element, tag: str, text: str | None = None) -> Element:
    el = etree.SubElement(parent, tag)
    if text is not None:
        el.text = text
    return el


def _opt(parent: Element, tag: str, value: str | int | bool | datetime | date | None) -> None:
    if value is None:
        return
    _sub(parent, tag, _lexical(value))


def _lexical(value: str | int | float | bool | datetime | date) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def _attrs(el: Element, **attrs: str | int | bool | datetime | None) -> Element:
    for name, value in attrs.items():
        if value is not None:
            el.set(name, _lexical(value))
    return el


def _finish(root: Element) -> bytes:
    data = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    validate(data)
    return data


def report_xml(report: CyberTiplineReport) -> bytes:
    """The ``report`` document opened with ``POST /submit`` (UTF-8, validated)."""
    root = _root("report")
    _incident(root, report.incident)
    for detail in report.internet_details:
        _internet(_sub(root, "internetDetails"), detail)
    if report.law_enforcement is not None:
        _law(root, report.law_enforcement)
    _reporter(root, report.reporter)
    if report.reported_user is not None:
        _reported(root, report.reported_user)
    for recipient in report.intended_recipients:
        _recipient(root, recipient)
    for victim in report.victims:
        _victim(root, victim)
    _opt(root, "additionalInfo", report.additional_info)
    return _finish(root)


def file_details_xml(report_id: int, file_id: str, file: ReportedFile) -> bytes:
    """The ``fileDetails`` document sent with ``POST /fileinfo`` for one uploaded file."""
    root = _root("fileDetails")
    _sub(root, "reportId", str(report_id))
    _sub(root, "fileId", file_id)
    _sub(root, "fileName", file.file_name)
    _opt(root, "originalFileName", file.original_file_name)
    _opt(root, "uploadedToEspTimestamp", file.uploaded_at)
    _opt(root, "locationOfFile", file.location_of_file)
    _opt(root, "fileViewedByEsp", file.viewed_by_esp)
    _opt(root, "exifViewedByEsp", file.exif_viewed_by_esp)
    _opt(root, "publiclyAvailable", file.publicly_available)
    _opt(root, "fileRelevance", file.relevance.value)
    _flags(root, "fileAnnotations", [a.value for a in FileAnnotation if a in file.annotations])
    _opt(root, "industryClassification", file.industry_classification)
    for h in file.hashes:
        _sub(root, "originalFileHash", h.value).set("hashType", h.hash_type)
    if file.upload_ip is not None:
        _ip_capture(
            root, IpCapture(ip_address=file.upload_ip, event=EventName.UPLOAD, at=file.uploaded_at)
        )
    for info in file.additional_info:
        _sub(root, "additionalInfo", info)
    return _finish(root)


def _flags(parent: Element, tag: str, names: Sequence[str]) -> None:
    if names:
        box = _sub(parent, tag)
        for name in names:
            _sub(box, name)


def _incident(root: Element, s: IncidentSummary) -> None:
    el = _sub(root, "incidentSummary")
    _sub(el, "incidentType", s.incident_type.value)
    _opt(el, "platform", s.platform)
    _opt(el, "escalateToHighPriority", s.escalate_to_high_priority)
    _flags(el, "reportAnnotations", [a.value for a in ReportAnnotation if a in s.annotations])
    _sub(el, "incidentDateTime", s.incident_at.isoformat())
    _opt(el, "incidentDateTimeDescription", s.incident_at_description)


def _internet(el: Element, d: InternetDetail) -> None:
    if isinstance(d, WebPageIncident):
        web = _attrs(
            _sub(el, "webPageIncident"), thirdPartyHostedContent=d.third_party_hosted_content
        )
        for url in d.urls:
            _sub(web, "url", url)
        _opt(web, "additionalInfo", d.additional_info)
    elif isinstance(d, EmailIncident):
        mail = _sub(el, "emailIncident")
        _emails(mail, d.emails, "emailAddress")
        _opt(mail, "content", d.content)
        _opt(mail, "additionalInfo", d.additional_info)
    elif isinstance(d, NewsgroupIncident):
        news = _sub(el, "newsgroupIncident")
        _opt(news, "name", d.name)
        _emails(news, d.emails, "emailAddress")
        _opt(news, "content", d.content)
        _opt(news, "additionalInfo", d.additional_info)
    elif isinstance(d, ChatIncident):
        chat = _sub(el, "chatImIncident")
        _opt(chat, "chatClient", d.chat_client)
        _opt(chat, "chatRoomName", d.chat_room_name)
        _opt(chat, "content", d.content)
        _opt(chat, "additionalInfo", d.additional_info)
    elif isinstance(d, OnlineGamingIncident):
        game = _sub(el, "onlineGamingIncident")
        _opt(game, "gameName", d.game_name)
        _opt(game, "console", d.console)
        _opt(game, "content", d.content)
        _opt(game, "additionalInfo", d.additional_info)
    elif isinstance(d, CellPhoneIncident):
        cell = _sub(el, "cellPhoneIncident")
        if d.phone is not None:
            _phone(cell, d.phone, "phoneNumber")
        _opt(cell, "latitude", None if d.latitude is None else repr(float(d.latitude)))
        _opt(cell, "longitude", None if d.longitude is None else repr(float(d.longitude)))
        _opt(cell, "additionalInfo", d.additional_info)
    elif isinstance(d, NonInternetIncident):
        place = _sub(el, "nonInternetIncident")
        _opt(place, "locationName", d.location_name)
        for a in d.addresses:
            _address(place, a, "incidentAddress")
        _opt(place, "additionalInfo", d.additional_info)
    elif isinstance(d, PeerToPeerIncident):
        p2p = _sub(el, "peer2peerIncident")
        _opt(p2p, "client", d.client)
        for ip in d.ip_captures:
            _ip_capture(p2p, ip)
        _opt(p2p, "fileNames", d.file_names)
        _opt(p2p, "additionalInfo", d.additional_info)


def _law(root: Element, le: LawEnforcement) -> None:
    el = _sub(root, "lawEnforcement")
    _sub(el, "agencyName", le.agency_name)
    _opt(el, "caseNumber", le.case_number)
    if le.officer is not None:
        _person(el, "officerContact", le.officer)
    _opt(el, "reportedToLe", le.reported_to_le)
    _opt(el, "servedLegalProcessDomestic", le.served_legal_process_domestic)
    if le.served_legal_process_international is not None:
        _attrs(
            _sub(
                el,
                "servedLegalProcessInternational",
                _lexical(le.served_legal_process_international),
            ),
            fleaCountry=le.flea_country,
        )


def _reporter(root: Element, r: Reporter) -> None:
    el = _sub(root, "reporter")
    _person(el, "reportingPerson", r.reporting_person)
    if r.contact_person is not None:
        _person(el, "contactPerson", r.contact_person)
    template = (
        r.company_name
        if r.company_template is None
        else f"{r.company_name}\n\n{r.company_template}"
    )
    _sub(el, "companyTemplate", template)
    _opt(el, "termsOfService", r.terms_of_service)
    _opt(el, "legalURL", r.legal_url)


def _person(parent: Element, tag: str, p: Person) -> None:
    el = _sub(parent, tag)
    _opt(el, "firstName", p.first_name)
    _opt(el, "lastName", p.last_name)
    for phone in p.phones:
        _phone(el, phone, "phone")
    _emails(el, p.emails, "email")
    for a in p.addresses:
        _address(el, a, "address")
    _opt(el, "age", p.age)
    _opt(el, "dateOfBirth", p.date_of_birth)


def _phone(parent: Element, p: Phone, tag: str) -> None:
    _attrs(
        _sub(parent, tag, p.number),
        type=p.type,
        verified=p.verified,
        countryCallingCode=p.country_calling_code,
        extension=p.extension,
    )


def _emails(parent: Element, emails: Iterable[Email], tag: str) -> None:
    for e in emails:
        _attrs(_sub(parent, tag, e.address), type=e.type, verified=e.verified)


def _address(parent: Element, a: Address, tag: str) -> None:
    el = _attrs(_sub(parent, tag), type=a.type)
    _opt(el, "address", a.street)
    _opt(el, "city", a.city)
    _opt(el, "zipCode", a.zip_code)
    _opt(el, "state", a.state)
    _opt(el, "nonUsaState", a.non_usa_state)
    _opt(el, "country", a.country)


def _ip_capture(parent: Element, ip: IpCapture) -> None:
    el = _sub(parent, "ipCaptureEvent")
    _sub(el, "ipAddress", ip.ip_address)
    _opt(el, "eventName", ip.event)
    _opt(el, "dateTime", ip.at)
    _opt(el, "possibleProxy", ip.possible_proxy)
    _opt(el, "port", ip.port)


def _account(el: Element, a: Account, person_tag: str) -> None:
    """The elements every account section starts with, in schema order (to deviceId)."""
    if a.person is not None:
        _person(el, person_tag, a.person)
    _opt(el, "espIdentifier", a.esp_identifier)
    _opt(el, "espService", a.esp_service)
    _opt(el, "compromisedAccount", a.compromised_account)
    _opt(el, "screenName", a.screen_name)
    for name in a.display_names:
        _sub(el, "displayName", name)
    for url in a.profile_urls:
        _sub(el, "profileUrl", url)
    _opt(el, "profileBio", a.profile_bio)
    for ip in a.ip_captures:
        _ip_capture(el, ip)


def _reported(root: Element, u: ReportedUser) -> None:
    el = _sub(root, "personOrUserReported")
    _account(el, u, "personOrUserReportedPerson")
    _opt(el, "thirdPartyUserReported", u.third_party_user_reported)
    for n in u.prior_ct_reports:
        _sub(el, "priorCTReports", str(n))
    _opt(el, "groupIdentifier", u.group_identifier)
    _opt(el, "additionalInfo", u.additional_info)


def _recipient(root: Element, r: IntendedRecipient) -> None:
    el = _sub(root, "intendedRecipient")
    _account(el, r, "intendedRecipientPerson")
    for n in r.prior_ct_reports:
        _sub(el, "priorCTReports", str(n))
    _opt(el, "groupIdentifier", r.group_identifier)
    _opt(el, "additionalInfo", r.additional_info)


def _victim(root: Element, v: Victim) -> None:
    el = _sub(root, "victim")
    _account(el, v, "victimPerson")
    _opt(el, "schoolName", v.school_name)
    for n in v.prior_ct_reports:
        _sub(el, "priorCTReports", str(n))
    _opt(el, "additionalInfo", v.additional_info)


# ----------------------------------------------------------------- answers


@dataclass(frozen=True)
class Response:
    """An answer from NCMEC: ``reportResponse`` (``root`` of that name) or, to
    ``/finish``, ``reportDoneResponse`` (``file_ids`` lists the files filed)."""

    root: str
    response_code: int
    description: str | None = None
    report_id: int | None = None
    file_id: str | None = None
    hash: str | None = None
    file_ids: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.response_code == 0


def parse_response(data: bytes) -> Response:
    """Read NCMEC's answer; raises :class:`InvalidDocument` if it is not one."""
    root = parse(data)
    if root.tag not in ("reportResponse", "reportDoneResponse"):
        raise InvalidDocument(f"unexpected answer <{root.tag}>")

    def text(tag: str) -> str | None:
        found = root.findtext(tag)
        return found.strip() if found is not None and found.strip() else None

    code = text("responseCode")
    report_id = text("reportId")
    try:
        response_code = int(code) if code is not None else None
        rid = int(report_id) if report_id is not None else None
    except ValueError:
        raise InvalidDocument(
            f"answer with a non-numeric code or report id: {code!r}, {report_id!r}"
        ) from None
    if response_code is None:
        raise InvalidDocument(f"<{root.tag}> without a responseCode")
    files = tuple((f.text or "").strip() for f in root.iterfind("files/fileId"))
    return Response(
        root=str(root.tag),
        response_code=response_code,
        description=text("responseDescription"),
        report_id=rid,
        file_id=text("fileId"),
        hash=text("hash"),
        file_ids=tuple(f for f in files if f),
    )
