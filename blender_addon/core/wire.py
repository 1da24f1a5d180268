"""Sending and receiving one multipart message, for both ends of the protocol.

pyzmq's ``send_multipart``/``recv_multipart`` do enum arithmetic and an extra
option read per part; at a few hundred 7-part messages a second that is a
measurable share of the transport's CPU (bench/transport.py), so both sides
use these two loops instead. Large buffers go without a copy (pyzmq copies
parts under its ``copy_threshold`` anyway), and received parts are
``zmq.Frame`` objects whose buffers ``protocol.decode`` views without copying.
"""
from __future__ import annotations

from typing import Sequence

import zmq

SNDMORE = int(zmq.SNDMORE)
NOBLOCK = int(zmq.NOBLOCK)
EVENTS = int(zmq.EVENTS)      # sock.get(EVENTS) & POLLIN: a message is waiting
POLLIN = int(zmq.POLLIN)


def send_parts(sock: zmq.Socket, parts: Sequence, flags: int = 0) -> None:
    """Send ``parts`` as one message. With NOBLOCK, ``zmq.Again`` can only come
    from the first part: a message is queued whole or not at all."""
    send = sock.send
    last = len(parts) - 1
    for i, part in enumerate(parts):
        send(part, flags | SNDMORE if i < last else flags, copy=False)


def recv_parts(sock: zmq.Socket, flags: int = 0) -> list:
    """Receive one whole message as a list of ``zmq.Frame``. The parts after the
    first are already queued (messages arrive whole), so only the first waits."""
    parts = [sock.recv(flags, copy=False)]
    while parts[-1].more:
        parts.append(sock.recv(0, copy=False))
    return parts
