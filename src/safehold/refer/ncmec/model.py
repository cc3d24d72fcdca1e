"""A CyberTipline report as a platform knows it: typed, validated, immutable.

Every class checks its values when it is made and raises
:class:`safehold.errors.InvalidValue` naming the field and what is wrong, so a report
that exists is one that :mod:`safehold.refer.ncmec.xml` can always write and that the
schema accepts. Free text may hold anything a hostile user typed (``<script>``,
``]]>``, right-to-left overrides: the XML escapes them and they arrive as typed) except
characters XML 1.0 cannot carry (NUL and other control characters), which are refused.
Lengths are NCMEC's documented maximums where there is one, and
:data:`TEXT_LIMIT` characters for free text where there is none.

Names follow NCMEC's documentation (see ``docs/ncmec.md``); the Python names are
snake_case versions of the XML element names, with a few plainer words: ``incident_at``
for ``incidentDateTime``, ``reported_user`` for ``personOrUserReported``,
``esp_identifier`` is the platform's own user id.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import Enum, StrEnum
from functools import cached_property
from typing import TypeVar

from safehold.errors import InvalidValue, preview

TEXT_LIMIT = 50_000
"""Most characters in a free-text field NCMEC documents no maximum for (ours, not NCMEC's)."""

LIST_LIMIT = 1_000
"""Most entries in any list of a report (URLs, IP captures, files...)."""

# ----------------------------------------------------------------- vocabularies


class IncidentType(StrEnum):
    """``incidentSummary/incidentType``: the documented incident types, word for word."""

    CHILD_PORNOGRAPHY = "Child Pornography (possession, manufacture, and distribution)"
    CHILD_SEX_TRAFFICKING = "Child Sex Trafficking"
    CHILD_SEX_TOURISM = "Child Sex Tourism"
    CHILD_SEXUAL_MOLESTATION = "Child Sexual Molestation"
    MISLEADING_DOMAIN_NAME = "Misleading Domain Name"
    MISLEADING_WORDS_OR_DIGITAL_IMAGES = "Misleading Words or Digital Images on the Internet"
    ONLINE_ENTICEMENT = "Online Enticement of Children for Sexual Acts"
    UNSOLICITED_OBSCENE_MATERIAL = "Unsolicited Obscene Material Sent to a Child"


class ReportAnnotation(StrEnum):
    """``incidentSummary/reportAnnotations``: tags for the whole report (in schema order)."""

    SEXTORTION = "sextortion"
    CSAM_SOLICITATION = "csamSolicitation"
    MINOR_TO_MINOR_INTERACTION = "minorToMinorInteraction"
    SPAM = "spam"
    SADISTIC_ONLINE_EXPLOITATION = "sadisticOnlineExploitation"


class FileAnnotation(StrEnum):
    """``fileDetails/fileAnnotations``: tags for one file (in schema order)."""

    ANIME_DRAWING_VIRTUAL_HENTAI = "animeDrawingVirtualHentai"
    POTENTIAL_MEME = "potentialMeme"
    VIRAL = "viral"
    POSSIBLE_SELF_PRODUCTION = "possibleSelfProduction"
    PHYSICAL_HARM = "physicalHarm"
    VIOLENCE_GORE = "violenceGore"
    BESTIALITY = "bestiality"
    LIVE_STREAMING = "liveStreaming"
    INFANT = "infant"
    GENERATIVE_AI = "generativeAi"


class IndustryClassification(StrEnum):
    """``fileDetails/industryClassification``: A prepubescent, B pubescent minor; 1 sex
    act, 2 lascivious exhibition (the ``industry`` labels of :mod:`safehold.taxonomy`)."""

    A1 = "A1"
    A2 = "A2"
    B1 = "B1"
    B2 = "B2"


class FileRelevance(StrEnum):
    """``fileDetails/fileRelevance``: ``Reported`` is the reason for the report;
    ``Supplemental Reported`` gives context (and may carry no industry classification
    and no potential-meme annotation)."""

    REPORTED = "Reported"
    SUPPLEMENTAL_REPORTED = "Supplemental Reported"


class EventName(StrEnum):
    """``ipCaptureEvent/eventName``: what the user was doing when the IP was seen."""

    LOGIN = "Login"
    REGISTRATION = "Registration"
    PURCHASE = "Purchase"
    UPLOAD = "Upload"
    OTHER = "Other"
    UNKNOWN = "Unknown"


class EmailType(StrEnum):
    HOME = "Home"
    WORK = "Work"
    BUSINESS = "Business"
    RECOVERY = "Recovery"


class PhoneType(StrEnum):
    MOBILE = "Mobile"
    HOME = "Home"
    BUSINESS = "Business"
    WORK = "Work"
    FAX = "Fax"
    INTERNET = "Internet"
    RECOVERY = "Recovery"


class AddressType(StrEnum):
    HOME = "Home"
    BUSINESS = "Business"
    BILLING = "Billing"
    SHIPPING = "Shipping"
    TECHNICAL = "Technical"


US_STATES = frozenset(
    {
        *("AK", "AL", "AR", "AZ", "CA", "CO", "CT", "DC", "DE", "FL", "GA", "GU", "HI", "IA"),
        *("ID", "IL", "IN", "KS", "KY", "LA", "MA", "MD", "ME", "MI", "MN", "MO", "MS", "MT"),
        *("NC", "ND", "NE", "NH", "NJ", "NM", "NV", "NY", "OH", "OK", "OR", "PA", "PR", "RI"),
        *("SC", "SD", "TN", "TX", "UT", "VA", "VI", "VT", "WA", "WI", "WV", "WY"),
    }
)
"""US states and territories, as NCMEC's schema enumerates them."""

# ----------------------------------------------------------------- checks

_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_SPACE = re.compile(r"\s")
_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")
_HEX_LENGTHS = {"MD5": 32, "SHA1": 40, "SHA256": 64}

E = TypeVar("E", bound=Enum)
T = TypeVar("T")


def _fail(where: str, problem: str, value: object) -> InvalidValue:
    return InvalidValue(f"{where}: {problem} (got {preview(value)})", field=where)


def _text(value: object, where: str, limit: int = TEXT_LIMIT) -> str:
    if not isinstance(value, str):
        raise _fail(where, "must be text", value)
    if not value.strip():
        raise _fail(where, "must not be empty", value)
    if len(value) > limit:
        raise InvalidValue(f"{where}: at most {limit} characters (got {len(value)})", field=where)
    bad = _NOT_XML.search(value)
    if bad:
        raise InvalidValue(
            f"{where}: character U+{ord(bad.group()):04X} cannot be carried in XML; "
            "remove it (control characters such as NUL are never valid)",
            field=where,
        )
    return value


def _opt_text(value: object, where: str, limit: int = TEXT_LIMIT) -> str | None:
    return None if value is None else _text(value, where, limit)


def _token(value: object, where: str, limit: int) -> str:
    """Text without whitespace: URLs, e-mail addresses, identifiers."""
    text = _text(value, where, limit)
    if _SPACE.search(text):
        raise _fail(where, "must not contain spaces or line breaks", value)
    return text


def _opt_token(value: object, where: str, limit: int) -> str | None:
    return None if value is None else _token(value, where, limit)


def _url(value: object, where: str) -> str:
    return _token(value, where, 2083)


def _email(value: object, where: str) -> str:
    text = _token(value, where, 255)
    local, at, domain = text.rpartition("@")
    if not at or not local or not domain or "." not in domain.strip("."):
        raise _fail(where, "is not an e-mail address", value)
    return text


def _ip(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise _fail(where, "must be an IP address as text", value)
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        raise _fail(where, "is not an IPv4 or IPv6 address", value) from None


def _moment(value: object, where: str) -> datetime:
    if not isinstance(value, datetime):
        raise _fail(where, "must be a datetime", value)
    if value.tzinfo is None or value.utcoffset() is None:
        raise _fail(where, "must carry a time zone (e.g. datetime.now(UTC))", value)
    return value


def _opt_moment(value: object, where: str) -> datetime | None:
    return None if value is None else _moment(value, where)


def _opt_bool(value: object, where: str) -> bool | None:
    if value is not None and not isinstance(value, bool):
        raise _fail(where, "must be True, False or None", value)
    return value


def _int(value: object, where: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _fail(where, f"must be a whole number from {low} to {high}", value)
    return value


def _enum(kind: type[E], value: object, where: str) -> E:
    if isinstance(value, kind):
        return value
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(repr(m.value) for m in kind)
        raise _fail(where, f"must be one of {allowed}", value) from None


def _opt_enum(kind: type[E], value: object, where: str) -> E | None:
    return None if value is None else _enum(kind, value, where)


def _enums(kind: type[E], values: object, where: str) -> frozenset[E]:
    if isinstance(values, str) or not isinstance(values, Iterable):
        raise _fail(where, "must be a set of names", values)
    return frozenset(_enum(kind, v, f"{where}[]") for v in values)


def _seq(values: object, where: str, kind: type[T] | tuple[type, ...]) -> tuple[T, ...]:
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise _fail(where, "must be a list", values)
    out = tuple(values)
    if len(out) > LIST_LIMIT:
        raise InvalidValue(f"{where}: at most {LIST_LIMIT} entries (got {len(out)})", field=where)
    for i, v in enumerate(out):
        if not isinstance(v, kind):
            names = (
                kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            )
            raise _fail(f"{where}[{i}]", f"must be a {names}", v)
    return out


def _texts(values: object, where: str, limit: int = TEXT_LIMIT) -> tuple[str, ...]:
    return tuple(_text(v, f"{where}[{i}]", limit) for i, v in enumerate(_seq(values, where, str)))


def _set(obj: object, name: str, value: object) -> None:
    object.__setattr__(obj, name, value)


# ----------------------------------------------------------------- people


@dataclass(frozen=True, kw_only=True)
class Email:
    """An e-mail address (``email``), with its kind and whether the platform verified it."""

    address: str
    type: EmailType | None = None
    verified: bool | None = None

    def __post_init__(self) -> None:
        _set(self, "address", _email(self.address, "Email.address"))
        _set(self, "type", _opt_enum(EmailType, self.type, "Email.type"))
        _opt_bool(self.verified, "Email.verified")


@dataclass(frozen=True, kw_only=True)
class Phone:
    """A phone number (``phone``); ``country_calling_code`` like ``+1``."""

    number: str
    type: PhoneType | None = None
    country_calling_code: str | None = None
    extension: str | None = None
    verified: bool | None = None

    def __post_init__(self) -> None:
        _text(self.number, "Phone.number", 50)
        _set(self, "type", _opt_enum(PhoneType, self.type, "Phone.type"))
        code = _opt_token(self.country_calling_code, "Phone.country_calling_code", 4)
        if code is not None and not re.fullmatch(r"\+[0-9]{1,3}", code):
            raise _fail("Phone.country_calling_code", "must be + and 1 to 3 digits", code)
        ext = _opt_token(self.extension, "Phone.extension", 10)
        if ext is not None and not ext.isdigit():
            raise _fail("Phone.extension", "must be digits", ext)
        _opt_bool(self.verified, "Phone.verified")


@dataclass(frozen=True, kw_only=True)
class Address:
    """A postal address. ``state`` is a US state or territory code (``CA``);
    ``non_usa_state`` a state or province elsewhere; ``country`` a two-letter code."""

    street: str | None = None
    city: str | None = None
    zip_code: str | None = None
    state: str | None = None
    non_usa_state: str | None = None
    country: str | None = None
    type: AddressType | None = None

    def __post_init__(self) -> None:
        _opt_text(self.street, "Address.street", 255)
        _opt_text(self.city, "Address.city", 100)
        _opt_text(self.zip_code, "Address.zip_code", 20)
        if self.state is not None and self.state not in US_STATES:
            raise _fail(
                "Address.state", "must be a US state or territory code like 'CA'", self.state
            )
        _opt_text(self.non_usa_state, "Address.non_usa_state", 100)
        if self.country is not None:
            _country(self.country, "Address.country")
        _set(self, "type", _opt_enum(AddressType, self.type, "Address.type"))
        if not any(
            (self.street, self.city, self.zip_code, self.state, self.non_usa_state, self.country)
        ):
            raise InvalidValue("Address: give at least one part of the address", field="Address")


def _country(value: object, where: str) -> str:
    if not isinstance(value, str) or not re.fullmatch("[A-Z][A-Z0-9]", value):
        raise _fail(where, "must be a two-letter ISO 3166 country code like 'US'", value)
    return value


@dataclass(frozen=True, kw_only=True)
class Person:
    """A person (``person``/``contactPerson``): any of names, phones, e-mails, addresses;
    ``age`` and ``date_of_birth`` only where NCMEC takes them (not for the reporter)."""

    first_name: str | None = None
    last_name: str | None = None
    phones: Sequence[Phone] = ()
    emails: Sequence[Email] = ()
    addresses: Sequence[Address] = ()
    age: int | None = None
    date_of_birth: date | None = None

    def __post_init__(self) -> None:
        _opt_text(self.first_name, "Person.first_name", 100)
        _opt_text(self.last_name, "Person.last_name", 100)
        _set(self, "phones", _seq(self.phones, "Person.phones", Phone))
        _set(self, "emails", _seq(self.emails, "Person.emails", Email))
        _set(self, "addresses", _seq(self.addresses, "Person.addresses", Address))
        if self.age is not None:
            _int(self.age, "Person.age", 0, 150)
        if self.date_of_birth is not None and (
            not isinstance(self.date_of_birth, date) or isinstance(self.date_of_birth, datetime)
        ):
            raise _fail("Person.date_of_birth", "must be a date", self.date_of_birth)
        if not any(
            (self.first_name, self.last_name, self.phones, self.emails, self.addresses)
        ) and (self.age is None and self.date_of_birth is None):
            raise InvalidValue(
                "Person: give at least a name, phone, e-mail or address", field="Person"
            )


@dataclass(frozen=True, kw_only=True)
class IpCapture:
    """``ipCaptureEvent``: an IP address the user was seen at, when and doing what."""

    ip_address: str
    event: EventName | None = None
    at: datetime | None = None
    possible_proxy: bool | None = None
    port: int | None = None

    def __post_init__(self) -> None:
        _set(self, "ip_address", _ip(self.ip_address, "IpCapture.ip_address"))
        _set(self, "event", _opt_enum(EventName, self.event, "IpCapture.event"))
        _opt_moment(self.at, "IpCapture.at")
        _opt_bool(self.possible_proxy, "IpCapture.possible_proxy")
        if self.port is not None:
            _int(self.port, "IpCapture.port", 1, 65535)


# ----------------------------------------------------------------- incident


@dataclass(frozen=True, kw_only=True)
class IncidentSummary:
    """``incidentSummary``: what kind of incident and when (both required by NCMEC).

    ``escalate_to_high_priority`` is the reason, when a child is at immediate risk;
    leave it out otherwise.
    """

    incident_type: IncidentType
    incident_at: datetime
    platform: str | None = None
    escalate_to_high_priority: str | None = None
    annotations: frozenset[ReportAnnotation] = frozenset()
    incident_at_description: str | None = None

    def __post_init__(self) -> None:
        where = "IncidentSummary"
        _set(
            self, "incident_type", _enum(IncidentType, self.incident_type, f"{where}.incident_type")
        )
        _moment(self.incident_at, f"{where}.incident_at")
        _opt_text(self.platform, f"{where}.platform", 256)
        _opt_text(self.escalate_to_high_priority, f"{where}.escalate_to_high_priority", 3000)
        _set(
            self, "annotations", _enums(ReportAnnotation, self.annotations, f"{where}.annotations")
        )
        _opt_text(self.incident_at_description, f"{where}.incident_at_description", 3000)


@dataclass(frozen=True, kw_only=True)
class WebPageIncident:
    """``webPageIncident``: the content was on web pages at ``urls``."""

    urls: Sequence[str] = ()
    additional_info: str | None = None
    third_party_hosted_content: bool | None = None

    def __post_init__(self) -> None:
        urls = _seq(self.urls, "WebPageIncident.urls", str)
        _set(self, "urls", tuple(_url(u, f"WebPageIncident.urls[{i}]") for i, u in enumerate(urls)))
        _opt_text(self.additional_info, "WebPageIncident.additional_info")
        _opt_bool(self.third_party_hosted_content, "WebPageIncident.third_party_hosted_content")
        if not self.urls and self.additional_info is None:
            raise InvalidValue("WebPageIncident: give the URLs", field="WebPageIncident.urls")


@dataclass(frozen=True, kw_only=True)
class EmailIncident:
    """``emailIncident``: the content came by e-mail."""

    emails: Sequence[Email] = ()
    content: str | None = None
    additional_info: str | None = None

    def __post_init__(self) -> None:
        _set(self, "emails", _seq(self.emails, "EmailIncident.emails", Email))
        _opt_text(self.content, "EmailIncident.content")
        _opt_text(self.additional_info, "EmailIncident.additional_info")


@dataclass(frozen=True, kw_only=True)
class NewsgroupIncident:
    """``newsgroupIncident``: the content was posted to a newsgroup."""

    name: str | None = None
    emails: Sequence[Email] = ()
    content: str | None = None
    additional_info: str | None = None

    def __post_init__(self) -> None:
        _opt_text(self.name, "NewsgroupIncident.name", 255)
        _set(self, "emails", _seq(self.emails, "NewsgroupIncident.emails", Email))
        _opt_text(self.content, "NewsgroupIncident.content")
        _opt_text(self.additional_info, "NewsgroupIncident.additional_info")


@dataclass(frozen=True, kw_only=True)
class ChatIncident:
    """``chatImIncident``: the content was sent in a chat or instant message."""

    chat_client: str | None = None
    chat_room_name: str | None = None
    content: str | None = None
    additional_info: str | None = None

    def __post_init__(self) -> None:
        _opt_text(self.chat_client, "ChatIncident.chat_client", 255)
        _opt_text(self.chat_room_name, "ChatIncident.chat_room_name", 255)
        _opt_text(self.content, "ChatIncident.content")
        _opt_text(self.additional_info, "ChatIncident.additional_info")


@dataclass(frozen=True, kw_only=True)
class OnlineGamingIncident:
    """``onlineGamingIncident``: the incident happened in an online game."""

    game_name: str | None = None
    console: str | None = None
    content: str | None = None
    additional_info: str | None = None

    def __post_init__(self) -> None:
        _opt_text(self.game_name, "OnlineGamingIncident.game_name", 255)
        _opt_text(self.console, "OnlineGamingIncident.console", 255)
        _opt_text(self.content, "OnlineGamingIncident.content")
        _opt_text(self.additional_info, "OnlineGamingIncident.additional_info")


@dataclass(frozen=True, kw_only=True)
class CellPhoneIncident:
    """``cellPhoneIncident``: mainly by phone (calls, texts, pictures sent by phone)."""

    phone: Phone | None = None
    latitude: float | None = None
    longitude: float | None = None
    additional_info: str | None = None

    def __post_init__(self) -> None:
        if self.phone is not None and not isinstance(self.phone, Phone):
            raise _fail("CellPhoneIncident.phone", "must be a Phone", self.phone)
        for name, bound in (("latitude", 90.0), ("longitude", 180.0)):
            v = getattr(self, name)
            if v is not None and (
                isinstance(v, bool) or not isinstance(v, int | float) or not -bound <= v <= bound
            ):
                raise _fail(
                    f"CellPhoneIncident.{name}", f"must be a number from -{bound:g} to {bound:g}", v
                )
        _opt_text(self.additional_info, "CellPhoneIncident.additional_info")


@dataclass(frozen=True, kw_only=True)
class NonInternetIncident:
    """``nonInternetIncident``: no online or phone part (e.g. printed material)."""

    location_name: str | None = None
    addresses: Sequence[Address] = ()
    additional_info: str | None = None

    def __post_init__(self) -> None:
        _opt_text(self.location_name, "NonInternetIncident.location_name", 255)
        _set(self, "addresses", _seq(self.addresses, "NonInternetIncident.addresses", Address))
        _opt_text(self.additional_info, "NonInternetIncident.additional_info")


@dataclass(frozen=True, kw_only=True)
class PeerToPeerIncident:
    """``peer2peerIncident``: file sharing over a peer-to-peer network."""

    client: str | None = None
    ip_captures: Sequence[IpCapture] = ()
    file_names: str | None = None
    additional_info: str | None = None

    def __post_init__(self) -> None:
        _opt_text(self.client, "PeerToPeerIncident.client", 255)
        _set(
            self, "ip_captures", _seq(self.ip_captures, "PeerToPeerIncident.ip_captures", IpCapture)
        )
        _opt_text(self.file_names, "PeerToPeerIncident.file_names")
        _opt_text(self.additional_info, "PeerToPeerIncident.additional_info")


InternetDetail = (
    WebPageIncident
    | EmailIncident
    | NewsgroupIncident
    | ChatIncident
    | OnlineGamingIncident
    | CellPhoneIncident
    | NonInternetIncident
    | PeerToPeerIncident
)
INTERNET_DETAIL_TYPES: tuple[type, ...] = (
    WebPageIncident,
    EmailIncident,
    NewsgroupIncident,
    ChatIncident,
    OnlineGamingIncident,
    CellPhoneIncident,
    NonInternetIncident,
    PeerToPeerIncident,
)


@dataclass(frozen=True, kw_only=True)
class LawEnforcement:
    """``lawEnforcement``: when the incident was already reported to, or came from,
    law enforcement. ``flea_country`` is the country of a foreign agency that served
    legal process (with ``served_legal_process_international``)."""

    agency_name: str
    case_number: str | None = None
    officer: Person | None = None
    reported_to_le: bool | None = None
    served_legal_process_domestic: bool | None = None
    served_legal_process_international: bool | None = None
    flea_country: str | None = None

    def __post_init__(self) -> None:
        _text(self.agency_name, "LawEnforcement.agency_name", 255)
        _opt_text(self.case_number, "LawEnforcement.case_number", 100)
        if self.officer is not None:
            _contact(self.officer, "LawEnforcement.officer")
        for name in (
            "reported_to_le",
            "served_legal_process_domestic",
            "served_legal_process_international",
        ):
            _opt_bool(getattr(self, name), f"LawEnforcement.{name}")
        if self.flea_country is not None:
            _country(self.flea_country, "LawEnforcement.flea_country")
            if self.served_legal_process_international is None:
                raise InvalidValue(
                    "LawEnforcement.flea_country: only with served_legal_process_international",
                    field="LawEnforcement.flea_country",
                )


def _contact(person: object, where: str) -> Person:
    if not isinstance(person, Person):
        raise _fail(where, "must be a Person", person)
    if person.age is not None or person.date_of_birth is not None:
        raise InvalidValue(f"{where}: a contact takes no age or date of birth", field=where)
    return person


@dataclass(frozen=True, kw_only=True)
class Reporter:
    """``reporter``: the reporting company.

    ``reporting_person`` is who files the report (NCMEC needs at least an e-mail);
    ``contact_person`` whom law enforcement should call if not them. NCMEC's schema has
    no company-name element: ``company_name`` opens ``companyTemplate``, followed by
    ``company_template`` (standing text for every report: how to serve legal process,
    data retention, 24-hour phone). ``terms_of_service`` is the text of the terms the
    content broke; ``legal_url`` a page with more (e.g. the terms of service's URL).
    """

    company_name: str
    reporting_person: Person
    contact_person: Person | None = None
    company_template: str | None = None
    terms_of_service: str | None = None
    legal_url: str | None = None

    def __post_init__(self) -> None:
        _text(self.company_name, "Reporter.company_name", 255)
        _contact(self.reporting_person, "Reporter.reporting_person")
        if not self.reporting_person.emails:
            raise InvalidValue(
                "Reporter.reporting_person: give an e-mail address NCMEC can reach",
                field="Reporter.reporting_person.emails",
            )
        if self.contact_person is not None:
            _contact(self.contact_person, "Reporter.contact_person")
        _opt_text(self.company_template, "Reporter.company_template")
        _opt_text(self.terms_of_service, "Reporter.terms_of_service")
        if self.legal_url is not None:
            _url(self.legal_url, "Reporter.legal_url")


@dataclass(frozen=True, kw_only=True)
class Account:
    """What a platform knows of an account: shared by the reported user, an intended
    recipient and a victim."""

    person: Person | None = None
    esp_identifier: str | None = None
    """The platform's own id of the account (user id)."""
    esp_service: str | None = None
    """The platform's product or service the account used."""
    screen_name: str | None = None
    display_names: Sequence[str] = ()
    profile_urls: Sequence[str] = ()
    profile_bio: str | None = None
    ip_captures: Sequence[IpCapture] = ()
    prior_ct_reports: Sequence[int] = ()
    """Ids of earlier CyberTipline reports about this account."""
    compromised_account: bool | None = None
    additional_info: str | None = None

    def _check_account(self, where: str) -> None:
        if self.person is not None and not isinstance(self.person, Person):
            raise _fail(f"{where}.person", "must be a Person", self.person)
        _opt_text(self.esp_identifier, f"{where}.esp_identifier", 255)
        _opt_text(self.esp_service, f"{where}.esp_service", 100)
        _opt_text(self.screen_name, f"{where}.screen_name", 256)
        _set(self, "display_names", _texts(self.display_names, f"{where}.display_names", 256))
        urls = _seq(self.profile_urls, f"{where}.profile_urls", str)
        _set(
            self,
            "profile_urls",
            tuple(_url(u, f"{where}.profile_urls[{i}]") for i, u in enumerate(urls)),
        )
        _opt_text(self.profile_bio, f"{where}.profile_bio")
        _set(self, "ip_captures", _seq(self.ip_captures, f"{where}.ip_captures", IpCapture))
        ids = _seq(self.prior_ct_reports, f"{where}.prior_ct_reports", int)
        for i, v in enumerate(ids):
            _int(v, f"{where}.prior_ct_reports[{i}]", 1, 2**63 - 1)
        _set(self, "prior_ct_reports", ids)
        _opt_bool(self.compromised_account, f"{where}.compromised_account")
        _opt_text(self.additional_info, f"{where}.additional_info")


@dataclass(frozen=True, kw_only=True)
class ReportedUser(Account):
    """``personOrUserReported``: the person or account the report is about."""

    third_party_user_reported: bool | None = None
    """True when the account is on another company's service and this is all we know."""
    group_identifier: str | None = None

    def __post_init__(self) -> None:
        self._check_account("ReportedUser")
        _opt_bool(self.third_party_user_reported, "ReportedUser.third_party_user_reported")
        _opt_text(self.group_identifier, "ReportedUser.group_identifier", 255)


@dataclass(frozen=True, kw_only=True)
class IntendedRecipient(Account):
    """``intendedRecipient``: someone the content was sent to."""

    group_identifier: str | None = None

    def __post_init__(self) -> None:
        self._check_account("IntendedRecipient")
        _opt_text(self.group_identifier, "IntendedRecipient.group_identifier", 255)


@dataclass(frozen=True, kw_only=True)
class Victim(Account):
    """``victim``: a child victim; NCMEC requires the person record (``person``)."""

    school_name: str | None = None

    def __post_init__(self) -> None:
        if self.person is None:
            raise InvalidValue(
                "Victim.person: NCMEC requires a person record for a victim", field="Victim.person"
            )
        self._check_account("Victim")
        _opt_text(self.school_name, "Victim.school_name", 255)


# ----------------------------------------------------------------- files


@dataclass(frozen=True, kw_only=True)
class FileHash:
    """``originalFileHash``: a hash of the file as the user uploaded it. ``hash_type``
    as NCMEC writes them: ``MD5``, ``SHA1``, ``SHA256``, or another name (``PDQ``)."""

    hash_type: str
    value: str

    def __post_init__(self) -> None:
        kind = _token(self.hash_type, "FileHash.hash_type", 64)
        value = _token(self.value, "FileHash.value", 1024)
        length = _HEX_LENGTHS.get(kind.upper())
        if length is not None:
            kind, value = kind.upper(), value.lower()
            if len(value) != length or not re.fullmatch("[0-9a-f]+", value):
                raise _fail(
                    "FileHash.value", f"a {kind} is {length} hexadecimal digits", self.value
                )
        _set(self, "hash_type", kind)
        _set(self, "value", value)


@dataclass(frozen=True, kw_only=True)
class ReportedFile:
    """One file sent with the report: its bytes, uploaded to NCMEC, and ``fileDetails``.

    ``viewed_by_esp`` says whether a person at the company looked at this file (it is
    required: NCMEC's handling depends on it); ``publicly_available`` whether anyone
    online could see it. ``file_name`` is the name the file is uploaded under (letters,
    digits, ``.``, ``_``, ``-``: never the user's own name, which may be hostile and
    goes in ``original_file_name``). ``hashes`` default to MD5 and SHA-256 of
    ``content``: pass the original hashes when ``content`` is not byte for byte what the
    user uploaded. ``upload_ip``/``uploaded_at`` become the file's ``Upload`` IP capture
    and ``uploadedToEspTimestamp``.
    """

    content: bytes = field(repr=False)
    file_name: str
    viewed_by_esp: bool
    publicly_available: bool | None = None
    exif_viewed_by_esp: bool | None = None
    original_file_name: str | None = None
    hashes: Sequence[FileHash] = ()
    industry_classification: IndustryClassification | None = None
    annotations: frozenset[FileAnnotation] = frozenset()
    relevance: FileRelevance = FileRelevance.REPORTED
    location_of_file: str | None = None
    upload_ip: str | None = None
    uploaded_at: datetime | None = None
    additional_info: Sequence[str] = ()

    def __post_init__(self) -> None:
        where = "ReportedFile"
        if not isinstance(self.content, bytes) or not self.content:
            raise _fail(
                f"{where}.content", "must be the file's bytes (not empty)", type(self.content)
            )
        if not isinstance(self.file_name, str) or not _FILE_NAME.fullmatch(self.file_name):
            raise _fail(
                f"{where}.file_name",
                "must be 1-255 letters, digits, '.', '_' or '-', starting with a letter or digit",
                self.file_name,
            )
        if not isinstance(self.viewed_by_esp, bool):
            raise _fail(f"{where}.viewed_by_esp", "must be True or False", self.viewed_by_esp)
        _opt_bool(self.publicly_available, f"{where}.publicly_available")
        _opt_bool(self.exif_viewed_by_esp, f"{where}.exif_viewed_by_esp")
        _opt_text(self.original_file_name, f"{where}.original_file_name", 2056)
        hashes = _seq(self.hashes, f"{where}.hashes", FileHash)
        if not hashes:
            hashes = (
                FileHash(hash_type="MD5", value=self.md5),
                FileHash(hash_type="SHA256", value=self.sha256),
            )
        _set(self, "hashes", hashes)
        _set(
            self,
            "industry_classification",
            _opt_enum(
                IndustryClassification,
                self.industry_classification,
                f"{where}.industry_classification",
            ),
        )
        _set(self, "annotations", _enums(FileAnnotation, self.annotations, f"{where}.annotations"))
        _set(self, "relevance", _enum(FileRelevance, self.relevance, f"{where}.relevance"))
        if self.relevance is FileRelevance.SUPPLEMENTAL_REPORTED and (
            self.industry_classification is not None
            or FileAnnotation.POTENTIAL_MEME in self.annotations
        ):
            raise InvalidValue(
                f"{where}: a 'Supplemental Reported' file takes no industry classification "
                "and no potentialMeme annotation (NCMEC allows them on 'Reported' files only)",
                field=f"{where}.relevance",
            )
        if self.location_of_file is not None:
            _url(self.location_of_file, f"{where}.location_of_file")
        if self.upload_ip is not None:
            _set(self, "upload_ip", _ip(self.upload_ip, f"{where}.upload_ip"))
        _opt_moment(self.uploaded_at, f"{where}.uploaded_at")
        if isinstance(self.additional_info, str):
            _set(self, "additional_info", (self.additional_info,))
        _set(self, "additional_info", _texts(self.additional_info, f"{where}.additional_info"))

    @cached_property
    def md5(self) -> str:
        return hashlib.md5(self.content).hexdigest()

    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


# ----------------------------------------------------------------- the report


@dataclass(frozen=True, kw_only=True)
class CyberTiplineReport:
    """A whole CyberTipline report: ``report`` XML (sections in NCMEC's order) plus the
    files sent with it, each with its own ``fileDetails``."""

    incident: IncidentSummary
    reporter: Reporter
    internet_details: Sequence[InternetDetail] = ()
    law_enforcement: LawEnforcement | None = None
    reported_user: ReportedUser | None = None
    intended_recipients: Sequence[IntendedRecipient] = ()
    victims: Sequence[Victim] = ()
    additional_info: str | None = None
    files: Sequence[ReportedFile] = ()

    def __post_init__(self) -> None:
        where = "CyberTiplineReport"
        if not isinstance(self.incident, IncidentSummary):
            raise _fail(f"{where}.incident", "must be an IncidentSummary", self.incident)
        if not isinstance(self.reporter, Reporter):
            raise _fail(f"{where}.reporter", "must be a Reporter", self.reporter)
        _set(
            self,
            "internet_details",
            _seq(self.internet_details, f"{where}.internet_details", INTERNET_DETAIL_TYPES),
        )
        if self.law_enforcement is not None and not isinstance(
            self.law_enforcement, LawEnforcement
        ):
            raise _fail(
                f"{where}.law_enforcement", "must be a LawEnforcement", self.law_enforcement
            )
        if self.reported_user is not None and not isinstance(self.reported_user, ReportedUser):
            raise _fail(f"{where}.reported_user", "must be a ReportedUser", self.reported_user)
        _set(
            self,
            "intended_recipients",
            _seq(self.intended_recipients, f"{where}.intended_recipients", IntendedRecipient),
        )
        _set(self, "victims", _seq(self.victims, f"{where}.victims", Victim))
        _opt_text(self.additional_info, f"{where}.additional_info")
        files = _seq(self.files, f"{where}.files", ReportedFile)
        names = [f.file_name for f in files]
        if len(set(names)) != len(names):
            raise InvalidValue(
                f"{where}.files: every file needs its own file_name", field=f"{where}.files"
            )
        _set(self, "files", files)
