"""Transport benchmark: protocol overhead of client -> server -> client.

512x512 per-frame conditioning (environment, character mask, both depths,
keypoints, object labels) goes through ``inhabit serve`` with an echo engine
this script registers (``transport:BenchEchoEngine``), and back as an RGBA
composite + matte. The same bytes go through a bare pyzmq DEALER/ROUTER echo
in another process, with the same in-flight window. Both in one run; prints
frames/s and their ratio and updates the "transport" section of RESULTS.md.
A third path, the "protocol floor" (``floor_server``), does only the work the
protocol requires on one thread, so the report separates what the wire format
and its checks cost from what the server's job machinery costs.

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

from backend.server.engines.base import Engine  # noqa: E402
from blender_addon.core import conventions  # noqa: E402
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
        "keypoints": rng.random((conventions.NUM_KEYPOINTS, 4), dtype=np.float32),
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
        sock.send_multipart([msg[0], b"{}", memoryview(reply)], copy=False)


def floor_server(address: str) -> None:
    """The protocol's required work and nothing else, on one thread: decode and
    check each FRAME (dtypes, shapes, NaN/Inf, labels), echo a RESULT with the
    credit riding on it, DONE after the last. No queue, worker, flow-control
    state or heartbeats: the gap between this and raw is what the wire format
    and its checks cost in Python; the gap between this and ``inhabit serve``
    is what the server's job machinery costs."""
    import zmq
    from blender_addon.core.wire import recv_parts, send_parts
    sock = zmq.Context.instance().socket(zmq.ROUTER)
    sock.bind(address)
    sys.setswitchinterval(0.0005)  # as inhabit serve does
    jobs: dict[str, list] = {}
    rgba = None
    while True:
        parts = recv_parts(sock)
        who = parts[0].bytes
        hdr, arrays = P.decode(parts[1:], allowed_types=P.CLIENT_TYPES)
        kind = hdr["type"]
        reply = []
        if kind == P.SUBMIT:
            spec = P.JobSpec.from_header(hdr)
            job = f"floor-{len(jobs)}"
            jobs[job] = [spec, 0]
            reply = [P.Accepted(job=job, request=hdr["request"], credit=min(8, spec.frames),
                                window=8, queue_position=0, streaming=True)]
        elif kind == P.FRAME:
            spec, done = jobs[hdr["job"]]
            P.check_frame_inputs(arrays, height=spec.height, width=spec.width, job=hdr["job"])
            if rgba is None or rgba.shape[:2] != (spec.height, spec.width):
                rgba = np.empty((spec.height, spec.width, 4), np.uint8)
                rgba[..., :3] = arrays["environment"]
                rgba[..., 3] = 255
            index = hdr["index"]
            send_parts(sock, [who, *P.encode(P.Result(job=hdr["job"], index=index,
                                                      credit=min(spec.frames, index + 9)),
                                             {P.RESULT_RGBA: rgba, P.RESULT_MATTE: arrays["character_mask"]})])
            jobs[hdr["job"]][1] = done + 1
            if done + 1 == spec.frames:
                reply = [P.Done(job=hdr["job"], frames=spec.frames, seconds=0.0)]
        elif kind == P.HELLO:
            reply = [P.header(P.INFO, protocol_version=P.PROTOCOL_VERSION)]
        elif kind == P.PING:
            reply = [P.Pong(t=hdr.get("t"))]
        for r in reply:
            send_parts(sock, [who, *P.encode(r)])


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
    ap.add_argument("--floor-server", metavar="ADDR", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.raw_echo_server:
        raw_echo_server(args.raw_echo_server, args.reply_bytes)
        return 0
    if args.floor_server:
        floor_server(args.floor_server)
        return 0

    from tests.serverproc import free_port, start_server
    size, frames = args.size, args.frames
    in_bytes = sum(a.nbytes for a in conditioning(size).values())
    out_bytes = size * size * 5
    env = {"PYTHONPATH": os.pathsep.join([str(REPO), str(HERE)])}
    helpers, addr = [], {}
    for role, args_ in (("raw", ["--raw-echo-server", "{}", "--reply-bytes", str(out_bytes)]),
                        ("floor", ["--floor-server", "{}"])):
        addr[role] = f"tcp://127.0.0.1:{free_port()}"
        helpers.append(subprocess.Popen([sys.executable, __file__, *(a.format(addr[role]) for a in args_)],
                                        env=dict(os.environ, **env)))
    runs = {"raw": [], "floor": [], "proto": []}
    try:
        with start_server(("transport:BenchEchoEngine",), env=env) as srv:
            run_protocol(srv.address, 4, size)  # warm-up: engine load, first allocations
            run_protocol(addr["floor"], 4, size)
            for _ in range(args.repeats):       # interleaved so machine noise hits all alike
                runs["raw"].append(run_raw(addr["raw"], frames, size))
                runs["floor"].append(run_protocol(addr["floor"], frames, size))
                runs["proto"].append(run_protocol(srv.address, frames, size))
    finally:
        for proc in helpers:
            proc.kill()
            proc.wait(5)
    r, f, p = (statistics.median(runs[k]) for k in ("raw", "floor", "proto"))
    ratio = p / r
    mib = (in_bytes + out_bytes) / 2**20
    rounded = {k: [round(x) for x in v] for k, v in runs.items()}
    report = (f"## transport (bench/transport.py)\n\n"
              f"{time.strftime('%Y-%m-%d %H:%M')}: {size}x{size} conditioning, {in_bytes / 2**20:.2f} MiB in + "
              f"{out_bytes / 2**20:.2f} MiB out per frame, {frames} frames x {args.repeats} runs (median), "
              f"window 8, loopback TCP, separate processes; the three paths interleaved.\n\n"
              f"| path | frames/s | MiB/s (both ways) | of raw |\n|---|---|---|---|\n"
              f"| raw pyzmq DEALER/ROUTER echo | {r:.1f} | {r * mib:.0f} | 1.00 |\n"
              f"| protocol floor: one-thread server doing only the protocol's required work "
              f"(decode, dtype/shape/NaN/label checks, encode), same client | {f:.1f} | {f * mib:.0f} | {f / r:.2f} |\n"
              f"| Inhabit protocol (client -> inhabit serve -> client) | {p:.1f} | {p * mib:.0f} | {p / r:.2f} |\n\n"
              f"Ratio protocol/raw: **{ratio:.2f}** (target >= 0.8); inhabit serve / floor: {p / f:.2f}. "
              f"Runs (frames/s): {rounded}.\n")
    print(report)
    if not args.no_write:
        write_section("transport", report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
