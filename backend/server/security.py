"""Where the server may listen, and CurveZMQ when it leaves loopback.

Binding anything but loopback exposes a GPU box to the network, so it needs
CurveZMQ: the server's secret key and the public keys of the clients allowed
in (pyzmq's own authenticator checks them on every connection).
"""
from __future__ import annotations


import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from blender_addon.core import address as address_mod
from blender_addon.core.curve_keys import KeyFileError, load_key_file

from .handshakes import refusals


class SecurityError(Exception):
    """The server must not start with this configuration (one-line reason)."""


def is_local(address: str) -> bool:
    """True for ipc://, inproc:// and tcp endpoints whose host is (or resolves only to)
    loopback; decided on the parsed address, never on a string prefix."""
    try:
        return address_mod.is_loopback(address)
    except address_mod.AddressError as exc:
        raise SecurityError(f"cannot bind: {exc}") from None


def _certificate(path: str, option: str) -> tuple[bytes, bytes | None]:
    """(public, secret) of a key file; SecurityError naming ``option`` when it is not one."""
    try:
        return load_key_file(path, option)
    except KeyFileError as exc:
        raise SecurityError(str(exc)) from None


def load_server_keys(secret_file: str) -> tuple[bytes, bytes]:
    public, secret = _certificate(secret_file, "--curve-secret-key")
    if not secret:
        raise SecurityError(f"--curve-secret-key {secret_file} holds no secret key (give the .key_secret file)")
    return public, secret


def load_client_keys(files) -> set[bytes]:
    return {_certificate(f, "--allow-client-key")[0] for f in files}


def check_key_files(secret_file: str | None, client_key_files) -> None:
    """Every key file given can be read, before anything binds (SecurityError otherwise)."""
    if secret_file:
        load_server_keys(secret_file)
    load_client_keys(client_key_files or ())


class _AllowList:
    """Credentials provider for the authenticator: only the listed client keys.
    A refused key is logged with the peer's address (the ZAP request carries it)."""

    def __init__(self, keys: set[bytes], authenticator: "_PeerAuthenticator"):
        self.keys = keys
        self.authenticator = authenticator

    def callback(self, domain, key) -> bool:
        allowed = key in self.keys
        if not allowed:
            refusals.note(self.authenticator.peer, reason="client_key_not_allowed",
                          client_key=key.decode("ascii", "replace"))
        return allowed


class _PeerAuthenticator(ThreadAuthenticator):
    """pyzmq's authenticator, remembering the address of the peer being checked
    (ZAP requests are handled one at a time on the authenticator's thread)."""

    peer = "?"

    async def handle_zap_message(self, msg):
        if len(msg) >= 4:
            self.peer = msg[3].decode("utf-8", "replace") or "?"
        await super().handle_zap_message(msg)


def secure(ctx: zmq.Context, sock: zmq.Socket, bind: str, secret_file: str | None,
           client_key_files) -> ThreadAuthenticator | None:
    """Configure ``sock`` for ``bind``; returns the running authenticator (or None on loopback
    without keys). Raises SecurityError when a non-local bind lacks keys."""
    client_key_files = list(client_key_files or ())
    if not secret_file and not client_key_files:
        if not is_local(bind):
            raise SecurityError(f"refusing to bind {bind}: only loopback is allowed without CurveZMQ keys "
                                f"(give --curve-secret-key FILE --allow-client-key FILE...; "
                                f"`inhabit keys generate DIR` makes them)")
        return None
    if not secret_file or not client_key_files:
        raise SecurityError("CurveZMQ needs both --curve-secret-key and at least one --allow-client-key")
    public, secret = load_server_keys(secret_file)
    allowed = load_client_keys(client_key_files)
    auth = _PeerAuthenticator(ctx)
    auth.start()
    auth.configure_curve_callback(domain="*", credentials_provider=_AllowList(allowed, auth))
    sock.curve_secretkey = secret
    sock.curve_publickey = public
    sock.curve_server = True
    return auth
