"""Evaluate engines on held-out clips through a real server (bpy-free).

Each engine entry gets its own private ``inhabit serve`` (backend/cli/local_server.py)
with its weights; every clip of the split is sent as the add-on sends a shot
(SUBMIT with the clip's reference, FRAMEs with the exact passes) and the
RESULTs are scored against the clip's ground truth. The naive baseline
(the reference pasted onto the mask's box) is scored on the same frames.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field

import cv2
import numpy as np

from backend.training.data import layout

from .scores import Tally

FRAME_INPUTS = ("environment", "character_mask", "keypoints", "character_depth", "scene_depth", "object_labels")
BASELINE = "naive baseline"


@dataclass
class EngineEntry:
    engine: str
    weights: str | None = None
    label: str | None = None
    params: dict = field(default_factory=dict)


def label_entries(entries: list[EngineEntry]) -> None:
    """Give every entry a unique label: the engine name, or name@weights-folder when repeated."""
    counts: dict[str, int] = {}
    for e in entries:
        counts[e.engine] = counts.get(e.engine, 0) + 1
    for e in entries:
        if not e.label:
            e.label = e.engine
            if counts[e.engine] > 1 and e.weights:
                e.label = f"{e.engine}@{os.path.basename(os.path.normpath(e.weights))}"
    seen: set = set()
    for e in entries:
        base, k = e.label, 2
        while e.label in seen:
            e.label, k = f"{base}#{k}", k + 1
        seen.add(e.label)


def read_reference(path: str) -> np.ndarray:
    img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if img is None or img.ndim != 3 or img.shape[2] != 4:
        raise RuntimeError(f"cannot read the RGBA reference {path!r}")
    return cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA)


def clip_frames(clip: dict, i: int) -> dict:
    return {k: np.ascontiguousarray(clip[k][i]) for k in FRAME_INPUTS}


def run_clip(client, entry: EngineEntry, clip: dict, timeout: float) -> list[np.ndarray]:
    from blender_addon.core import protocol
    from blender_addon.core.client import run_job
    n, h, w = clip["gt"].shape[:3]
    spec = protocol.JobSpec(engine=entry.engine, width=w, height=h, frames=n, params=dict(entry.params),
                            objects=list(clip["meta"]["objects"]), name=f"eval clip {clip['meta']['clip']}")
    events = run_job(client, spec, read_reference(clip["reference_path"]),
                     ((i, clip_frames(clip, i)) for i in range(n)),
                     reference_keypoints=clip["reference_keypoints"], timeout=timeout)
    results = {e.header["index"]: e.arrays[protocol.RESULT_RGBA] for e in events if e.type == protocol.RESULT}
    if sorted(results) != list(range(n)):
        raise RuntimeError(f"engine {entry.label} returned frames {sorted(results)} of {n}")
    return [results[i][..., :3] for i in range(n)]


def _sheet(clip: dict, results: list[np.ndarray], rows: int = 3) -> np.ndarray:
    from . import report as M
    n = clip["gt"].shape[0]
    return M.contact_sheet([dict(frame=i, environment=clip["environment"][i], mask=clip["character_mask"][i],
                                 keypoints=clip["keypoints"][i], result=results[i], truth=clip["gt"][i])
                            for i in M.sample_frames(n, rows)], tile=128)


def evaluate(data: str, split: str, entries: list[EngineEntry], out: str, *, baseline: bool = True,
             max_clips: int | None = None, timeout: float = 300.0, progress=None, learned=None,
             cluster: tuple[str, str] | None = None) -> dict:
    """``learned``: a ``learned.LearnedScores`` (LPIPS/FVD from local weights) or None. ``cluster``:
    (address, slot resource): each engine's private server is a front end on that Ray cluster, and clips
    run at once, one per slot; scores are tallied in clip order, so they equal a one-machine run's."""
    from . import report as M
    from backend.cli.local_server import LocalServer

    manifest = layout.read_manifest(data)
    clips = layout.split_indices(data, manifest, split)[:max_clips]
    label_entries(entries)
    os.makedirs(out, exist_ok=True)
    rows: dict[str, dict] = {}
    sheets: dict[str, str] = {}
    total = len(clips) * (len(entries) + (1 if baseline else 0))
    done = 0

    def tick(what):
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total, what)

    if baseline:
        t0, tally, first = time.monotonic(), Tally(), None
        for c in clips:
            clip = layout.load_clip(data, c)
            ref = read_reference(clip["reference_path"])
            res = [M.naive_baseline(clip["environment"][i], clip["character_mask"][i], ref)
                   for i in range(clip["gt"].shape[0])]
            for i, r in enumerate(res):
                tally.add(r, clip["gt"][i], clip_frames(clip, i))
            if learned is not None:
                learned.add_clip(BASELINE, c, res, clip["gt"])
            first = first if first is not None else (clip, res)
            tick(BASELINE)
        rows[BASELINE] = {**tally.summary(), **(learned.summary(BASELINE) if learned else {}),
                          "seconds": round(time.monotonic() - t0, 1), "engine": "baseline"}
        sheets[BASELINE] = _write_sheet(out, BASELINE, *first)
    for e in entries:
        log = os.path.join(out, f"server-{_slug(e.label)}.log")
        t0, tally, first = time.monotonic(), Tally(), None
        extra = ("--cluster", cluster[0], "--cluster-resource", cluster[1]) if cluster else ()
        with LocalServer([e.engine], weights=e.weights, log_path=log, extra_args=extra) as server:
            for c, clip, res in _engine_results(server.address, e, data, clips, timeout):
                for i, r in enumerate(res):
                    tally.add(r, clip["gt"][i], clip_frames(clip, i))
                if learned is not None:
                    learned.add_clip(e.label, c, res, clip["gt"])
                first = first if first is not None else (clip, res)
                tick(e.label)
        rows[e.label] = {**tally.summary(), **(learned.summary(e.label) if learned else {}),
                         "seconds": round(time.monotonic() - t0, 1), "engine": e.engine,
                         "weights": os.path.abspath(e.weights) if e.weights else None, "params": e.params}
        sheets[e.label] = _write_sheet(out, e.label, *first)
    report = {"data": os.path.abspath(data), "split": split, "clips": clips, "engines": rows,
              "contact_sheets": sheets, "size": manifest["size"], "frames": manifest["frames"]}
    layout.write_json_atomic(os.path.join(out, "eval.json"), report)
    with open(os.path.join(out, "eval.md"), "w") as fh:
        fh.write(markdown_table(report) + "\n")
    return report


def _engine_results(address: str, entry: EngineEntry, data: str, clips: list, timeout: float):
    """(clip index, clip, results) in clip order; as many clips at once as the server runs jobs at once
    (one on one machine, one per GPU slot for a cluster front end)."""
    from concurrent.futures import ThreadPoolExecutor

    from blender_addon.core.client import Client

    def one(c):
        clip = layout.load_clip(data, c)
        with Client(address) as cl:
            return c, clip, run_clip(cl, entry, clip, timeout)
    with Client(address) as cl:
        at_once = int(cl.info().get("concurrent_jobs", 1))
    if at_once <= 1:
        yield from map(one, clips)
        return
    with ThreadPoolExecutor(at_once) as pool:
        yield from pool.map(one, clips)


def _slug(label: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in label)


def _write_sheet(out: str, label: str, clip: dict, results: list) -> str:
    path = os.path.join(out, f"sheet-{_slug(label)}.png")
    cv2.imwrite(path, cv2.cvtColor(_sheet(clip, results), cv2.COLOR_RGB2BGR))
    return os.path.basename(path)


def markdown_table(report: dict) -> str:
    rows = report["engines"].values()
    extra = [(k, h) for k, h in (("lpips", "LPIPS"), ("fvd", "FVD")) if any(k in r for r in rows)]
    lines = [f"Held-out split `{report['split']}`: {len(report['clips'])} clips x {report['frames']} frames at "
             f"{report['size']} px. PSNR in dB; in/out: inside the exact silhouette / outside it (dilated 3 px); "
             "occlusion: share of hidden character pixels where the result shows the occluder."
             + (" LPIPS (alex, mean over frames) and FVD (I3D, clips vs ground-truth clips) from the local weight "
                "files given." if extra else ""), "",
             "| engine | SSIM | PSNR | PSNR in | PSNR out | occlusion |" + "".join(f" {h} |" for _, h in extra)
             + " frames | s |", "|---|---|---|---|---|---|" + "---|" * len(extra) + "---|---|"]
    for label, r in report["engines"].items():
        occ = "n/a" if r["occlusion"] is None else f"{r['occlusion']:.3f}"
        lines.append(f"| {label} | {r['ssim']:.4f} | {r['psnr']:.2f} | {r['psnr_in']:.2f} | {r['psnr_out']:.2f} | "
                     f"{occ} |" + "".join(f" {r[k]} |" for k, _ in extra) + f" {r['frames']} | {r['seconds']} |")
    return "\n".join(lines)


def dump(report: dict) -> str:
    return json.dumps(report, indent=1)
