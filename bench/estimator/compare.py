"""Inhabit's keypoints against BlazePose's landmarks (numpy only).

Offsets are Inhabit's point minus the estimator's, in torso lengths (the
estimator's shoulder midpoint to hip midpoint in that image), so the numbers
do not depend on image size. BlazePose often reads a faceless figure as seen
from behind; each left/right chain (arm, leg, face) is therefore compared in
whichever side assignment fits it best, as a person matching the two
skeletons by eye would.
"""
from __future__ import annotations

import json
import os
import subprocess

import numpy as np

from blender_addon.core import conventions

# BlazePose's 33 landmarks by the names of ours (toes: the foot's tip, its "foot index").
BLAZEPOSE = {
    "nose": 0, "left_eye": 2, "right_eye": 5, "left_ear": 7, "right_ear": 8,
    "left_shoulder": 11, "right_shoulder": 12, "left_elbow": 13, "right_elbow": 14,
    "left_wrist": 15, "right_wrist": 16, "left_hip": 23, "right_hip": 24, "left_knee": 25, "right_knee": 26,
    "left_ankle": 27, "right_ankle": 28, "left_toe": 31, "right_toe": 32,
}
NAMES = conventions.KEYPOINT_NAMES + conventions.TOE_KEYPOINT_NAMES
CHAINS = (("shoulder", "elbow", "wrist"), ("hip", "knee", "ankle", "toe"), ("eye", "ear"))
JOINTS = ("neck", "shoulders", "elbows", "wrists", "hips", "knees", "ankles", "toes", "nose", "eyes", "ears")
# Targets (median offset, torso lengths); hips are reported, not judged (BlazePose's hips are not COCO's).
TARGETS = {**{j: 0.05 for j in ("neck", "shoulders", "elbows", "wrists", "knees", "ankles", "nose", "eyes")},
           "ears": 0.08, "toes": 0.08}
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
POSE_PYTHON = os.path.join(REPO, ".venv-pose", "bin", "python")


def run_blazepose(paths: list[str], python: str = POSE_PYTHON) -> dict:
    """{path: [33, 3] array or None}, from the estimator's own venv (a subprocess)."""
    if not os.path.exists(python):
        raise FileNotFoundError(f"{python} is missing: build the estimator's venv with `make pose-venv`")
    script = os.path.join(REPO, "bench", "estimator", "blazepose_landmarks.py")
    out = subprocess.run([python, script, *paths], capture_output=True, text=True, timeout=600,
                         env={**os.environ, "PYTHONPATH": "", "GLOG_minloglevel": "2"})
    if out.returncode != 0:
        raise RuntimeError(f"BlazePose failed: {out.stderr[-2000:]}")
    return {k: (None if v is None else np.asarray(v, float)) for k, v in json.loads(out.stdout).items()}


def estimator_points(landmarks: np.ndarray) -> dict:
    """Our names -> estimator (x, y); the neck as the midpoint of its shoulders."""
    pts = {k: landmarks[i, :2] for k, i in BLAZEPOSE.items()}
    pts["neck"] = (pts["left_shoulder"] + pts["right_shoulder"]) / 2
    return pts


def offsets(ours: np.ndarray, landmarks: np.ndarray) -> dict:
    """{keypoint: offset in torso lengths} for one image; points absent on our side are left out.
    ``ours``: [20, 4] in NAMES order."""
    est = estimator_points(landmarks)
    torso = float(np.linalg.norm(est["neck"] - (est["left_hip"] + est["right_hip"]) / 2))
    mine = {k: ours[i, :2] for i, k in enumerate(NAMES) if ours[i, 3] > 0}
    out = {}
    if "neck" in mine:
        out["neck"] = float(np.linalg.norm(mine["neck"] - est["neck"])) / torso
    for chain in CHAINS:
        best = None
        for swap in (False, True):
            d = {}
            for part in chain:
                for side, other in (("left", "right"), ("right", "left")):
                    k = f"{side}_{part}"
                    if k in mine:
                        e = est[f"{other if swap else side}_{part}"]
                        d[k] = float(np.linalg.norm(mine[k] - e)) / torso
            if d and (best is None or sum(d.values()) < sum(best.values())):
                best = d
        out.update(best or {})
    if "nose" in mine:
        out["nose"] = float(np.linalg.norm(mine["nose"] - est["nose"])) / torso
    return out


def joint_group(name: str) -> str:
    """'left_elbow' -> 'elbows'; 'neck' and 'nose' stay."""
    if "_" not in name:
        return name
    return name.split("_", 1)[1] + "s"


def medians(records: list[dict], key: str, found: dict) -> dict:
    """{joint group: median offset} over every image BlazePose found a person in."""
    groups: dict = {g: [] for g in JOINTS}
    for r in records:
        lm = found.get(r["image"])
        if lm is None:
            continue
        for k, v in offsets(r[key], lm).items():
            groups[joint_group(k)].append(v)
    return {g: (float(np.median(v)) if v else float("nan")) for g, v in groups.items()}
