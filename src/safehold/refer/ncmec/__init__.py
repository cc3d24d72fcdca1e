"""NCMEC CyberTipline reports: build one from what the platform knows, send it safely.

::

    from safehold.refer.ncmec import (
        CyberTiplineClient, CyberTiplineReport, IncidentSummary, IncidentType, Journal,
        Person, Email, Reporter, ReportedFile, ReportedUser,
    )

    report = CyberTiplineReport(
        incident=IncidentSummary(incident_type=IncidentType.CHILD_PORNOGRAPHY, incident_at=when),
        reporter=Reporter(company_name="Example Inc.",
                          reporting_person=Person(emails=[Email(address="tns@example.com")])),
        reported_user=ReportedUser(esp_identifier="user-9", screen_name="someone"),
        files=[ReportedFile(content=data, file_name="upload-123.jpg", viewed_by_esp=True,
                            industry_classification="A1")],
    )
    journal = Journal()                                  # store journal.to_json() with the referral
    with CyberTiplineClient.from_env() as client:        # SAFEHOLD_NCMEC_* settings
        report_id = client.send(report, journal, save=store_journal)

Modules: :mod:`~.model` (the report), :mod:`~.xml` (its XML and NCMEC's answers),
:mod:`~.journal` (resumable state), :mod:`~.client` (the API), :mod:`~.errors`
(response codes). The schema is ``schema/cybertipline.xsd``. See ``docs/ncmec.md``.
"""

from __future__ import annotations

from safehold.refer.ncmec.client import (
    ENVIRONMENTS,
    PRODUCTION_URL,
    TEST_URL,
    Credentials,
    CyberTiplineClient,
    RetryPolicy,
)
from safehold.refer.ncmec.errors import (
    CyberTiplineAuthError,
    CyberTiplineConflict,
    CyberTiplineError,
    CyberTiplineForbidden,
    CyberTiplineNotFound,
    CyberTiplineRejected,
    CyberTiplineServerError,
    CyberTiplineUnavailable,
    FileNotFound,
    JournalMismatch,
    ReportAlreadyFinished,
    ReportAlreadyRetracted,
    ReportClosed,
    ReportNotFound,
    ResponseCode,
    SubmitOutcomeUnknown,
)
from safehold.refer.ncmec.journal import FileStage, Journal, Phase
from safehold.refer.ncmec.model import (
    Address,
    CellPhoneIncident,
    ChatIncident,
    CyberTiplineReport,
    Email,
    EmailIncident,
    EventName,
    FileAnnotation,
    FileHash,
    FileRelevance,
    IncidentSummary,
    IncidentType,
    IndustryClassification,
    IntendedRecipient,
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
from safehold.refer.ncmec.xml import file_details_xml, report_xml, schema, validate

__all__ = [
    "ENVIRONMENTS",
    "PRODUCTION_URL",
    "TEST_URL",
    "Address",
    "CellPhoneIncident",
    "ChatIncident",
    "Credentials",
    "CyberTiplineAuthError",
    "CyberTiplineClient",
    "CyberTiplineConflict",
    "CyberTiplineError",
    "CyberTiplineForbidden",
    "CyberTiplineNotFound",
    "CyberTiplineRejected",
    "CyberTiplineReport",
    "CyberTiplineServerError",
    "CyberTiplineUnavailable",
    "Email",
    "EmailIncident",
    "EventName",
    "FileAnnotation",
    "FileHash",
    "FileNotFound",
    "FileRelevance",
    "FileStage",
    "IncidentSummary",
    "IncidentType",
    "IndustryClassification",
    "IntendedRecipient",
    "IpCapture",
    "Journal",
    "JournalMismatch",
    "LawEnforcement",
    "NewsgroupIncident",
    "NonInternetIncident",
    "OnlineGamingIncident",
    "PeerToPeerIncident",
    "Person",
    "Phase",
    "Phone",
    "ReportAlreadyFinished",
    "ReportAlreadyRetracted",
    "ReportAnnotation",
    "ReportClosed",
    "ReportNotFound",
    "ReportedFile",
    "ReportedUser",
    "Reporter",
    "ResponseCode",
    "RetryPolicy",
    "SubmitOutcomeUnknown",
    "Victim",
    "WebPageIncident",
    "file_details_xml",
    "report_xml",
    "schema",
    "validate",
]
