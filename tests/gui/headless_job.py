"""The benchmark's headless side: the same shot, with the same add-on in the same Blender, in
background mode (no window, so nothing draws): Animate, then the add-on's own job tick in a loop.

    blender -b shot.blend --python headless_job.py -- RUNS OUT.json
"""
import json
import sys
import time

import bpy

runs, out = sys.argv[sys.argv.index("--") + 1:][:2]
runner = next(m for n, m in sys.modules.items() if n.startswith("bl_ext.") and n.endswith("inhabit.ui.runner"))
times, frames = [], []
for _ in range(int(runs)):
    t0 = time.perf_counter()
    bpy.ops.inhabit.animate()
    while runner._tick() is not None:
        time.sleep(0.005)
    times.append(time.perf_counter() - t0)
    frames.append(runner.state.last_result or runner.state.last_error)
json.dump({"blender": bpy.app.version_string, "job_s": times, "results": frames}, open(out, "w"), indent=1)
print("INHABIT-HEADLESS", times, frames[-1], flush=True)
