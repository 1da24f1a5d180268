"""Moore-AnimateAnyone checkpoints -> an Inhabit AA2 pipeline.

Moore's files are flat fp32 state dicts (see docs/model.md):
- ``denoising_unet.pth``: diffusers SD-1.5 ``UNet2DConditionModel`` names, no
  motion modules, 4-channel ``conv_in``;
- ``reference_unet.pth``: the same minus ``conv_norm_out.*`` / ``conv_out.*``;
- ``motion_module.pth``: AnimateDiff (mm_sd_v15_v2) naming;
- ``pose_guider.pth``: 16 keys, same names as our ``PoseGuider``.

Our denoising UNet is diffusers' ``UNetMotionModel``, whose spatial names
equal ``UNet2DConditionModel``'s, so only the motion-module names need
mapping. ``conv_in`` is widened 4 -> 9 with zero weights. Parts Moore never
trained (environment/mask input channels, depth modulation, object guider
and its blending) keep their neutral init and are listed in the report.

Only ``torch.load(weights_only=True)``: a checkpoint can never run code.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import torch

# AnimateDiff (original) -> diffusers UNetMotionModel name fragments.
_MOTION_RENAMES = (
    (".temporal_transformer.", "."),
    (".attention_blocks.0.pos_encoder.pe", ".pos_embed.pe"),
    (".attention_blocks.0.", ".attn1."),
    (".attention_blocks.1.", ".attn2."),
    (".norms.0.", ".norm1."),
    (".norms.1.", ".norm2."),
    (".ff_norm.", ".norm3."),
)
# Our motion blocks hold one sinusoidal table per transformer block; AnimateDiff
# keeps an identical copy in its second attention. The copy is dropped.
_DROPPED_MOTION = ".attention_blocks.1.pos_encoder.pe"


def motion_key(name: str) -> str | None:
    """AnimateDiff motion-module key -> our key (None: intentionally dropped)."""
    if name.endswith(_DROPPED_MOTION):
        return None
    for old, new in _MOTION_RENAMES:
        name = name.replace(old, new)
    return name


def group(keys) -> dict[str, int]:
    """Count keys per module ("down_blocks.1", "mid_block", "conv_in", ...)."""
    out: dict[str, int] = defaultdict(int)
    for k in keys:
        parts = k.split(".")
        out[".".join(parts[:2]) if parts[0].endswith("blocks") else parts[0]] += 1
    return dict(sorted(out.items()))


@dataclass
class ComponentReport:
    name: str
    loaded: int = 0
    missing: list = field(default_factory=list)
    unexpected: list = field(default_factory=list)
    mismatched: list = field(default_factory=list)   # (key, source shape, target shape)
    notes: list = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"{self.name}: {self.loaded} tensors loaded"]
        for note in self.notes:
            out.append(f"  note: {note}")
        for label, keys in (("missing (kept at init)", self.missing), ("unexpected (ignored)", self.unexpected)):
            if keys:
                out.append(f"  {label}: {len(keys)}")
                out.extend(f"    {mod}: {n}" for mod, n in group(keys).items())
        for k, a, b in self.mismatched:
            out.append(f"  shape mismatch (kept at init): {k} source {list(a)} target {list(b)}")
        return out


@dataclass
class ConversionReport:
    components: list = field(default_factory=list)
    neutral_init: list = field(default_factory=list)

    def text(self) -> str:
        lines = []
        for c in self.components:
            lines.extend(c.lines())
        lines.append("parts with no source weights, at their neutral init:")
        lines.extend(f"  {p}" for p in self.neutral_init)
        return "\n".join(lines)

    @property
    def ok(self) -> bool:
        return all(not c.mismatched for c in self.components)


# Prefixes that training wrappers put before every key: DataParallel / DDP
# (``module.``), Lightning-style holders (``model.``), torch.compile (``_orig_mod.``).
WRAPPER_PREFIXES = ("module.", "model.", "_orig_mod.")


def strip_wrapper_prefixes(sd: dict) -> dict:
    """Remove prefixes that every key shares (repeatedly: ``module._orig_mod.``)."""
    while sd:
        prefix = next((p for p in WRAPPER_PREFIXES if all(k.startswith(p) for k in sd)), None)
        if prefix is None:
            return sd
        sd = {k[len(prefix):]: v for k, v in sd.items()}
    return sd


def load_checkpoint(path, *, with_extras: bool = False):
    """A Moore ``.pth`` file as a flat state dict; never unpickles code.

    Memory-mapped (``mmap=True``): tensors are read from the file as they are
    used, so a 3 GB checkpoint costs no 3 GB of RAM up front. Wrapper prefixes
    are stripped. ``with_extras`` also returns the non-tensor entries of a
    wrapped checkpoint (e.g. a ``config`` dict beside its ``state_dict``)."""
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as exc:
        if "mmap" not in str(exc) and "zip" not in str(exc):
            raise
        sd = torch.load(path, map_location="cpu", weights_only=True)  # legacy (pre-zip) format
    extras = {}
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        extras = {k: v for k, v in sd.items() if k != "state_dict" and not isinstance(v, torch.Tensor)}
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ValueError(f"{path}: expected a flat state dict of tensors")
    sd = strip_wrapper_prefixes(sd)
    return (sd, extras) if with_extras else sd


def _load_into(module, source: dict, report: ComponentReport, *, widen_conv_in: bool = False,
               assign: bool = False) -> None:
    """``assign``: the module takes the source tensors themselves (memory-mapped,
    no copy) instead of copying them into its own freshly initialised ones."""
    target = module.state_dict()
    new = {}
    for k, v in source.items():
        if k not in target:
            report.unexpected.append(k)
            continue
        t = target[k]
        if v.shape != t.shape:
            if widen_conv_in and k == "conv_in.weight" and v.shape[1] < t.shape[1] and v.shape[0] == t.shape[0]:
                w = torch.zeros(t.shape, dtype=t.dtype, device="cpu" if t.is_meta else t.device)
                w[:, :v.shape[1]] = v.to(t.dtype)
                new[k] = w
                report.notes.append(f"conv_in widened {v.shape[1]} -> {t.shape[1]} input channels "
                                    f"(new channels zero: environment latent + mask)")
                continue
            report.mismatched.append((k, tuple(v.shape), tuple(t.shape)))
            continue
        new[k] = v.to(t.dtype)
    bad = {m[0] for m in report.mismatched}
    report.missing.extend(k for k in target if k not in new and k not in bad)
    report.loaded = len(new)
    module.load_state_dict(new, strict=False, assign=assign)


def convert(*, denoising_unet, reference_unet, pose_guider, unet_sd: dict, reference_sd: dict,
            pose_sd: dict | None, motion_sd: dict | None) -> ConversionReport:
    """Load Moore's state dicts into our (already built) modules, in place."""
    report = ConversionReport()
    report.components.append(convert_denoising(denoising_unet, unet_sd, motion_sd))
    report.components.append(convert_reference(reference_unet, reference_sd, unet_sd))
    report.components.append(convert_pose(pose_guider, pose_sd))
    report.neutral_init = list(NEUTRAL_INIT)
    return report


NEUTRAL_INIT = (
    "denoising_unet.conv_in[:, 4:9] (environment latent + mask): zero weights",
    "depth_modulation: zero-init attention output and Conv3D (identity)",
    "object_guider: blend gates closed (bias -6, alpha ~ 0.0025)",
)


def convert_denoising(denoising_unet, unet_sd: dict, motion_sd: dict | None, *,
                      assign: bool = False) -> ComponentReport:
    den = ComponentReport("denoising_unet")
    combined = dict(unet_sd)
    dropped = 0
    for k, v in (motion_sd or {}).items():
        nk = motion_key(k)
        if nk is None:
            dropped += 1
        else:
            combined[nk] = v
    if dropped:
        den.notes.append(f"{dropped} duplicate positional tables (attention_blocks.1.pos_encoder.pe) dropped")
    if motion_sd is None:
        den.notes.append("no motion_module.pth given: motion modules keep their random init")
    _load_into(denoising_unet, combined, den, widen_conv_in=True, assign=assign)
    return den


def convert_reference(reference_unet, reference_sd: dict, unet_sd: dict, *, assign: bool = False) -> ComponentReport:
    ref = ComponentReport("reference_unet")
    ref_source = dict(reference_sd)
    # Moore's ReferenceNet drops its output head (never used: only the banked
    # attention inputs matter); fill it from the denoising UNet so the folder
    # holds a complete, loadable UNet.
    filled = [k for k in unet_sd if k.startswith(("conv_norm_out.", "conv_out.")) and k not in ref_source]
    for k in filled:
        ref_source[k] = unet_sd[k]
    if filled:
        ref.notes.append(f"output head ({len(filled)} tensors) copied from denoising_unet; unused by fusion")
    _load_into(reference_unet, ref_source, ref, assign=assign)
    return ref


def convert_pose(pose_guider, pose_sd: dict | None) -> ComponentReport:
    pg = ComponentReport("pose_guider")
    if pose_sd is None:
        pg.notes.append("no pose_guider.pth: pose guider at init (zero output)")
    else:
        _load_into(pose_guider, pose_sd, pg)
    return pg


