"""Benchmark of the add-on's per-frame export against the bare Cycles render.

1. Export time per frame at 512 px on the demo scene, side by side in one run
   with the bare Cycles render of the same frames at the same samples (the
   whole scene, character included, no files): a locked-off shot (only the
   character moves) and a shot whose camera moves. Targets: locked-off
   <= 0.15x the bare render, moving camera <= 1.05x.
2. The environment's samples and denoising: PSNR of the 8-bit environment
   against a high-sample render, and seconds per frame, for 1, 2, 4, 16
   samples with and without OpenImageDenoise.
3. With ``--demo OLD_TREE``: ``inhabit demo`` wall time of an older source
   tree and of this one, interleaved.

Writes the "export" section of bench/RESULTS.md.

    .venv/bin/python bench/export.py [--size 512] [--frames 6] [--repeats 2] [--demo /tmp/old-tree]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def _demo_scene(frames: int, size: int, samples: int, moving_camera: bool):
    from backend.blender.demo.scene import build_scene
    scene, _arm = build_scene(frames, size, samples)
    if moving_camera:  # a slow dolly to the right: every frame's environment differs
        cam = scene.camera
        x0 = cam.location.x
        for f in range(1, frames + 1):
            cam.location.x = x0 + 0.03 * (f - 1)
            cam.keyframe_insert("location", index=0, frame=f)
    return scene


def _settings(frames: int, size: int, samples: int, denoise: bool, out: str):
    from backend.blender.demo.scene import ARMATURE, BODY_COLLECTION, INTERACTIVE_COLLECTION
    from blender_addon.core.settings import ShotSettings
    return ShotSettings(armature=ARMATURE, reference_path="", frame_start=1, frame_end=frames, width=size,
                        height=size, output_dir=out, body=BODY_COLLECTION, objects_collection=INTERACTIVE_COLLECTION,
                        samples=samples, denoise=denoise)


def bare_times(scene, frames: int, samples: int, denoise: bool, with_character: bool = True) -> list[float]:
    import bpy
    body = list(bpy.data.collections["Character"].all_objects)  # a copy: hiding rebuilds the cached list
    for o in body:
        o.hide_render = not with_character
    scene.cycles.samples = samples
    scene.cycles.use_denoising = denoise
    if denoise:  # as the export denoises
        scene.cycles.denoiser = "OPENIMAGEDENOISE"
        scene.cycles.denoising_prefilter = "FAST"
    out = []
    for f in range(1, frames + 1):
        scene.frame_set(f)
        t = time.perf_counter()
        bpy.ops.render.render(write_still=False)
        out.append(time.perf_counter() - t)
    for o in body:
        o.hide_render = False
    return out


def export_times(scene, settings) -> tuple[list[float], dict]:
    from blender_addon.scene.export import ShotExporter
    from blender_addon.shot import scene_shot
    out = []
    with ShotExporter(scene_shot(scene, settings)) as ex:
        for i in range(settings.frame_count):
            t = time.perf_counter()
            ex.export_frame(i)
            out.append(time.perf_counter() - t)
        stats = ex.render_stats
    return out, stats


def interleaved_times(scene, settings) -> tuple[list, list, list, dict]:
    """Per frame: the export, then the bare render without and with the character, same frame.

    Only for shots that re-render anyway: toggling the character's visibility for
    the bare render marks the scene changed, so it would defeat reuse.
    """
    import bpy
    from blender_addon.scene.export import ShotExporter
    from blender_addon.shot import scene_shot
    export, env, bare = [], [], []
    with ShotExporter(scene_shot(scene, settings)) as ex:
        for i in range(settings.frame_count):
            t = time.perf_counter()
            ex.export_frame(i)
            export.append(time.perf_counter() - t)
            t = time.perf_counter()
            bpy.ops.render.render(write_still=False)  # as the export leaves the scene: character hidden
            env.append(time.perf_counter() - t)
            for o in ex.body_objects:
                o.hide_render = False
            t = time.perf_counter()
            bpy.ops.render.render(write_still=False)
            bare.append(time.perf_counter() - t)
            for o in ex.body_objects:
                o.hide_render = True
        stats = ex.render_stats
    return export, env, bare, stats


def compare_shot(moving: bool, a) -> dict:
    import bpy
    scene = _demo_scene(a.frames, a.size, a.samples, moving)
    settings = _settings(a.frames, a.size, a.samples, a.denoise, tempfile.mkdtemp(prefix="bench-export-"))
    bpy.ops.render.render(write_still=False)  # warm-up: kernels and caches load once per process
    bare, env, export, stats = [], [], [], None
    for _ in range(a.repeats):
        if moving:  # interleaved frame by frame
            e, v, b, stats = interleaved_times(scene, settings)
            export, env, bare = export + e, env + v, bare + b
        else:  # interleaved shot by shot: the bare renders must not touch the exported shot
            bare += bare_times(scene, a.frames, a.samples, a.denoise)
            env += bare_times(scene, a.frames, a.samples, a.denoise, with_character=False)
            t, stats = export_times(scene, settings)
            export += t
    b, v, e = statistics.median(bare), statistics.median(env), statistics.median(export)
    sec = stats["seconds"]
    n = stats["renders"] + stats["reused"]
    overhead = (sum(export[-n:]) - sec["render"]) / n  # last run: the stats are its own
    return {"overhead_ms": overhead * 1000, "files_ms": sec["files"] / max(1, stats["renders"]) * 1000,
            "raster_ms": sec["raster"] / n * 1000, "bare": b, "env": v, "export": e,
            "export_mean": statistics.mean(export), "ratio": e / b,
            "env_ratio": e / v, "mean_ratio": statistics.mean(export) / b, "stats": stats}


_DENOISE_LABEL = {None: "off", "ACCURATE": "OIDN, accurate prefilter (Blender's default)",
                  "FAST": "OIDN, fast prefilter (the add-on's)"}


def _psnr(a, b) -> float:
    import numpy as np
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def samples_table(a) -> list[dict]:
    """Environment only (character hidden, as the export renders it), one mid-shot frame."""
    import bpy
    from blender_addon import compat
    from blender_addon.core import bmp
    scene = _demo_scene(a.frames, a.size, 4, False)
    for o in list(bpy.data.collections["Character"].all_objects):  # a copy: hiding rebuilds the cached list
        o.hide_render = True
    scene.frame_set(max(1, a.frames // 2))
    path = os.path.join(tempfile.mkdtemp(prefix="bench-samples-"), "env.bmp")

    def render(samples, denoise):
        scene.cycles.samples = samples
        scene.cycles.use_denoising = bool(denoise)
        if denoise:
            scene.cycles.denoiser = "OPENIMAGEDENOISE"
            scene.cycles.denoising_prefilter = denoise
        t = time.perf_counter()
        bpy.ops.render.render(write_still=False)
        dt = time.perf_counter() - t
        compat.set_image_format(scene.render.image_settings, "bmp")
        bpy.data.images["Render Result"].save_render(filepath=path, scene=scene)
        return dt, bmp.read_bmp_rgb(path)

    _, reference = render(a.reference_samples, None)
    rows = []
    # None: off; ACCURATE: Blender's default prefilter; FAST: the add-on's (guides not denoised).
    for samples in (1, 2, 4, 16):
        for denoise in (None, "ACCURATE", "FAST"):
            times = []
            for _ in range(a.repeats):
                dt, img = render(samples, denoise)
                times.append(dt)
            rows.append({"samples": samples, "denoise": denoise, "s": statistics.median(times),
                         "psnr": _psnr(img, reference)})
            print(f"  {samples:2d} spp denoise={denoise!s:8}: {rows[-1]['s']:.3f} s, {rows[-1]['psnr']:.2f} dB",
                  flush=True)
    return rows


def demo_walls(old_tree: str, repeats: int, frames: int, size: int) -> dict:
    """`inhabit demo` wall clock per source tree (interleaved runs)."""
    walls = {"before": [], "after": []}
    for _ in range(repeats):
        for name, tree in (("before", old_tree), ("after", ROOT)):
            out = tempfile.mkdtemp(prefix=f"bench-demo-{name}-")
            env = dict(os.environ, PYTHONPATH=tree)
            cmd = [sys.executable, "-m", "backend.cli", "demo", "--out", out]
            if frames:
                cmd += ["--frames", str(frames)]
            if size:
                cmd += ["--size", str(size)]
            t = time.perf_counter()
            subprocess.run(cmd, cwd=tree, env=env, check=True, capture_output=True)
            walls[name].append(time.perf_counter() - t)
            print(f"  demo {name}: {walls[name][-1]:.1f} s", flush=True)
    return walls


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--frames", type=int, default=6)
    from blender_addon.core.settings import ShotSettings
    ap.add_argument("--samples", type=int, default=ShotSettings.samples,
                    help="environment samples (default: the add-on's)")
    ap.add_argument("--denoise", action=argparse.BooleanOptionalAction, default=ShotSettings.denoise)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--reference-samples", type=int, default=256)
    ap.add_argument("--skip-table", action="store_true")
    ap.add_argument("--demo", metavar="OLD_TREE", help="also time `inhabit demo` of OLD_TREE against this tree")
    ap.add_argument("--demo-repeats", type=int, default=1)
    ap.add_argument("--demo-frames", type=int, default=0, help="demo --frames (0: the demo's default)")
    ap.add_argument("--demo-size", type=int, default=0, help="demo --size (0: the demo's default)")
    ap.add_argument("--no-write", action="store_true")
    a = ap.parse_args(argv)
    import bpy  # noqa: F401  (after argparse: --help needs no Blender)

    shots = {}
    for name, moving in (("locked-off", False), ("moving camera", True)):
        shots[name] = r = compare_shot(moving, a)
        print(f"{name}: bare {r['bare']:.3f} s, bare without the character {r['env']:.3f} s, export "
              f"{r['export']:.3f} s (x{r['ratio']:.3f}, x{r['env_ratio']:.3f}), overhead {r['overhead_ms']:.1f} ms "
              f"(files {r['files_ms']:.1f} ms per render, z-buffer {r['raster_ms']:.1f} ms), {r['stats']}", flush=True)
    rows = [] if a.skip_table else samples_table(a)
    walls = demo_walls(a.demo, a.demo_repeats, a.demo_frames, a.demo_size) if a.demo else None

    stamp = time.strftime("%Y-%m-%d %H:%M")
    lock, move = shots["locked-off"], shots["moving camera"]
    lines = [
        "## export (bench/export.py)", "",
        f"{stamp}: demo scene at {a.size}x{a.size}, {a.frames} frames x {a.repeats} runs (interleaved with the "
        f"bare renders), environment {a.samples} samples, denoise {'on' if a.denoise else 'off'}, Cycles CPU, "
        "2 shared cores. Bare = `bpy.ops.render.render()` of the same frame, same samples, no files: of the "
        "whole scene, and of the scene without the character (the one render the export cannot avoid). "
        "Export = `ShotExporter.export_frame` (frame change, environment render or reuse, BMP + EXR round "
        "trip, body z-buffer, keypoints, protocol check).", "",
        "| shot | bare s/frame | bare without character | export s/frame (median) | ratio to bare (target) | "
        "ratio to bare without character | export mean incl. first frame | renders / reused per run | "
        "export minus its Cycles render, ms/frame | of it: BMP+EXR save+read per render, z-buffer per frame (ms) |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *[f"| {name} | {r['bare']:.3f} | {r['env']:.3f} | {r['export']:.3f} | **x{r['ratio']:.3f}** ({target}) | "
          f"x{r['env_ratio']:.3f} | {r['export_mean']:.3f} (x{r['mean_ratio']:.3f}) | {r['stats']['renders']} / "
          f"{r['stats']['reused']} | {r['overhead_ms']:.1f} | {r['files_ms']:.1f}, {r['raster_ms']:.1f} |"
          for name, r, target in (("locked-off", lock, "<= 0.15"),
                                                               ("moving camera", move, "<= 1.05"))],
    ]
    if rows:
        lines += ["", f"Environment samples and OpenImageDenoise ({a.size} px, one frame, median of {a.repeats}; "
                  f"PSNR of the 8-bit environment against a {a.reference_samples}-sample render without denoising):",
                  "", "| samples | denoise | s/frame | PSNR dB |", "|---|---|---|---|",
                  *[f"| {r['samples']} | {_DENOISE_LABEL[r['denoise']]} | {r['s']:.3f} | {r['psnr']:.2f} |"
                    for r in rows]]
    if walls:
        b, w = statistics.median(walls["before"]), statistics.median(walls["after"])
        lines += ["", f"`inhabit demo` wall clock (the `make demo` command; defaults"
                  f"{'' if not a.demo_frames else f', --frames {a.demo_frames}'}"
                  f"{'' if not a.demo_size else f', --size {a.demo_size}'}), {a.demo_repeats} run(s) each, "
                  f"interleaved: before {b:.1f} s, after {w:.1f} s (x{w / b:.2f}); runs {walls}."]
    text = "\n".join(lines)
    if not a.no_write:
        from results_file import write_section  # bench/ is on sys.path when run as a script
        write_section("export", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
