"""Server addresses: what users type, what ZeroMQ needs, and whether it stays on this machine.

Ships in the add-on (standard library only). ``host:port`` is accepted
without ``tcp://``; anything else that is not a ZeroMQ endpoint gets one
sentence naming the address. "Is this loopback?" is answered from the parsed
and resolved host, never from a string prefix: ``tcp://127.attacker.example``
is a host name like any other, and it is local only if every address it
resolves to is a loopback one.
"""
from __future__ import annotations

import ipaddress
import re
import socket

_TCP = re.compile(r"^tcp://(\[[^\]]+\]|[^:/\[\]]+):(\d+|\*)$")
_BARE = re.compile(r"^(\[[^\]]+\]|[^:/\[\]]+):(\d+)$")


class AddressError(ValueError):
    """An address that is not a usable ZeroMQ endpoint (one sentence)."""


def normalize(address: str) -> str:
    """``host:port`` -> ``tcp://host:port``; checks host and port of tcp endpoints.
    ipc:// and inproc:// pass through unchanged."""
    text = (address or "").strip()
    if text.startswith(("ipc://", "inproc://")) and len(text.split("://", 1)[1]) > 0:
        return text
    if _BARE.match(text):
        text = "tcp://" + text
    m = _TCP.match(text)
    if not m:
        raise AddressError(f"server address {address!r} is not an address: write host:port or tcp://host:port "
                           f"(for example tcp://gpu-host:5557)")
    host, port = m.group(1), m.group(2)
    if port != "*" and not 0 < int(port) < 65536:
        raise AddressError(f"server address {address!r} has port {port}: use a port between 1 and 65535")
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise AddressError(f"server address {address!r} has {host}, which is not an IPv6 address") from None
    return text


def host_of(address: str) -> str:
    """The host part of a tcp endpoint (brackets of IPv6 removed)."""
    m = _TCP.match(normalize(address))
    if not m:
        raise AddressError(f"server address {address!r} is not a tcp:// address")
    return m.group(1).strip("[]")


def is_loopback(address: str) -> bool:
    """True for ipc://, inproc:// and tcp endpoints whose host is, or resolves only to,
    loopback addresses. A host that does not resolve is not local."""
    text = normalize(address)
    if text.startswith(("ipc://", "inproc://")):
        return True
    host = host_of(text)
    if host == "*":
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass  # a name: resolve it
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return False
    resolved = {str(info[4][0]).split("%", 1)[0] for info in infos}
    return bool(resolved) and all(ipaddress.ip_address(a).is_loopback for a in resolved)
