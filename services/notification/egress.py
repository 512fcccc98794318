"""Requests to partners' URLs that cannot be turned against our own network (SSRF).

A partner registers a URL and our server POSTs to it: without care, `http://127.0.0.1:15672/api/...` (the
broker's management API) or `http://169.254.169.254/...` (a cloud's metadata) would make the platform call
what only it can reach. As OWASP's SSRF cheat sheet advises:

- the URL is checked when it is registered **and** at each delivery, after DNS resolution (a name can change,
  or answer differently the second time: DNS rebinding); the connection is made to the very address checked;
- only public unicast addresses (IPv4 inside IPv6 forms included); loopback, private, shared, link-local,
  multicast, reserved and unspecified addresses are refused, unless an operator names them in
  `PARVIS_WEBHOOK_ALLOW` (on-premise partners: networks in CIDR form, or host names);
- no redirects (a 3xx is a failure), a short timeout, a bounded answer read;
- `https` only in production, no credentials in the URL.
"""
from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import urllib.parse
from dataclasses import dataclass

from contracts.errors import BadInput

CONNECT_TIMEOUT = 3.0  # seconds to connect
TIMEOUT = 5.0  # seconds for the whole answer
MAX_ANSWER = 64 * 1024  # bytes of the answer read (and thrown away)

_NAT64 = ipaddress.ip_network("64:ff9b::/96")


# The URL may not be called (its address, scheme or form): BadInput itself, since errors cross the bus by their
# class name and the gateway knows BadInput's.
Refused = BadInput


@dataclass(frozen=True)
class Allow:
    """What PARVIS_WEBHOOK_ALLOW lets through besides public addresses: networks and exact host names."""

    networks: tuple = ()
    hosts: frozenset = frozenset()

    @classmethod
    def parse(cls, raw: str) -> "Allow":
        networks, hosts = [], set()
        for item in (x.strip() for x in raw.split(",")):
            if not item:
                continue
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                if not all(part.isalnum() or part.replace("-", "").isalnum() for part in item.split(".")):
                    raise ValueError(f"{item!r} is neither a network (10.0.0.0/8) nor a host name") from None
                hosts.add(item.lower().rstrip("."))
        return cls(tuple(networks), frozenset(hosts))

    def __str__(self) -> str:
        return ",".join([*map(str, self.networks), *sorted(self.hosts)])


def public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """A public unicast address, whatever IPv6 form carries an IPv4 one."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
                                                      if ip in _NAT64 else None)
        if embedded is not None:
            return public(embedded)
        if ip.teredo:
            return False
    return ip.is_global and not ip.is_multicast


def check_url(url: str, *, production: bool, allow: Allow = Allow(), field: str = "url") -> urllib.parse.SplitResult:
    """The URL's form (scheme, no credentials, a host); an address written in it is checked too. Names are
    resolved by `resolve` (at registration and at each delivery)."""
    try:
        parts = urllib.parse.urlsplit(url.strip())
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        raise Refused("Adresse de point d'appel illisible.", field) from None
    schemes = ("https",) if production else ("https", "http")
    if parts.scheme not in schemes:
        raise Refused("Le point d'appel doit être en https." if production else
                      "Le point d'appel doit être une adresse http(s).", field)
    if parts.username is not None or parts.password is not None:
        raise Refused("Pas d'identifiants dans l'adresse : la signature des envois authentifie Parvis.", field)
    if not parts.hostname:
        raise Refused("Adresse sans nom d'hôte.", field)
    try:
        literal = ipaddress.ip_address(parts.hostname)
    except ValueError:
        literal = None
    if literal is not None and not _allowed(literal, parts.hostname, allow):
        raise Refused(_REFUSED, field)
    return parts


_REFUSED = ("Cette adresse désigne un réseau interne (boucle locale, réseau privé, lien local ou multidiffusion) : "
            "un partenaire sur site est autorisé par PARVIS_WEBHOOK_ALLOW.")


def _allowed(ip, host: str, allow: Allow) -> bool:
    return public(ip) or host.lower().rstrip(".") in allow.hosts or any(ip in net for net in allow.networks
                                                                         if net.version == ip.version)


def resolve(parts: urllib.parse.SplitResult, allow: Allow = Allow(), field: str = "url") -> str:
    """The address to connect to: every address the name has must be allowed (a name that answers both a public
    and an internal address is refused, since either may come next)."""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise Refused(f"Nom d'hôte introuvable : {parts.hostname} ({exc}).", field) from None
    addresses = []
    for *_, sockaddr in infos:
        ip = ipaddress.ip_address(sockaddr[0].split("%")[0])
        if not _allowed(ip, parts.hostname, allow):
            raise Refused(_REFUSED, field)
        addresses.append(str(ip))
    if not addresses:
        raise Refused(f"Nom d'hôte sans adresse : {parts.hostname}.", field)
    return addresses[0]


def check(url: str, *, production: bool, allow: Allow = Allow(), field: str = "url") -> str:
    """At registration: the URL's form and every address its name resolves to."""
    parts = check_url(url, production=production, allow=allow, field=field)
    resolve(parts, allow, field)
    return urllib.parse.urlunsplit(parts)


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, host, port, address, **kw):
        super().__init__(host, port, **kw)
        self._address = address

    def connect(self):
        self.sock = socket.create_connection((self._address, self.port), CONNECT_TIMEOUT)
        self.sock.settimeout(self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, host, port, address, context, **kw):
        super().__init__(host, port, context=context, **kw)
        self._address, self._ctx = address, context

    def connect(self):
        sock = socket.create_connection((self._address, self.port), CONNECT_TIMEOUT)
        sock.settimeout(self.timeout)
        self.sock = self._ctx.wrap_socket(sock, server_hostname=self.host)  # the certificate of the name


def post(url: str, body: bytes, headers: dict, *, production: bool, allow: Allow = Allow(),
         context: ssl.SSLContext | None = None, timeout: float = TIMEOUT) -> int:
    """POST `body` to `url`, checked again and connected to the address checked; returns the status (2xx), raises
    Refused for an address not allowed, and OSError for anything else (unreachable, timeout, 3xx/4xx/5xx)."""
    parts = check_url(url, production=production, allow=allow)
    address = resolve(parts, allow)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if parts.scheme == "https":
        conn = _PinnedHTTPS(parts.hostname, port, address, context or ssl.create_default_context(), timeout=timeout)
    else:
        conn = _PinnedHTTP(parts.hostname, port, address, timeout=timeout)
    path = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
    try:
        conn.request("POST", path, body=body, headers={"User-Agent": "Parvis-Webhooks/1", **headers})
        resp = conn.getresponse()
        resp.read(MAX_ANSWER)
        status = resp.status
    finally:
        conn.close()
    if not 200 <= status < 300:
        raise OSError(f"HTTP {status}" + (" (redirects are not followed)" if 300 <= status < 400 else ""))
    return status
