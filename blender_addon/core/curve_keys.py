"""CurveZMQ key files on the client side: load them for ``Client``, make a client pair.

The files are pyzmq's certificate format, as ``inhabit keys generate DIR``
writes them: ``NAME.key`` holds a public key, ``NAME.key_secret`` a public and
a secret key. A client needs the server's public key (``server.key``) and its
own pair (``client.key_secret``); the server's allow list needs the client's
``client.key``. Ships in the add-on (zmq and the standard library only).
"""
from __future__ import annotations

import os


class KeyFileError(ValueError):
    """A key file that cannot be used (one sentence naming the option and the fix)."""


def load_key_file(path: str, option: str) -> tuple[bytes, bytes | None]:
    """(public, secret) of a key file (secret None for a public one); KeyFileError naming ``option``."""
    import zmq.auth
    if not path:
        raise KeyFileError(f"{option} is empty: give a key file written by `inhabit keys generate DIR`.")
    if not os.path.isfile(path):
        raise KeyFileError(f"{option} {path!r} does not exist: give a key file written by `inhabit keys generate DIR`.")
    try:
        public, secret = zmq.auth.load_certificate(path)
    except (OSError, ValueError, UnicodeDecodeError):
        raise KeyFileError(f"{option} {path!r} is not a CurveZMQ key file: give a file written by "
                           "`inhabit keys generate DIR`.") from None
    if not public or len(public) != 40:
        raise KeyFileError(f"{option} {path!r} holds no public key: give a file written by "
                           "`inhabit keys generate DIR`.")
    return public, secret


def load_server_public_key(path: str, option: str = "--curve-server-key") -> bytes:
    """A server.key file, or the server's 40-character Z85 public key itself (pasted)."""
    text = (path or "").strip()
    if not os.path.exists(text) and len(text) == 40:
        import zmq.utils.z85
        try:
            zmq.utils.z85.decode(text)
            return text.encode("ascii")
        except (ValueError, KeyError, UnicodeEncodeError):
            pass
    public, secret = load_key_file(path, option)
    if secret:
        # Works (the public half is in the file) but invites copying the server's secret to every client.
        from . import logs
        logs.get("keys").warning(f"{option} {path!r} is the server's SECRET key file: give its public half "
                                 "(server.key) instead, and keep the .key_secret file on the server only.")
    return public


def load_client_pair(path: str, option: str = "--curve-client-key") -> tuple[bytes, bytes]:
    public, secret = load_key_file(path, option)
    if not secret:
        raise KeyFileError(f"{option} {path!r} holds only a public key: give this client's .key_secret file "
                           "(its .key file goes on the server's --allow-client-key list).")
    return public, secret


def client_options(server_key_file: str | None, client_key_file: str | None) -> dict:
    """``Client`` keyword arguments for these files; {} when neither is given."""
    if not server_key_file and not client_key_file:
        return {}
    if not server_key_file:
        raise KeyFileError("--curve-client-key was given without --curve-server-key: give the server's "
                           "public key file (server.key) too.")
    if not client_key_file:
        raise KeyFileError("--curve-server-key was given without --curve-client-key: give this client's "
                           "key file (client.key_secret) too.")
    return {"curve_server_public_key": load_server_public_key(server_key_file),
            "curve_client_keys": load_client_pair(client_key_file)}


def generate_client_pair(directory: str, name: str = "client") -> tuple[str, str]:
    """Write NAME.key and NAME.key_secret into ``directory`` (secret readable by the owner only);
    an existing pair is kept, so a second click does not lock the client out."""
    import zmq.auth
    os.makedirs(directory, exist_ok=True)
    public = os.path.join(directory, f"{name}.key")
    secret = public + "_secret"
    if not (os.path.isfile(public) and os.path.isfile(secret)):
        public, secret = zmq.auth.create_certificates(directory, name)
    os.chmod(secret, 0o600)
    return public, secret


def public_key_text(path: str) -> str:
    """The Z85 public key in a key file (what the server's allow list needs), '' if unreadable."""
    try:
        return load_key_file(path, "key file")[0].decode("ascii")
    except KeyFileError:
        return ""
