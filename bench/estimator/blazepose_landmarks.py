"""BlazePose on image files, as an independent check of Inhabit's keypoints.

Runs in its own small venv (``make pose-venv``: mediapipe==0.10.14, which
bundles pose_landmark_full.tflite, so nothing is downloaded; its protobuf 4.x
and Python <= 3.12 must not constrain the main venv). Reads image paths as
command-line arguments, writes one JSON object to stdout: {path: [[x, y,
visibility] * 33] in pixels, or null when no person was found}.
"""
from __future__ import annotations

import json
import sys


def main(paths: list[str]) -> int:
    import cv2
    import mediapipe as mp

    out = {}
    with mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1) as pose:
        for path in paths:
            bgr = cv2.imread(path, cv2.IMREAD_COLOR)
            if bgr is None:
                print(f"cannot read {path!r}", file=sys.stderr)
                return 2
            h, w = bgr.shape[:2]
            res = pose.process(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            if res.pose_landmarks is None:
                out[path] = None
                continue
            out[path] = [[lm.x * w, lm.y * h, lm.visibility] for lm in res.pose_landmarks.landmark]
    json.dump(out, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
