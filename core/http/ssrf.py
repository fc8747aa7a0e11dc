"""The outbound SSRF policy: which URLs and which resolved addresses a server may fetch.

Spec context: issue 4 ("client ID metadata documents, fetched through the `HttpClient` port with
an SSRF policy: no private, link-local or loopback targets unless configured for development,
redirects re-checked, size and time caps"); DESIGN.md "Ports" (`HttpClient`, outbound, with an
SSRF policy). Address ranges follow the IANA special-purpose registries (RFC 6890 and updates).

Theory of operation. A fetch is vetted twice, and both checks live here, with no DNS and no
sockets (the adapter does the I/O and asks this module at each step):

1. `OutboundPolicy.check_url(url)` before anything else: an absolute URL whose scheme is allowed
   (https; http only when a development policy says so), with no userinfo, no fragment, a port
   the policy allows and a host that is either a DNS name (IDNA-encoded, label syntax checked) or
   a canonical IP literal. Spellings that some resolvers read as an IPv4 address (`2130706433`,
   `0x7f.1`, `0177.0.0.1`) are refused, never guessed. An IP literal is classified at once.
2. `OutboundPolicy.check_address(ip)` for EVERY address the name resolved to, before connecting.
   The adapter then connects to one of those vetted addresses (never resolves again), so a DNS
   answer cannot change between the check and the connection.

Redirects are new URLs: `OutboundPolicy.check_redirect(base, location)` joins and re-checks them,
and the adapter resolves and vets the new host like the first.

`classify(ip)` says what an address is (`AddressClass`). Loopback is allowed only with
`allow_loopback`; private networks (RFC 1918, unique-local fc00::/7, shared CGNAT 100.64/10,
deprecated site-local) only with `allow_private`. Everything else that is not public unicast is
refused by every policy: link-local (with the cloud metadata address 169.254.169.254),
unspecified, multicast, broadcast, reserved, benchmarking and documentation ranges. IPv6 forms
that carry an IPv4 address (mapped ::ffff:a.b.c.d, compatible ::a.b.c.d, NAT64 64:ff9b::/96, 6to4
2002::/16, Teredo 2001::/32) are judged by the IPv4 address they carry.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from collections.abc import Iterable
from urllib.parse import urljoin, urlsplit

import attrs

__all__ = [
    "IPV4_RANGES",
    "IPV6_RANGES",
    "AddressClass",
    "IPAddress",
    "OutboundPolicy",
    "OutboundRefused",
    "OutboundTarget",
    "classify",
    "parse_ip",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

DEFAULT_MAX_BYTES = 256 * 1024
DEFAULT_TIMEOUT = 10.0
MAX_URL_LENGTH = 2048

_DEFAULT_PORTS = {"https": 443, "http": 80}
_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
# The last label decides whether a WHATWG URL parser reads the host as IPv4: all digits, or 0x...
_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")


class OutboundRefused(Exception):
    """The policy refuses this outbound request; nothing was (or will be) sent for it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class AddressClass(enum.Enum):
    PUBLIC = "public"
    LOOPBACK = "loopback"
    PRIVATE = "private"
    SHARED = "shared address space (CGNAT)"
    LINK_LOCAL = "link-local"
    UNSPECIFIED = "unspecified"
    MULTICAST = "multicast"
    BROADCAST = "broadcast"
    RESERVED = "reserved"
    BENCHMARKING = "benchmarking"
    DOCUMENTATION = "documentation"


_A = AddressClass
_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network

# IANA IPv4 special-purpose registry. First match wins; anything absent is public.
IPV4_RANGES: tuple[tuple[ipaddress.IPv4Network, AddressClass], ...] = (
    (_V4("0.0.0.0/8"), _A.UNSPECIFIED),  # "this network" (RFC 791); 0.0.0.0 reaches the host
    (_V4("10.0.0.0/8"), _A.PRIVATE),  # RFC 1918
    (_V4("100.64.0.0/10"), _A.SHARED),  # RFC 6598
    (_V4("127.0.0.0/8"), _A.LOOPBACK),  # RFC 1122
    (_V4("169.254.0.0/16"), _A.LINK_LOCAL),  # RFC 3927; cloud metadata 169.254.169.254
    (_V4("172.16.0.0/12"), _A.PRIVATE),  # RFC 1918
    (_V4("192.0.0.0/24"), _A.RESERVED),  # RFC 6890 IETF protocol assignments
    (_V4("192.0.2.0/24"), _A.DOCUMENTATION),  # RFC 5737 TEST-NET-1
    (_V4("192.31.196.0/24"), _A.RESERVED),  # RFC 7535 AS112
    (_V4("192.52.193.0/24"), _A.RESERVED),  # RFC 7450 AMT
    (_V4("192.88.99.0/24"), _A.RESERVED),  # RFC 7526 deprecated 6to4 relay anycast
    (_V4("192.168.0.0/16"), _A.PRIVATE),  # RFC 1918
    (_V4("192.175.48.0/24"), _A.RESERVED),  # RFC 7534 direct delegation AS112
    (_V4("198.18.0.0/15"), _A.BENCHMARKING),  # RFC 2544
    (_V4("198.51.100.0/24"), _A.DOCUMENTATION),  # RFC 5737 TEST-NET-2
    (_V4("203.0.113.0/24"), _A.DOCUMENTATION),  # RFC 5737 TEST-NET-3
    (_V4("224.0.0.0/4"), _A.MULTICAST),  # RFC 5771
    (_V4("255.255.255.255/32"), _A.BROADCAST),  # RFC 919
    (_V4("240.0.0.0/4"), _A.RESERVED),  # RFC 1112
)

# IPv6 forms that embed an IPv4 address are handled by `classify` before this table.
IPV6_RANGES: tuple[tuple[ipaddress.IPv6Network, AddressClass], ...] = (
    (_V6("::/128"), _A.UNSPECIFIED),  # RFC 4291
    (_V6("::1/128"), _A.LOOPBACK),  # RFC 4291
    (_V6("64:ff9b:1::/48"), _A.PRIVATE),  # RFC 8215 local-use NAT64
    (_V6("100::/64"), _A.RESERVED),  # RFC 6666 discard-only
    (_V6("2001:2::/48"), _A.BENCHMARKING),  # RFC 5180
    (_V6("2001:db8::/32"), _A.DOCUMENTATION),  # RFC 3849
    (_V6("2001::/23"), _A.RESERVED),  # RFC 2928 IETF protocol assignments (ORCHID, AMT, ...)
    (_V6("3fff::/20"), _A.DOCUMENTATION),  # RFC 9637
    (_V6("5f00::/16"), _A.RESERVED),  # RFC 9602 SRv6 SIDs
    (_V6("fc00::/7"), _A.PRIVATE),  # RFC 4193 unique local
    (_V6("fe80::/10"), _A.LINK_LOCAL),  # RFC 4291
    (_V6("fec0::/10"), _A.PRIVATE),  # RFC 3879 deprecated site-local
    (_V6("ff00::/8"), _A.MULTICAST),  # RFC 4291
)
_GLOBAL_UNICAST = _V6("2000::/3")  # everything else in IPv6 is unallocated
_IPV4_COMPATIBLE = _V6("::/96")  # RFC 4291 deprecated IPv4-compatible
_NAT64 = _V6("64:ff9b::/96")  # RFC 6052
_TEREDO = _V6("2001::/32")  # RFC 4380


def parse_ip(text: str) -> IPAddress:
    """An address as a resolver returns it (an IPv6 zone id such as `%eth0` is dropped)."""
    return ipaddress.ip_address(text.split("%", 1)[0])


def _classify_v4(ip: ipaddress.IPv4Address) -> AddressClass:
    for network, kind in IPV4_RANGES:
        if ip in network:
            return kind
    return AddressClass.PUBLIC


def classify(ip: IPAddress) -> AddressClass:
    """What kind of address `ip` is, judging IPv6 forms that carry IPv4 by the IPv4 they carry."""
    if isinstance(ip, ipaddress.IPv4Address):
        return _classify_v4(ip)
    if ip.ipv4_mapped is not None:
        return _classify_v4(ip.ipv4_mapped)
    if ip in _IPV4_COMPATIBLE and int(ip) > 1:  # :: and ::1 are in the table below
        inner = _classify_v4(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        # Deprecated since 2006: never a legitimate target even when the IPv4 is public.
        if inner in (AddressClass.PUBLIC, AddressClass.UNSPECIFIED):
            return AddressClass.RESERVED
        return inner
    embedded: list[ipaddress.IPv4Address] = []
    if ip in _NAT64:
        embedded.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    if ip.sixtofour is not None:
        embedded.append(ip.sixtofour)
    if ip in _TEREDO and ip.teredo is not None:
        embedded.extend(ip.teredo)  # (server, client); the client is de-obfuscated
    if embedded:
        for inner_ip in embedded:
            inner = _classify_v4(inner_ip)
            if inner is not AddressClass.PUBLIC:
                return inner
        return AddressClass.PUBLIC
    for network6, kind in IPV6_RANGES:
        if ip in network6:
            return kind
    return AddressClass.PUBLIC if ip in _GLOBAL_UNICAST else AddressClass.RESERVED


@attrs.frozen(kw_only=True)
class OutboundTarget:
    """A URL that passed `check_url`: what the adapter resolves and connects to.

    `host` is the ASCII (IDNA) name or the canonical IP text without brackets; `ip` is set when
    the URL named an address (then no resolution happens); `url` is the normalized URL.
    """

    url: str
    scheme: str
    host: str
    port: int
    ip: IPAddress | None

    @property
    def authority(self) -> str:
        """The `Host` header value: the name, with the port when it is not the scheme's default."""
        host = f"[{self.host}]" if isinstance(self.ip, ipaddress.IPv6Address) else self.host
        if self.port == _DEFAULT_PORTS.get(self.scheme):
            return host
        return f"{host}:{self.port}"

    @property
    def origin(self) -> tuple[str, str, int]:
        return (self.scheme, self.host, self.port)


def _normalize_ports(value: Iterable[int] | None) -> frozenset[int] | None:
    return None if value is None else frozenset(value)


def _normalize_schemes(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(scheme.lower() for scheme in value)


@attrs.frozen(kw_only=True)
class OutboundPolicy:
    """What outbound requests may reach. The defaults are for production; see `development()`.

    - `allow_loopback`, `allow_private`: permit 127/8 and ::1, and private networks (RFC 1918,
      fc00::/7, CGNAT). Link-local (cloud metadata), multicast, reserved, documentation and
      benchmarking ranges are never permitted.
    - `allowed_schemes`: `("https",)` unless a development policy adds `"http"`.
    - `allowed_ports`: None for any port, else the ports a URL may name.
    - `max_bytes`: the largest body accepted (after content decoding); `timeout`: seconds for the
      whole fetch, redirects and DNS included; `max_redirects`: how many redirects are followed.
    """

    allow_loopback: bool = False
    allow_private: bool = False
    allowed_schemes: tuple[str, ...] = attrs.field(default=("https",), converter=_normalize_schemes)
    allowed_ports: frozenset[int] | None = attrs.field(default=None, converter=_normalize_ports)
    max_bytes: int = attrs.field(default=DEFAULT_MAX_BYTES, validator=attrs.validators.gt(0))
    timeout: float = attrs.field(default=DEFAULT_TIMEOUT, validator=attrs.validators.gt(0))
    max_redirects: int = attrs.field(default=3, validator=attrs.validators.ge(0))

    def __attrs_post_init__(self) -> None:
        unknown = set(self.allowed_schemes) - set(_DEFAULT_PORTS)
        if unknown:
            raise ValueError(f"only http and https can be fetched, not {sorted(unknown)}")

    @classmethod
    def development(cls) -> OutboundPolicy:
        """Loopback, private networks and plain http allowed: for a laptop, never production.
        Adjust the caps with `attrs.evolve`."""
        return cls(allow_loopback=True, allow_private=True, allowed_schemes=("https", "http"))

    # ---- addresses ----------------------------------------------------------------------------

    def address_allowed(self, ip: IPAddress) -> bool:
        kind = classify(ip)
        if kind is AddressClass.PUBLIC:
            return True
        if kind is AddressClass.LOOPBACK:
            return self.allow_loopback
        if kind in (AddressClass.PRIVATE, AddressClass.SHARED):
            return self.allow_private
        return False

    def check_address(self, ip: IPAddress | str) -> IPAddress:
        """Refuse an address the policy does not allow; return it parsed otherwise."""
        if isinstance(ip, str):
            try:
                ip = parse_ip(ip)
            except ValueError:
                raise OutboundRefused(f"not an IP address: {ip!r}") from None
        if not self.address_allowed(ip):
            raise OutboundRefused(f"{ip} is a {classify(ip).value} address")
        return ip

    # ---- URLs ---------------------------------------------------------------------------------

    def check_url(self, url: str) -> OutboundTarget:
        """Validate an absolute URL against the policy; an IP literal host is classified too."""
        if not isinstance(url, str) or not url:
            raise OutboundRefused("the URL is empty")
        if len(url) > MAX_URL_LENGTH:
            raise OutboundRefused(f"the URL is longer than {MAX_URL_LENGTH} characters")
        if any(ord(ch) <= 0x20 or ord(ch) == 0x7F for ch in url) or "\\" in url:
            raise OutboundRefused("the URL contains whitespace, control characters or backslashes")
        if "#" in url:
            raise OutboundRefused("the URL has a fragment")
        try:
            parts = urlsplit(url)
        except ValueError as exc:
            raise OutboundRefused(f"the URL does not parse: {exc}") from None
        scheme = parts.scheme.lower()
        if not scheme:
            raise OutboundRefused("the URL is not absolute")
        if scheme not in self.allowed_schemes:
            raise OutboundRefused(f"the scheme {scheme!r} is not allowed")
        netloc = parts.netloc
        if not netloc or not url[len(parts.scheme) :].startswith("://"):
            raise OutboundRefused("the URL has no host")
        if "@" in netloc:
            raise OutboundRefused("the URL carries userinfo")
        host_text, port = _split_host_port(netloc, scheme)
        if self.allowed_ports is not None and port not in self.allowed_ports:
            raise OutboundRefused(f"port {port} is not allowed")
        host, ip = _check_host(host_text)
        if ip is not None:
            self.check_address(ip)
        elif not self.allow_loopback and (host == "localhost" or host.endswith(".localhost")):
            raise OutboundRefused(f"{host} names the loopback interface (RFC 6761)")
        target = OutboundTarget(url="", scheme=scheme, host=host, port=port, ip=ip)
        path = parts.path or "/"
        query = f"?{parts.query}" if parts.query else ""
        return attrs.evolve(target, url=f"{scheme}://{target.authority}{path}{query}")

    def check_redirect(self, base: str, location: str) -> OutboundTarget:
        """A `Location` header resolved against the URL that sent it, checked like a new URL."""
        if not location:
            raise OutboundRefused("the redirect has an empty Location")
        # A fragment on a redirect is legal HTTP but means nothing to a fetch: drop it.
        return self.check_url(urljoin(base, location.split("#", 1)[0]))


def _split_host_port(netloc: str, scheme: str) -> tuple[str, int]:
    if netloc.startswith("["):
        end = netloc.find("]")
        if end < 0:
            raise OutboundRefused("unterminated IPv6 literal")
        host, rest = netloc[: end + 1], netloc[end + 1 :]
        if rest and not rest.startswith(":"):
            raise OutboundRefused("junk after the IPv6 literal")
        port_text = rest[1:] if rest else None
    else:
        host, sep, port_text_raw = netloc.partition(":")
        port_text = port_text_raw if sep else None
    if port_text is None or port_text == "":
        if port_text == "":
            raise OutboundRefused("the URL has an empty port")
        return host, _DEFAULT_PORTS[scheme]
    if not port_text.isascii() or not port_text.isdigit() or len(port_text) > 5:
        raise OutboundRefused(f"invalid port {port_text!r}")
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise OutboundRefused(f"port {port} is out of range")
    return host, port


def _check_host(host: str) -> tuple[str, IPAddress | None]:
    if not host:
        raise OutboundRefused("the URL has an empty host")
    if host.startswith("["):
        inner = host[1:-1]
        if "%" in inner:
            raise OutboundRefused("IPv6 zone identifiers are not allowed")
        try:
            ip6 = ipaddress.IPv6Address(inner)
        except ValueError:
            raise OutboundRefused(f"invalid IPv6 literal {host!r}") from None
        return str(ip6), ip6
    if "%" in host:
        raise OutboundRefused("percent-encoding in the host is not allowed")
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise OutboundRefused("the host is not a valid internationalized name") from None
    host = host.lower()
    if host.endswith("."):
        host = host[:-1]  # one root dot is the same name
    labels = host.split(".")
    if _NUMERIC_LABEL.match(labels[-1]):
        # Only the canonical dotted quad is accepted: inet_aton-style spellings (2130706433,
        # 0x7f.1, 0177.0.0.1, 127.1) mean different things to different parsers.
        try:
            ip4 = ipaddress.IPv4Address(host)
        except ValueError:
            raise OutboundRefused(f"{host!r} is not a canonical IPv4 address") from None
        return str(ip4), ip4
    if len(host) > 253:
        raise OutboundRefused("the host name is longer than 253 characters")
    for label in labels:
        if not _LABEL.match(label):
            raise OutboundRefused(f"invalid host name label {label!r}")
        if label.startswith("xn--"):
            try:
                label.encode("ascii").decode("idna")
            except UnicodeError:
                raise OutboundRefused(f"invalid IDNA label {label!r}") from None
    return host, None
