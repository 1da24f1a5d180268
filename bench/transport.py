"""Transport benchmark: protocol overhead of client -> server -> client.

512x512 per-frame conditioning (environment, character mask, both depths,
keypoints, object labels) goes through ``inhabit serve`` with an echo engine
this script registers (``transport:BenchEchoEngine``), and back as an RGBA
composite + matte. The same bytes go through a bare pyzmq DEALER/ROUTER echo
in another process, with the same in-flight window. Both in one run; prints
frames/s and their ratio and updates the "transport" section of RESULTS.md.

    .venv/bin/python bench/transport.py [--frames 120] [--size 512] [--repeats 3]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from backend.engines.base import Engine  # noqa: E402
from blender_addon.core import protocol as P  # noqa: E402
from results_file import write_section  # noqa: E402


class BenchEchoEngine(Engine):
    """No pixel work, so the ratio measures transport only: the composite is
    frame 0's environment with opaque alpha (built once), the matte is each
    frame's mask."""
    name = "bench_echo"
    description = "transport benchmark echo"
    required_inputs = ("environment", "character_mask")
    optional_inputs = ("character_depth", "scene_depth", "keypoints", "object_labels")
    needs_reference = False
    input_window = 8

    def run(self, ctx) -> None:
        job = ctx.job
        rgba = None
        for i in range(job.frames):
            inputs = ctx.frame(i)
            ctx.release(i + 1)  # as a real engine does: free each input once it is used
            if rgba is None:
                rgba = np.empty((job.height, job.width, 4), np.uint8)
                rgba[..., :3] = inputs["environment"]
                rgba[..., 3] = 255
            ctx.emit(i, rgba, inputs["character_mask"])


def conditioning(size: int) -> dict:
    rng = np.random.default_rng(0)
    return {
        "environment": rng.integers(0, 255, (size, size, 3), dtype=np.uint8),
        "character_mask": (rng.random((size, size)) > 0.7).astype(np.uint8) * 255,
        "character_depth": rng.random((size, size), dtype=np.float32) * 10,
        "scene_depth": rng.random((size, size), dtype=np.float32) * 10,
        "keypoints": rng.random((P.NUM_KEYPOINTS, 4), dtype=np.float32),
        "object_labels": np.zeros((size, size), np.uint8),
    }


def run_protocol(address: str, frames: int, size: int) -> float:
    """One job through the client's non-blocking API; results are checked and
    dropped as they arrive (as the add-on does after writing each PNG)."""
    from blender_addon.core.client import Client
    arrays = conditioning(size)
    with Client(address, timeout=10) as cl:
        cl.info()
        t0 = time.perf_counter()
        job = cl.submit(P.JobSpec("bench_echo", size, size, frames), None)
        sent = results = 0
        while not job.finished:
            while sent < frames and job.can_send():
                job.send_frame(sent, arrays)
                sent += 1
            if sent == frames and job.state == "accepted" and not job.input_ended:
                job.end_input()
            for ev in cl.poll(1.0):
                if ev.type == P.RESULT:
                    assert ev.arrays["rgba"].shape == (size, size, 4)
                    results += 1
                elif ev.type == P.ERROR:
                    raise RuntimeError(ev.header)
        elapsed = time.perf_counter() - t0
    assert results == frames and job.state == "done", (results, job.state)
    return frames / elapsed


def raw_echo_server(address: str, reply_bytes: int) -> None:
    """Bare ROUTER: answers each message with a reply as large as a RESULT."""
    import zmq
    sock = zmq.Context.instance().socket(zmq.ROUTER)
    sock.bind(address)
    reply = np.zeros(reply_bytes, np.uint8)
    while True:
        msg = sock.recv_multipart(copy=False)
        if msg[1].bytes == b"stop":
            return
        sock.send_multipart([msg[0], b"{}", memoryview(reply)], copy=False)


def run_raw(address: str, frames: int, size: int, window: int = 8) -> float:
    import zmq
    arrays = conditioning(size)
    bufs = [np.ascontiguousarray(a) for a in arrays.values()]
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.linger = 0
    sock.connect(address)
    sock.send_multipart([b"warm"] + bufs, copy=False)
    sock.recv_multipart()
    t0 = time.perf_counter()
    sent = received = 0
    while received < frames:
        while sent < frames and sent - received < window:
            sock.send_multipart([b"{}"] + bufs, copy=False)
            sent += 1
        sock.recv_multipart(copy=False)
        received += 1
    elapsed = time.perf_counter() - t0
    sock.close(0)
    return frames / elapsed


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    ap.add_argument("--raw-echo-server", metavar="ADDR", help=argparse.SUPPRESS)
    ap.add_argument("--reply-bytes", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.raw_echo_server:
        raw_echo_server(args.raw_echo_server, args.reply_bytes)
        return 0

    from tests.serverproc import free_port, start_server
    size, frames = args.size, args.frames
    in_bytes = sum(a.nbytes for a in conditioning(size).values())
    out_bytes = size * size * 5
    raw_addr = f"tcp://127.0.0.1:{free_port()}"
    raw_proc = subprocess.Popen([sys.executable, __file__, "--raw-echo-server", raw_addr,
                                 "--reply-bytes", str(out_bytes)])
    env = {"PYTHONPATH": os.pathsep.join([str(REPO), str(HERE)])}
    proto, raw = [], []
    try:
        with start_server(("transport:BenchEchoEngine",), env=env) as srv:
            run_protocol(srv.address, 4, size)  # warm-up: engine load, first allocations
            for _ in range(args.repeats):       # interleaved so machine noise hits both alike
                raw.append(run_raw(raw_addr, frames, size))
                proto.append(run_protocol(srv.address, frames, size))
    finally:
        import zmq
        s = zmq.Context.instance().socket(zmq.DEALER)
        s.linger = 1000
        s.connect(raw_addr)
        s.send_multipart([b"stop"])
        s.close()
        try:
            raw_proc.wait(5)
        except subprocess.TimeoutExpired:
            raw_proc.kill()
    p, r = statistics.median(proto), statistics.median(raw)
    ratio = p / r
    mib = (in_bytes + out_bytes) / 2**20
    report = (f"## transport (bench/transport.py)\n\n"
              f"{time.strftime('%Y-%m-%d %H:%M')}: {size}x{size} conditioning, {in_bytes / 2**20:.2f} MiB in + "
              f"{out_bytes / 2**20:.2f} MiB out per frame, {frames} frames x {args.repeats} runs (median), "
              f"window 8, loopback TCP, separate processes.\n\n"
              f"| path | frames/s | MiB/s (both ways) |\n|---|---|---|\n"
              f"| raw pyzmq DEALER/ROUTER echo | {r:.1f} | {r * mib:.0f} |\n"
              f"| Inhabit protocol (client -> inhabit serve -> client) | {p:.1f} | {p * mib:.0f} |\n\n"
              f"Ratio protocol/raw: **{ratio:.2f}** (target >= 0.8). Runs: raw {[round(x, 1) for x in raw]}, "
              f"protocol {[round(x, 1) for x in proto]}.\n")
    print(report)
    if not args.no_write:
        write_section("transport", report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
