"""The pure SSRF policy (`mcp_core.core.http.ssrf`): hostile URLs and addresses are refused.

Issue 4: client ID metadata documents are fetched with "no private, link-local or loopback
targets unless configured for development, redirects re-checked".
"""

from __future__ import annotations

import ipaddress

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcp_core.core.http.ssrf import (
    IPV4_RANGES,
    IPV6_RANGES,
    AddressClass,
    OutboundPolicy,
    OutboundRefused,
    classify,
)


def fullwidth(text: str) -> str:
    """The fullwidth forms (U+FF01..) of ASCII text, which IDNA maps back to ASCII."""
    return "".join(chr(ord(ch) + 0xFEE0) for ch in text)


DEFAULT = OutboundPolicy()
DEV = OutboundPolicy.development()

HOSTILE_URLS = [
    # not https / not absolute / not a URL
    "",
    "http://example.com/",
    "ftp://example.com/",
    "file:///etc/passwd",
    "gopher://example.com:70/",
    "javascript:alert(1)",
    "data:text/plain,hi",
    "//example.com/",
    "/relative/path",
    "https:example.com",
    "https:/example.com",
    "https://",
    "https:///path",
    # userinfo and fragments
    "https://user@example.com/",
    "https://user:pass@example.com/",
    "https://example.com@127.0.0.1/",
    "https://:@example.com/",
    "https://example.com/#frag",
    "https://example.com/#",
    # whitespace, control characters, backslashes
    "https://example.com /",
    " https://example.com/",
    "https://exa\tmple.com/",
    "https://example.com/\r\nHost: evil",
    "https://example.com\\@127.0.0.1/",
    "https://example.com/\x00",
    # ports
    "https://example.com:0/",
    "https://example.com:65536/",
    "https://example.com:99999999/",
    "https://example.com:-1/",
    "https://example.com:+443/",
    "https://example.com:/",
    "https://example.com:443x/",
    "https://example.com:" + fullwidth("443") + "/",
    # loopback, private, link-local, reserved IP literals
    "https://127.0.0.1/",
    "https://127.1.2.3/",
    "https://localhost/",
    "https://LOCALHOST./",
    "https://api.localhost/",
    "https://10.0.0.1/",
    "https://172.16.5.4/",
    "https://172.31.255.255/",
    "https://192.168.1.1/",
    "https://169.254.169.254/latest/meta-data/",
    "https://100.64.0.1/",
    "https://0.0.0.0/",
    "https://0.1.2.3/",
    "https://224.0.0.1/",
    "https://255.255.255.255/",
    "https://240.0.0.1/",
    "https://192.0.2.1/",
    "https://198.51.100.7/",
    "https://203.0.113.9/",
    "https://198.18.0.1/",
    "https://192.0.0.8/",
    "https://[::1]/",
    "https://[::]/",
    "https://[::ffff:127.0.0.1]/",
    "https://[::ffff:7f00:1]/",
    "https://[::ffff:169.254.169.254]/",
    "https://[::ffff:10.0.0.1]/",
    "https://[::127.0.0.1]/",
    "https://[::10.0.0.1]/",
    "https://[fe80::1]/",
    "https://[fe80::1%25eth0]/",
    "https://[fc00::1]/",
    "https://[fd12:3456:789a::1]/",
    "https://[fec0::1]/",
    "https://[ff02::1]/",
    "https://[2001:db8::1]/",
    "https://[2002:7f00:1::]/",
    "https://[2002:a9fe:a9fe::1]/",
    "https://[2002:c0a8:101::1]/",
    "https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/",
    "https://[64:ff9b::7f00:1]/",
    "https://[64:ff9b::a9fe:a9fe]/",
    "https://[64:ff9b:1::1]/",
    "https://[100::1]/",
    "https://[2001:2::1]/",
    "https://[3fff::1]/",
    "https://[::2]/",
    "https://[1::1]/",
    "https://[::1/",
    "https://[::1]x/",
    "https://[not:an:ip]/",
    # IPv4 spellings that some parsers read as 127.0.0.1 or 169.254.169.254
    "https://2130706433/",
    "https://0x7f000001/",
    "https://0x7f.0.0.1/",
    "https://0177.0.0.1/",
    "https://017700000001/",
    "https://127.1/",
    "https://127.0.1/",
    "https://127.000.000.001/",
    "https://2852039166/",
    "https://0xA9.0xFE.0xA9.0xFE/",
    "https://8.8.8.08/",
    "https://1.2.3.4.5/",
    "https://example.0x10/",
    "https://example.123/",
    # host name syntax
    "https://exa_mple.com/",
    "https://-example.com/",
    "https://example-.com/",
    "https://exa..mple.com/",
    "https://.example.com/",
    "https://example.com../",
    "https://" + "a" * 64 + ".com/",
    "https://" + ".".join(["abcdefghi"] * 26) + ".com/",
    "https://exa%6dple.com/",
    "https://%31%32%37.0.0.1/",
    "https://xn--/",
    "https://xn--zz-zzzz.com/",
    "https://ex*ample.com/",
    "https://example.com;evil/",
    "https://\u2024example.com/",
    # IDNA mapping happens before the checks: these become localhost and 127.0.0.1
    "https://" + fullwidth("localhost") + "/",
    "https://\u2460\u2461\u2466.0.0.1/",
    "https://127\u30020\u30020\u30021/",
    "https://" + "x" * 3000 + ".com/",
]


@pytest.mark.parametrize("url", HOSTILE_URLS)
def test_hostile_url_is_refused_by_default_policy(url: str) -> None:
    with pytest.raises(OutboundRefused) as refused:
        DEFAULT.check_url(url)
    assert refused.value.reason


# Refused even by the development policy: never loopback/private but link-local, metadata,
# reserved, documentation and the syntactic tricks.
ALWAYS_REFUSED_URLS = [
    "https://169.254.169.254/latest/meta-data/",
    "http://169.254.169.254/",
    "http://[fe80::1]/",
    "http://[::ffff:169.254.169.254]/",
    "http://[64:ff9b::a9fe:a9fe]/",
    "http://0.0.0.0/",
    "http://[::]/",
    "http://224.0.0.251/",
    "http://192.0.2.1/",
    "http://[2001:db8::1]/",
    "http://2130706433/",
    "http://0177.0.0.1/",
    "http://user@127.0.0.1/",
    "http://127.0.0.1/#x",
    "ftp://127.0.0.1/",
]


@pytest.mark.parametrize("url", ALWAYS_REFUSED_URLS)
def test_development_policy_still_refuses_link_local_reserved_and_tricks(url: str) -> None:
    with pytest.raises(OutboundRefused):
        DEV.check_url(url)


ACCEPTED = [
    ("https://example.com/", "https://example.com/", "example.com", 443),
    ("https://example.com", "https://example.com/", "example.com", 443),
    ("HTTPS://Example.COM/Path?q=1", "https://example.com/Path?q=1", "example.com", 443),
    ("https://example.com.:8443/a", "https://example.com:8443/a", "example.com", 8443),
    ("https://example.com:443/a", "https://example.com/a", "example.com", 443),
    ("https://bücher.example/x", "https://xn--bcher-kva.example/x", "xn--bcher-kva.example", 443),
    ("https://example\u3002com\u3002/", "https://example.com/", "example.com", 443),
    (
        "https://" + fullwidth("EXAMPLE") + "\u3002" + fullwidth("com") + "/",
        "https://example.com/",
        "example.com",
        443,
    ),
    ("https://8.8.8.8/", "https://8.8.8.8/", "8.8.8.8", 443),
    ("https://[2606:4700::1111]/", "https://[2606:4700::1111]/", "2606:4700::1111", 443),
    ("https://[::ffff:8.8.8.8]/", "https://[::ffff:808:808]/", "::ffff:808:808", 443),
    ("https://[2002:808:808::1]/", "https://[2002:808:808::1]/", "2002:808:808::1", 443),
    ("https://a-b.c0.example/%7Euser", "https://a-b.c0.example/%7Euser", "a-b.c0.example", 443),
]


@pytest.mark.parametrize(("url", "normalized", "host", "port"), ACCEPTED)
def test_public_url_is_accepted_and_normalized(
    url: str, normalized: str, host: str, port: int
) -> None:
    target = DEFAULT.check_url(url)
    assert (target.url, target.host, target.port) == (normalized, host, port)


def test_development_policy_allows_loopback_private_and_http() -> None:
    for url in (
        "http://127.0.0.1:8000/",
        "http://localhost/",
        "https://10.1.2.3/",
        "http://[::1]/",
    ):
        assert DEV.check_url(url).scheme in ("http", "https")


def test_allowed_ports_restrict_the_port() -> None:
    policy = OutboundPolicy(allowed_ports=[443])
    assert policy.check_url("https://example.com/").port == 443
    with pytest.raises(OutboundRefused, match="port 8443"):
        policy.check_url("https://example.com:8443/")


def test_loopback_alone_does_not_allow_private() -> None:
    policy = OutboundPolicy(allow_loopback=True)
    policy.check_address("127.0.0.1")
    with pytest.raises(OutboundRefused):
        policy.check_address("10.0.0.1")
    policy = OutboundPolicy(allow_private=True)
    policy.check_address("192.168.0.1")
    with pytest.raises(OutboundRefused):
        policy.check_address("::1")


def test_policy_rejects_unknown_schemes_and_silly_caps() -> None:
    with pytest.raises(ValueError, match="http and https"):
        OutboundPolicy(allowed_schemes=("ftp",))
    with pytest.raises(ValueError, match="max_bytes"):
        OutboundPolicy(max_bytes=0)
    with pytest.raises(ValueError, match="timeout"):
        OutboundPolicy(timeout=0)
    with pytest.raises(ValueError, match="max_redirects"):
        OutboundPolicy(max_redirects=-1)


# ---- addresses ---------------------------------------------------------------------------------

REFUSED_ADDRESSES = [
    ("127.0.0.1", AddressClass.LOOPBACK),
    ("127.255.255.254", AddressClass.LOOPBACK),
    ("::1", AddressClass.LOOPBACK),
    ("::ffff:127.0.0.1", AddressClass.LOOPBACK),
    ("::127.0.0.1", AddressClass.LOOPBACK),
    ("2002:7f00:1::1", AddressClass.LOOPBACK),
    ("64:ff9b::127.0.0.1", AddressClass.LOOPBACK),
    ("10.0.0.1", AddressClass.PRIVATE),
    ("172.16.0.1", AddressClass.PRIVATE),
    ("192.168.255.255", AddressClass.PRIVATE),
    ("fc00::1", AddressClass.PRIVATE),
    ("fdff:ffff::1", AddressClass.PRIVATE),
    ("fec0::1", AddressClass.PRIVATE),
    ("::ffff:10.1.2.3", AddressClass.PRIVATE),
    ("2002:c0a8:0101::1", AddressClass.PRIVATE),
    ("64:ff9b:1::1", AddressClass.PRIVATE),
    ("100.64.0.1", AddressClass.SHARED),
    ("100.127.255.255", AddressClass.SHARED),
    ("169.254.169.254", AddressClass.LINK_LOCAL),
    ("169.254.0.1", AddressClass.LINK_LOCAL),
    ("fe80::1", AddressClass.LINK_LOCAL),
    ("fe80::1%eth0", AddressClass.LINK_LOCAL),
    ("febf::1", AddressClass.LINK_LOCAL),
    ("::ffff:169.254.169.254", AddressClass.LINK_LOCAL),
    ("2002:a9fe:a9fe::", AddressClass.LINK_LOCAL),
    ("0.0.0.0", AddressClass.UNSPECIFIED),
    ("0.255.1.2", AddressClass.UNSPECIFIED),
    ("::", AddressClass.UNSPECIFIED),
    ("::ffff:0.0.0.0", AddressClass.UNSPECIFIED),
    ("224.0.0.1", AddressClass.MULTICAST),
    ("239.255.255.250", AddressClass.MULTICAST),
    ("ff02::1", AddressClass.MULTICAST),
    ("ff05::1:3", AddressClass.MULTICAST),
    ("255.255.255.255", AddressClass.BROADCAST),
    ("240.0.0.1", AddressClass.RESERVED),
    ("192.0.0.170", AddressClass.RESERVED),
    ("192.88.99.1", AddressClass.RESERVED),
    ("::8.8.8.8", AddressClass.RESERVED),
    ("100::1", AddressClass.RESERVED),
    ("2001:10::1", AddressClass.RESERVED),
    ("5f00::1", AddressClass.RESERVED),
    ("4000::1", AddressClass.RESERVED),
    ("::2", AddressClass.RESERVED),
    ("198.18.0.1", AddressClass.BENCHMARKING),
    ("198.19.255.255", AddressClass.BENCHMARKING),
    ("2001:2::1", AddressClass.BENCHMARKING),
    ("192.0.2.1", AddressClass.DOCUMENTATION),
    ("198.51.100.1", AddressClass.DOCUMENTATION),
    ("203.0.113.255", AddressClass.DOCUMENTATION),
    ("2001:db8::1", AddressClass.DOCUMENTATION),
    ("3fff::1", AddressClass.DOCUMENTATION),
    # Teredo: server 65.54.227.120, client 192.0.2.45 (obfuscated as 3fff:fdd2)
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", AddressClass.DOCUMENTATION),
    # Teredo whose client is 127.0.0.1 (obfuscated: 0x7f000001 ^ 0xffffffff)
    ("2001:0:808:808:0:0:80ff:fffe", AddressClass.LOOPBACK),
    # Teredo whose server is private
    ("2001:0:a00:1::1", AddressClass.PRIVATE),
]


@pytest.mark.parametrize(("address", "kind"), REFUSED_ADDRESSES)
def test_non_public_address_is_classified_and_refused(address: str, kind: AddressClass) -> None:
    from mcp_core.core.http.ssrf import parse_ip

    assert classify(parse_ip(address)) is kind
    with pytest.raises(OutboundRefused, match=kind.value.split(" ")[0]):
        DEFAULT.check_address(address)


PUBLIC_ADDRESSES = [
    "8.8.8.8",
    "1.1.1.1",
    "93.184.216.34",
    "100.63.255.255",
    "100.128.0.0",
    "172.15.255.255",
    "172.32.0.0",
    "169.253.255.255",
    "198.17.255.255",
    "198.20.0.0",
    "223.255.255.255",
    "2606:4700::1111",
    "2a00:1450:4001::1",
    "::ffff:8.8.8.8",
    "2002:808:808::1",
    "64:ff9b::808:808",
]


@pytest.mark.parametrize("address", PUBLIC_ADDRESSES)
def test_public_address_is_allowed(address: str) -> None:
    DEFAULT.check_address(address)


def test_check_address_refuses_garbage() -> None:
    with pytest.raises(OutboundRefused, match="not an IP"):
        DEFAULT.check_address("example.com")


# ---- Hypothesis: every address of a non-public network is refused -------------------------------

PRIVATE_NETWORKS = (
    [
        ipaddress.ip_network(n)
        for n in (
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "127.0.0.0/8",
            "169.254.0.0/16",
            "100.64.0.0/10",
            "0.0.0.0/8",
            "224.0.0.0/4",
            "240.0.0.0/4",
            "::1/128",
            "fc00::/7",
            "fe80::/10",
            "ff00::/8",
        )
    ]
    + [network for network, _ in IPV4_RANGES]
    + [network for network, _ in IPV6_RANGES]
)


@st.composite
def non_public_addresses(draw: st.DrawFn) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    network = draw(st.sampled_from(PRIVATE_NETWORKS))
    offset = draw(st.integers(min_value=0, max_value=network.num_addresses - 1))
    return network.network_address + offset


@given(non_public_addresses())
def test_every_address_of_a_non_public_network_is_refused(
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> None:
    with pytest.raises(OutboundRefused):
        DEFAULT.check_address(ip)


@given(non_public_addresses())
def test_ipv6_forms_of_a_non_public_ipv4_are_refused(
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> None:
    if not isinstance(ip, ipaddress.IPv4Address):
        return
    v4 = int(ip)
    forms = [
        ipaddress.IPv6Address((0xFFFF << 32) | v4),  # ::ffff:a.b.c.d
        ipaddress.IPv6Address(v4),  # ::a.b.c.d
        ipaddress.IPv6Address((0x2002 << 112) | (v4 << 80)),  # 6to4
        ipaddress.IPv6Address((0x0064FF9B << 96) | v4),  # NAT64
        ipaddress.IPv6Address((0x20010000 << 96) | (v4 ^ 0xFFFFFFFF)),  # Teredo client
    ]
    for form in forms:
        with pytest.raises(OutboundRefused):
            DEFAULT.check_address(form)
        with pytest.raises(OutboundRefused):
            DEFAULT.check_url(f"https://[{form}]/")


@given(non_public_addresses())
def test_ip_literal_url_of_a_non_public_address_is_refused(
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> None:
    literal = f"[{ip}]" if ip.version == 6 else str(ip)
    with pytest.raises(OutboundRefused):
        DEFAULT.check_url(f"https://{literal}/")


@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_integer_ipv4_spellings_are_never_accepted(value: int) -> None:
    for spelling in (str(value), hex(value), "0" + oct(value)[2:]):
        with pytest.raises(OutboundRefused):
            DEV.check_url(f"http://{spelling}/")


# ---- redirects ---------------------------------------------------------------------------------


def test_redirect_is_joined_and_rechecked() -> None:
    base = "https://example.com/a/b"
    assert DEFAULT.check_redirect(base, "c").url == "https://example.com/a/c"
    assert DEFAULT.check_redirect(base, "/x?y").url == "https://example.com/x?y"
    assert DEFAULT.check_redirect(base, "//other.example/z#f").url == "https://other.example/z"
    for location in (
        "http://example.com/",
        "https://127.0.0.1/",
        "//169.254.169.254/",
        "https://[::1]/",
        "https://user@example.com/",
        "file:///etc/passwd",
        "",
    ):
        with pytest.raises(OutboundRefused):
            DEFAULT.check_redirect(base, location)


def test_policy_is_a_frozen_hashable_value() -> None:
    changed = attrs.evolve(DEV, max_bytes=10)
    assert changed.allow_loopback
    assert changed.max_bytes == 10
    assert hash(DEFAULT) == hash(OutboundPolicy())
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        DEFAULT.allow_loopback = True  # type: ignore[misc]
