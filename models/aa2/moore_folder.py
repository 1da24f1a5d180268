"""``inhabit weights convert``: Moore-AnimateAnyone checkpoints -> a pipeline folder, within 8 GB of RAM.

One component at a time: its checkpoint is memory-mapped
(``torch.load(mmap=True, weights_only=True)``), the module takes the mapped
tensors without copying them (``load_state_dict(assign=True)``), the result
is written tensor by tensor (``safetensors_stream``), and everything is
dropped before the next component. Peak memory is about the largest single
component instead of the whole pipeline twice over (docs/model.md has the
measurement).

Everything is written into a temporary folder beside ``out`` and renamed to
``out`` only when every component converted without a shape mismatch, so a
failed conversion leaves no output folder behind.
"""
from __future__ import annotations

import gc
import json
import os
import shutil
import tempfile

import torch

from .moore_convert import (
    NEUTRAL_INIT,
    ComponentReport,
    ConversionReport,
    convert_denoising,
    convert_pose,
    convert_reference,
    load_checkpoint,
)
from ..safetensors_stream import save_file_streaming

ANIMATEDIFF_MOTION_HEADS = 8   # mm_sd_v15(_v2); other motion modules: --motion-heads or a config beside the file


class ConversionFailed(Exception):
    """Conversion stopped; nothing was written to ``out``. ``report`` when components were compared."""

    def __init__(self, message: str, report: ConversionReport | None = None):
        super().__init__(message)
        self.report = report


def _need(path, what):
    if not os.path.exists(path):
        raise FileNotFoundError(f"{what} not found: {path}")
    return path


def _save_model(module, folder: str) -> None:
    """A diffusers ModelMixin as ``config.json`` + ``diffusion_pytorch_model.safetensors``."""
    os.makedirs(folder, exist_ok=True)
    module.save_config(folder)
    save_file_streaming(module.state_dict(), os.path.join(folder, "diffusion_pytorch_model.safetensors"))


def motion_settings(motion_sd: dict | None, extras: dict, motion_path: str | None, heads: int | None):
    """(heads, max_seq_length, note): heads from the flag, else a config the checkpoint carries
    (a ``config`` entry beside its state_dict, or ``<file>.json``), else AnimateDiff's 8;
    the positional table's length from the checkpoint itself."""
    note = None
    if heads is None:
        cfg = dict(extras.get("config") or {}) if isinstance(extras.get("config"), dict) else {}
        side = os.path.splitext(motion_path)[0] + ".json" if motion_path else None
        if not cfg and side and os.path.isfile(side):
            with open(side) as fh:
                cfg = json.load(fh)
        heads = cfg.get("motion_num_attention_heads") or cfg.get("num_attention_heads")
        if heads:
            note = f"motion modules: {heads} attention heads (from the checkpoint's config)"
        else:
            heads = ANIMATEDIFF_MOTION_HEADS
            note = (f"motion modules: {heads} attention heads (AnimateDiff's; give --motion-heads N "
                    "for a motion module trained with another count)")
    else:
        note = f"motion modules: {heads} attention heads (--motion-heads)"
    seq = None
    for k, v in (motion_sd or {}).items():
        if k.endswith("pos_encoder.pe") and v.ndim == 3:
            seq = int(v.shape[1])
            break
    return int(heads), seq, note


def convert_to_folder(*, moore_dir: str, sd15_dir: str, vae_dir: str, image_encoder_dir: str, out: str,
                      motion_module: str | None = None, fusion_mode: str = "all",
                      motion_heads: int | None = None, log=print) -> ConversionReport:
    """Write the pipeline folder ``out``; raises ConversionFailed / FileNotFoundError / ValueError."""
    from diffusers import AutoencoderKL, UNet2DConditionModel, UNetMotionModel
    from transformers import CLIPVisionModelWithProjection

    from .denoising_unet import expand_conv_in
    from .depth_modulation import DepthModulation
    from .object_guider import ObjectGuider, decoder_blend_levels
    from .pipeline import FUSION_MODES
    from .pose_guider import PoseGuider
    from .tiny import moore_scheduler

    if fusion_mode not in FUSION_MODES:
        raise ValueError(f"fusion mode must be one of {FUSION_MODES}, got {fusion_mode!r}")
    if os.path.exists(out) and (not os.path.isdir(out) or os.listdir(out)):
        raise ValueError(f"--out {out} already exists: remove it or give a new folder")
    unet_dir = os.path.join(sd15_dir, "unet") if os.path.isdir(os.path.join(sd15_dir, "unet")) else sd15_dir
    unet_config = UNet2DConditionModel.load_config(_need(os.path.join(unet_dir, "config.json"), "SD-1.5 UNet config"))
    unet_path = _need(os.path.join(moore_dir, "denoising_unet.pth"), "Moore denoising_unet.pth")
    ref_path = _need(os.path.join(moore_dir, "reference_unet.pth"), "Moore reference_unet.pth")
    pose_path = os.path.join(moore_dir, "pose_guider.pth")
    mm_path = motion_module or os.path.join(moore_dir, "motion_module.pth")
    if motion_module:
        _need(mm_path, "motion module")
    _need(vae_dir, "VAE folder")
    _need(image_encoder_dir, "image encoder folder")

    parent = os.path.dirname(os.path.abspath(out)) or "."
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(os.path.abspath(out))}.partial-", dir=parent)
    report = ConversionReport(neutral_init=list(NEUTRAL_INIT))
    renamed = False
    try:
        # 1. denoising UNet (SD spatial weights + motion modules): the largest part.
        unet_sd = load_checkpoint(unet_path)
        motion_sd, extras = load_checkpoint(mm_path, with_extras=True) if os.path.exists(mm_path) else (None, {})
        heads, seq, note = motion_settings(motion_sd, extras, mm_path if motion_sd is not None else None, motion_heads)
        with torch.device("meta"):  # only for its config: no memory
            shape_only = UNetMotionModel.from_unet2d(UNet2DConditionModel.from_config(unet_config), load_weights=False)
        # Without "_use_default_values" diffusers would reset the keys it lists (the motion ones) to defaults.
        config = {k: v for k, v in shape_only.config.items() if k != "_use_default_values"}
        config["motion_num_attention_heads"] = heads
        if seq:
            config["motion_max_seq_length"] = seq
        del shape_only
        with torch.device("meta"):  # every tensor comes from the mapped checkpoints
            den = expand_conv_in(UNetMotionModel.from_config(config))
        rep = convert_denoising(den, unet_sd, motion_sd, assign=True)
        _materialize_leftovers(den, lambda: expand_conv_in(UNetMotionModel.from_config(config)))
        rep.notes.insert(0, note)
        report.components.append(rep)
        ch = tuple(den.config.block_out_channels)
        blend_config = den.config
        _save_model(den, os.path.join(tmp, "denoising_unet"))
        head = {k: v.clone() for k, v in unet_sd.items() if k.startswith(("conv_norm_out.", "conv_out."))}
        del den, unet_sd, motion_sd
        gc.collect()
        log(f"converted denoising_unet ({rep.loaded} tensors)")

        # 2. ReferenceNet (its missing output head comes from the denoising UNet).
        with torch.device("meta"):
            ref = UNet2DConditionModel.from_config(unet_config)
        rep = convert_reference(ref, load_checkpoint(ref_path), head, assign=True)
        _materialize_leftovers(ref, lambda: UNet2DConditionModel.from_config(unet_config))
        report.components.append(rep)
        _save_model(ref, os.path.join(tmp, "reference_unet"))
        del ref, head
        gc.collect()
        log(f"converted reference_unet ({rep.loaded} tensors)")

        # 3. the small parts.
        pose = PoseGuider(ch[0], 3, (16, 32, 96, 256))
        report.components.append(convert_pose(pose, load_checkpoint(pose_path) if os.path.exists(pose_path) else None))
        _save_model(pose, os.path.join(tmp, "pose_guider"))
        _save_model(DepthModulation(ch[0], (16, 32, 96, 256)), os.path.join(tmp, "depth_modulation"))
        vae = AutoencoderKL.from_pretrained(vae_dir, local_files_only=True)
        _, levels = decoder_blend_levels(blend_config)
        _save_model(ObjectGuider(vae.config.latent_channels, ch, blend_levels=levels),
                    os.path.join(tmp, "object_guider"))
        vae.save_pretrained(os.path.join(tmp, "vae"), safe_serialization=True)
        del vae
        encoder = CLIPVisionModelWithProjection.from_pretrained(image_encoder_dir, local_files_only=True)
        encoder.save_pretrained(os.path.join(tmp, "image_encoder"), safe_serialization=True)
        del encoder
        gc.collect()
        moore_scheduler().save_pretrained(os.path.join(tmp, "scheduler"))
        _write_model_index(tmp, fusion_mode)
        if not report.ok:
            raise ConversionFailed("shape mismatches (listed above): the checkpoints do not fit these model "
                                   "configs; nothing was written", report)
        if os.path.isdir(out):
            os.rmdir(out)  # an empty folder given as --out
        os.rename(tmp, out)
        renamed = True
        return report
    finally:
        if not renamed:
            shutil.rmtree(tmp, ignore_errors=True)


def _materialize_leftovers(module, build_real) -> None:
    """Give real values to what no checkpoint provided (still on the meta device): their
    initial values from a freshly built module. Moore's files cover everything, so this
    costs a second module only when a part is missing (no motion_module.pth)."""
    left = [n for n, t in (*module.named_parameters(), *module.named_buffers()) if t.is_meta]
    if not left:
        return
    real = build_real()
    values = dict((*real.named_parameters(), *real.named_buffers()))
    module.load_state_dict({n: values[n].detach() for n in left if n in values}, strict=False, assign=True)
    for name, buf in real.named_buffers():  # non-persistent buffers are not in the state dict
        owner, _, leaf = name.rpartition(".")
        target = module.get_submodule(owner) if owner else module
        if getattr(target, leaf).is_meta:
            target.register_buffer(leaf, buf, persistent=leaf in target.state_dict(keep_vars=True))
    del real


def _write_model_index(folder: str, fusion_mode: str) -> None:
    """What ``DiffusionPipeline.save_pretrained`` would write, without holding the whole pipeline."""
    import diffusers
    index = {"_class_name": "AnimateAnyone2Pipeline", "_diffusers_version": diffusers.__version__,
             "fusion_mode": fusion_mode}
    for name, lib, cls in (("denoising_unet", "diffusers", "UNetMotionModel"),
                           ("reference_unet", "diffusers", "UNet2DConditionModel"),
                           ("pose_guider", "models.aa2.pose_guider", "PoseGuider"),
                           ("depth_modulation", "models.aa2.depth_modulation", "DepthModulation"),
                           ("object_guider", "models.aa2.object_guider", "ObjectGuider"),
                           ("vae", "diffusers", "AutoencoderKL"),
                           ("image_encoder", "transformers", "CLIPVisionModelWithProjection"),
                           ("scheduler", "diffusers", "DDIMScheduler")):
        index[name] = [lib, cls]
    with open(os.path.join(folder, "model_index.json"), "w") as fh:
        json.dump(index, fh, indent=2, sort_keys=True)


__all__ = ["convert_to_folder", "ConversionFailed", "ComponentReport"]
