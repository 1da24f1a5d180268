"""Results on the Video Sequencer: one image strip per take.

Strips appear *progressively*: the strip is created with the first frame that
arrives and grows as the following frames land (in order; a frame that arrives
early waits on disk until the gap before it is filled).
"""
from __future__ import annotations

import os

from . import compat


def first_free_channel(scene) -> int:
    """The channel just above every existing strip (1 when there are none)."""
    se = scene.sequence_editor
    if se is None:
        return 1
    channels = [s.channel for s in compat.strips_all(se)]
    return max(channels, default=0) + 1


class ProgressiveStrip:
    """An image strip that grows frame by frame. Main thread only (bpy)."""

    def __init__(self, scene, name: str, frame_start: int, channel: int):
        self.scene = scene
        self.name = name
        self.frame_start = frame_start
        self.channel = channel
        self.strip = None
        self._ready: dict[int, str] = {}   # index -> file path, waiting for earlier frames
        self.length = 0

    def add(self, index: int, path: str) -> None:
        self._ready[index] = path
        while self.length in self._ready:
            self._append(self._ready.pop(self.length))

    def _append(self, path: str) -> None:
        if self.strip is None:
            se = self.scene.sequence_editor or self.scene.sequence_editor_create()
            self.strip = compat.strips(se).new_image(name=self.name, filepath=path, channel=self.channel,
                                                     frame_start=self.frame_start, fit_method="ORIGINAL")
            # new_image may pick another name if taken; keep what Blender chose.
            self.name = self.strip.name
        else:
            self.strip.elements.append(os.path.basename(path))
            # Elements do not move the strip's end on their own in every version.
            want_end = self.frame_start + len(self.strip.elements)
            end = compat.strip_end_attr(self.strip)
            if getattr(self.strip, end) != want_end:
                setattr(self.strip, end, want_end)
        self.length += 1
