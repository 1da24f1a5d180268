"""The benchmarks still run end to end (tiny sizes, nothing written), so
bench/RESULTS.md can always be reproduced. Their numbers are not checked here:
speed targets live in the benchmarks, never in timed tests."""
from __future__ import annotations

import subprocess
import sys

from backend.cli.local_server import REPO_ROOT


def test_transport_benchmark_runs_all_three_paths():
    out = subprocess.run([sys.executable, "bench/transport.py", "--frames", "6", "--size", "64", "--repeats", "1",
                          "--no-write"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    for row in ("raw pyzmq DEALER/ROUTER echo", "protocol floor", "Inhabit protocol"):
        assert row in out.stdout, out.stdout


def test_export_benchmark_runs_both_shots_and_the_samples_table():
    out = subprocess.run([sys.executable, "bench/export.py", "--size", "32", "--frames", "2", "--repeats", "1",
                          "--reference-samples", "4", "--no-write"], cwd=REPO_ROOT, capture_output=True, text=True,
                         timeout=180)
    assert out.returncode == 0, out.stderr[-2000:]
    for row in ("| locked-off |", "| moving camera |", "| 16 | OIDN, fast prefilter"):
        assert row in out.stdout, out.stdout


def test_keypoints_benchmark_runs_before_and_after():
    out = subprocess.run([sys.executable, "bench/keypoints.py", "--frames", "1", "--size", "320", "--cases",
                          "BCN_Epileptic, CMU walk", "--no-write"], cwd=REPO_ROOT, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    for row in ("| neck | ≤ 0.05 |", "| hips | reported |", "Per character, both views together"):
        assert row in out.stdout, out.stdout
