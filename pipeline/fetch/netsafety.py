"""Network safety for the downloader: refuse private targets (SSRF guard) and pick proxies.

Candidate URLs come from the open web, so a URL (or any redirect hop) may point at
169.254.169.254 (cloud metadata), 10.x, localhost, ... By default the downloader refuses such
targets. Names are checked at resolution time by `SafeResolver`, which hands aiohttp only the
addresses it checked, so the connection goes to exactly those (no DNS-rebinding window); literal-IP
hosts never reach a resolver and are checked with `check_host_literal` before any request.

With a proxy (explicit, or HTTP(S)_PROXY from the environment) the *proxy* resolves names, so only
literal-IP targets can be checked; the proxy's own address is always allowed (an intranet proxy).
"""
from __future__ import annotations

import ipaddress
import socket
import urllib.request

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost"})


def check_address(ip: str | ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why `ip` must not be contacted ("loopback", "private", "link_local", ...), or None if public.

    IPv6 forms that embed an IPv4 address (IPv4-mapped, 6to4, Teredo, NAT64) are judged by the
    embedded address as well, so ::ffff:127.0.0.1 is loopback.
    """
    try:
        addr = ipaddress.ip_address(ip) if isinstance(ip, str) else ip
    except ValueError:
        return "invalid"
    if isinstance(addr, ipaddress.IPv6Address):
        embedded = [addr.ipv4_mapped, addr.sixtofour]
        if addr.teredo:
            embedded.extend(addr.teredo)
        if addr in _NAT64:
            embedded.append(ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF))
        for inner in embedded:
            if inner is not None and (why := check_address(inner)):
                return why
        if addr.ipv4_mapped is not None:
            return None
    if addr.is_unspecified:
        return "unspecified"
    if addr.is_loopback:
        return "loopback"
    if addr.is_link_local:
        return "link_local"
    if addr.is_multicast:
        return "multicast"
    if addr.is_private:
        return "private"
    if addr.is_reserved:
        return "reserved"
    if not addr.is_global:
        return "not_global"  # e.g. 100.64.0.0/10 (carrier-grade NAT), 192.0.0.0/24
    return None


def host_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The IP address if `host` is a literal IP (brackets and zone id allowed), else None."""
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def check_host_literal(host: str) -> str | None:
    """Why a literal-IP host must be refused; None for public IPs and for names (the resolver checks those)."""
    addr = host_literal(host)
    return None if addr is None else check_address(addr)


class PrivateAddressError(OSError):
    """Raised by SafeResolver; aiohttp wraps it in ClientConnectorDNSError (see `.os_error`)."""

    def __init__(self, host: str, address: str, why: str):
        super().__init__(f"{host} resolves to {address} ({why})")
        self.host, self.address, self.why = host, address, why


class SafeResolver(AbstractResolver):
    """aiohttp resolver that refuses a name if ANY of its addresses is not public.

    Refusing on any (not all) bad address closes the trick of mixing a public and a private
    address in one answer. `trusted_hosts` (the proxies) resolve without checks.
    Create it inside a running event loop.
    """

    def __init__(self, allow_private: bool = False, trusted_hosts: frozenset[str] = frozenset()):
        self._inner = DefaultResolver()
        self._allow_private = allow_private
        self._trusted = frozenset(h.lower() for h in trusted_hosts)

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        infos = await self._inner.resolve(host, port, family)
        if self._allow_private or host.lower() in self._trusted:
            return infos
        for info in infos:
            why = check_address(info["host"])
            if why:
                raise PrivateAddressError(host, info["host"], why)
        return infos

    async def close(self) -> None:
        await self._inner.close()


def env_proxies() -> dict[str, str]:
    """HTTP_PROXY/HTTPS_PROXY/NO_PROXY (either case) as {"http"|"https"|"no": value}, read once per Fetcher."""
    return {k: v for k, v in urllib.request.getproxies_environment().items() if k in ("http", "https", "no")}


def is_loopback_host(host: str) -> bool:
    addr = host_literal(host)
    return host.lower() in _LOOPBACK_NAMES if addr is None else addr.is_loopback


def choose_proxy(scheme: str, host: str, explicit: str | None, from_env: dict[str, str]) -> str | None:
    """The proxy for one request: `explicit` always; else the environment's, unless NO_PROXY or a
    loopback host says to go direct (an outside proxy cannot reach our loopback anyway)."""
    if explicit:
        return explicit
    proxy = from_env.get(scheme)
    if not proxy or is_loopback_host(host):
        return None
    if urllib.request.proxy_bypass_environment(host, from_env):
        return None
    return proxy
