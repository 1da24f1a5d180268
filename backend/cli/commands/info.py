"""``inhabit info``: ask a running server for its INFO and print it as JSON."""
from __future__ import annotations

import json
import sys


def add_parser(subparsers):
    from blender_addon.core import protocol
    p = subparsers.add_parser("info", help="print a running server's info as JSON", description=__doc__)
    p.add_argument("--server", default=protocol.DEFAULT_ADDRESS, help="server address (default %(default)s)")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for an answer (default %(default)s)")
    p.add_argument("--curve-server-key", metavar="FILE", help="the server's public key file (CurveZMQ)")
    p.add_argument("--curve-client-key", metavar="FILE", help="this client's secret key file (CurveZMQ)")
    return p


def run(args) -> int:
    import zmq

    from blender_addon.core import client as client_mod
    from blender_addon.core.address import AddressError
    from blender_addon.core.curve_keys import KeyFileError, client_options
    try:
        kw = client_options(args.curve_server_key, args.curve_client_key)
        cl = client_mod.Client(args.server, timeout=args.timeout, **kw)
        try:
            info = cl.info()
        finally:
            cl.close()
    except (KeyFileError, AddressError, client_mod.ServerUnreachable) as exc:
        # Bad input (docs/farm.md): a key or address to fix, a refused handshake, nothing listening there.
        print(f"inhabit info: {exc}".replace("\n", " "), file=sys.stderr)
        return 2
    except (client_mod.ProtocolMismatch, client_mod.ServerTimeout, OSError,
            ValueError, zmq.ZMQError) as exc:  # bad keys and addresses are sentences, never tracebacks
        print(f"inhabit info: {exc}".replace("\n", " "), file=sys.stderr)
        return 1
    print(json.dumps(info, indent=2, sort_keys=True))
    return 0
