"""``inhabit serve --cluster`` on a real multi-node Ray cluster on this machine.

One ``ray.cluster_utils.Cluster`` for the module (Ray's start-up is the cost):
a head node without GPU slots and two nodes with one slot each, the slots a
custom resource so no GPU is needed. The front end is a real ``inhabit serve
--cluster`` process, the clients real ZeroMQ clients and ``inhabit render``
processes; jobs are compared with a one-machine server.
"""
from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import threading
import time

import bpy  # noqa: F401  (the render tests build a real .blend)
import numpy as np
import pytest

from blender_addon.core import png, protocol
from blender_addon.core.client import Client, run_job
from tests.blender_scene import build_scene
from tests.cli import inhabit
from tests.serverproc import REPO_ROOT, free_port, start_server
from tests.test_preview_engine import walking_frames
from tests.test_preview_figures import figure

SLOT = "inhabit_slot"
# Windows of 4 frames sharing 1 (restart_window), 0.25 s a frame: a shot slow enough to lose a node under.
WINDOW_ECHO = "tests.engines_for_tests:WindowEchoEngine"
SLOW = ("--param", "window=4", "--param", "overlap=1", "--param", "delay=0.25")
SIZE = 96
SMALL = {"num_cpus": 1, "object_store_memory": 80 * 2**20}   # two shared cores: keep every node small


@pytest.fixture(scope="module")
def cluster():
    ray = pytest.importorskip("ray", reason="Ray comes with requirements-test.txt")  # noqa: F841
    from ray.cluster_utils import Cluster
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p)
    c = Cluster(initialize_head=True, head_node_args={**SMALL, "include_dashboard": False})
    for _ in range(2):
        c.add_node(**SMALL, resources={SLOT: 1})
    c.wait_for_nodes()
    yield c
    c.shutdown()


@pytest.fixture(scope="module")
def front(cluster, tiny_weights):
    """The front end: preview, a windowed test engine, and wan-animate on its tiny weights folder."""
    with start_server(engines=("preview", WINDOW_ECHO, "wan-animate"), weights=tiny_weights("wan-animate"),
                      startup_timeout=120,
                      extra_args=("--cluster", cluster.address, "--cluster-resource", SLOT,
                                  "--cluster-keep-warm", "60")) as srv:
        yield srv


def preview_job(n, seed=0):
    img, kp = figure(SIZE)
    spec = protocol.JobSpec(engine="preview", width=SIZE, height=SIZE, frames=n, params={"seed": seed})
    steps = walking_frames(kp, min(n, 8))      # the figure walks 4 px a frame: loop it inside the frame
    return spec, img, kp, [steps[i % len(steps)] for i in range(n)]


def results_of(address, n, seed=0, **kw):
    spec, img, kp, frames = preview_job(n, seed)
    with Client(address) as cl:
        events = run_job(cl, spec, img, enumerate(frames), reference_keypoints=kp, timeout=60, **kw)
    return events, {e.header["index"]: (e.arrays[protocol.RESULT_RGBA], e.arrays[protocol.RESULT_MATTE])
                    for e in events if e.type == protocol.RESULT}


def cluster_info(address):
    with Client(address) as cl:
        return cl.info()["cluster"]


def wait_until(condition, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} not reached in {timeout} s"
        time.sleep(0.1)


# -- bad input: one sentence, exit 2, before listening ---------------------------------------
@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="Ray comes with requirements-test.txt")
def test_a_cluster_address_nobody_answers_at_is_one_sentence():
    res = inhabit("serve", "--engine", "preview", "--bind", f"tcp://127.0.0.1:{free_port()}",
                  "--cluster", f"127.0.0.1:{free_port()}", timeout=60)
    assert res.returncode == 2, res.stderr
    assert "no Ray cluster answers there" in res.stderr and "ray start --head" in res.stderr
    assert "Traceback" not in res.stderr


def test_without_ray_serve_names_the_extra():
    code = ("import sys; sys.modules['ray'] = None; from backend.cli import main; "
            f"sys.exit(main(['serve', '--engine', 'preview', '--bind', 'tcp://127.0.0.1:{free_port()}', "
            "'--cluster', 'local']))")
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)))
    assert res.returncode == 2 and "pip install 'inhabit[cluster]'" in res.stderr, res.stderr


def test_a_node_without_the_weights_folder_is_named(tmp_path):
    from backend.server.cluster.connect import node_problem
    problem = node_problem({"preview": "backend.server.engines.preview:PreviewEngine"}, str(tmp_path / "absent"))
    assert "is not on this node" in problem and "same path on every GPU node" in problem


def test_a_cluster_without_gpu_slots_is_one_sentence(cluster):
    res = inhabit("serve", "--engine", "preview", "--bind", f"tcp://127.0.0.1:{free_port()}",
                  "--cluster", cluster.address, "--cluster-resource", "no_such_slot", timeout=90)
    assert res.returncode == 2, res.stderr
    assert "has no GPU slots" in res.stderr and "--cluster-resource" in res.stderr


def test_the_data_plane_off_this_host_lets_in_only_the_actors_it_placed():
    """The socket actors on other hosts reach: CurveZMQ, and only keys the front end allowed (bound on loopback
    here so the test needs no second host)."""
    import zmq
    from backend.server.cluster.dataplane import DataPlane
    plane = DataPlane("127.0.0.1", other_hosts=True)
    ctx = zmq.Context()
    try:
        assert plane.remote is not None
        placed, stranger = zmq.curve_keypair(), zmq.curve_keypair()
        plane.allow(placed[0])

        def dealer(keys):
            sock = ctx.socket(zmq.DEALER)
            sock.linger = 0
            if keys:
                sock.curve_serverkey = plane.public
                sock.curve_publickey, sock.curve_secretkey = keys
            sock.connect(plane.endpoint(plane.remote))
            sock.send(f"hello from {'placed' if keys is placed else 'other'}".encode())
            return sock
        socks = [dealer(stranger), dealer(None), dealer(placed)]
        heard = []
        while plane.remote.poll(1500):
            heard.append(plane.remote.recv_multipart()[-1])
        assert heard == [b"hello from placed"]
        for sock in socks:
            sock.close(0)
    finally:
        ctx.term()
        plane.close()


# -- batch work as Ray tasks (first: the front end below keeps its slots warm a while) ------------
def dataset_files(root):
    out = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in (".logs", ".cache")]
        for name in files:
            path = os.path.join(folder, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, root)] = f.read()
    return out


def test_dataset_made_on_the_cluster_equals_one_made_locally(cluster, tmp_path):
    common = ("dataset", "make", "--clips", "2", "--frames", "2", "--size", "32", "--samples", "1", "--workers", "2")
    local = inhabit(*common, "--out", tmp_path / "local", timeout=300)
    assert local.returncode == 0, local.stderr
    spread = inhabit(*common, "--out", tmp_path / "cluster", "--cluster", cluster.address, timeout=300)
    assert spread.returncode == 0, spread.stderr
    assert "clips" in spread.stderr          # the same progress bar
    a, b = dataset_files(tmp_path / "local"), dataset_files(tmp_path / "cluster")
    assert len(a) > 4 and a.keys() == b.keys()
    assert [k for k in a if a[k] != b[k]] == []
    again = inhabit(*common, "--out", tmp_path / "cluster", "--cluster", cluster.address, timeout=120)
    assert again.returncode == 0 and "already holds all 2 clips" in again.stderr


def test_eval_on_the_cluster_scores_as_on_one_machine(cluster, tiny_dataset, tmp_path):
    common = ("eval", "--data", tiny_dataset, "--split", "train", "--engine", "preview")
    local = inhabit(*common, "--out", tmp_path / "local", timeout=300)
    assert local.returncode == 0, local.stderr
    spread = inhabit(*common, "--out", tmp_path / "cluster", "--cluster", cluster.address, "--cluster-resource", SLOT,
                     timeout=300)
    assert spread.returncode == 0, spread.stderr
    import json
    rows = [json.loads((tmp_path / d / "eval.json").read_text())["engines"]["preview"] for d in ("local", "cluster")]
    for row in rows:
        row.pop("seconds")
    assert rows[0] == rows[1] and rows[0]["frames"] > 0
    assert "actor_started" in (tmp_path / "cluster" / "server-preview.log").read_text()


# -- serving ----------------------------------------------------------------------------------
def test_several_clients_more_jobs_than_slots_all_equal_to_one_machine(front):
    info = cluster_info(front.address)
    assert (info["slots"], len(info["nodes"])) == (2, 2)
    n = 6
    with start_server(engines=("preview",)) as one_machine:
        _, expected = results_of(one_machine.address, n, seed=3)
    outcomes: dict = {}

    def client(k):
        outcomes[k] = results_of(front.address, n, seed=3)
    threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]   # 4 jobs, 2 slots
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted(outcomes) == [0, 1, 2, 3], front.log()
    for events, got in outcomes.values():
        assert events[-1].type == protocol.DONE
        assert sorted(got) == list(range(n))
        for i in range(n):   # bit-identical to the same job on one machine
            assert np.array_equal(got[i][0], expected[i][0]) and np.array_equal(got[i][1], expected[i][1])
    started = re.findall(r"started job=\w+ engine=preview node=(\w+)", front.log())
    assert len(set(started)) == 2, front.log()   # both nodes served
    wait_until(lambda: cluster_info(front.address)["busy"] == 0, what="every slot free again")
    assert front.log().count("actor_started") == 2     # warm actors reused, one per slot


def test_wan_animate_tiny_on_the_cluster_equals_one_machine(front, tiny_weights):
    from tests.test_wan_animate import SIZE as WAN_SIZE, shot as wan_shot
    ref, frames = wan_shot(6)
    spec = protocol.JobSpec(engine="wan-animate", width=WAN_SIZE, height=WAN_SIZE, frames=6,
                            params={"steps": 1, "segment_length": 5, "carried_frames": 1, "seed": 2})

    def results(address):
        with Client(address) as cl:
            events = run_job(cl, spec, ref, enumerate(frames), timeout=180)
        assert events[-1].type == protocol.DONE
        return {e.header["index"]: e.arrays[protocol.RESULT_RGBA] for e in events if e.type == protocol.RESULT}
    # Ray runs an actor without a CPU reservation on one thread; the one-machine server does the same here.
    with start_server(engines=("wan-animate",), weights=tiny_weights("wan-animate"), startup_timeout=120,
                      env={"OMP_NUM_THREADS": "1"}) as one_machine:
        expected = results(one_machine.address)
    got = results(front.address)
    assert sorted(got) == list(range(6))
    assert all(np.array_equal(got[i], expected[i]) for i in range(6))


def test_cancel_mid_job_frees_its_slot(front):
    seen = []
    events, got = results_of(front.address, 200, on_event=seen.append,
                             should_cancel=lambda: sum(e.type == protocol.RESULT for e in seen) >= 3)
    assert events[-1].type == protocol.CANCELLED
    assert 3 <= len(got) < 200
    wait_until(lambda: cluster_info(front.address)["busy"] == 0, what="the slot freed")
    events, _ = results_of(front.address, 2)
    assert events[-1].type == protocol.DONE


# -- a node lost mid-job ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def shot(tmp_path_factory):
    d = tmp_path_factory.mktemp("shot")
    build_scene(size=64, frames=16)
    blend = str(d / "shot.blend")
    bpy.ops.wm.save_as_mainfile(filepath=blend)
    img, kp = figure(64)
    ref = str(d / "ref.png")
    png.write_png_atomic(ref, img)
    np.save(d / "ref_kp.npy", kp)
    return blend, ref, str(d / "ref_kp.npy")


def render_args(shot, out, *extra, engine="window_echo"):
    blend, ref, kp = shot
    return ["render", blend, "--armature", "Rig", "--reference", ref, "--reference-keypoints", kp,
            "--resolution", "64x64", "--samples", "1", "--engine", engine, *SLOW, "--out", str(out), *extra]


def take_frames(out):
    shot_dir = os.path.join(out, "Shot")
    if not os.path.isdir(shot_dir) or not os.listdir(shot_dir):
        return {}
    take = os.path.join(shot_dir, sorted(os.listdir(shot_dir))[-1])
    return {n: os.path.join(take, n) for n in sorted(os.listdir(take)) if n.endswith(".png")}


def test_node_lost_mid_job_names_the_resume_frame_and_resume_finishes_it(cluster, front, shot, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "backend.cli",
                             *render_args(shot, out, "--server", front.address)], cwd=REPO_ROOT,
                            env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    wait_until(lambda: len(take_frames(out)) >= 5 or proc.poll() is not None, timeout=120, what="5 frames")
    assert proc.poll() is None, proc.communicate()
    node = re.findall(r"started job=\w+ engine=window_echo node=(\w+)", front.log())[-1]
    victim = next(n for n in cluster.worker_nodes if n.node_id.startswith(node))
    # Another client's job on the other node keeps running through the loss.
    other: dict = {}
    seen = []
    t = threading.Thread(target=lambda: other.update(r=results_of(front.address, 60, seed=5, on_event=seen.append)))
    t.start()
    wait_until(lambda: any(e.type == protocol.RESULT for e in seen), what="the other job's first result")
    cluster.remove_node(victim, allow_graceful=False)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    said = re.search(r"restarts it from job frame (\d+)", err)
    assert said, err
    restart = int(said.group(1))
    kept = len(take_frames(out))
    assert 5 <= kept < 16 and restart == kept // 3 * 3     # the start of the window holding the first missing frame
    t.join(120)
    events, got = other["r"]
    assert events[-1].type == protocol.DONE and sorted(got) == list(range(60))

    started_before = front.log().count("actor_started engine=window_echo")
    for _ in range(2):      # the lost slot comes back with a node, and one more joins
        cluster.add_node(**SMALL, resources={SLOT: 1})
    wait_until(lambda: cluster_info(front.address)["slots"] == 3, what="three slots")
    with Client(front.address) as cl:   # relay workers follow the live slot count
        wait_until(lambda: cl.info()["concurrent_jobs"] >= 3, what="a relay worker for the new slot")
    res = inhabit(*render_args(shot, out, "--server", front.address, "--resume"), timeout=180)
    assert res.returncode == 0, res.stderr
    assert f"{kept} of 16 frames on disk" in res.stderr
    # The resume ran on the lost actor itself, restarted by Ray on a node with room.
    assert "actor_restarted engine=window_echo" in front.log(), front.log()
    assert front.log().count("actor_started engine=window_echo") == started_before, front.log()
    reference = tmp_path / "one_machine"
    ref_run = inhabit(*render_args(shot, reference, engine=WINDOW_ECHO), timeout=180)   # a one-machine server
    assert ref_run.returncode == 0, ref_run.stderr
    resumed, uninterrupted = take_frames(out), take_frames(reference)
    assert sorted(resumed) == sorted(uninterrupted) and len(resumed) == 16
    for name in sorted(resumed)[restart:]:
        with open(resumed[name], "rb") as a, open(uninterrupted[name], "rb") as b:
            assert a.read() == b.read(), name

