"""A client written from docs/protocol.md alone completes a job on a real server.

The client below uses pyzmq and json, not ``blender_addon.core``: message
types, header fields, buffer descriptors, keypoint order and per-frame
inputs are read from the doc's own tables, so a doc that drifts from the
server fails here. The job runs on the shipped ``preview`` engine.
"""
import json
import time
from pathlib import Path

import numpy as np
import pytest
import zmq

from tests.serverproc import start_server
from tests.test_preview_figures import figure

DOC = (Path(__file__).resolve().parent.parent / "docs" / "protocol.md").read_text()
SIZE = 64


def table_after(heading: str) -> list[list[str]]:
    """Rows (cells stripped of backticks) of the first markdown table after ``heading``."""
    rest = DOC[DOC.index(heading):]
    rows = []
    for line in rest.splitlines()[1:]:
        if line.startswith("|"):
            cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
            if not set("".join(cells)) <= set("-: "):
                rows.append(cells)
        elif rows:
            break
    return rows[1:]  # without the header row


def keypoint_names() -> list[str]:
    names = {}
    for row in table_after("### Keypoints"):
        for i in range(0, len(row), 2):
            names[int(row[i])] = row[i + 1]
    return [names[i] for i in range(len(names))]


def frame_inputs() -> dict:
    """name -> (dtype, shape pattern) from the per-frame inputs table."""
    out = {}
    for name, dtype, shape, _ in table_after("### Per-frame inputs"):
        out[name] = (dtype, [d.strip() for d in shape.strip("[]").split(",")])
    return out


DTYPES = {"uint8": "<u1", "float32": "<f4"}


class DocClient:
    """Headers as the doc's message tables describe them; buffers as 'Transport and framing' says."""

    def __init__(self, address):
        self.sock = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.linger = 0
        self.sock.connect(address)

    def send(self, type_, arrays=None, **fields):
        hdr = {"v": 1, "type": type_, **fields}
        frames = []
        if arrays:
            hdr["buffers"] = []
            for name, arr in arrays.items():
                arr = np.ascontiguousarray(arr)
                dtype = next(k for k, v in DTYPES.items() if np.dtype(v) == arr.dtype)
                hdr["buffers"].append({"name": name, "dtype": dtype, "shape": list(arr.shape)})
                frames.append(arr.tobytes())
        self.sock.send_multipart([json.dumps(hdr).encode("utf-8"), *frames])

    def recv(self, timeout=30.0):
        if not self.sock.poll(int(timeout * 1000)):
            raise AssertionError("the server did not answer")
        parts = self.sock.recv_multipart()
        hdr = json.loads(parts[0])
        arrays = {d["name"]: np.frombuffer(b, DTYPES[d["dtype"]]).reshape(d["shape"])
                  for d, b in zip(hdr.get("buffers", []), parts[1:])}
        return hdr, arrays


def test_the_docs_tables_match_the_code():
    from blender_addon.core import protocol
    assert keypoint_names() == list(protocol.KEYPOINT_NAMES)
    assert {n: d for n, (d, _) in frame_inputs().items()} == {n: s.dtype for n, s in protocol.FRAME_INPUTS.items()}
    codes = {row[0] for row in table_after("## Error codes")}
    assert codes == {v for k, v in vars(protocol).items() if k.startswith("E_")}
    # every message type the doc lists, and no other
    types = {row[0] for row in table_after("Client -> server:")} | {row[0] for row in table_after("Server -> client:")}
    assert types == set(protocol.CLIENT_TYPES | protocol.SERVER_TYPES)


@pytest.fixture(scope="module")
def server():
    with start_server(engines=("preview",)) as srv:
        yield srv


def test_a_client_written_from_the_doc_completes_a_preview_job(server):
    names = keypoint_names()
    inputs = frame_inputs()
    img, _ = figure(SIZE)  # an RGBA character (alpha = matte)
    h, w = img.shape[:2]
    # Reference keypoints in the reference image's pixels, rows in the doc's order.
    joints = {"nose": (0.5, 0.12), "neck": (0.5, 0.22), "right_shoulder": (0.38, 0.24), "left_shoulder": (0.62, 0.24),
              "right_elbow": (0.33, 0.4), "left_elbow": (0.67, 0.4), "right_wrist": (0.3, 0.55),
              "left_wrist": (0.7, 0.55), "right_hip": (0.43, 0.55), "left_hip": (0.57, 0.55),
              "right_knee": (0.43, 0.75), "left_knee": (0.57, 0.75), "right_ankle": (0.43, 0.95),
              "left_ankle": (0.57, 0.95)}
    ref_kp = np.zeros((len(names), 4), np.float32)
    for name, (x, y) in joints.items():
        ref_kp[names.index(name)] = (x * w, y * h, 0.0, 1.0)

    cl = DocClient(server.address)
    cl.send("hello")
    info, _ = cl.recv()
    assert info["type"] == "info"
    entry = next(e for e in info["engines"] if e["name"] == "preview")
    required = entry["required_inputs"]
    n = 4
    cl.send("submit", {"reference": img, "reference_keypoints": ref_kp}, engine="preview", width=SIZE,
            height=SIZE, frames=n, request="doc-1")
    hdr, _ = cl.recv()
    assert hdr["type"] == "accepted" and hdr["request"] == "doc-1", hdr
    job, credit = hdr["job"], hdr["credit"]
    assert 1 <= credit <= hdr["window"]

    def frame(i):
        shapes = {"H": SIZE, "W": SIZE, "18": len(names)}
        out = {}
        for name in required:
            dtype, pattern = inputs[name]
            shape = [shapes.get(d, int(d) if d.isdigit() else d) for d in pattern]
            if name == "keypoints":
                kp = ref_kp.copy()
                kp[:, 0] *= SIZE / w
                kp[:, 1] *= SIZE / h
                out[name] = kp
            else:
                out[name] = np.full(shape, 90, DTYPES[dtype])
        return out

    sent, results, done = 0, {}, None
    deadline = time.monotonic() + 60
    while done is None:
        assert time.monotonic() < deadline
        while sent < min(credit, n):
            cl.send("frame", frame(sent), job=job, index=sent)
            sent += 1
            if sent == n:
                cl.send("end_input", job=job)
        hdr, arrays = cl.recv()
        assert hdr["type"] != "error", hdr
        if hdr["type"] == "credit":
            credit = max(credit, hdr["upto"])
        credit = max(credit, hdr.get("credit") or 0)
        if hdr["type"] == "result":
            results[hdr["index"]] = arrays
        if hdr["type"] == "done":
            done = hdr
    assert done["frames"] == n and sorted(results) == list(range(n))
    assert results[0]["rgba"].shape == (SIZE, SIZE, 4) and results[0]["matte"].shape == (SIZE, SIZE)
    assert (results[0]["matte"] > 127).sum() > 50  # the character is there

    # A SUBMIT the server cannot decode still names its request (doc: error table).
    cl.sock.send_multipart([json.dumps({"v": 1, "type": "submit", "request": "doc-2", "engine": "preview",
                                        "width": SIZE, "height": SIZE, "frames": 1,
                                        "buffers": [{"name": "reference", "dtype": "uint8",
                                                     "shape": [8, 8, 3]}]}).encode()])
    hdr, _ = cl.recv()
    assert hdr["type"] == "error" and hdr["code"] == "bad_buffers" and hdr["request"] == "doc-2"
    # A float32 reference is bad_dtype.
    cl.send("submit", {"reference": img.astype(np.float32)}, engine="preview", width=SIZE, height=SIZE,
            frames=1, request="doc-3")
    hdr, _ = cl.recv()
    assert (hdr["code"], hdr["field"], hdr["request"]) == ("bad_dtype", "submit.reference", "doc-3")
    if entry["needs_reference_keypoints"]:
        cl.send("submit", {"reference": img}, engine="preview", width=SIZE, height=SIZE, frames=1, request="doc-4")
        hdr, _ = cl.recv()
        assert (hdr["code"], hdr["field"]) == ("missing_input", "submit.reference_keypoints")
    cl.sock.close(0)


def test_a_part_over_the_size_limit_gets_an_error_reply():
    with start_server(engines=("preview",), extra_args=("--max-message-bytes", 100_000)) as srv:
        cl = DocClient(srv.address)
        cl.sock.send_multipart([json.dumps({"v": 1, "type": "ping",
                                            "buffers": [{"name": "a", "dtype": "uint8", "shape": [200_000]}]}).encode(),
                                b"x" * 200_000])
        hdr, _ = cl.recv(timeout=10)
        assert hdr["type"] == "error" and hdr["code"] == "too_large"
        cl.send("hello")  # the same connection is still served
        assert cl.recv()[0]["type"] == "info"
        cl.sock.close(0)
