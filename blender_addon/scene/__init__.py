"""bpy layer: scene passes, keypoints, proxy body, per-frame export."""
