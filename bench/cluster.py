"""Cluster benchmark: ``inhabit serve --cluster`` against a one-machine ``inhabit serve``.

1. Per-frame overhead: the same 512 px preview job (environment, keypoints,
   character mask and depths in; RGBA + matte out) through a one-machine
   server and through a front end relaying to a Ray actor on another node of a
   local ``ray.cluster_utils.Cluster``, interleaved, several runs, medians.
   Ratio cluster/one machine (target <= 1.10). Beside the wall time, the CPU
   time per frame of the serving processes (the one-machine server; the
   front end plus the engine actor), read from /proc: on a machine shared
   with other work it says where the overhead goes more steadily than the
   wall clock does.
2. Jobs per minute with 1, 2 and 4 GPU slots (a custom resource; nodes of one
   or two slots), twice as many jobs as slots plus one, all submitted at once
   by as many clients.

Prints a table and updates the "cluster" section of RESULTS.md.

    .venv/bin/python bench/cluster.py [--size 512] [--frames 24] [--repeats 9] [--warmup 3] [--no-write]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from backend.cli.local_server import LocalServer  # noqa: E402
from blender_addon.core import protocol  # noqa: E402
from blender_addon.core.conventions import NO_SURFACE_DEPTH  # noqa: E402
from blender_addon.core.client import Client, run_job  # noqa: E402
from results_file import write_section  # noqa: E402
from tests.test_preview_figures import figure  # noqa: E402  (the preview engine's synthetic character)

SLOT = "inhabit_slot"
NODE = {"num_cpus": 1, "object_store_memory": 100 * 2**20}


def shot(size: int, frames: int):
    """A 512 px preview job: the reference figure walking in place across a textured room."""
    img, kp = figure(size)
    rng = np.random.default_rng(1)
    env = rng.integers(0, 255, (size, size, 3), np.uint8)
    mask = (img[..., 3] > 0).astype(np.uint8) * 255
    depth = np.where(mask > 0, 3.0, NO_SURFACE_DEPTH).astype(np.float32)
    scene = np.full((size, size), 5.0, np.float32)
    out = []
    for i in range(frames):
        k = kp.copy()
        k[:, 0] += (i % 4) * size / 128
        out.append({"environment": env, "keypoints": k, "character_mask": mask, "character_depth": depth,
                    "scene_depth": scene})
    spec = protocol.JobSpec(engine="preview", width=size, height=size, frames=frames, params={})
    return spec, img, kp, out


def job_seconds(address: str, job) -> float:
    spec, img, kp, frames = job
    t0 = time.perf_counter()
    with Client(address) as cl:
        events = run_job(cl, spec, img, enumerate(frames), reference_keypoints=kp, timeout=300)
    assert events[-1].type == protocol.DONE, events[-1].header
    return time.perf_counter() - t0


def start_cluster(slots_per_node):
    from ray.cluster_utils import Cluster
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    c = Cluster(initialize_head=True, head_node_args={**NODE, "include_dashboard": False})
    for n in slots_per_node:
        c.add_node(**NODE, resources={SLOT: n})
    c.wait_for_nodes()
    return c


def front_end(cluster) -> LocalServer:
    srv = LocalServer(["preview"], extra_args=("--cluster", cluster.address, "--cluster-resource", SLOT)).start()
    srv.wait_ready(120)
    return srv


def cpu_seconds(pids) -> float:
    """User + system CPU time of these processes so far (Linux /proc)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def actor_pids() -> list[int]:
    """The engine actors' processes (Ray titles them after the actor class)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if f.read().startswith(b"ray::EngineHost"):
                        pids.append(int(entry))
            except OSError:
                continue
    return pids


def overhead(size: int, frames: int, repeats: int, warmup: int) -> tuple[dict, dict]:
    job = shot(size, frames)
    cluster = start_cluster([1])
    try:
        with LocalServer(["preview"]) as one, front_end(cluster) as ray_path:
            # Warm: engine loaded, actor placed, and Ray's own start-up work (idle workers, agents) over, so
            # the runs measure the steady per-frame cost, not the cluster's first seconds on shared cores.
            for _ in range(warmup):
                for address in (one.address, ray_path.address):
                    job_seconds(address, job)
            serving = {"one machine": (one.address, [one.proc.pid]),
                       "cluster": (ray_path.address, [ray_path.proc.pid, *actor_pids()])}
            runs: dict = {k: [] for k in serving}
            cpu: dict = {k: [] for k in serving}
            for _ in range(repeats):
                for path, (address, pids) in serving.items():
                    c0 = cpu_seconds(pids)
                    runs[path].append(job_seconds(address, job) / frames)
                    cpu[path].append((cpu_seconds(pids) - c0) / frames)
    finally:
        cluster.shutdown()
    return runs, cpu


def throughput(size: int, frames: int, slots: int) -> tuple[float, int]:
    job = shot(size, frames)
    layout = {1: [1], 2: [1, 1], 4: [2, 2]}[slots]
    cluster = start_cluster(layout)
    try:
        with front_end(cluster) as srv:
            jobs = 2 * slots + 1
            for _ in range(slots):       # warm every slot's actor first: steady state, not start-up
                threads = [threading.Thread(target=job_seconds, args=(srv.address, job)) for _ in range(slots)]
                [t.start() for t in threads]
                [t.join() for t in threads]
            threads = [threading.Thread(target=job_seconds, args=(srv.address, job)) for _ in range(jobs)]
            t0 = time.perf_counter()
            [t.start() for t in threads]
            [t.join() for t in threads]
            wall = time.perf_counter() - t0
    finally:
        cluster.shutdown()
    return jobs / wall * 60.0, jobs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--warmup", type=int, default=3, help="jobs per path before the measured runs")
    ap.add_argument("--jobs-frames", type=int, default=8, help="frames per job of the jobs/minute runs")
    ap.add_argument("--slots", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--no-write", action="store_true")
    load_before = os.getloadavg()[0]
    args = ap.parse_args()

    runs, cpu = overhead(args.size, args.frames, args.repeats, args.warmup)
    med = {k: statistics.median(v) for k, v in runs.items()}
    cpu_med = {k: statistics.median(v) for k, v in cpu.items()}
    ratio = med["cluster"] / med["one machine"]
    rows = [f"| {k} | {med[k] * 1000:.1f} | {cpu_med[k] * 1000:.1f} | {[round(x * 1000, 1) for x in v]} |"
            for k, v in runs.items()]
    rate = {s: throughput(args.size, args.jobs_frames, s) for s in args.slots}
    import ray
    stamp = time.strftime("%Y-%m-%d %H:%M")
    text = "\n".join([
        "## cluster (bench/cluster.py)", "",
        f"{stamp}: preview engine, {args.size}x{args.size}, Ray {ray.__version__}, a local "
        "`ray.cluster_utils.Cluster` (head + GPU-slot nodes as a custom resource, all on this machine), front end "
        f"and clients on the same machine: {os.cpu_count()} CPU cores, 1-minute load average {load_before:.1f} when "
        "it started.", "",
        f"Per-frame time of one {args.frames}-frame job, {args.repeats} runs each after {args.warmup} warm-up jobs, "
        "interleaved (median):", "",
        "| path | ms/frame (median) | serving processes' CPU ms/frame (median) | runs (ms/frame) |",
        "|---|---|---|---|", *rows, "",
        f"Ratio cluster / one machine: **{ratio:.2f}** (target <= 1.10); CPU ratio "
        f"{cpu_med['cluster'] / cpu_med['one machine']:.2f}.", "",
        f"Jobs per minute, {args.jobs_frames}-frame {args.size} px jobs, 2 x slots + 1 jobs submitted at once "
        "(every slot's actor warm first):", "",
        "| slots (nodes x slots) | jobs | jobs/minute |", "|---|---|---|",
        *[f"| {s} ({ {1: '1x1', 2: '2x1', 4: '2x2'}[s] }) | {rate[s][1]} | {rate[s][0]:.1f} |" for s in args.slots],
    ])
    print(text)
    if not args.no_write:
        write_section("cluster", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
