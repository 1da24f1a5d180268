"""The person at the keyboard: runs inside a real Blender window (under Xvfb) and uses the Inhabit
panel the way a user does, then writes what it saw to a JSON report.

    blender shot.blend --window-geometry 0 0 W H --python agent.py -- CONFIG.json

Everything happens in ``bpy.app.timers`` (the window keeps drawing between steps): clicks are real
X events (``xdotool``), buttons are found on screen by reading the sidebar's pixels (``tesseract``
over a screenshot of the panel region: nothing is assumed about the panel's layout), screenshots
are ImageMagick's ``import -window root`` (``bpy.ops.screen.screenshot`` is black under llvmpipe).
Slow helpers run as child processes polled by the timer, so the harness never blocks the window
it measures. A probe timer (every 0.1 s) records when it fires: its largest gap while a job runs
is how long the window stood still.

The add-on's state (``ui.runner.state``) and the scene are read directly: that is what the panel
draws, and the screenshots show whether it was drawn.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import traceback

import bpy

CONFIG = json.load(open(sys.argv[sys.argv.index("--") + 1]))
OUT = CONFIG["results"]
TICK_S = 0.05
PROBE_S = 0.1
OCR_SCALE = 3
# A connection attempt may cost the window a redraw of the panel (up to 1.2 s under llvmpipe on a busy
# 2-core machine) but never a wait on the network (a dead address's timeout is 3 s).
FREEZE_S = 1.5


# -- small waits the scenario generators yield -------------------------------------------------
class Sleep:
    def __init__(self, seconds):
        self.until = time.monotonic() + seconds
        self.value = None

    def ready(self):
        return time.monotonic() >= self.until


class Until:
    """Ready when ``fn()`` is true (value True) or at the timeout (value False)."""
    def __init__(self, fn, timeout):
        self.fn, self.deadline, self.value = fn, time.monotonic() + timeout, None

    def ready(self):
        if self.fn():
            self.value = True
        elif time.monotonic() >= self.deadline:
            self.value = False
        return self.value is not None


class Proc:
    """A child process; value = (returncode, stdout text)."""
    def __init__(self, argv, timeout=60.0):
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.deadline, self.value = time.monotonic() + timeout, None

    def ready(self):
        if self.proc.poll() is None:
            if time.monotonic() < self.deadline:
                return False
            self.proc.kill()
        self.value = (self.proc.wait(), self.proc.stdout.read())
        return True


# -- the add-on and the window -------------------------------------------------------------------
def addon_module(suffix):
    for name, mod in sys.modules.items():
        if name.endswith("inhabit." + suffix) and name.startswith("bl_ext."):
            return mod
    raise RuntimeError(f"the Inhabit add-on's {suffix} module is not loaded: is the extension enabled?")


def runner():
    return addon_module("ui.runner")


def window():
    return bpy.context.window_manager.windows[0]


def area_of(kind):
    for area in window().screen.areas:
        if area.type == kind:
            return area
    return None


def region_of(area, kind):
    for region in area.regions:
        if region.type == kind:
            return region
    return None


def screen_box(region):
    """(x, y, w, h) of a region in X screen pixels (top-left origin); the window fills the screen."""
    win = window()
    top = win.y + win.height - (region.y + region.height)
    return region.x + win.x, top, region.width, region.height


def setup_window():
    """What a user does once: the Sequencer where Properties was, the sidebar open on Inhabit."""
    seq = area_of("SEQUENCE_EDITOR") or area_of("PROPERTIES")
    if seq.type != "SEQUENCE_EDITOR":
        seq.type = "SEQUENCE_EDITOR"
    seq.spaces.active.view_type = "SEQUENCER"
    if hasattr(seq.spaces.active, "show_region_channels"):
        seq.spaces.active.show_region_channels = False  # the strips get the column's whole width
    view = area_of("VIEW_3D")
    view.spaces.active.show_region_ui = True
    if not CONFIG.get("region_overlap", True):  # diagnosis: the sidebar beside the viewport instead of over it
        bpy.context.preferences.system.use_region_overlap = False
    for area in (view, seq):
        area.tag_redraw()


def pick_inhabit_tab():
    """The sidebar's tab (settable once the sidebar has drawn its tabs)."""
    view = area_of("VIEW_3D")
    region_of(view, "UI").active_panel_category = "Inhabit"
    view.tag_redraw()


# -- the probe ------------------------------------------------------------------------------------
class Probe:
    def __init__(self):
        self.times = []
        self.session_ended = None  # when the probe first saw no running session (set to 0.0 to watch)

    def __call__(self):
        now = time.perf_counter()
        self.times.append(now)
        if self.session_ended == 0.0 and state().session is None:
            self.session_ended = now
        return PROBE_S

    def gaps(self, start, end, over=0.3):
        """[(offset from start, length)] of every stand-still longer than ``over`` seconds."""
        ts = [start] + [t for t in self.times if start <= t <= end] + [end]
        return [(round(a - start, 2), round(b - a, 2)) for a, b in zip(ts, ts[1:]) if b - a > over]

    def largest_gap(self, start, end):
        ts = [t for t in self.times if start <= t <= end]
        ts = [start] + ts + [end]
        return max(b - a for a, b in zip(ts, ts[1:])) if len(ts) > 1 else 0.0


PROBE = Probe()


# -- settings a shot must leave as it found them ---------------------------------------------------
def _rna_values(struct, depth=0, skip=()):
    out = {}
    for prop in struct.bl_rna.properties:
        name = prop.identifier
        if name in ("rna_type",) or name in skip:
            continue
        try:
            value = getattr(struct, name)
        except Exception:
            continue
        if prop.type == "POINTER":
            if value is None:
                out[name] = None
            elif isinstance(value, bpy.types.ID):
                out[name] = value.name
            elif depth < 2:
                for k, v in _rna_values(value, depth + 1).items():
                    out[f"{name}.{k}"] = v
        elif prop.type == "COLLECTION":
            continue
        else:
            out[name] = tuple(value) if hasattr(value, "__len__") and not isinstance(value, str) else value
    return out


def scene_settings(scene):
    """Every setting of the scene a shot could touch: render (image format and all), Cycles, colour
    management, view layers and their passes, each object's pass index and visibility, the frame."""
    out = {f"scene.{k}": v for k, v in _rna_values(scene, 2, skip=("inhabit", "sequence_editor", "cursor",
                                                                        "tool_settings", "statistics")).items()}
    for key in ("render", "cycles", "view_settings", "display_settings", "display"):
        if hasattr(scene, key):
            out.update({f"{key}.{k}": v for k, v in _rna_values(getattr(scene, key)).items()})
    for vl in scene.view_layers:
        out.update({f"layer[{vl.name}].{k}": v for k, v in _rna_values(vl, 1, skip=("depsgraph",)).items()})
    for obj in scene.objects:
        if obj.get("inhabit_proxy"):
            continue
        for k in ("pass_index", "hide_render", "hide_viewport", "location", "rotation_euler"):
            v = getattr(obj, k)
            out[f"object[{obj.name}].{k}"] = tuple(v) if hasattr(v, "__len__") else v
    return out


def _same(key, was, now):
    # An unset linear colour space ('') means "the file format's default"; once any format change has set it,
    # no API call can unset it again, and the value left is that same default.
    if key.endswith("linear_colorspace_settings.name") and was == "":
        return True
    return was == now


def differences(before, after):
    keys = sorted(set(before) | set(after))
    return [f"{k}: {before.get(k)!r} -> {after.get(k)!r}" for k in keys if not _same(k, before.get(k), after.get(k))]


# -- the scenarios' toolbox -----------------------------------------------------------------------
class Harness:
    def __init__(self):
        self.report = {"blender": bpy.app.version_string, "python": sys.version.split()[0], "scenarios": []}
        self.current = None
        self.shot_index = 0
        self.buttons = {}
        self.last_words = []

    # results
    def begin(self, name):
        self.current = {"name": name, "checks": [], "screenshots": [], "measures": {}}
        self.report["scenarios"].append(self.current)
        print(f"INHABIT-GUI scenario {name}", flush=True)

    def check(self, what, ok, detail=""):
        self.current["checks"].append({"what": what, "ok": bool(ok), "detail": str(detail)[:2000]})
        print(f"INHABIT-GUI   {'ok  ' if ok else 'FAIL'} {what} {'' if ok else detail}", flush=True)
        return ok

    def measure(self, key, value):
        self.current["measures"][key] = value

    # screen
    def screenshot(self, label):
        self.shot_index += 1
        path = os.path.join(OUT, f"{self.shot_index:02d}-{self.current['name']}-{label}.png")
        rc, out = yield Proc(["import", "-window", "root", path])
        if rc == 0:
            self.current["screenshots"].append(path)
        else:
            self.check(f"screenshot {label}", False, out)
        return path

    def crop_pixels(self, png, box):
        """The RGB pixels of ``box`` in a screenshot, as a numpy array (ImageMagick does the reading)."""
        import numpy as np
        x, y, w, h = box
        raw = png + f".{x}_{y}.rgb"
        rc, out = yield Proc(["convert", png, "-crop", f"{w}x{h}+{x}+{y}", "+repage", "-depth", "8", f"rgb:{raw}"])
        if rc != 0:
            raise RuntimeError(f"convert failed: {out}")
        data = np.fromfile(raw, np.uint8)
        os.remove(raw)
        return data.reshape(h, w, 3)

    def read_panel(self, label):
        """Screenshot, then the words in the 3D view's sidebar with their screen centres."""
        png = yield from self.screenshot(label)
        region = region_of(area_of("VIEW_3D"), "UI")
        x, y, w, h = screen_box(region)
        big = png[:-4] + ".ocr.png"
        rc, out = yield Proc(["convert", png, "-crop", f"{w}x{h}+{x}+{y}", "+repage", "-colorspace", "Gray",
                              "-resize", f"{OCR_SCALE * 100}%", "-negate", big])
        if rc != 0:
            raise RuntimeError(f"convert failed: {out}")
        rc, out = yield Proc(["tesseract", big, "stdout", "--psm", "11", "tsv"], timeout=90)
        os.remove(big)
        words = []
        for line in out.splitlines()[1:]:
            cols = line.split("\t")
            if len(cols) < 12 or not cols[11].strip():
                continue
            left, top, width, height = (int(c) for c in cols[6:10])
            words.append((cols[11].strip(), x + (left + width / 2) / OCR_SCALE, y + (top + height / 2) / OCR_SCALE))
        self.last_words = words
        return words

    def panel_text(self):
        return " ".join(w for w, _, _ in self.last_words)

    @staticmethod
    def find(words, *label):
        """Centre of the first place where the words of ``label`` follow each other (case-insensitive)."""
        low = [w.lower().strip(".,:;") for w, _, _ in words]
        want = [w.lower() for w in label]
        for i in range(len(low) - len(want) + 1):
            if all(low[i + j].startswith(want[j]) for j in range(len(want))):
                xs = [words[i + j][1] for j in range(len(want))]
                return (sum(xs) / len(xs), words[i][2])
        return None

    def locate(self, label, *text):
        words = yield from self.read_panel(f"find-{'-'.join(text).lower()}")
        at = self.find(words, *text)
        self.check(f"button {' '.join(text)!r} found on screen", at is not None,
                   f"sidebar text read: {self.panel_text()[:600]}")
        if at is not None:
            self.buttons[label] = at
        return at

    def press(self, label, *text):
        """Find a button where it is now (the panel grows as the server's parameters arrive), click it."""
        at = yield from self.locate(label, *text)
        if at is None:
            raise RuntimeError(f"no {' '.join(text)!r} button on screen")
        return (yield from self.click(label))

    def neutral_point(self):
        """The middle of the 3D view: moving there redraws nothing of the panel."""
        x, y, w, h = screen_box(region_of(area_of("VIEW_3D"), "WINDOW"))
        return int(x + w * 0.4), int(y + h * 0.5)

    def click(self, label):
        """A real click (press and release) on a button, then the mouse moves away once Blender has read it.

        Blender applies a press where the pointer is when it reads the event, so the pointer stays on the
        button until the window has been through its event loop (two ticks of this timer) after xdotool."""
        bx, by = self.buttons[label]
        t = time.perf_counter() + 0.2  # when xdotool, after its pause on the button, puts the click in the queue
        rc, out = yield Proc(["xdotool", "mousemove", str(int(bx)), str(int(by)), "sleep", "0.2", "click", "1"])
        if rc != 0:
            self.check(f"xdotool click on {label}", False, out)
        yield Sleep(0.3)
        yield Sleep(0.3)
        nx, ny = self.neutral_point()
        yield Proc(["xdotool", "mousemove", str(nx), str(ny)])
        return t

    def key_over(self, area, key):
        x, y, w, h = screen_box(region_of(area, "WINDOW"))
        nx, ny = self.neutral_point()
        yield Proc(["xdotool", "mousemove", str(x + w // 2), str(y + h // 2), "sleep", "0.2", "key", key,
                    "sleep", "0.2", "mousemove", str(nx), str(ny)])

    def settle(self, seconds=2.5):
        """Time for the window to draw what changed (a full redraw is up to 1.2 s under llvmpipe)."""
        yield Sleep(seconds)


H = Harness()


def state():
    return runner().state


def scene():
    return bpy.context.scene


def job_over():
    return state().session is None and state().connecting is None


# -- scenarios ----------------------------------------------------------------------------------
def scenario_setup():
    H.begin("setup")
    setup_window()
    yield Sleep(3.0)
    pick_inhabit_tab()
    # Widen the right-hand column (Outliner, Sequencer) by dragging its border, as a user would.
    view = area_of("VIEW_3D")
    border, mid = view.x + view.width + 1, window().height - (view.y + view.height // 2)
    yield Proc(["xdotool", "mousemove", str(border), str(mid), "sleep", "0.3", "mousedown", "1", "sleep", "0.3",
                "mousemove", str(border - 200), str(mid), "sleep", "0.3", "mousemove", str(border - 420), str(mid),
                "sleep", "0.3", "mouseup", "1"])
    yield Sleep(2.0)
    win = window()
    H.measure("window", [win.x, win.y, win.width, win.height])
    H.measure("sidebar", list(screen_box(region_of(area_of("VIEW_3D"), "UI"))))
    H.measure("sequencer", list(screen_box(region_of(area_of("SEQUENCE_EDITOR"), "WINDOW"))))
    yield from H.settle()
    for label, text in (("animate", ("Animate",)), ("cancel", ("Cancel",)), ("test", ("Test", "Connection"))):
        if label not in H.buttons:
            yield from H.locate(label, *text)
    # The mapping is a closed sub-panel: open it as a user would, by its header.
    if H.find(H.last_words, "Find", "Mapping") is None:
        at = H.find(H.last_words, "Bone", "Mapping")
        H.check("sub-panel header 'Bone Mapping' found", at is not None, H.panel_text()[:600])
        if at is not None:
            H.buttons["mapping_header"] = at
            yield from H.click("mapping_header")
            yield from H.settle()
    yield from H.locate("find_mapping", "Find", "Mapping")
    bpy.ops.wm.save_as_mainfile(filepath=CONFIG["ui_blend"], copy=True)
    # The window left alone: how often the probe fires when nothing is asked of Blender (the baseline
    # for every gap measured later, on this machine at this moment).
    yield Sleep(1.0)
    t0 = time.perf_counter()
    yield Sleep(5.0)
    H.measure("idle_largest_gap_s", round(PROBE.largest_gap(t0, time.perf_counter()), 3))


def scenario_connect():
    H.begin("connect")
    yield from H.press("test", "Test", "Connection")
    ok = yield Until(lambda: state().connecting is None and state().server_status.startswith("connected"), 20)
    H.check("Test Connection reaches the server", ok, f"status {state().server_status!r}, "
            f"error {state().last_error!r}")
    yield from H.settle()
    yield from H.read_panel("connected")
    H.check("panel shows the new status", "connected" in H.panel_text().lower(), H.panel_text()[:600])
    yield from H.press("find_mapping", "Find", "Mapping")
    ok = yield Until(lambda: bool(scene().inhabit.mapping_summary), 10)
    H.check("Find Mapping fills the mapping", ok, scene().inhabit.mapping_summary)


def _run_job(name, *, expect_frames):
    """Click Animate with the panel's defaults and watch the job to its end."""
    before = scene_settings(scene())
    seq_area = area_of("SEQUENCE_EDITOR")
    seq_box = screen_box(region_of(seq_area, "WINDOW"))
    png = yield from H.screenshot("before")
    seq_before = yield from H.crop_pixels(png, seq_box)
    ticks = []
    run_mod = runner()
    original_tick = run_mod._tick

    per_frame = []  # seconds per exported frame in each tick that exported: one frame's export

    def timed_tick(*args, **kwargs):  # the add-on's own timer, timed: its longest call is one batch's export
        t = time.perf_counter()
        session = state().session
        exported = session.job.progress.exported if session is not None else 0
        try:
            return original_tick(*args, **kwargs)
        finally:
            ticks.append(time.perf_counter() - t)
            n = (session.job.progress.exported - exported) if session is not None else 0
            if n > 0:
                per_frame.append(ticks[-1] / n)
    run_mod._tick = timed_tick
    original_finish, finished_at = run_mod._finish, []

    def timed_finish(*args, **kwargs):  # when the add-on ended the job (settings back, result in the panel)
        try:
            return original_finish(*args, **kwargs)
        finally:
            finished_at.append(time.perf_counter())
    run_mod._finish = timed_finish
    try:
        t0 = yield from H.click("animate")
        phases = []

        def started_yet():
            what = "connecting" if state().connecting is not None else "session" if state().session else "idle"
            if not phases or phases[-1][1] != what:
                phases.append((round(time.perf_counter() - t0, 2), what))
            return state().session is not None or bool(finished_at) or state().last_error
        # A small job on a local server may start and end in two of Blender's steps, before this timer
        # runs again after the click: the add-on's own finish says it ran.
        started = yield Until(started_yet, 30)
        H.check("Animate starts a job", started and (state().session is not None or bool(finished_at)),
                state().last_error)
        if state().session is None and not finished_at:
            return before, None
        shot_mid = False
        while state().session is not None:
            received = state().session.job.progress.received if state().session else 0
            text = state().session.job.progress.text()
            if not phases or phases[-1][1] != text:
                phases.append((round(time.perf_counter() - t0, 2), text))
            if not shot_mid and received >= 2:
                shot_mid = True
                yield from H.screenshot("running")
            yield Sleep(TICK_S)
            if time.perf_counter() - t0 > 300:
                break
        t1 = finished_at[0] if finished_at else time.perf_counter()
    finally:
        run_mod._tick = original_tick
        run_mod._finish = original_finish
    H.measure("job_s", round(t1 - t0, 3))
    H.measure("largest_gap_s", round(PROBE.largest_gap(t0, t1), 3))
    H.measure("longest_tick_s", round(max(ticks, default=0.0), 3))
    H.measure("frame_export_s", round(max(per_frame, default=0.0), 3))
    H.current["gaps"] = PROBE.gaps(t0, t1)
    H.current["phases"] = phases
    # The add-on's own account of its main-thread steps in Animate (operator, then opening the session).
    H.current["animate_timings"] = {k: round(v, 3) for k, v in dict(getattr(state(), "timings", {})).items()}
    H.check("job ends with a result", bool(state().last_result) and not state().last_error,
            f"result {state().last_result!r} error {state().last_error!r}")
    take = state().take_dir
    frames = sorted(f for f in os.listdir(take) if f.endswith(".png")) if take and os.path.isdir(take) else []
    H.check(f"{expect_frames} frames back", len(frames) == expect_frames, f"{len(frames)} in {take!r}")
    H.check("every scene setting restored", not differences(before, scene_settings(scene())),
            "; ".join(differences(before, scene_settings(scene()))[:20]))
    return before, (seq_area, seq_box, seq_before)


def scenario_defaults():
    H.begin("defaults")
    H.check("Denoise on by default", scene().inhabit.denoise, "the panel's default changed")
    _before, seq = yield from _run_job("defaults", expect_frames=CONFIG["frames"])
    if seq is None:
        return
    notes = " ".join(state().notes)
    H.check("a note says the denoiser fell back", "denois" in notes.lower() or "OpenImageDenoise" in notes,
            f"notes {state().notes!r}")
    H.check("Denoise fallback gave no traceback error", not state().last_error, state().last_error)
    yield from H.settle()
    yield from H.read_panel("done")
    H.check("panel shows the result", "frames" in H.panel_text().lower(), H.panel_text()[:600])
    compat = addon_module("compat")
    seq_scene = compat.sequencer_scene(bpy.context)
    strips = [] if seq_scene is None or seq_scene.sequence_editor is None else \
        [s.name for s in compat.strips_all(seq_scene.sequence_editor)] if hasattr(compat, "strips_all") else \
        [s.name for s in getattr(seq_scene.sequence_editor, "strips_all",
                                 getattr(seq_scene.sequence_editor, "sequences_all", []))]
    H.check("the Sequencer editor's scene holds the strip", bool(strips), f"scene {seq_scene!r}")
    seq_area, seq_box, seq_before = seq
    yield from H.key_over(seq_area, "Home")  # View All, as a user looks for the new strip
    yield from H.settle()
    png = yield from H.screenshot("sequencer")
    after = yield from H.crop_pixels(png, seq_box)
    theme = bpy.context.preferences.themes[0].sequence_editor
    colour = [round(c * 255) for c in theme.image_strip[:3]]
    near = abs(after.astype(int) - colour).max(axis=2) < 24
    was = abs(seq_before.astype(int) - colour).max(axis=2) < 24
    strip_px = int(near.sum() - was.sum())
    H.measure("strip_pixels", strip_px)
    H.check("the strip is drawn in the Sequencer editor", strip_px > 150,
            f"{strip_px} more pixels of the image-strip colour {colour} than before")


def scenario_no_reference():
    H.begin("no-reference")
    p = scene().inhabit
    saved, p.reference_path = p.reference_path, ""
    before = scene_settings(scene())
    t0 = yield from H.click("animate")
    yield Until(lambda: job_over() and bool(state().last_error), 20)
    H.measure("animate_gap_s", round(PROBE.largest_gap(t0, time.perf_counter()), 3))
    H.check("one sentence names the reference", "reference" in state().last_error.lower()
            and "Traceback" not in state().last_error, state().last_error)
    yield from H.settle()
    yield from H.read_panel("error")
    H.check("panel shows the error", "reference" in H.panel_text().lower(), H.panel_text()[:600])
    H.check("settings unchanged", not differences(before, scene_settings(scene())),
            "; ".join(differences(before, scene_settings(scene()))[:20]))
    p.reference_path = saved


def scenario_dead_server():
    H.begin("dead-server")
    p = scene().inhabit
    saved, p.server = p.server, CONFIG["dead_server"]
    before = scene_settings(scene())
    t0 = yield from H.press("test", "Test", "Connection")
    ok = yield Until(lambda: state().connecting is None and bool(state().last_error), 30)
    t1 = time.perf_counter()
    H.measure("test_connection_gap_s", round(PROBE.largest_gap(t0, t1), 3))
    H.check("Test Connection says the server is not answering", ok and "Traceback" not in state().last_error,
            state().last_error)
    H.check(f"the window kept drawing while connecting (gap < {FREEZE_S} s)", PROBE.largest_gap(t0, t1) < FREEZE_S,
            f"{PROBE.largest_gap(t0, t1):.2f} s")
    t0 = yield from H.click("animate")
    yield Sleep(0.5)
    ok = yield Until(lambda: job_over() and bool(state().last_error), 30)
    t1 = time.perf_counter()
    H.measure("animate_gap_s", round(PROBE.largest_gap(t0, t1), 3))
    H.current["gaps"] = PROBE.gaps(t0, t1)
    H.check("Animate against a dead address ends in one sentence", ok and "Traceback" not in state().last_error,
            state().last_error)
    H.check(f"the window kept drawing during Animate's connection (gap < {FREEZE_S} s)",
            PROBE.largest_gap(t0, t1) < FREEZE_S,
            f"{PROBE.largest_gap(t0, t1):.2f} s")
    yield from H.settle()
    yield from H.read_panel("dead-server")
    H.check("panel shows the error", "server" in H.panel_text().lower() or "answer" in H.panel_text().lower(),
            H.panel_text()[:600])
    H.check("settings unchanged", not differences(before, scene_settings(scene())),
            "; ".join(differences(before, scene_settings(scene()))[:20]))
    p.server = saved


def long_shot():
    """Cancel and file loads land mid-job only if the job is long enough: 240 frames (a batch of cheap
    frames is exported per step, so 60 could end before the click is read)."""
    p = scene().inhabit
    p.use_scene_range, p.frame_start, p.frame_end = False, 1, 240


def scenario_cancel():
    H.begin("cancel")
    long_shot()
    before = scene_settings(scene())
    yield from H.click("animate")
    ok = yield Until(lambda: state().session is not None and state().session.job.progress.received >= 1, 60)
    H.check("job running with frames", ok, state().last_error)
    yield from H.screenshot("running")
    PROBE.session_ended = 0.0
    run_mod = runner()
    original_cancel, calls = run_mod.cancel, []

    def timed_cancel():  # the add-on's cancel, timed: what the button does once Blender has read the click
        calls.append(time.perf_counter())
        try:
            return original_cancel()
        finally:
            calls.append(time.perf_counter())
    run_mod.cancel = timed_cancel
    try:
        t0 = yield from H.click("cancel")
        ok = yield Until(lambda: state().session is None, 30)
    finally:
        run_mod.cancel = original_cancel
    took = (PROBE.session_ended or time.perf_counter()) - t0
    PROBE.session_ended = None
    H.measure("cancel_s", round(took, 3))
    if len(calls) >= 2:
        H.measure("click_read_s", round(calls[0] - t0, 3))
        H.measure("cancel_call_s", round(calls[1] - calls[0], 3))
    H.check("Cancel ends the job within a second once Blender reads the click", ok and len(calls) >= 2
            and calls[1] - calls[0] < 1.0 and state().session is None,
            f"{took:.2f} s from the click to the job ending; cancel() calls {calls}")
    H.check("panel result says cancelled, frames kept", "cancel" in state().last_result.lower(),
            f"result {state().last_result!r} error {state().last_error!r}")
    take = state().take_dir
    H.check("frames received so far are kept", bool(take) and os.path.isdir(take) and any(
        f.endswith(".png") for f in os.listdir(take)), take)
    H.check("every scene setting restored", not differences(before, scene_settings(scene())),
            "; ".join(differences(before, scene_settings(scene()))[:20]))
    scene().inhabit.use_scene_range = True
    yield from H.settle()
    yield from H.read_panel("cancelled")
    H.check("panel shows the cancellation", "cancel" in H.panel_text().lower().replace("cancel ", "", 1),
            H.panel_text()[:600])


def scenario_load_mid_job():
    H.begin("load-mid-job")
    long_shot()
    yield from H.click("animate")
    ok = yield Until(lambda: state().session is not None and state().session.job.progress.received >= 1, 60)
    H.check("job running with frames", ok, state().last_error)
    bpy.ops.wm.open_mainfile(filepath=CONFIG["ui_blend"])
    yield Sleep(0.5)
    H.check("the job stopped with the load", state().session is None, "a session is still held")
    H.check("one sentence says why", "loaded" in state().last_error.lower(), state().last_error)
    take = state().take_dir
    H.check("frames received so far are kept", bool(take) and os.path.isdir(take), take)
    yield from H.settle(3.0)
    yield from H.read_panel("after-load")
    H.check("the new file's panel shows the sentence", "loaded" in H.panel_text().lower(), H.panel_text()[:600])


def scenario_bench():
    """The benchmark's GUI side: the same shot, several times, Denoise as the panel has it."""
    for i in range(CONFIG.get("bench_runs", 3)):
        H.begin(f"bench-{i + 1}")
        yield from _run_job("bench", expect_frames=CONFIG["frames"])


SCENARIOS = {"setup": scenario_setup, "connect": scenario_connect, "defaults": scenario_defaults,
             "no-reference": scenario_no_reference, "dead-server": scenario_dead_server,
             "cancel": scenario_cancel, "load-mid-job": scenario_load_mid_job, "bench": scenario_bench}


def main():
    for name in ["setup"] + CONFIG["scenarios"]:
        try:
            yield from SCENARIOS[name]()
        except Exception:
            if H.current is None or not H.current["name"].startswith(name):
                H.begin(name)
            H.check("scenario ran without an exception", False, traceback.format_exc())
        if name == "setup" and not all(c["ok"] for c in H.current["checks"]):
            break  # no buttons found: nothing else can be clicked


class Driver:
    def __init__(self, gen):
        self.gen, self.waiting = gen, None

    def __call__(self):
        try:
            if self.waiting is not None and not self.waiting.ready():
                return TICK_S
            value = self.waiting.value if self.waiting is not None else None
            self.waiting = self.gen.send(value)
        except StopIteration:
            self.done()
            return None
        except Exception:
            H.report["crash"] = traceback.format_exc()
            self.done()
            return None
        return TICK_S

    def done(self):
        with open(os.path.join(OUT, "report.json"), "w") as f:
            json.dump(H.report, f, indent=1)
        print("INHABIT-GUI report written", flush=True)
        bpy.app.timers.register(lambda: bpy.ops.wm.quit_blender() and None, first_interval=0.5)


bpy.app.timers.register(PROBE, first_interval=PROBE_S, persistent=True)
bpy.app.timers.register(Driver(main()), first_interval=2.0, persistent=True)
