"""The on-disk layout of an Inhabit training dataset (bpy-free, numpy only).

A dataset is a folder::

    manifest.json              generator version, seed, sizes, splits by clip
    clips/clip_00000/          one folder per clip, complete or absent
        gt.npy                 uint8   [F, H, W, 3]  frames with the character (ground truth)
        environment.npy        uint8   [F, H, W, 3]  the same frames, character hidden
        character_mask.npy     uint8   [F, H, W]     exact silhouette (0/255)
        character_depth.npy    float32 [F, H, W]     planar depth of the body (NO_SURFACE_DEPTH elsewhere)
        scene_depth.npy        float32 [F, H, W]     planar depth of the environment
        object_labels.npy      uint8   [F, H, W]     1..N = the clip's tagged props (meta.objects order)
        keypoints.npy          float32 [F, 18, 4]    x, y, depth, visibility (the protocol's layout)
        hand_keypoints.npy     float32 [F, 42, 4]    the protocol's optional frame inputs, as a shot sends them
        toe_keypoints.npy      float32 [F, 2, 4]
        face_box.npy           float32 [F, 5]
        reference.png          RGBA    the character alone, another pose and view, transparent background
        reference_keypoints.npy float32 [18, 4]
        meta.json              seed, objects, motion, camera; written last

Uncompressed ``.npy`` because they are byte-deterministic (npz stores zip
timestamps) and memory-map: a reader touches only the frames it samples
(docs/dataset.md has the measured read speeds). A clip is rendered into
``clips/.tmp-clip_N`` and renamed when complete, so a folder named
``clip_N`` is always whole and a killed run resumes by skipping those.
"""
from __future__ import annotations

import json
import os
import shutil

import numpy as np

GENERATOR_VERSION = 3   # 3: hand/toe keypoints and face box; keypoints where an estimator puts them
FORMAT = "inhabit-dataset"
ARRAYS = ("gt", "environment", "character_mask", "character_depth", "scene_depth", "object_labels", "keypoints",
          "hand_keypoints", "toe_keypoints", "face_box")
SPLITS = ("train", "val", "test")


class DatasetError(ValueError):
    """A dataset folder that cannot be used; the message is one sentence naming the fix."""


def clip_name(index: int) -> str:
    return f"clip_{index:05d}"


def clip_seed(seed: int, index: int) -> list[int]:
    """The seed sequence of one clip: independent of worker count and order."""
    return [int(seed), int(index)]


def split_clips(n: int, seed: int) -> dict:
    """Clip indices per split, 80/10/10 by a seeded permutation; at least one
    test clip (and one val clip) once there are 3 clips."""
    order = np.random.default_rng([int(seed), 7]).permutation(n).tolist()
    n_test = max(1, round(n * 0.1)) if n >= 2 else 0
    n_val = max(1, round(n * 0.1)) if n >= 3 else 0
    return {"test": sorted(order[:n_test]), "val": sorted(order[n_test:n_test + n_val]),
            "train": sorted(order[n_test + n_val:])}


def manifest_for(*, clips: int, frames: int, size: int, seed: int, samples: int,
                 motions: list | None = None, motion_share: float = 0.5) -> dict:
    """``motions``: backend.training.data.motions.list_motions of --motions (recorded only when given)."""
    m = {"format": FORMAT, "generator_version": GENERATOR_VERSION, "seed": seed, "clips": clips,
         "frames": frames, "size": size, "samples": samples, "splits": split_clips(clips, seed)}
    if motions:
        m.update(motions=motions, motion_share=motion_share)
    return m


def write_json_atomic(path: str, data) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(data, fh, indent=1, sort_keys=True)
        fh.write("\n")
    os.replace(tmp, path)


def read_manifest(root: str) -> dict:
    """The manifest of ``root``, or DatasetError saying what is wrong with the folder."""
    if not os.path.isdir(root):
        raise DatasetError(f"--data folder {root!r} does not exist: pass a folder made by `inhabit dataset make`.")
    path = os.path.join(root, "manifest.json")
    if not os.path.isfile(path):
        what = "is empty" if not os.listdir(root) else "has no manifest.json"
        raise DatasetError(f"--data folder {root!r} {what}: pass a folder made by `inhabit dataset make`.")
    try:
        with open(path) as fh:
            m = json.load(fh)
    except (OSError, ValueError) as exc:
        raise DatasetError(f"--data folder {root!r} has an unreadable manifest.json ({exc}): "
                           "make the dataset again.") from None
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        raise DatasetError(f"--data folder {root!r} is not an Inhabit dataset (manifest format "
                           f"{m.get('format') if isinstance(m, dict) else None!r}): pass a folder made by "
                           "`inhabit dataset make`.")
    if m.get("generator_version") != GENERATOR_VERSION:
        raise DatasetError(f"--data folder {root!r} was made by generator version {m.get('generator_version')}, "
                           f"this one reads version {GENERATOR_VERSION}: make the dataset again.")
    return m


def clip_dir(root: str, index: int) -> str:
    return os.path.join(root, "clips", clip_name(index))


def is_complete(root: str, index: int) -> bool:
    return os.path.isfile(os.path.join(clip_dir(root, index), "meta.json"))


def split_indices(root: str, manifest: dict, split: str) -> list[int]:
    """Complete clips of ``split``; DatasetError when there are none."""
    if split not in SPLITS:
        raise DatasetError(f"--split must be one of {', '.join(SPLITS)}, got {split!r}.")
    idx = [i for i in manifest["splits"].get(split, []) if is_complete(root, i)]
    if not idx:
        raise DatasetError(f"split {split!r} of {root!r} has no rendered clips: make more clips "
                           f"(--clips) or finish the dataset with `inhabit dataset make` on the same folder.")
    return idx


def commit_clip(root: str, index: int, arrays: dict, meta: dict, files: dict) -> str:
    """Write one clip into a temp folder and rename it into place (all or nothing).

    ``arrays``: the ARRAYS as numpy; ``files``: extra name -> bytes (reference.png...)."""
    final = clip_dir(root, index)
    tmp = os.path.join(root, "clips", ".tmp-" + clip_name(index))
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    for name in ARRAYS:
        np.save(os.path.join(tmp, name + ".npy"), np.ascontiguousarray(arrays[name]), allow_pickle=False)
    for name, data in files.items():
        if isinstance(data, np.ndarray):
            np.save(os.path.join(tmp, name), data, allow_pickle=False)
        else:
            with open(os.path.join(tmp, name), "wb") as fh:
                fh.write(data)
    write_json_atomic(os.path.join(tmp, "meta.json"), meta)
    shutil.rmtree(final, ignore_errors=True)
    os.rename(tmp, final)
    return final


def load_clip(root: str, index: int, mmap: bool = True) -> dict:
    """The clip's arrays (memory-mapped), meta and reference paths."""
    d = clip_dir(root, index)
    out = {name: np.load(os.path.join(d, name + ".npy"), mmap_mode="r" if mmap else None, allow_pickle=False)
           for name in ARRAYS}
    with open(os.path.join(d, "meta.json")) as fh:
        out["meta"] = json.load(fh)
    out["reference_path"] = os.path.join(d, "reference.png")
    out["reference_keypoints"] = np.load(os.path.join(d, "reference_keypoints.npy"), allow_pickle=False)
    return out
