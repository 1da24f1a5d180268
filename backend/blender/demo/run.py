"""The whole demo, step by step (bpy). ``backend.cli.commands.demo`` checks the
arguments first and then calls ``run_demo``."""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass

import cv2
import numpy as np


class DemoCancelled(RuntimeError):
    """Ctrl+C outside the job (the job itself cancels through run_shot)."""


@dataclass
class DemoOptions:
    out: str
    engine: str = "preview"
    weights: str | None = None
    frames: int = 48
    size: int = 384
    samples: int = 4
    sheet_rows: int = 4
    character: str | None = None   # .glb/.gltf/.fbx/.blend instead of the procedural character
    action: str | None = None      # the character's action to play (default: its current/first)
    motion: str | None = None      # a .bvh retargeted onto the character instead of an action


def _read_rgb(path: str) -> np.ndarray:
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise RuntimeError(f"cannot read image {path!r}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _read_rgba(path: str) -> np.ndarray:
    img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if img is None or img.ndim != 3 or img.shape[2] != 4:
        raise RuntimeError(f"cannot read RGBA image {path!r}")
    return cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA)


def render_sequencer_video(scene, path: str) -> str:
    """Render the scene's sequencer (the result strip) to an H.264 MP4."""
    import bpy

    from blender_addon import compat
    r = scene.render
    r.use_sequencer = True
    r.use_compositing = False
    compat.set_image_format(r.image_settings, "video")
    r.ffmpeg.format = "MPEG4"
    r.ffmpeg.codec = "H264"
    r.ffmpeg.constant_rate_factor = "MEDIUM"
    r.filepath = path
    bpy.ops.render.render(animation=True)
    # Blender appends the frame range unless the path already ends in .mp4.
    if not os.path.isfile(path):
        stem = os.path.splitext(path)[0]
        for name in os.listdir(os.path.dirname(path)):
            full = os.path.join(os.path.dirname(path), name)
            if full.startswith(stem) and name.endswith(".mp4"):
                os.replace(full, path)
                break
    return path


def run_demo(o: DemoOptions, *, bar=None, should_cancel=None) -> dict:
    """Run everything; return a summary with paths, metrics and timing."""
    import bpy

    from blender_addon import compat
    from blender_addon.core.settings import ShotSettings
    from backend.blender.headless import run_shot

    from backend.training.evaluation import report as M
    from backend.training.metrics.image import frame_score, mean_score
    from .reference_render import render_ground_truth, render_reference
    from .scene import BODY_COLLECTION, INTERACTIVE_COLLECTION, build_scene
    from backend.cli.local_server import LocalServer

    def say(stage, done, total, detail="", eta=None):
        if should_cancel is not None and not stage.startswith("job") and should_cancel():
            raise DemoCancelled("cancelled")
        if bar is not None:
            bar.update(stage, done, total, detail, eta)

    t0 = time.monotonic()
    out = os.path.abspath(o.out)
    work = os.path.join(out, "work")
    os.makedirs(work, exist_ok=True)
    timings = {}
    server = LocalServer([o.engine], weights=o.weights, log_path=os.path.join(out, "server.log")).start()
    try:
        # The server starts while Blender builds: both take a few seconds.
        t = time.monotonic()
        say("scene", 0, 1)
        placement = None
        if o.character:
            from .character import PLACEMENT, build_character_scene
            scene, arm = build_character_scene(o.character, o.frames, o.size, o.samples, action=o.action,
                                               motion=o.motion)
            placement = bpy.data.objects[PLACEMENT]
        else:
            scene, arm = build_scene(o.frames, o.size, o.samples)
        ref_png, ref_kp, _ = render_reference(scene, arm, out, o.size, placement=placement)
        say("scene", 1, 1, "room, character, reference")
        timings["scene"] = time.monotonic() - t

        t = time.monotonic()
        frames = list(range(scene.frame_start, scene.frame_end + 1))
        gt_paths = render_ground_truth(scene, frames, os.path.join(work, "ground_truth"),
                                       progress=lambda st, d, n: say(st, d, n))
        timings["ground_truth"] = time.monotonic() - t

        server.wait_ready()
        settings = ShotSettings(armature=arm.name, reference_path=ref_png, reference_keypoints_path=ref_kp,
                                frame_start=frames[0], frame_end=frames[-1], width=o.size, height=o.size,
                                output_dir=os.path.join(out, "frames"), body=BODY_COLLECTION,
                                objects_collection=INTERACTIVE_COLLECTION, engine=o.engine, server=server.address,
                                samples=o.samples, denoise=False, name="demo")  # as the ground truth
        # The job's own conditioning, seen as it is exported, feeds the naive
        # baseline and the contact sheet: no second render of the passes. The
        # ground truth already exists, so the baseline is scored on the spot
        # and only the contact sheet's few frames are kept in memory.
        ref_rgba = _read_rgba(ref_png)
        sheet_idx = set(M.sample_frames(len(frames), o.sheet_rows))
        base_scores: dict[int, tuple] = {}
        seen: dict[int, dict] = {}

        def observe(i: int, inputs: dict) -> None:
            base = M.naive_baseline(inputs["environment"], inputs["character_mask"], ref_rgba)
            base_scores[i] = frame_score(base, _read_rgb(gt_paths[i]))
            if i in sheet_idx:
                seen[i] = {k: np.array(inputs[k]) for k in ("environment", "character_mask", "keypoints")}

        t = time.monotonic()
        result = run_shot(scene, settings, should_cancel=should_cancel, observe_frame=observe,
                          progress=lambda p: say("job " + o.engine, p.received, p.total or len(frames),
                                                 p.server_stage or p.stage, p.eta_s))
        timings["job"] = result.seconds
        if result.state != "done":
            raise RuntimeError(f"the job ended {result.state} after {result.frames} frames")
    finally:
        server.stop()

    t = time.monotonic()
    engine_scores, rows = [], []
    for i, f in enumerate(frames):
        res = _read_rgba(result.frame_paths[i])[..., :3]
        truth = _read_rgb(gt_paths[i])
        engine_scores.append(frame_score(res, truth))
        if i in sheet_idx:
            rows.append(dict(frame=f, environment=seen[i]["environment"], mask=seen[i]["character_mask"],
                             keypoints=seen[i]["keypoints"], result=res, truth=truth))
        say("metrics", i + 1, len(frames))
    engine_score = mean_score(engine_scores)
    base_score = mean_score([base_scores[i] for i in range(len(frames))])
    sheet = M.contact_sheet(rows)
    sheet_path = os.path.join(out, "contact_sheet.png")
    cv2.imwrite(sheet_path, cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    timings["metrics"] = time.monotonic() - t

    t = time.monotonic()
    say("video", 0, 1)
    video = render_sequencer_video(scene, os.path.join(out, "demo.mp4"))
    blend = os.path.join(out, "demo.blend")
    compat.show_in_every_sequencer(scene)  # 5.x: else the file opens on an empty Sequencer editor
    bpy.ops.wm.save_as_mainfile(filepath=blend)
    say("video", 1, 1)
    timings["video"] = time.monotonic() - t

    seconds = time.monotonic() - t0
    metrics = {"engine": {"name": o.engine, **engine_score}, "baseline": base_score,
               "frames": len(frames), "seconds": round(seconds, 1),
               "character": os.path.basename(o.character) if o.character else "procedural"}
    metrics_path = os.path.join(out, "metrics.json")
    with open(metrics_path, "w") as fh:
        json.dump(metrics, fh, indent=2)
    return dict(metrics=metrics, metrics_path=metrics_path, video=video, blend=blend, contact_sheet=sheet_path,
                reference=ref_png, take_dir=result.take_dir, strip=result.strip_name, timings=timings,
                size=o.size)
