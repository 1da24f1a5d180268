"""One shot, resolved once: settings validated, scene checked, rig mapped.

Every step of a shot (the exporter, the session that builds the job, resume)
takes a ``ResolvedShot`` instead of re-deriving what it needs from the
settings, so the checks run once per shot and the shot's name, armature,
keypoint mapping and reference are decided in one place.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from .core.settings import ShotSettings, validate_against_server, validate_shot
from .scene.export import check_scene, load_reference


@dataclass(frozen=True)
class ResolvedShot:
    scene: object
    settings: ShotSettings
    armature: object
    mapping: object                      # core.keypoint_map result for the armature
    reference: np.ndarray | None = None  # RGBA of the reference image (None: an export-only shot)
    reference_keypoints: np.ndarray | None = None
    params: dict = field(default_factory=dict)   # engine params, defaults filled by the server's INFO
    info: dict | None = None             # the INFO the params were checked against

    @property
    def name(self) -> str:
        """The shot's name: the one the user gave, else the scene's."""
        return self.settings.name or self.scene.name  # type: ignore[attr-defined]

    def frames(self, start: int, end: int) -> "ResolvedShot":
        """The same shot limited to scene frames ``start..end`` (resume's runs), without re-checking."""
        return dataclasses.replace(self, settings=dataclasses.replace(self.settings, frame_start=start,
                                                                      frame_end=end))

    def against_server(self, info: dict) -> "ResolvedShot":
        """This shot with its engine params checked against a server's INFO (limits, engine, params)."""
        return dataclasses.replace(self, params=validate_against_server(self.settings, info), info=info)


def scene_shot(scene, settings: ShotSettings) -> ResolvedShot:
    """The scene checks and rig mapping alone: what an export needs (no reference, no server)."""
    armature, mapping = check_scene(scene, settings)
    return ResolvedShot(scene=scene, settings=settings, armature=armature, mapping=mapping)


def resolve_shot(scene, settings: ShotSettings) -> ResolvedShot:
    """Everything checkable before a server is reached: the settings, the scene, the reference."""
    validate_shot(settings)
    shot = scene_shot(scene, settings)
    reference, reference_kp = load_reference(settings)
    return dataclasses.replace(shot, reference=reference, reference_keypoints=reference_kp)
