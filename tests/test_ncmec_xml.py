"""CyberTipline XML: element order, the schema, the documented vocabularies, hostile text.

Pictures are synthetic (``media_factory``); labels like ``A1`` are attached to them
only to exercise the fields.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from importlib import resources

import pytest
import xmlschema
from lxml import etree

from fake_cybertipline import WHEN, done_response, files, full_report, report, response
from safehold.errors import InvalidValue
from safehold.refer.ncmec import (
    CyberTiplineReport,
    Email,
    FileAnnotation,
    FileHash,
    IncidentSummary,
    IncidentType,
    IndustryClassification,
    IpCapture,
    Journal,
    Person,
    Phase,
    ReportAnnotation,
    ReportedFile,
    ReportedUser,
    ResponseCode,
    Victim,
    WebPageIncident,
    file_details_xml,
    report_xml,
    validate,
)
from safehold.refer.ncmec import errors as ncmec_errors
from safehold.refer.ncmec.xml import REPORT_SECTIONS, InvalidDocument, parse, parse_response

XSD = resources.files("safehold.refer.ncmec").joinpath("schema/cybertipline.xsd").read_bytes()


@pytest.fixture(scope="module")
def second_validator() -> xmlschema.XMLSchema10:
    """The same XSD read by an independent implementation (xmlschema, pure Python)."""
    return xmlschema.XMLSchema10(XSD.decode())


def both_accept(data: bytes, second: xmlschema.XMLSchema10) -> None:
    validate(data)
    second.validate(data.decode())


# ----------------------------------------------------------------- order and schema


def test_report_sections_come_in_ncmecs_order(second_validator: xmlschema.XMLSchema10) -> None:
    data = report_xml(full_report())
    both_accept(data, second_validator)
    root = etree.fromstring(data)
    assert root.tag == "report"
    assert root.get("{http://www.w3.org/2001/XMLSchema-instance}noNamespaceSchemaLocation") == (
        "https://report.cybertip.org/ispws/xsd"
    )
    assert root.nsmap == {"xsi": "http://www.w3.org/2001/XMLSchema-instance"}  # no namespace
    tags = [child.tag for child in root]
    assert tags == [
        "incidentSummary",
        "internetDetails",
        "internetDetails",
        "internetDetails",
        "lawEnforcement",
        "reporter",
        "personOrUserReported",
        "intendedRecipient",
        "victim",
        "additionalInfo",
    ]
    assert sorted(set(tags), key=tags.index) == list(REPORT_SECTIONS)
    summary = [c.tag for c in root.find("incidentSummary")]  # type: ignore[union-attr]
    assert summary == [
        "incidentType",
        "platform",
        "escalateToHighPriority",
        "reportAnnotations",
        "incidentDateTime",
        "incidentDateTimeDescription",
    ]
    reported = [c.tag for c in root.find("personOrUserReported")]  # type: ignore[union-attr]
    assert reported == [
        "personOrUserReportedPerson",
        "espIdentifier",
        "compromisedAccount",
        "screenName",
        "displayName",
        "ipCaptureEvent",
        "thirdPartyUserReported",
        "priorCTReports",
        "groupIdentifier",
        "additionalInfo",
    ]
    assert [c.tag for c in root.find("reporter")] == [  # type: ignore[union-attr]
        "reportingPerson",
        "contactPerson",
        "companyTemplate",
        "termsOfService",
        "legalURL",
    ]


def test_minimal_report_has_only_the_required_parts(
    second_validator: xmlschema.XMLSchema10,
) -> None:
    minimal = CyberTiplineReport(
        incident=IncidentSummary(incident_type=IncidentType.CHILD_PORNOGRAPHY, incident_at=WHEN),
        reporter=report().reporter,
    )
    data = report_xml(minimal)
    both_accept(data, second_validator)
    root = etree.fromstring(data)
    assert [c.tag for c in root] == ["incidentSummary", "reporter"]
    assert root.findtext("incidentSummary/incidentDateTime") == "2026-03-14T09:26:53+00:00"
    assert root.findtext("reporter/companyTemplate") == (
        "Example Platform Inc.\n\nLegal process: legal@example.com. Data kept 90 days."
    )


def test_file_details_order_and_values(second_validator: xmlschema.XMLSchema10) -> None:
    first, second = files(2)
    data = file_details_xml(4564654, "b0754af766b426f2928a02c651ed4b99", first)
    both_accept(data, second_validator)
    root = etree.fromstring(data)
    assert [c.tag for c in root] == [
        "reportId",
        "fileId",
        "fileName",
        "originalFileName",
        "uploadedToEspTimestamp",
        "locationOfFile",
        "fileViewedByEsp",
        "publiclyAvailable",
        "fileRelevance",
        "fileAnnotations",
        "industryClassification",
        "originalFileHash",
        "originalFileHash",
        "ipCaptureEvent",
    ]
    assert root.findtext("fileViewedByEsp") == "true"
    assert root.findtext("publiclyAvailable") == "false"
    assert root.findtext("industryClassification") == "A1"
    assert [c.tag for c in root.find("fileAnnotations")] == ["generativeAi"]  # type: ignore[union-attr]
    hashes = {h.get("hashType"): h.text for h in root.iterfind("originalFileHash")}
    assert hashes == {"MD5": first.md5, "SHA256": first.sha256}
    ip = root.find("ipCaptureEvent")
    assert ip is not None and [c.tag for c in ip] == ["ipAddress", "eventName", "dateTime"]
    assert ip.findtext("eventName") == "Upload" and ip.findtext("ipAddress") == "203.0.113.7"
    assert root.findtext("uploadedToEspTimestamp") == WHEN.isoformat()

    other = etree.fromstring(file_details_xml(1, "f2", second))
    assert other.findtext("fileViewedByEsp") == "false"
    assert [c.tag for c in other.find("fileAnnotations")] == [  # type: ignore[union-attr]
        "viral",
        "possibleSelfProduction",
    ]  # schema order, whatever the order given
    assert other.find("ipCaptureEvent") is None
    assert other.findtext("additionalInfo") == "matched a hash bank entry; not viewed"


def _move(data: bytes, tag: str, before: str) -> bytes:
    root = etree.fromstring(data)
    moving = root.find(tag)
    target = root.find(before)
    assert moving is not None and target is not None
    target.addprevious(moving)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


@pytest.mark.parametrize(
    ("doc", "tag", "before"),
    [
        ("report", "reporter", "lawEnforcement"),
        ("report", "additionalInfo", "victim"),
        ("report", "internetDetails", "incidentSummary"),
        ("report", "personOrUserReported", "reporter"),
        ("summary", "incidentDateTime", "incidentType"),
        ("file", "industryClassification", "fileAnnotations"),
        ("file", "fileId", "reportId"),
    ],
)
def test_the_schema_rejects_elements_out_of_order(
    doc: str, tag: str, before: str, second_validator: xmlschema.XMLSchema10
) -> None:
    if doc == "file":
        data = file_details_xml(7, "f1", files(1)[0])
        moved = _move(data, tag, before)
    elif doc == "summary":
        root = etree.fromstring(report_xml(full_report()))
        summary = root.find("incidentSummary")
        assert summary is not None
        summary.find("incidentType").addprevious(summary.find("incidentDateTime"))  # type: ignore[union-attr,arg-type]
        moved = bytes(etree.tostring(root))
    else:
        moved = _move(report_xml(full_report()), tag, before)
    with pytest.raises(InvalidDocument, match="does not match the CyberTipline schema"):
        validate(moved)
    assert not second_validator.is_valid(moved.decode())


def test_the_schema_rejects_what_ncmec_does_not_take() -> None:
    good = etree.fromstring(report_xml(report()))
    cases = []
    no_type = copy.deepcopy(good)
    no_type.find("incidentSummary").remove(no_type.find("incidentSummary/incidentType"))  # type: ignore[union-attr,arg-type]
    cases.append(no_type)
    bad_type = copy.deepcopy(good)
    bad_type.find("incidentSummary/incidentType").text = "Child pornography"  # type: ignore[union-attr]
    cases.append(bad_type)
    unknown = copy.deepcopy(good)
    etree.SubElement(unknown, "comments").text = "x"
    cases.append(unknown)
    two_kinds = copy.deepcopy(good)
    etree.SubElement(two_kinds.find("internetDetails"), "chatImIncident")  # type: ignore[arg-type]
    cases.append(two_kinds)
    for root in cases:
        with pytest.raises(InvalidDocument):
            validate(etree.tostring(root))
    detail = etree.fromstring(file_details_xml(7, "f1", files(1)[0]))
    detail.find("industryClassification").text = "C3"  # type: ignore[union-attr]
    with pytest.raises(InvalidDocument):
        validate(etree.tostring(detail))
    flag = etree.fromstring(file_details_xml(7, "f1", files(1)[0]))
    flag.find("fileAnnotations/generativeAi").text = "true"  # type: ignore[union-attr]
    with pytest.raises(InvalidDocument):  # presence flags are empty elements
        validate(etree.tostring(flag))


NCMEC_EXAMPLE = b"""<?xml version="1.0" encoding="UTF-8"?>
<report xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
        xsi:noNamespaceSchemaLocation="https://report.cybertip.org/ispws/xsd">
    <incidentSummary>
        <incidentType>Child Pornography (possession, manufacture, and distribution)</incidentType>
        <reportAnnotations>
            <sextortion />
            <csamSolicitation />
            <minorToMinorInteraction />
            <spam />
            <sadisticOnlineExploitation />
        </reportAnnotations>
        <incidentDateTime>2012-10-15T08:00:00-07:00</incidentDateTime>
    </incidentSummary>
    <internetDetails>
        <webPageIncident>
            <url>http://badsite.com/baduri.html</url>
        </webPageIncident>
    </internetDetails>
    <reporter>
        <reportingPerson>
            <firstName>John</firstName>
            <lastName>Smith</lastName>
            <email>jsmith@example.com</email>
        </reportingPerson>
    </reporter>
</report>"""
"""The submission example of NCMEC's documentation (as transcribed in public clients)."""


def test_ncmecs_documented_example_is_valid(second_validator: xmlschema.XMLSchema10) -> None:
    both_accept(NCMEC_EXAMPLE, second_validator)


def test_the_answers_this_project_parses_are_valid() -> None:
    for doc in (
        response(0, "Success", report_id=4564654),
        response(
            0,
            "Success",
            report_id=4564654,
            file_id="b0754af766b426f2928a02c651ed4b99",
            hash="f" * 32,
        ),
        done_response(4564654, ["a", "b"]),
        response(5102, "Report already finished", report_id=1),
    ):
        validate(doc)


# ----------------------------------------------------------------- vocabularies


def _xsd_enum(name: str) -> list[str]:
    root = etree.fromstring(XSD)
    ns = {"xs": "http://www.w3.org/2001/XMLSchema"}
    return [
        e.get("value", "")
        for e in root.iterfind(f"xs:simpleType[@name='{name}']//xs:enumeration", ns)
    ]


def _xsd_sequence(name: str) -> list[str]:
    root = etree.fromstring(XSD)
    ns = {"xs": "http://www.w3.org/2001/XMLSchema"}
    return [
        e.get("name", "")
        for e in root.iterfind(f"xs:complexType[@name='{name}']/xs:sequence/xs:element", ns)
    ]


def test_incident_types_are_ncmecs_words() -> None:
    documented = [
        "Child Pornography (possession, manufacture, and distribution)",
        "Child Sex Trafficking",
        "Child Sex Tourism",
        "Child Sexual Molestation",
        "Misleading Domain Name",
        "Misleading Words or Digital Images on the Internet",
        "Online Enticement of Children for Sexual Acts",
        "Unsolicited Obscene Material Sent to a Child",
    ]
    assert [t.value for t in IncidentType] == documented == _xsd_enum("incidentType")


def test_annotations_and_classifications_are_ncmecs_names() -> None:
    assert [a.value for a in FileAnnotation] == [
        "animeDrawingVirtualHentai",
        "potentialMeme",
        "viral",
        "possibleSelfProduction",
        "physicalHarm",
        "violenceGore",
        "bestiality",
        "liveStreaming",
        "infant",
        "generativeAi",
    ]
    assert [a.value for a in FileAnnotation] == _xsd_sequence("fileAnnotations")
    assert [a.value for a in ReportAnnotation] == [
        "sextortion",
        "csamSolicitation",
        "minorToMinorInteraction",
        "spam",
        "sadisticOnlineExploitation",
    ]
    assert [a.value for a in ReportAnnotation] == _xsd_sequence("reportAnnotations")
    assert [c.value for c in IndustryClassification] == ["A1", "A2", "B1", "B2"]
    assert _xsd_enum("industryClassification") == ["A1", "A2", "B1", "B2"]
    assert _xsd_enum("fileRelevance") == ["Reported", "Supplemental Reported"]


def test_every_documented_response_code_has_a_typed_error() -> None:
    expected = {
        1000: ncmec_errors.CyberTiplineServerError,
        1100: ncmec_errors.CyberTiplineServerError,
        1110: ncmec_errors.CyberTiplineServerError,
        1111: ncmec_errors.CyberTiplineServerError,
        1210: ncmec_errors.CyberTiplineNotFound,
        1300: ncmec_errors.CyberTiplineServerError,
        2000: ncmec_errors.CyberTiplineAuthError,
        3000: ncmec_errors.CyberTiplineForbidden,
        3100: ncmec_errors.CyberTiplineForbidden,
        3300: ncmec_errors.CyberTiplineForbidden,
        4000: ncmec_errors.CyberTiplineRejected,
        4100: ncmec_errors.CyberTiplineRejected,
        4110: ncmec_errors.CyberTiplineRejected,
        4200: ncmec_errors.CyberTiplineRejected,
        5001: ncmec_errors.ReportNotFound,
        5002: ncmec_errors.FileNotFound,
        5101: ncmec_errors.ReportAlreadyRetracted,
        5102: ncmec_errors.ReportAlreadyFinished,
    }
    assert {c.value for c in ResponseCode} - {0} == set(expected)
    for code, kind in expected.items():
        error = ncmec_errors.error_for_code(code, None, step="submit")
        assert type(error) is kind
        assert error.response_code == code
        assert ncmec_errors.DESCRIPTIONS[ResponseCode(code)] in error.message
        assert error.retryable is (kind is ncmec_errors.CyberTiplineServerError)
    undocumented = ncmec_errors.error_for_code(4321, "Something new", step="fileinfo")
    assert type(undocumented) is ncmec_errors.CyberTiplineRejected
    assert "4321 Something new" in undocumented.message


# ----------------------------------------------------------------- hostile text


HOSTILE = [
    "<script>alert(1)</script>",
    "]]><injected/><![CDATA[",
    "a & b; &amp; &lt;x&gt; &#0;",
    "\u202egpj.exe",
    "quote ' and \" and `",
    "line\nbreak\ttab\r",
    "emoji \U0001f600 and \u0645\u0631\u062d\u0628\u0627",
    "</additionalInfo></report><report>",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_text_is_escaped_and_arrives_unchanged(
    text: str, second_validator: xmlschema.XMLSchema10
) -> None:
    hostile_file = ReportedFile(
        content=b"synthetic bytes",
        file_name="f.bin",
        viewed_by_esp=False,
        original_file_name=text,
        additional_info=[text],
    )
    r = report(
        reported_user=ReportedUser(screen_name=text[:256], display_names=[text], profile_bio=text),
        additional_info=text,
        files=[hostile_file],
    )
    data = report_xml(r)
    both_accept(data, second_validator)
    root = parse(data)
    assert [c.tag for c in root] == [
        "incidentSummary",
        "internetDetails",
        "reporter",
        "personOrUserReported",
        "additionalInfo",
    ]
    assert root.findtext("additionalInfo") == text
    assert root.findtext("personOrUserReported/profileBio") == text
    assert root.findtext("personOrUserReported/displayName") == text
    details = parse(file_details_xml(1, "f", hostile_file))
    assert details.findtext("originalFileName") == text
    assert details.findtext("additionalInfo") == text


@pytest.mark.parametrize(
    "bad", ["nul \x00 byte", "escape \x1b[31m", "bell \x07", "\ufffe", "lone \ud800"]
)
def test_characters_xml_cannot_carry_are_refused(bad: str) -> None:
    with pytest.raises(InvalidValue, match=r"cannot be carried in XML"):
        report(additional_info=bad)
    with pytest.raises(InvalidValue, match=r"ReportedFile.original_file_name"):
        ReportedFile(content=b"x", file_name="f.bin", viewed_by_esp=True, original_file_name=bad)


def test_very_long_text_is_refused_with_the_limit() -> None:
    huge = "A" * 100_000
    with pytest.raises(
        InvalidValue,
        match=r"CyberTiplineReport.additional_info: at most 50000 characters \(got 100000\)",
    ):
        report(additional_info=huge)
    with pytest.raises(InvalidValue, match=r"ReportedUser.screen_name: at most 256"):
        ReportedUser(screen_name=huge)
    with pytest.raises(InvalidValue, match=r"WebPageIncident.urls\[0\]: at most 2083"):
        WebPageIncident(urls=["https://example.com/" + huge])
    fits = "B" * 50_000
    assert parse(report_xml(report(additional_info=fits))).findtext("additionalInfo") == fits


def test_a_large_report_is_still_built() -> None:
    urls = [f"https://example.com/{i}/" + "p" * 2000 for i in range(600)]
    data = report_xml(report(internet_details=[WebPageIncident(urls=urls)]))
    assert len(data) > 1 << 20  # larger than any answer NCMEC sends, still a report
    assert len(validate(data).findall("internetDetails/webPageIncident/url")) == 600
    with pytest.raises(InvalidValue, match="at most 1000 entries"):
        WebPageIncident(urls=["https://example.com/"] * 1001)


# ----------------------------------------------------------------- validation messages


def test_validation_names_the_field_and_the_problem() -> None:
    def fails(pattern: str, make: object) -> None:
        with pytest.raises(InvalidValue, match=pattern):
            make()  # type: ignore[operator]

    fails(
        "IncidentSummary.incident_at: must carry a time zone",
        lambda: IncidentSummary(
            incident_type=IncidentType.CHILD_PORNOGRAPHY, incident_at=datetime(2026, 1, 1)
        ),
    )
    fails(
        "IncidentSummary.incident_type: must be one of 'Child Pornography",
        lambda: IncidentSummary(incident_type="CSAM", incident_at=WHEN),  # type: ignore[arg-type]
    )
    fails(
        "ReportedFile.industry_classification: must be one of 'A1', 'A2', 'B1', 'B2'",
        lambda: ReportedFile(
            content=b"x", file_name="f", viewed_by_esp=True, industry_classification="C3"
        ),  # type: ignore[arg-type]
    )
    fails(
        r"ReportedFile.annotations\[\]: must be one of",
        lambda: ReportedFile(
            content=b"x", file_name="f", viewed_by_esp=True, annotations={"aiGenerated"}
        ),  # type: ignore[arg-type]
    )
    fails(
        "ReportedFile.viewed_by_esp: must be True or False",
        lambda: ReportedFile(content=b"x", file_name="f", viewed_by_esp=None),  # type: ignore[arg-type]
    )
    fails(
        "ReportedFile.file_name: must be 1-255 letters",
        lambda: ReportedFile(content=b"x", file_name='../evil"\r\nname', viewed_by_esp=True),
    )
    fails(
        "Supplemental Reported' file takes no industry classification",
        lambda: ReportedFile(
            content=b"x",
            file_name="f",
            viewed_by_esp=True,
            relevance="Supplemental Reported",
            industry_classification="B1",  # type: ignore[arg-type]
        ),
    )
    fails(
        "IpCapture.ip_address: is not an IPv4 or IPv6 address",
        lambda: IpCapture(ip_address="999.1.1.1"),
    )
    fails(
        "IpCapture.port: must be a whole number from 1 to 65535",
        lambda: IpCapture(ip_address="192.0.2.1", port=0),
    )
    fails("Email.address: is not an e-mail address", lambda: Email(address="not-an-address"))
    fails(
        "Reporter.reporting_person: give an e-mail address",
        lambda: report().reporter.__class__(
            company_name="X", reporting_person=Person(first_name="No mail")
        ),
    )
    fails("Victim.person: NCMEC requires a person record", lambda: Victim(screen_name="child"))
    fails(
        "FileHash.value: a MD5 is 32 hexadecimal digits",
        lambda: FileHash(hash_type="md5", value="abc"),
    )
    fails(
        "CyberTiplineReport.files: every file needs its own file_name",
        lambda: report(files=[files(1)[0], files(1)[0]]),
    )


def test_hashes_default_to_md5_and_sha256_and_normalise() -> None:
    f = ReportedFile(content=b"synthetic", file_name="f", viewed_by_esp=True)
    assert [(h.hash_type, h.value) for h in f.hashes] == [("MD5", f.md5), ("SHA256", f.sha256)]
    given = ReportedFile(
        content=b"re-encoded",
        file_name="f",
        viewed_by_esp=True,
        hashes=[
            FileHash(hash_type="sha1", value="A" * 40),
            FileHash(hash_type="PDQ", value="f8f8f0ce"),
        ],
    )
    assert [(h.hash_type, h.value) for h in given.hashes] == [
        ("SHA1", "a" * 40),
        ("PDQ", "f8f8f0ce"),
    ]


# ----------------------------------------------------------------- answers


def test_ncmecs_answers_are_read() -> None:
    ok = parse_response(
        b"<reportResponse><responseCode>0</responseCode><responseDescription>Success</responseDescription>"
        b"<reportId>4564654</reportId><fileId>b0754af766b426f2928a02c651ed4b99</fileId>"
        b"<hash>fafa5efeaf3cbe3b23b2748d13e629a1</hash></reportResponse>"
    )
    assert ok.ok and ok.report_id == 4564654 and ok.hash == "fafa5efeaf3cbe3b23b2748d13e629a1"
    assert ok.file_id == "b0754af766b426f2928a02c651ed4b99"
    done = parse_response(done_response(4564654, ["f1", "f2"]))
    assert done.root == "reportDoneResponse" and done.file_ids == ("f1", "f2")
    refused = parse_response(response(4100, "Validation failed"))
    assert not refused.ok and refused.response_code == 4100


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"<html><body>502 Bad Gateway</body></html>",
        b"<reportResponse><responseDescription>no code</responseDescription></reportResponse>",
        b"<reportResponse><responseCode>zero</responseCode></reportResponse>",
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaa">]>'
        b"<reportResponse><responseCode>&a;</responseCode></reportResponse>",
        b"<reportResponse><responseCode>0</responseCode>",
        b"x" * (2 << 20),
    ],
)
def test_anything_else_is_not_an_answer(body: bytes) -> None:
    with pytest.raises(InvalidDocument):
        parse_response(body)


# ----------------------------------------------------------------- journal


def test_journal_round_trips_and_refuses_junk() -> None:
    j = Journal(base_url="https://exttest.cybertip.org/ispws", phase=Phase.OPEN, report_id=42)
    j.record("submit", "opened", "report 42")
    again = Journal.from_json(j.to_json())
    assert again == j
    assert isinstance(again.phase, Phase)
    for junk in (
        "[]",
        "not json",
        '{"version": 2}',
        '{"version": 1, "phase": "flying"}',
        '{"version": 1, "phase": "open"}',
        '{"version": 1, "phase": "new", "files": [{"file_name": 1}]}',
        '{"version": 1, "phase": "new", "report_id": "42"}',
    ):
        with pytest.raises(InvalidValue, match="journal"):
            Journal.from_json(junk)


def test_timezones_are_kept() -> None:
    from datetime import timedelta, timezone

    pacific = timezone(timedelta(hours=-7))
    r = report(
        incident=IncidentSummary(
            incident_type=IncidentType.CHILD_PORNOGRAPHY,
            incident_at=datetime(2012, 10, 15, 8, tzinfo=pacific),
        )
    )
    assert (
        parse(report_xml(r)).findtext("incidentSummary/incidentDateTime")
        == "2012-10-15T08:00:00-07:00"
    )
    assert datetime.fromisoformat("2012-10-15T08:00:00-07:00").astimezone(UTC).hour == 15
