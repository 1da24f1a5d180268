"""``inhabit keys generate DIR``: CurveZMQ key pairs for a server and a client.

Writes ``server.key`` / ``server.key_secret`` and ``client.key`` /
``client.key_secret`` (pyzmq's certificate format). Give the server
``--curve-secret-key DIR/server.key_secret --allow-client-key DIR/client.key``.
"""
from __future__ import annotations

import os


def add_parser(subparsers):
    p = subparsers.add_parser("keys", help="generate CurveZMQ keys", description=__doc__)
    sub = p.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    g = sub.add_parser("generate", help="write server and client key pairs into DIR")
    g.add_argument("dir")
    g.add_argument("--name", action="append", help="key pair name(s) (default: server client)")
    return p


def run(args) -> int:
    import zmq.auth
    os.makedirs(args.dir, exist_ok=True)
    for name in args.name or ("server", "client"):
        public, secret = zmq.auth.create_certificates(args.dir, name)
        os.chmod(secret, 0o600)
        print(f"{name}: public {public}  secret {secret}")
    return 0
