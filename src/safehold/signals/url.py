"""URL signal: one canonical form per address, its SHA-256 and registrable domain.

Two spellings of the same address give the same canonical URL: scheme and host in
lower case, the host in IDNA (punycode) form, default ports dropped, user
information dropped, ``.``/``..`` path segments resolved, percent-escapes
normalised, query parameters sorted with click-tracking parameters (``utm_*``,
``fbclid``, ``gclid``, ...) removed, and no fragment.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

import idna

from safehold.errors import InvalidSignal, preview
from safehold.signals.base import SignalType

MAX_URL_LENGTH = 8192
SCHEMES = {"http": 80, "https": 443}

TRACKING_PARAMETERS = frozenset(
    {
        "fbclid",
        "gclid",
        "gclsrc",
        "dclid",
        "gbraid",
        "wbraid",
        "msclkid",
        "yclid",
        "twclid",
        "ttclid",
        "li_fat_id",
        "igshid",
        "igsh",
        "mc_cid",
        "mc_eid",
        "_ga",
        "_gl",
        "_hsenc",
        "_hsmi",
        "mkt_tok",
        "vero_id",
        "vero_conv",
        "oly_anon_id",
        "oly_enc_id",
        "rb_clickid",
        "s_cid",
        "srsltid",
        "wickedid",
        "epik",
        "__s",
        "ref_src",
        "ref_url",
        "spm",
        "scm",
        "si",
        "cvid",
        "oicd",
    }
)
TRACKING_PREFIXES = ("utm_", "pk_", "mtm_", "hsa_")

_SCHEME_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
_WS_RE = re.compile(r"[\t\n\r]")
_PATH_SAFE = "!$&'()*+,;=:@-._~"
_QUERY_SAFE = "!$'()*,;:@/?-._~"


class UrlSignal(SignalType):
    name = "url"
    comparison = "exact"
    content_types = ("url",)
    description = "canonical URL (exact)"

    @classmethod
    def normalize(cls, value: str) -> str:
        return canonicalize(value).url


@dataclass(frozen=True)
class CanonicalUrl:
    url: str
    sha256: str
    host: str
    domain: str
    """Registrable domain (eTLD+1) from the bundled Public Suffix List, or the host."""

    def to_dict(self) -> dict[str, Any]:
        return {"url": self.url, "sha256": self.sha256, "host": self.host, "domain": self.domain}


def canonicalize(value: str) -> CanonicalUrl:
    if not isinstance(value, str):
        raise InvalidSignal(f"not a URL: {preview(value, 40)}")
    text = _WS_RE.sub("", value.strip())
    if not text:
        raise InvalidSignal("not a URL: empty")
    if len(text) > MAX_URL_LENGTH:
        raise InvalidSignal(f"URL is longer than {MAX_URL_LENGTH} characters")
    if "\x00" in text or any(ord(c) < 0x20 for c in text):
        raise InvalidSignal(f"URL contains control characters: {preview(value, 40)}")
    if text.startswith("//"):
        text = "http:" + text
    elif not _SCHEME_RE.match(text) or _looks_like_host_port(text):
        text = "http://" + text
    try:
        parts = urlsplit(text)
        scheme = parts.scheme.lower()
        port = parts.port
    except ValueError as e:
        raise InvalidSignal(f"not a valid URL ({e}): {preview(value, 40)}") from e
    if scheme not in SCHEMES:
        raise InvalidSignal(f"only http and https URLs are supported, not {scheme!r}")
    host = _host(parts.hostname or "", value)
    netloc = host if port in (None, SCHEMES[scheme]) else f"{host}:{port}"
    path = _path(parts.path)
    query = _query(parts.query)
    url = f"{scheme}://{netloc}{path}" + (f"?{query}" if query else "")
    bare_host = host.strip("[]")
    return CanonicalUrl(
        url=url,
        sha256=hashlib.sha256(url.encode("utf-8")).hexdigest(),
        host=bare_host,
        domain=registrable_domain(bare_host),
    )


def _looks_like_host_port(text: str) -> bool:
    """``example.com:8080/x`` parses as scheme ``example.com``; treat it as a host."""
    head = text.split("/", 1)[0]
    if "://" in text:
        return False
    name, _, port = head.partition(":")
    return "." in name and port.isdigit()


def _host(raw: str, original: str) -> str:
    host = unquote(raw).strip().rstrip(".").lower()
    if not host:
        raise InvalidSignal(f"URL has no host: {preview(original, 40)}")
    try:
        ip = ipaddress.ip_address(host)
        return f"[{ip.compressed}]" if ip.version == 6 else ip.compressed
    except ValueError:
        pass
    try:
        name = idna.encode(host, uts46=True, transitional=False).decode("ascii")
    except (idna.IDNAError, UnicodeError) as e:
        if not (host.isascii() and re.fullmatch(r"[a-z0-9_.-]+", host) and ".." not in host):
            raise InvalidSignal(f"URL host {host!r} is not a valid domain name ({e})") from e
        name = host  # e.g. underscores: not IDNA-valid, but real hosts use them
    # UTS 46 maps full stops such as U+3002 to ".", so strip the root dot again.
    name = name.rstrip(".")
    if not name:
        raise InvalidSignal(f"URL has no host: {preview(original, 40)}")
    if _ends_in_number(name):
        return _ipv4(name, original)
    return name


def _ends_in_number(host: str) -> bool:
    """WHATWG URL: a host whose last label is a number is an IPv4 address."""
    last = host.rsplit(".", 1)[-1]
    return last.isdigit() or _ipv4_number(last) is not None


def _ipv4_number(part: str) -> int | None:
    """One part of an IPv4 address as browsers read it: decimal, 0x hex or 0 octal."""
    if part[:2] in ("0x", "0X"):
        digits, base = part[2:] or "0", 16
    elif len(part) > 1 and part.startswith("0"):
        digits, base = part[1:], 8
    else:
        digits, base = part, 10
    if not digits.isascii() or not digits.isalnum():
        return None
    try:
        return int(digits, base)
    except ValueError:
        return None


def _ipv4(host: str, original: str) -> str:
    """``http://0x7f.1/`` and ``http://2130706433/`` are ``127.0.0.1`` to a browser
    (WHATWG IPv4 parser), so they are to a block list too."""
    parts = host.split(".")
    numbers = [_ipv4_number(p) if p else None for p in parts]
    valid = len(parts) <= 4 and all(n is not None for n in numbers)
    nums = [n for n in numbers if n is not None]
    if not valid or any(n > 255 for n in nums[:-1]) or nums[-1] >= 256 ** (5 - len(nums)):
        raise InvalidSignal(
            f"URL host {host!r} is not a valid IPv4 address: {preview(original, 40)}"
        )
    value = nums[-1] + sum(n * 256 ** (3 - i) for i, n in enumerate(nums[:-1]))
    return str(ipaddress.IPv4Address(value))


def _path(path: str) -> str:
    segments = [quote(unquote(seg), safe=_PATH_SAFE) for seg in path.split("/")]
    out: list[str] = []
    for seg in segments[1:] if path.startswith("/") else segments:
        if seg == ".":
            continue
        if seg == "..":
            if out:
                out.pop()
            continue
        out.append(seg)
    trailing = path.endswith(("/", "/.", "/..")) and bool(out)
    result = "/" + "/".join(out)
    if trailing and not result.endswith("/"):
        result += "/"
    return result


def _query(query: str) -> str:
    if not query:
        return ""
    pairs = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if not _is_tracking(k)]
    pairs.sort()
    return urlencode(pairs, quote_via=quote, safe=_QUERY_SAFE)


def _is_tracking(key: str) -> bool:
    k = key.lower()
    return k in TRACKING_PARAMETERS or k.startswith(TRACKING_PREFIXES)


@lru_cache(maxsize=1)
def _extractor() -> Any:
    import tldextract

    # The Public Suffix List snapshot bundled with tldextract: never fetched at run time.
    return tldextract.TLDExtract(
        suffix_list_urls=(), cache_dir=None, include_psl_private_domains=True
    )


@lru_cache(maxsize=65536)
def registrable_domain(host: str) -> str:
    """eTLD+1 of a host (``www.bbc.co.uk`` -> ``bbc.co.uk``); IPs and bare hosts as given."""
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    ext = _extractor()(host)
    if hasattr(ext, "top_domain_under_public_suffix"):  # tldextract >= 5.3
        domain = ext.top_domain_under_public_suffix
    else:  # pragma: no cover - older tldextract
        domain = ext.registered_domain
    return str(domain or host)
