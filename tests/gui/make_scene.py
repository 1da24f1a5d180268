"""Build the GUI test's shot inside the chroot's Blender (background) and save it as a .blend.

Run by tests/gui/harness.py as ``blender -b --python make_scene.py -- STAGE SERVER FRAMES SIZE``
with the add-on installed in that Blender's user folder, so ``scene.inhabit`` exists.
The scene is the suite's own (tests/blender_scene.py, staged with backend/blender/rig.py under
STAGE/src) so the window shows what the headless tests use; it is built by each Blender rather
than saved once because a file saved by 5.x does not open in 4.3.

The user's choices are the ones Animate changes (samples, post-processing, pass indices), so the
harness can see every one of them come back; the panel keeps its defaults (Denoise on).
"""
import json
import os
import sys

import bpy
import numpy as np

stage, server, frames, size = sys.argv[sys.argv.index("--") + 1:][:4]
sys.path.insert(0, os.path.join(stage, "src"))

from tests.blender_scene import build_scene  # noqa: E402  (staged above)

scene = build_scene(size=int(size), frames=int(frames), samples=4)
# build_scene starts from factory settings, which turns user extensions off: back on for scene.inhabit.
bpy.ops.preferences.addon_enable(module="bl_ext.user_default.inhabit")
scene.render.use_sequencer = scene.render.use_compositing = True
scene.cycles.use_denoising = False
for obj in scene.objects:
    obj.pass_index = 7

# The character's reference: a figure on a light card, saved next to the .blend with its keypoints
# (the preview engine needs both), named with the blend-relative // prefix the file browser writes.
W, H = 96, 128
JOINTS = {"nose": (0.5, 0.12), "neck": (0.5, 0.22), "right_shoulder": (0.38, 0.24), "left_shoulder": (0.62, 0.24),
          "right_elbow": (0.33, 0.4), "left_elbow": (0.67, 0.4), "right_wrist": (0.3, 0.55),
          "left_wrist": (0.7, 0.55), "right_hip": (0.43, 0.55), "left_hip": (0.57, 0.55),
          "right_knee": (0.43, 0.75), "left_knee": (0.57, 0.75), "right_ankle": (0.43, 0.95),
          "left_ankle": (0.57, 0.95)}
protocol = sys.modules["bl_ext.user_default.inhabit.core.protocol"]
rgba = np.empty((H, W, 4), np.float32)
rgba[:] = (0.85, 0.85, 0.8, 1.0)
yy, xx = np.mgrid[0:H, 0:W]
keypoints = [[0.0, 0.0, 0.0, 0.0] for _ in protocol.KEYPOINT_NAMES]
for name, (fx, fy) in JOINTS.items():
    x, y = fx * W, fy * H
    rgba[(xx - x) ** 2 + (yy - y) ** 2 < 36] = (0.6, 0.25, 0.2, 1.0)
    keypoints[protocol.KEYPOINT_NAMES.index(name)] = [x, y, 0.0, 1.0]
image = bpy.data.images.new("reference", W, H)
image.pixels.foreach_set(rgba[::-1].ravel())  # Blender's rows run bottom-up
image.filepath_raw = os.path.join(stage, "reference.png")
image.file_format = "PNG"
image.save()
bpy.data.images.remove(image)
with open(os.path.join(stage, "reference_keypoints.json"), "w") as f:
    json.dump(keypoints, f)

p = scene.inhabit
p.server = server
p.engine = "preview"
p.armature = bpy.data.objects["Rig"]
p.objects_collection = bpy.data.collections["Interactive"]
bpy.ops.wm.save_as_mainfile(filepath=os.path.join(stage, "shot.blend"))
# Paths relative to the saved file, as the file browser writes them.
scene.inhabit.reference_path = "//reference.png"
scene.inhabit.reference_keypoints_path = "//reference_keypoints.json"
scene.inhabit.output_dir = "//takes"
bpy.ops.wm.save_as_mainfile(filepath=os.path.join(stage, "shot.blend"))
print("INHABIT-SCENE-SAVED", os.path.join(stage, "shot.blend"))
