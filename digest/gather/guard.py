"""Where the fetcher may connect: the public internet, and this machine's network only on purpose.

Every outbound request goes through `gather.fetch.fetch` (feeds, full-text pages, add by
URL, sources added in the console or the API), and `fetch` arms this guard on the
session it is given. Without it a URL picked by someone else would make the server read
its own network: a database port on 127.0.0.1, cloud metadata at 169.254.169.254, an
intranet page, whose text would then land in a draft, a mail and the public archive.

The rule, as a `Reach` given to each fetch:

- a public address is always allowed;
- a loopback, private, link-local, shared or reserved address is allowed only on the
  `home` origin (scheme, host and port) of the source an admin added: self-hosters read
  intranet feeds, and their full-text pages on the same host;
- `anywhere` (the `[gather]` and `[web]` `fetch_private_addresses` settings) lifts it.

So a URL that came from feed content (an item's link, a redirect) reaches a private
address only on the same scheme, host and port as its source, and an editor's add by
URL only a public one. It is checked twice: before connecting, on every address the
host resolves to, and on the connected socket's peer, so a name that resolves
differently the second time (DNS rebinding) and every redirect hop are caught too.
Through an HTTP proxy (HTTP_PROXY, HTTPS_PROXY) only the first check applies, since the
proxy connects; and a host that does not resolve here is refused, since the proxy might
resolve it to an intranet address (`Reach.unchecked`).

The reach travels to the connection in a context variable that `reaching` sets around
one fetch: requests gives an adapter no per-request options, and a session's pools are
shared by fetches with different reaches.
"""

from __future__ import annotations

import contextlib
import contextvars
import ipaddress
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.utils import select_proxy
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NewConnectionError

_DEFAULT_PORTS = {"http": 80, "https": 443}

Origin = tuple[str, str, int]  # scheme, host (lower case, no brackets), port


def origin(url: str) -> Origin | None:
    """The scheme, host and port a URL connects to; None if it has no http(s) host."""
    try:
        parts = urlsplit(url.strip())
        scheme, host, port = parts.scheme.lower(), (parts.hostname or ""), parts.port
    except ValueError:  # a port out of range or not a number
        return None
    if scheme not in _DEFAULT_PORTS or not host:
        return None
    return scheme, host.lower().rstrip("."), port or _DEFAULT_PORTS[scheme]


@dataclass(frozen=True)
class Reach:
    """Which addresses that are not public one fetch may connect to (module docstring)."""

    home: str = ""          # the URL of the source an admin added; "" for none
    anywhere: bool = False  # every address: a `fetch_private_addresses` setting is on
    setting: str = "[gather] fetch_private_addresses"  # named in the refusal

    def allows(self, target: Origin) -> bool:
        return self.anywhere or (bool(self.home) and origin(self.home) == target)

    def refusal(self, host: str, address: str) -> str:
        home = origin(self.home) if self.home else None
        rule = (f"only the source's own scheme, host name and port ({home[0]}://{home[1]}:"
                f"{home[2]}, as written when it was added) may be on this machine's network"
                if home else "only public addresses are fetched here")
        where = address if _same_address(host, address) else f"{host} is at {address}, which"
        return (f"{where} is not a public internet address, and {rule}; an admin can "
                f"allow it with {self.setting} = true")

    def unchecked(self, host: str, why: str) -> str:
        """The refusal of a fetch through a proxy whose host cannot be checked here."""
        return (f"{host} {why}, so where it leads cannot be checked before the request "
                "goes to the proxy (which would reach it from inside this network); an "
                f"admin can allow it with {self.setting} = true")


PUBLIC_ONLY = Reach()

_reach: contextvars.ContextVar[Reach] = contextvars.ContextVar("digest_reach",
                                                               default=PUBLIC_ONLY)


@contextlib.contextmanager
def reaching(reach: Reach) -> Iterator[None]:
    """Let the requests made inside (in this thread) connect where `reach` allows."""
    token = _reach.set(reach)
    try:
        yield
    finally:
        _reach.reset(token)


def _same_address(host: str, address: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")) == ipaddress.ip_address(address)
    except ValueError:
        return False


class PrivateAddress(requests.ConnectionError):
    """The URL's host is not on the public internet, and this fetch may not go there."""


#: IPv6 prefixes that carry an IPv4 address in their last 32 bits and lead to it: NAT64
#: (RFC 6052's well-known prefix and RFC 8215's local one) and the deprecated
#: IPv4-compatible ::a.b.c.d.
_EMBEDDING = tuple(ipaddress.ip_network(n) for n in ("64:ff9b::/96", "64:ff9b:1::/48", "::/96"))


def is_public(address: str) -> bool:
    """Whether an IP address is on the public internet: not loopback, private,
    link-local (cloud metadata), shared, reserved, multicast or unspecified. An IPv6
    address that leads to an IPv4 one (mapped, 6to4, Teredo, NAT64, IPv4-compatible) is
    judged by that IPv4 address: 64:ff9b::7f00:1 is 127.0.0.1 behind a NAT64 gateway."""
    try:
        ip = ipaddress.ip_address(address.split("%")[0])  # fe80::1%eth0
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is None and any(ip in net for net in _EMBEDDING):
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            ip = embedded
    return ip.is_global and not ip.is_multicast


def guard(http: requests.Session) -> None:
    """Arm the guard on `http` (once): every http(s) request it makes is checked."""
    for prefix in ("http://", "https://"):
        if not isinstance(http.adapters.get(prefix), _GuardedAdapter):
            http.mount(prefix, _GuardedAdapter())


def refusal_in(exc: BaseException) -> str:
    """The guard's refusal inside an error requests raised ("" if it is another error)."""
    if isinstance(exc, PrivateAddress):
        return str(exc)
    for arg in exc.args:  # requests wraps urllib3's MaxRetryError, which holds the reason
        reason = getattr(arg, "reason", arg)
        if isinstance(reason, _Refused):
            return reason.message
    return ""


class _Refused(NewConnectionError):
    def __init__(self, conn: HTTPConnection, message: str) -> None:
        super().__init__(conn, message)
        self.message = message


class _GuardedAdapter(HTTPAdapter):
    """Checks every address the host resolves to before connecting, and connects
    through pools whose sockets check the address they reached."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _GuardedHTTPPool,
                                                   "https": _GuardedHTTPSPool}

    def send(self, request: requests.PreparedRequest, *args: Any,
             **kwargs: Any) -> requests.Response:
        target = origin(request.url or "")
        reach = _reach.get()
        if target is not None and not reach.allows(target):
            proxied = bool(select_proxy(request.url or "", kwargs.get("proxies") or {}))
            try:
                infos = socket.getaddrinfo(target[1], None, proto=socket.IPPROTO_TCP)
            except (OSError, UnicodeError):
                # Unknown here: the connection fails with its own message, unless a proxy
                # would resolve it, perhaps to an intranet host.
                if proxied:
                    raise PrivateAddress(reach.unchecked(target[1], "does not resolve here"),
                                         request=request) from None
                infos = []
            for *_, sockaddr in infos:
                if not is_public(str(sockaddr[0])):
                    raise PrivateAddress(reach.refusal(target[1], str(sockaddr[0])),
                                         request=request)
        return super().send(request, *args, **kwargs)


class _GuardedConnection(HTTPConnection):
    scheme = "http"

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        if self.proxy is None:  # through a proxy, the proxy is the peer
            peer = str(sock.getpeername()[0])
            reach = _reach.get()
            target = (self.scheme, self.host.lower().rstrip("."), self.port or 0)
            if not is_public(peer) and not reach.allows(target):
                sock.close()
                raise _Refused(self, reach.refusal(self.host, peer))
        return sock


class _GuardedHTTPSConnection(_GuardedConnection, HTTPSConnection):
    scheme = "https"


class _GuardedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _GuardedConnection


class _GuardedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection
