"""What one shot asks for, and the checks that need no Blender (bpy-free).

The GUI builds ShotSettings from its scene properties, ``inhabit render`` and
``inhabit demo`` from their arguments; both then go through the same
``validate_*`` checks, so every path fails with the same sentence.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from . import conventions, protocol


class SetupError(ValueError):
    """Bad input found before any long work: one sentence naming problem and fix."""

    def __init__(self, field_name: str, message: str):
        super().__init__(message)
        self.field = field_name
        self.message = message


@dataclass
class ShotSettings:
    armature: str
    reference_path: str
    frame_start: int
    frame_end: int
    width: int
    height: int
    output_dir: str
    body: str | None = None                 # mesh (+ children) or collection; None -> what the armature drives
    objects_collection: str | None = None   # objects the character interacts with
    reference_keypoints_path: str | None = None  # .npy float32 [K, 4] or .json list
    engine: str = "preview"
    params: dict = field(default_factory=dict)
    seed: int = 0
    channel: int | None = None              # None -> first free above existing strips
    server: str = protocol.DEFAULT_ADDRESS
    keypoint_map: dict | None = None        # user overrides, see core.keypoint_map
    # Environment pass: Cycles samples and OpenImageDenoise (fast prefilter). At 512 px
    # 2 + OIDN scored 43 dB against a 256-sample render in a quarter of the time of
    # 16 samples without (40 dB); the table is in bench/RESULTS.md (export).
    samples: int = 2
    denoise: bool = True
    name: str = ""                          # shot name (default: the scene's)
    curve_server_key: str | None = None     # the server's public key file (CurveZMQ, off-box servers)
    curve_client_key: str | None = None     # this client's .key_secret file

    @property
    def frame_count(self) -> int:
        return self.frame_end - self.frame_start + 1


def validate_shot(s: ShotSettings, limits=None) -> None:
    """Checks that need only the settings and the file system (limits: the server's, else the defaults)."""
    if not s.armature:
        raise SetupError("armature", "No armature chosen: pick the armature that drives the character "
                                     "in the Inhabit panel.")
    if s.frame_end < s.frame_start:
        raise SetupError("frame_end", f"Frame range {s.frame_start}-{s.frame_end} is empty or reversed: "
                                      "set an end frame at or after the start frame.")
    if s.width < 8 or s.height < 8:
        raise SetupError("resolution", f"Resolution {s.width}x{s.height} is too small: use at least 8x8 pixels.")
    if s.width % 8 or s.height % 8:
        # Diffusion latents are 1/8 of the image; odd sizes would be cropped silently.
        raise SetupError("resolution", f"Resolution {s.width}x{s.height} is not a multiple of 8: "
                                       "round width and height to multiples of 8.")
    check_limits(s, limits)
    validate_reference_file(s.reference_path)
    validate_output_dir(s.output_dir)
    if s.samples < 1:
        raise SetupError("samples", f"Samples must be at least 1, got {s.samples}.")


def check_limits(s: ShotSettings, limits=None) -> None:
    """Frame count and resolution against a server's limits (the protocol's defaults when None)."""
    limits = dict(protocol.DEFAULT_LIMITS, **(limits or {}))
    if s.frame_count > limits["max_frames"]:
        raise SetupError("frame_end", f"Frame range has {s.frame_count} frames but the server takes at most "
                                      f"{limits['max_frames']}: render the shot in parts.")
    if s.width > limits["max_width"] or s.height > limits["max_height"]:
        raise SetupError("resolution", f"Resolution {s.width}x{s.height} is over the server's limit of "
                                       f"{limits['max_width']}x{limits['max_height']}: lower the resolution.")


_IMAGE_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"BM", b"RIFF", b"II*\x00", b"MM\x00*", b"v/1\x01")


def validate_reference_file(path: str) -> None:
    if not path:
        raise SetupError("reference", "No reference image chosen: pick an image of the character in the Inhabit panel.")
    if not os.path.isfile(path):
        raise SetupError("reference", f"Reference image {path!r} does not exist: choose an existing image file.")
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise SetupError("reference", f"Reference image {path!r} cannot be read ({exc.strerror}): "
                                      "check its permissions.") from None
    if not any(head.startswith(m) for m in _IMAGE_MAGIC):
        raise SetupError("reference", f"Reference image {path!r} is not a PNG, JPEG, BMP, TIFF, WebP or EXR image: "
                                      "export the reference as PNG.")


def validate_output_dir(path: str) -> None:
    if not path:
        raise SetupError("output_dir", "No output folder set: choose where the frames are written.")
    probe_dir = os.path.abspath(path)
    while not os.path.exists(probe_dir):  # will be created: check the nearest existing parent
        probe_dir = os.path.dirname(probe_dir)
    problem = None
    if not os.path.isdir(probe_dir):
        problem = f"{probe_dir!r} is a file"
    else:
        # A real write, not os.access: root, read-only mounts and ACLs all answer truthfully.
        import tempfile
        try:
            with tempfile.TemporaryFile(dir=probe_dir):
                pass
        except OSError as exc:
            problem = exc.strerror or str(exc)
    if problem:
        raise SetupError("output_dir", f"Output folder {path!r} is not writable ({problem}): "
                                       "choose a folder you can write to.")


def validate_against_server(s: ShotSettings, info: dict) -> dict:
    """Check engine, params and resolution against a server's INFO; return the
    full params dict (defaults filled) to submit."""
    engines = {e.get("name"): e for e in info.get("engines", []) if isinstance(e, dict)}
    if s.engine not in engines:
        raise SetupError("engine", f"The server has no engine {s.engine!r}; it offers "
                         f"{sorted(str(n) for n in engines)}: pick one of those.")
    check_limits(s, info.get("limits"))
    if engines[s.engine].get("needs_reference_keypoints") and not s.reference_keypoints_path:
        raise SetupError("reference_keypoints", f"Engine {s.engine!r} needs the reference image's keypoints: give "
                                                f"a .npy or .json [{conventions.NUM_KEYPOINTS}, 4] array, x and y in "
                                                "reference-image pixels (--reference-keypoints FILE, or Reference "
                                                "Pose in the panel).")
    specs = [protocol.ParamSpec.from_json(p) for p in engines[s.engine].get("params", [])]
    given = dict(s.params)
    if any(p.name == "seed" for p in specs):
        given.setdefault("seed", s.seed)
    try:
        return protocol.validate_params(specs, given)
    except protocol.ProtocolError as exc:
        raise SetupError(exc.field or "params", f"Engine parameter problem: {exc.message}.") from None
