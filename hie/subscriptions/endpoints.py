"""Where a Subscription may deliver: the endpoint policy (``HIE_SUBSCRIPTION_ENDPOINTS``).

Any token holder names a ``channel.endpoint``, and the deliverer sends to it from inside the
platform's network: unchecked, a hospital's token could make the platform POST to the loopback
interface, the cloud metadata service (169.254.169.254) or a private network (server-side request
forgery). So an endpoint is checked twice:

- **on write** (``problem``): the scheme (https, or http only where an entry names an ``http://``
  prefix), the allow-list, and an address written in the URL itself (``https://10.0.0.5/``,
  ``http://2130706433/``, ``localhost``). Names are not resolved here: what a name resolves to
  when the subscription is written says nothing about what it resolves to later.
- **on delivery** (``resolve``): the same, then the name is resolved and *every* address it
  resolves to must be public, or inside a network the allow-list names. The deliverer connects to
  one of these checked addresses (``deliverer.py``), so the HTTP client never resolves the name a
  second time, which a DNS-rebinding subscriber could answer with 127.0.0.1.

``HIE_SUBSCRIPTION_ENDPOINTS`` entries (comma-separated, or a JSON list):

- ``https://hooks.example.org/fhir/``: a URL prefix. Same scheme and host; the entry's port, or
  any when it has none; the endpoint's path starts with the entry's at a ``/``. The only way to
  allow ``http``.
- ``hooks.example.org``, ``*.example.org``: a host, or any host under a domain (https, any port).
- ``10.20.0.0/16``, ``192.0.2.7``, ``fd00::/8``: a network. Endpoints written with an address in
  it are allowed (https), and names that resolve into it may be delivered to.

An IP address written as the host of a prefix entry (``http://127.0.0.1``) is allowed the same
way. With no entry, any https endpoint is allowed whose addresses are all public.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, urlsplit

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# (family, type, proto, canonname, sockaddr), as socket.getaddrinfo answers.
Resolver = Callable[..., list[tuple[Any, ...]]]

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def public(address: Address) -> bool:
    """Whether an address is on the public internet: not loopback, private (RFC 1918, fc00::/7),
    link-local (169.254/16 with the cloud metadata service, fe80::/10), shared (100.64/10),
    reserved, multicast or unspecified. An IPv4 address inside an IPv6 one (::ffff:a.b.c.d,
    6to4, NAT64) is judged by the IPv4 address."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = address.ipv4_mapped or address.sixtofour
        if inner is None and address in _NAT64:
            inner = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if inner is not None:
            return public(inner)
        if address.is_site_local:
            return False
    return address.is_global and not address.is_multicast


def literal_address(host: str) -> Address | None:
    """The address a host names without a DNS look-up: an IP literal in any form the C library
    takes (``127.1``, ``2130706433``, ``0x7f.0.0.1`` are all 127.0.0.1), or None for a name."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        # AI_NUMERICHOST: parsed locally, never sent to a resolver.
        found = socket.getaddrinfo(host, None, flags=socket.AI_NUMERICHOST)
    except (OSError, UnicodeError):
        return None
    return ipaddress.ip_address(str(found[0][4][0]).partition("%")[0]) if found else None


def _loopback_name(host: str) -> bool:
    # RFC 6761: localhost and its subdomains are always loopback, whatever DNS would say.
    return host == "localhost" or host.endswith(".localhost")


@dataclass(frozen=True)
class _Prefix:
    scheme: str
    host: str
    port: int | None
    path: str

    def admits(self, url: SplitResult) -> bool:
        if (url.scheme, (url.hostname or "").rstrip(".")) != (self.scheme, self.host):
            return False
        if self.port is not None and _port(url) != self.port:
            return False
        path = url.path or "/"
        if not path.startswith(self.path):
            return False
        # At a segment boundary: /fhir does not admit /fhirevil.
        return self.path.endswith("/") or len(path) == len(self.path) or path[len(self.path)] == "/"


def _port(url: SplitResult) -> int:
    return url.port or (443 if url.scheme == "https" else 80)


@dataclass(frozen=True)
class EndpointPolicy:
    """The allow-list read from ``HIE_SUBSCRIPTION_ENDPOINTS`` (empty: any public https
    endpoint)."""

    prefixes: tuple[_Prefix, ...] = ()
    hosts: tuple[str, ...] = ()  # exact names
    domains: tuple[str, ...] = ()  # "*.example.org" kept as ".example.org"
    networks: tuple[Network, ...] = ()  # where addresses that are not public may be

    @classmethod
    def of(cls, entries: Sequence[str]) -> EndpointPolicy:
        """The policy of the setting's entries; ValueError naming a bad one."""
        prefixes: list[_Prefix] = []
        hosts: list[str] = []
        domains: list[str] = []
        networks: list[Network] = []
        for raw in entries:
            entry = raw.strip()
            if not entry:
                continue
            if "://" in entry:
                parts = urlsplit(entry)
                if parts.scheme not in ("http", "https") or not parts.hostname:
                    raise ValueError(f"{entry!r} is no http or https URL prefix")
                if parts.query or parts.fragment or parts.username:
                    raise ValueError(f"{entry!r}: a prefix has no query, fragment or user")
                host = parts.hostname.rstrip(".")
                prefixes.append(_Prefix(parts.scheme, host, parts.port, parts.path or "/"))
                address = literal_address(host)
                if address is not None:
                    networks.append(ipaddress.ip_network(address))
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
                continue
            except ValueError:
                pass
            name = entry.lower().rstrip(".")
            bare = name.removeprefix("*.")
            if not bare or "*" in bare or "/" in bare or ":" in bare:
                raise ValueError(
                    f"{entry!r} is no URL prefix (https://host/path), host (hooks.example.org, "
                    "*.example.org) or network (10.0.0.0/8)"
                )
            (domains if name.startswith("*.") else hosts).append(
                "." + bare if name.startswith("*.") else bare
            )
        return cls(tuple(prefixes), tuple(hosts), tuple(domains), tuple(networks))

    @property
    def empty(self) -> bool:
        return not (self.prefixes or self.hosts or self.domains or self.networks)

    def allows_address(self, address: Address) -> bool:
        return public(address) or any(address in network for network in self.networks)

    def _listed(self, url: SplitResult, host: str, address: Address | None) -> bool:
        if any(prefix.admits(url) for prefix in self.prefixes):
            return True
        if url.scheme != "https":
            return False  # http only through a prefix that says so
        if address is not None:
            return any(address in network for network in self.networks)
        return host in self.hosts or any(host.endswith(domain) for domain in self.domains)

    def problem(self, endpoint: str) -> str | None:
        """Why ``endpoint`` may not be delivered to (None: it may), without a DNS look-up."""
        try:
            url = urlsplit(endpoint)
        except ValueError:  # an unclosed [IPv6 address
            return "channel.endpoint must be an http or https URL"
        host = (url.hostname or "").rstrip(".")
        if url.scheme not in ("http", "https") or not host:
            return "channel.endpoint must be an http or https URL"
        try:
            url.port  # noqa: B018 - raises for a port that is no number
        except ValueError:
            return "channel.endpoint has an invalid port"
        address = literal_address(host)
        if self.empty:
            if url.scheme != "https":
                return "channel.endpoint must be an https URL"
        elif not self._listed(url, host, address):
            return (
                "channel.endpoint is not among the endpoints this platform delivers to "
                "(HIE_SUBSCRIPTION_ENDPOINTS); ask the operator to allow it"
            )
        if _loopback_name(host) and not self.allows_address(ipaddress.IPv4Address("127.0.0.1")):
            return "channel.endpoint names the platform itself (localhost)"
        if address is not None and not self.allows_address(address):
            return f"channel.endpoint is at {address}, which is not a public address"
        return None

    def resolve(
        self, endpoint: str, resolver: Resolver = socket.getaddrinfo
    ) -> tuple[list[Address], str | None]:
        """The addresses to connect to for ``endpoint``, each checked; or why none may be.
        ``OSError`` (``socket.gaierror``) when the name cannot be resolved now."""
        why = self.problem(endpoint)
        if why is not None:
            return [], why
        url = urlsplit(endpoint)
        host = (url.hostname or "").rstrip(".")
        found = resolver(host, _port(url), type=socket.SOCK_STREAM)
        addresses: list[Address] = []
        for *_, sockaddr in found:
            address = ipaddress.ip_address(str(sockaddr[0]).partition("%")[0])
            if not self.allows_address(address):
                # One bad address refuses the name: which one a client picks is not ours to bet on.
                return [], f"channel.endpoint resolves to {address}, which is not a public address"
            if address not in addresses:
                addresses.append(address)
        if not addresses:
            raise socket.gaierror(f"no address for {host}")
        return addresses, None


@functools.lru_cache(maxsize=8)
def policy_of(entries: tuple[str, ...]) -> EndpointPolicy:
    """The policy of a setting's entries, read once per distinct setting."""
    return EndpointPolicy.of(entries)
