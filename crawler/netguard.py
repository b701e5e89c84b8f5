"""Outbound safety: which addresses forecourt may fetch from (server-side request forgery).

Dealer websites and feed URLs come from outside. Left alone, one of them (or a redirect it
answers with, or a DNS name that later resolves elsewhere) could make forecourt fetch from
loopback, the private network, or a cloud metadata service. Every outbound request resolves
its host and is refused when an address is not public, unless the host or network is listed
in the configuration's `allow_private_hosts` (the tests list 127.0.0.1; production lists
nothing).

The rules are pure functions here. They are enforced in three places:
- crawls: `crawler.middlewares_security` (a downloader middleware that sees every request,
  redirects included, and a DNS resolver that checks the address actually connected to);
- HTTP feed fetches: `safe_client()` / `safe_transport()` below, whose network backend
  resolves, checks and connects to the checked address itself (redirects included);
- `forecourt dealers add`: `crawler.urls.check_http_url`.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from crawler.config import get_settings
from crawler.errors import UnsafeURL

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Cloud instance metadata services: refused even when a broad allow-list network covers them;
# only an allow-list entry naming exactly that host or address unlocks one.
METADATA_HOSTS = frozenset({
    "metadata.google.internal", "metadata.goog", "metadata", "instance-data",
    "instance-data.ec2.internal", "metadata.azure.internal", "metadata.tencentyun.com",
})
METADATA_IPS = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean...
    "169.254.170.2",  # AWS ECS task metadata
    "169.254.169.123",  # AWS time sync
    "fd00:ec2::254",  # AWS IMDS over IPv6
    "fd00:ec2::23",
    "100.100.100.200",  # Alibaba Cloud
    "168.63.129.16",  # Azure wire server (a public address!)
    "192.0.0.192",  # Oracle Cloud
))
CGNAT = ipaddress.ip_network("100.64.0.0/10")
NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
SCHEMES = ("http", "https")


@dataclass(frozen=True)
class AllowList:
    """Parsed `allow_private_hosts`: host names (`*.x` or `.x` for subdomains) and networks."""

    names: frozenset[str]
    suffixes: tuple[str, ...]
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]

    def allows_name(self, host: str) -> bool:
        host = _norm_host(host)
        return host in self.names or any(host.endswith(s) for s in self.suffixes)

    def allows_ip(self, ip: IPAddress) -> bool:
        return any(ip.version == n.version and ip in n for n in self.networks)

    def names_exactly(self, host: str, ip: IPAddress) -> bool:
        """Whether an entry names this exact host or single address (metadata needs that)."""
        return _norm_host(host) in self.names or any(
            n.num_addresses == 1 and ip in n for n in self.networks if ip.version == n.version)


def parse_allow_list(entries: Iterable[str]) -> AllowList:
    names: set[str] = set()
    suffixes: list[str] = []
    networks = []
    for raw in entries:
        entry = raw.strip().strip("[]")
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
            continue
        except ValueError:
            pass
        entry = _norm_host(entry)
        if entry.startswith("*."):
            suffixes.append(entry[1:])
        elif entry.startswith("."):
            suffixes.append(entry)
        else:
            names.add(entry)
    return AllowList(frozenset(names), tuple(suffixes), tuple(networks))


def configured_allow_list() -> AllowList:
    return _cached_allow_list(tuple(get_settings().allow_private_hosts))


@lru_cache(maxsize=8)
def _cached_allow_list(entries: tuple[str, ...]) -> AllowList:
    return parse_allow_list(entries)


def _norm_host(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, Teredo, NAT64), if any."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if any(ip in net for net in NAT64):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def address_problem(ip: IPAddress | str) -> str | None:
    """Why this address may not be fetched from by default, or None when it is public."""
    ip = ipaddress.ip_address(ip) if isinstance(ip, str) else ip
    if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id:
        ip = ipaddress.ip_address(str(ip).split("%")[0])
    inner = _embedded_ipv4(ip)
    if inner is not None:
        why = address_problem(inner)
        return f"{why} (inside {ip})" if why else None
    if ip in METADATA_IPS:
        return "a cloud metadata address"
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if isinstance(ip, ipaddress.IPv4Address) and ip in CGNAT:
        return "a carrier-grade NAT address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_reserved:
        return "a reserved address"
    if ip.is_private:
        return "a private address"
    if not ip.is_global:
        return "a non-public address"
    return None


def check_address(host: str, ip: IPAddress | str, allow: AllowList | None = None) -> None:
    """Raise UnsafeURL unless `host`, resolved to `ip`, may be fetched from."""
    allow = allow if allow is not None else configured_allow_list()
    addr = ipaddress.ip_address(str(ip).split("%")[0]) if isinstance(ip, str) else ip
    name = _norm_host(host)
    if name in METADATA_HOSTS or addr in METADATA_IPS or (
            _embedded_ipv4(addr) in METADATA_IPS):
        if allow.names_exactly(name, addr):
            return
        raise UnsafeURL(f"refused {host} ({addr}): a cloud metadata address",
                        hint="metadata services are never crawled")
    why = address_problem(addr)
    if why is None or allow.allows_name(name) or allow.allows_ip(addr):
        return
    raise UnsafeURL(f"refused {host} ({addr}): {why}",
                    hint="list the host or network in FORECOURT_ALLOW_PRIVATE_HOSTS "
                         "if it is really meant to be fetched")


def literal_ip(host: str) -> IPAddress | None:
    """The address a host names without DNS: dotted, IPv6, or legacy forms like 2130706433."""
    host = _norm_host(host)
    try:
        return ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        pass
    try:  # inet_aton accepts what resolvers accept: '127.1', '0x7f000001', '017700000001'
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except (OSError, UnicodeError, ValueError):
        return None


def check_static(url: str, allow: AllowList | None = None) -> tuple[str, int]:
    """Checks that need no DNS: scheme, host present, metadata names, literal addresses.

    Returns (host, port).
    """
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError as exc:
        raise UnsafeURL(f"refused {url!r}: {exc}") from exc
    if parts.scheme not in SCHEMES:
        raise UnsafeURL(f"refused {url!r}: only http and https may be fetched")
    if not host:
        raise UnsafeURL(f"refused {url!r}: no host")
    port = port or (443 if parts.scheme == "https" else 80)
    ip = literal_ip(host)
    allow = allow if allow is not None else configured_allow_list()
    if ip is not None:
        check_address(host, ip, allow)
    elif _norm_host(host) in METADATA_HOSTS and not allow.allows_name(host):
        raise UnsafeURL(f"refused {host}: a cloud metadata host",
                        hint="metadata services are never crawled")
    return host, port


def resolve(host: str, port: int = 80) -> list[str]:
    """Every address `host` resolves to (what a connection could use)."""
    infos = socket.getaddrinfo(_norm_host(host), port, type=socket.SOCK_STREAM)
    seen: list[str] = []
    for info in infos:
        addr = str(info[4][0])
        if addr not in seen:
            seen.append(addr)
    return seen


def check_host(host: str, port: int = 80, allow: AllowList | None = None) -> list[str]:
    """Resolve `host` and check every address; returns them (connect only to these).

    Raises UnsafeURL when any address is forbidden (a name that resolves to a public and a
    private address is refused), socket.gaierror when the name does not resolve.
    """
    allow = allow if allow is not None else configured_allow_list()
    addresses = resolve(host, port)
    for addr in addresses:
        check_address(host, addr, allow)
    return addresses


def check_url(url: str, allow: AllowList | None = None, *, dns: bool = True) -> str:
    """Raise UnsafeURL unless `url` may be fetched; with dns, resolve and check its host.

    A host that does not resolve passes (there is nothing to reach; every fetch checks again).
    """
    allow = allow if allow is not None else configured_allow_list()
    host, port = check_static(url, allow)
    if dns and literal_ip(host) is None:
        try:
            check_host(host, port, allow)
        except (socket.gaierror, UnicodeError):
            pass
    return url


# --- HTTP feed fetches (httpx) ---------------------------------------------------------------

def request_hook(request: Any) -> None:
    """httpx request event hook: refuse a forbidden URL (redirects too) before connecting."""
    check_static(str(request.url))


def safe_transport(**kwargs: Any):
    """An httpx.HTTPTransport whose connections go only to checked addresses.

    Its network backend resolves each host, checks every address and connects to the checked
    address itself, so a DNS answer that changes between the check and the connection (DNS
    rebinding) cannot slip through. TLS still verifies the certificate for the host name.
    """
    import httpx

    transport = httpx.HTTPTransport(**kwargs)
    pool = transport._pool  # httpcore.ConnectionPool: its backend is the only way in
    pool._network_backend = GuardedBackend(pool._network_backend)
    return transport


def safe_client(**kwargs: Any):
    """An httpx.Client for untrusted URLs: checked connections, redirects re-checked.

    Environment proxies are ignored (a proxy would connect on our behalf, unchecked).
    """
    import httpx

    transport_kwargs = {k: kwargs.pop(k) for k in ("retries", "verify", "http2")
                        if k in kwargs}
    hooks = kwargs.pop("event_hooks", {}) or {}
    hooks = {**hooks, "request": [request_hook, *hooks.get("request", [])]}
    kwargs.setdefault("trust_env", False)
    return httpx.Client(transport=safe_transport(**transport_kwargs), event_hooks=hooks,
                        **kwargs)


class GuardedBackend:
    """An httpcore network backend that checks the address of every TCP connection."""

    def __init__(self, inner: Any = None, allow: AllowList | None = None):
        import httpcore

        self._inner = inner if inner is not None else httpcore.SyncBackend()
        self._allow = allow

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None, socket_options: Any = None):
        import httpcore

        try:
            addresses = check_host(host, port, self._allow)
        except socket.gaierror as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        last: Exception | None = None
        for addr in addresses:
            try:
                return self._inner.connect_tcp(addr, port, timeout=timeout,
                                               local_address=local_address,
                                               socket_options=socket_options)
            except httpcore.ConnectError as exc:
                last = exc
        assert last is not None
        raise last

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Any = None):
        raise UnsafeURL(f"refused unix socket {path}: only TCP to public addresses")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)
