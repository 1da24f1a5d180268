"""Check a pipeline folder without loading it: components present, configs and
tensor shapes consistent. JSON and safetensors headers only (no torch), so
``inhabit weights check`` and ``inhabit doctor`` are quick even for 5 GB folders.
"""
from __future__ import annotations

import json
import os
import struct

COMPONENTS = ("vae", "image_encoder", "reference_unet", "denoising_unet", "pose_guider",
              "depth_modulation", "object_guider", "scheduler")
# The only code a pipeline folder may name; anything else is refused.
# Our own components' modules. Folders saved before they moved under models/aa2/
# name the old modules; loading aliases those names to the new ones.
LEGACY_MODULES = {"models.pose_guider": "models.aa2.pose_guider",
                  "models.depth_modulation": "models.aa2.depth_modulation",
                  "models.object_guider": "models.aa2.object_guider"}
COMPONENT_LIBRARIES = frozenset({"diffusers", "transformers", *LEGACY_MODULES, *LEGACY_MODULES.values()})


def safetensors_shapes(folder: str) -> dict[str, list]:
    """Tensor name -> shape from every .safetensors header in ``folder``."""
    shapes = {}
    for name in sorted(os.listdir(folder)):
        if not name.endswith(".safetensors"):
            continue
        with open(os.path.join(folder, name), "rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(n))
        shapes.update({k: v["shape"] for k, v in header.items() if k != "__metadata__"})
    return shapes


def check_folder(path: str) -> tuple[bool, list[str]]:
    """(ok, report lines). Every problem line starts with "ERROR"."""
    lines: list[str] = []

    def err(msg):
        lines.append(f"ERROR {msg}")

    if not os.path.isdir(path):
        return False, [f"ERROR {path}: not a folder"]
    index_path = os.path.join(path, "model_index.json")
    if not os.path.exists(index_path):
        return False, [f"ERROR {path}: no model_index.json -- not a pipeline folder "
                       "(make one with 'inhabit weights convert' or 'inhabit doctor --save-tiny')"]
    with open(index_path) as fh:
        index = json.load(fh)
    if index.get("_class_name") != "AnimateAnyone2Pipeline":
        err(f"model_index.json: _class_name is {index.get('_class_name')!r}, expected 'AnimateAnyone2Pipeline'")
    configs, shapes = {}, {}
    for comp in COMPONENTS:
        folder = os.path.join(path, comp)
        if comp not in index:
            err(f"{comp}: not listed in model_index.json")
            continue
        if not isinstance(index[comp], list) or index[comp][0] not in COMPONENT_LIBRARIES:
            err(f"{comp}: library {index[comp]!r} is not one Inhabit loads ({sorted(COMPONENT_LIBRARIES)})")
            continue
        cfg_name = "scheduler_config.json" if comp == "scheduler" else "config.json"
        cfg_path = os.path.join(folder, cfg_name)
        if not os.path.exists(cfg_path):
            err(f"{comp}: {cfg_name} missing in {folder}")
            continue
        with open(cfg_path) as fh:
            configs[comp] = json.load(fh)
        if comp == "scheduler":
            lines.append(f"ok  scheduler: {configs[comp].get('_class_name')} "
                         f"prediction={configs[comp].get('prediction_type')}")
            continue
        shapes[comp] = safetensors_shapes(folder)
        if not shapes[comp]:
            err(f"{comp}: no .safetensors weights in {folder}")
        else:
            lines.append(f"ok  {comp}: {len(shapes[comp])} tensors")
        if any(f.endswith((".bin", ".pth", ".pt", ".ckpt")) for f in os.listdir(folder)):
            err(f"{comp}: pickle-based weight files present; only safetensors are loaded")
    unet = configs.get("denoising_unet")
    if unet:
        ch = unet.get("block_out_channels", [])
        conv = shapes.get("denoising_unet", {}).get("conv_in.weight")
        if unet.get("in_channels") != 9:
            err(f"denoising_unet: in_channels is {unet.get('in_channels')}, expected 9 ([noise|environment|mask])")
        if conv is not None and conv[1] != unet.get("in_channels"):
            err(f"denoising_unet: conv_in.weight has {conv[1]} inputs, config says {unet.get('in_channels')}")
        ref = configs.get("reference_unet")
        if ref and list(ref.get("block_out_channels", [])) != list(ch):
            err(f"reference_unet: block_out_channels {ref.get('block_out_channels')} != denoising_unet {ch}")
        if ref and ref.get("cross_attention_dim") != unet.get("cross_attention_dim"):
            err("reference_unet: cross_attention_dim differs from denoising_unet's")
        enc = configs.get("image_encoder")
        if enc and enc.get("projection_dim") != unet.get("cross_attention_dim"):
            err(f"image_encoder: projection_dim {enc.get('projection_dim')} != denoising_unet "
                f"cross_attention_dim {unet.get('cross_attention_dim')}")
        for comp, key in (("pose_guider", "conditioning_embedding_channels"), ("depth_modulation", "channels")):
            c = configs.get(comp)
            if c and ch and c.get(key) != ch[0]:
                err(f"{comp}: {key} {c.get(key)} != denoising_unet first block width {ch[0]}")
        og = configs.get("object_guider")
        if og and list(og.get("block_out_channels", [])) != list(ch):
            err(f"object_guider: block_out_channels {og.get('block_out_channels')} != denoising_unet {ch}")
        if og:
            n_blend = 1 + sum((unet.get("layers_per_block", 1) if isinstance(unet.get("layers_per_block", 1), int)
                               else unet["layers_per_block"][-1]) + 1
                              for t in unet.get("up_block_types", []) if "CrossAttn" in t)
            if len(og.get("blend_levels", [])) != n_blend:
                err(f"object_guider: {len(og.get('blend_levels', []))} blend layers, the UNet decoder has {n_blend}")
    vae = configs.get("vae")
    if vae and vae.get("latent_channels") != 4:
        err(f"vae: latent_channels {vae.get('latent_channels')}, expected 4")
    ok = not any(line.startswith("ERROR") for line in lines)
    lines.append("folder OK" if ok else "folder has problems (see ERROR lines)")
    return ok, lines
