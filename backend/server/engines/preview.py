"""The ``preview`` engine: a classical, CPU-only, deterministic baseline.

It poses the reference image onto each frame's skeleton by 2D linear-blend
skinning and composites it into the environment with Blender's exact depth,
so an animator sees the character in the shot within seconds, before the
diffusion engine is worth starting. No weights, no torch.
"""
from __future__ import annotations

from models.warp import detector
from blender_addon.core.protocol import ParamSpec

from .base import Engine, JobContext, AdmittedJob



class PreviewEngine(Engine):
    name = "preview"
    description = ("CPU preview: the reference warped onto the skeleton by 2D skinning and "
                   "composited with scene depth; no weights, tens of ms per frame")
    required_inputs = ("environment", "keypoints")
    optional_inputs = ("character_mask", "character_depth", "scene_depth", "object_labels")
    needs_reference = True
    # Keypoints of the reference pose are needed unless the optional pose
    # detector is installed on the server (find_spec looks without importing).
    needs_reference_keypoints = not detector.installed()
    reference_keypoints_hint = (f"(or `pip install {detector.MEDIAPIPE_PIN}` on the server "
                                "for the optional pose detector)")
    params = (
        ParamSpec("feather", "float", 1.5, 0.0, 20.0, doc="edge softening of the character matte, px"),
        ParamSpec("match_brightness", "bool", True,
                  doc="nudge the character's exposure toward the environment around it"),
        ParamSpec("matte_threshold", "float", 40.0, 1.0, 255.0,
                  doc="RGB distance from the border colour that counts as character (RGB references)"),
        ParamSpec("mask_margin", "int", 8, -1, 256,
                  doc="px around the character mask the warped reference may cover; -1 = no limit"),
    )
    input_window = 2
    streaming = True

    def validate(self, job: AdmittedJob) -> None:
        """Cheap checks only: this runs on the server's socket thread. Matting,
        pose detection and the rig are built by ``run`` on the worker."""
        from models.warp.reference import check_reference_image, check_reference_keypoints, require_pose_detector
        check_reference_image(job.reference)
        assert job.reference is not None   # check_reference_image refuses a missing one
        if job.reference_keypoints is not None:
            check_reference_keypoints(job.reference_keypoints, job.reference.shape[0], job.reference.shape[1])
        elif self.needs_reference_keypoints:
            require_pose_detector()  # raises the sentence saying what to send or install

    @staticmethod
    def _reference(job: AdmittedJob):
        from models.warp.reference import prepare_reference
        from models.warp.skinning import ReferenceRig
        ref = prepare_reference(job.reference, job.reference_keypoints,
                                matte_threshold=float(job.params.get("matte_threshold", 40.0)))
        return ReferenceRig(ref.rgb_premult, ref.alpha, ref.keypoints)

    def run(self, ctx: JobContext) -> None:
        from models.warp.frame import CompositeOptions, render_frame

        job = ctx.job
        ref = self._reference(job)
        p = job.params
        opts = CompositeOptions(feather=float(p.get("feather", 1.5)),
                                match_brightness=bool(p.get("match_brightness", True)),
                                mask_margin=int(p.get("mask_margin", 8)))
        for i in range(job.frames):
            ctx.check_cancelled()
            inputs = ctx.frame(i)  # checked by the server against required_inputs
            rgba, matte = render_frame(ref, inputs, opts, index=i)
            ctx.emit(i, rgba, matte)
            ctx.release(i + 1)
            ctx.progress("generating", (i + 1) / job.frames, frame=i, step=i + 1, steps=job.frames)
