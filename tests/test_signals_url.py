"""URL signal: canonical form, registrable domain, hostile input."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from safehold.errors import InvalidSignal
from safehold.signals.url import (
    MAX_URL_LENGTH,
    CanonicalUrl,
    UrlSignal,
    canonicalize,
    registrable_domain,
)

CASES = [
    # case: scheme and host lower case, the path keeps its case
    ("HTTP://WWW.Example.COM/Path/To", "http://www.example.com/Path/To"),
    ("hTtPs://EXAMPLE.com", "https://example.com/"),
    # IDNA: Unicode hosts in punycode (UTS 46, non-transitional: ß stays ß)
    ("https://münchen.de/", "https://xn--mnchen-3ya.de/"),
    ("https://MÜNCHEN.de/", "https://xn--mnchen-3ya.de/"),
    ("https://xn--mnchen-3ya.de/", "https://xn--mnchen-3ya.de/"),
    ("http://faß.de/", "http://xn--fa-hia.de/"),
    ("http://例え.テスト/", "http://xn--r8jz45g.xn--zckzah/"),
    ("http://example。com/", "http://example.com/"),  # ideographic full stop
    ("http://a。", "http://a/"),
    # default ports dropped, others kept
    ("http://example.com:80/a", "http://example.com/a"),
    ("https://example.com:443/", "https://example.com/"),
    ("http://example.com:443/", "http://example.com:443/"),
    ("https://example.com:8443/x", "https://example.com:8443/x"),
    # dot segments
    ("http://example.com/a/./b/../c", "http://example.com/a/c"),
    ("http://example.com/../../x", "http://example.com/x"),
    ("http://example.com/a/..", "http://example.com/"),
    ("http://example.com/a/b/.", "http://example.com/a/b/"),
    ("http://example.com/a/", "http://example.com/a/"),
    ("http://example.com", "http://example.com/"),
    ("http://example.com/%2e%2E/x", "http://example.com/x"),
    # percent-encoding: unreserved decoded, others upper-case escapes
    ("http://example.com/%7Euser/%41%62c", "http://example.com/~user/Abc"),
    ("http://example.com/a%2fb", "http://example.com/a%2Fb"),
    ("http://example.com/a b/ü", "http://example.com/a%20b/%C3%BC"),
    ("http://example.com/%c3%bc", "http://example.com/%C3%BC"),
    ("http://example.com/?q=a+b", "http://example.com/?q=a%20b"),
    ("http://example.com/?q=a%20b", "http://example.com/?q=a%20b"),
    ("http://example.com/?q=%26%3D", "http://example.com/?q=%26%3D"),
    # query: sorted, tracking parameters removed, blank values kept
    ("http://example.com/?b=2&a=1&a=0", "http://example.com/?a=0&a=1&b=2"),
    (
        "http://example.com/p?utm_source=x&UTM_Medium=y&fbclid=1&gclid=2&id=7&pk_campaign=z",
        "http://example.com/p?id=7",
    ),
    ("http://example.com/?utm_source=mail", "http://example.com/"),
    ("http://example.com/?a", "http://example.com/?a="),
    # fragment and user information dropped
    ("http://example.com/page#section-2", "http://example.com/page"),
    ("http://user:secret@example.com/", "http://example.com/"),
    ("http://user@example.com:8080/", "http://example.com:8080/"),
    # IPv4 / IPv6: one spelling per address (as browsers read them)
    ("http://192.168.0.1/", "http://192.168.0.1/"),
    ("http://192.168.000.001/", "http://192.168.0.1/"),
    ("http://0x7f.0.0.1/", "http://127.0.0.1/"),
    ("http://0177.0.0.1/", "http://127.0.0.1/"),
    ("http://127.1/", "http://127.0.0.1/"),
    ("http://2130706433/", "http://127.0.0.1/"),
    ("http://１２７.０.０.１/", "http://127.0.0.1/"),  # fullwidth digits
    ("http://[2001:DB8:0:0:0:0:0:1]:8080/x", "http://[2001:db8::1]:8080/x"),
    ("http://[::FFFF:1.2.3.4]/", "http://[::ffff:102:304]/"),
    ("https://[::1]:443/", "https://[::1]/"),
    # scheme-less input
    ("example.com/path", "http://example.com/path"),
    ("example.com:8080/x", "http://example.com:8080/x"),
    ("//example.com/x", "http://example.com/x"),
    ("www.bbc.co.uk", "http://www.bbc.co.uk/"),
    # whitespace around and tabs/newlines inside are removed (as browsers do)
    ("  http://example.com/a\tb\n ", "http://example.com/ab"),
    # trailing dot of the root
    ("http://EXAMPLE.com./", "http://example.com/"),
    # underscores are not IDNA-valid, but real hosts use them
    ("http://my_host.example.com/", "http://my_host.example.com/"),
]


@pytest.mark.parametrize(("raw", "expected"), CASES, ids=[c[0][:40] for c in CASES])
def test_canonical_form(raw: str, expected: str) -> None:
    result = canonicalize(raw)
    assert result.url == expected
    assert result.sha256 == hashlib.sha256(expected.encode()).hexdigest()
    assert canonicalize(result.url) == result
    assert UrlSignal.normalize(raw) == expected


@pytest.mark.parametrize(
    ("raw", "host", "domain"),
    [
        ("http://www.bbc.co.uk/news", "www.bbc.co.uk", "bbc.co.uk"),
        ("http://a.b.example.co.uk/", "a.b.example.co.uk", "example.co.uk"),
        ("http://example.com/", "example.com", "example.com"),
        ("http://deep.sub.example.com/", "deep.sub.example.com", "example.com"),
        ("http://www.example.com.au/", "www.example.com.au", "example.com.au"),
        ("http://münchen.de/", "xn--mnchen-3ya.de", "xn--mnchen-3ya.de"),
        ("http://shop.例え.jp/", "shop.xn--r8jz45g.jp", "xn--r8jz45g.jp"),
        ("http://localhost:8000/", "localhost", "localhost"),
        ("http://10.0.0.1/", "10.0.0.1", "10.0.0.1"),
        ("http://[2001:db8::1]/", "2001:db8::1", "2001:db8::1"),
        ("http://co.uk/", "co.uk", "co.uk"),
    ],
)
def test_registrable_domain(raw: str, host: str, domain: str) -> None:
    result = canonicalize(raw)
    assert (result.host, result.domain) == (host, domain)
    assert registrable_domain(host) == domain
    assert result.to_dict() == {
        "url": result.url,
        "sha256": result.sha256,
        "host": host,
        "domain": domain,
    }


def test_same_address_same_signal() -> None:
    spellings = [
        "HTTPS://User:pw@WWW.Example.COM:443/a/./b/../%63?z=1&utm_source=news&a=2#top",
        "https://www.example.com/a/c?a=2&z=1",
        "www.example.com./a/c?z=1&a=2&fbclid=abc".replace("www", "https://www"),
    ]
    values = {canonicalize(s).url for s in spellings}
    assert values == {"https://www.example.com/a/c?a=2&z=1"}
    assert UrlSignal.distance(spellings[0], spellings[1]) == 0
    assert UrlSignal.matches(spellings[0], spellings[2])
    assert UrlSignal.distance(spellings[0], "https://www.example.com/a/d") == 1
    # http and https are different addresses
    assert canonicalize("http://example.com/").url != canonicalize("https://example.com/").url


HOSTILE = [
    "",
    "   ",
    "a" * 100_000,
    "http://example.com/" + "a" * MAX_URL_LENGTH,
    "http://example.com/\x00",
    "http://ex\x00ample.com/",
    "http://example.com/\x01\x02",
    "http://example.com/\x1b[31m",
    "http://\u202eexample.com/",  # RTL override in the host
    "http://exa\u202emple.com/",
    "javascript:alert(1)",
    "JavaScript:alert(document.cookie)//http://example.com/",
    "data:text/html,<script>alert(1)</script>",
    "file:///etc/passwd",
    "ftp://example.com/",
    "mailto:someone@example.com",
    "http://",
    "https:///path",
    "http://:80/",
    "http://%00/",
    "http://exa mple.com/",
    "http://[::1/",
    "http://[not-an-ip]/",
    "http://example.com:99999/",
    "http://example.com:port/",
    "http://256.0.0.1/",
    "http://1.2.3.4.5/",
    "http://08.0.0.1/",
    "http://example.123/",
    "http://。/",
]


@pytest.mark.parametrize("raw", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_strings_are_invalid(raw: str) -> None:
    with pytest.raises(InvalidSignal) as info:
        canonicalize(raw)
    assert info.value.code == "invalid_signal"
    assert len(str(info.value)) < 300  # messages quote a preview, never the whole input


def test_non_strings_are_invalid() -> None:
    for value in (None, 42, b"http://example.com/", ["http://example.com/"]):
        with pytest.raises(InvalidSignal):
            canonicalize(value)  # type: ignore[arg-type]


def test_rtl_override_in_the_path_is_escaped() -> None:
    # In the path it is just a character: percent-encoded, so it cannot reorder text
    # when the URL is displayed.
    assert canonicalize("http://example.com/\u202egnp.exe").url == (
        "http://example.com/%E2%80%AEgnp.exe"
    )


def test_canonical_url_is_frozen() -> None:
    result = canonicalize("example.com")
    assert isinstance(result, CanonicalUrl)
    with pytest.raises(AttributeError):
        result.url = "http://other/"  # type: ignore[misc]


# --------------------------------------------------------------------------- idempotence

_label = st.text(alphabet="abcxyz019-_", min_size=1, max_size=8) | st.sampled_from(
    ["münchen", "例え", "ß", "EXAMPLE", "xn--mnchen-3ya", "ｆｕｌｌ"]
)
_host = st.one_of(
    st.lists(_label, min_size=1, max_size=4).map(".".join),
    st.lists(st.integers(0, 300), min_size=1, max_size=4).map(lambda p: ".".join(map(str, p))),
    st.ip_addresses(v=6).map(lambda ip: f"[{ip}]"),
    st.sampled_from(["0x7f.1", "127.1", "4294967295", "www.bbc.co.uk", "example.com."]),
)
_segment = st.lists(
    st.sampled_from([*"aZ09-._~!$&'()*+,;=:@ ü", "%2F", "%2e", "%41", "%25", "%zz", ".."]),
    max_size=6,
).map("".join)
_pair = st.tuples(
    st.sampled_from(["a", "B", "utm_source", "fbclid", "id", "q", "x y", "ü"]),
    st.text(alphabet="ab1 +&=%/?ü", max_size=5),
)


@st.composite
def urls(draw: st.DrawFn) -> str:
    scheme = draw(st.sampled_from(["http://", "https://", "HTTP://", "//", ""]))
    userinfo = draw(st.sampled_from(["", "user@", "u:p@"]))
    host = draw(_host)
    port = draw(st.sampled_from(["", ":80", ":443", ":8080", ":0"]))
    path = "/" + "/".join(draw(st.lists(_segment, max_size=5)))
    pairs = draw(st.lists(_pair, max_size=4))
    query = ("?" + "&".join(f"{k}={v}" for k, v in pairs)) if pairs else ""
    fragment = draw(st.sampled_from(["", "#", "#frag"]))
    if not scheme and (userinfo or (port == "" and not host[:1].isalpha())):
        scheme = "http://"
    return f"{scheme}{userinfo}{host}{port}{path}{query}{fragment}"


def _idempotent(raw: str) -> None:
    try:
        first = canonicalize(raw)
    except InvalidSignal:
        return
    second = canonicalize(first.url)
    assert second.url == first.url
    assert (second.host, second.domain, second.sha256) == (first.host, first.domain, first.sha256)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(urls())
def test_canonicalize_is_idempotent_on_generated_urls(raw: str) -> None:
    _idempotent(raw)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_canonicalize_is_idempotent_on_any_text(raw: str) -> None:
    _idempotent(raw)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["http://", "https://", "", "//"]),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=40),
)
def test_any_text_is_a_url_or_invalid_signal(prefix: str, rest: str) -> None:
    try:
        result = canonicalize(prefix + rest)
    except InvalidSignal:
        return
    assert result.url.startswith(("http://", "https://"))
    assert result.url.isascii() and " " not in result.url and "#" not in result.url
