"""Where arriving frames go: PNGs in the take folder + the progressive strip."""
from __future__ import annotations

import os

import numpy as np

from .core import png, takes
from .vse import ProgressiveStrip, first_free_channel


class ResultSink:
    """Writes each RESULT to ``take_dir`` (atomically) and onto the sequencer.

    The target scene is the one recorded when the job was submitted, so the
    strip lands there even if the user switches scenes meanwhile.
    """

    def __init__(self, scene, *, take_dir: str, shot_name: str, frame_start: int, channel: int | None):
        self.scene = scene
        self.take_dir = take_dir
        self.frame_start = frame_start
        self.channel = channel if channel else first_free_channel(scene)
        self.strip = ProgressiveStrip(scene, takes.strip_name(shot_name, take_dir), frame_start, self.channel)
        self.frame_paths: dict[int, str] = {}
        os.makedirs(os.path.join(take_dir, "matte"), exist_ok=True)

    def __call__(self, index: int, rgba: np.ndarray, matte: np.ndarray | None) -> None:
        name = takes.frame_filename(self.frame_start + index)
        path = png.write_png_atomic(os.path.join(self.take_dir, name), np.asarray(rgba))
        if matte is not None:
            png.write_png_atomic(os.path.join(self.take_dir, "matte", name), np.asarray(matte))
        self.frame_paths[index] = path
        try:
            self.strip.add(index, path)
        except ReferenceError:
            pass  # the scene was deleted meanwhile: the frames stay on disk

    def keep(self, index: int, path: str) -> None:
        """A frame already on disk (``--resume``): onto the strip, not rewritten."""
        self.frame_paths[index] = path
        self.strip.add(index, path)

    def discard_if_empty(self) -> bool:
        """Remove the take folder when no frame ever arrived (a refused job), so
        failed attempts do not litter the output with empty takes."""
        if self.frame_paths:
            return False
        import shutil
        shutil.rmtree(self.take_dir, ignore_errors=True)
        return True

    @property
    def strip_name(self) -> str:
        return self.strip.name
