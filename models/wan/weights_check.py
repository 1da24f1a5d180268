"""Check a Wan-Animate Diffusers folder (the ``Wan-AI/Wan2.2-Animate-14B-Diffusers``
layout) from its JSON files and safetensors headers only: no torch, no
tensor reads, so checking an 82 GB folder takes milliseconds.

Reports, per component: present or what is missing (one line each), tensor
count, dtypes, size on disk, and the shapes that must agree between
components (transformer input channels, text and image widths, face size).
"""
from __future__ import annotations

import json
import os
import struct

PIPELINE_CLASS = "WanAnimatePipeline"
REPO_HINT = "Wan-AI/Wan2.2-Animate-14B-Diffusers"
# component -> (config file, holds weights)
COMPONENTS = {
    "transformer": ("config.json", True),
    "vae": ("config.json", True),
    "image_encoder": ("config.json", True),
    "image_processor": ("preprocessor_config.json", False),
    "scheduler": ("scheduler_config.json", False),
    "text_encoder": ("config.json", True),
    "tokenizer": (None, False),
}
# Needed only to embed a new prompt (embeddings are cached next to the weights).
ONLY_FOR_NEW_PROMPTS = ("text_encoder", "tokenizer")
GiB = 2 ** 30


def safetensors_headers(folder: str) -> tuple[dict, int]:
    """({tensor: {"dtype", "shape"}}, bytes on disk) over every .safetensors in ``folder``."""
    tensors, size = {}, 0
    for name in sorted(os.listdir(folder)):
        if not name.endswith(".safetensors"):
            continue
        path = os.path.join(folder, name)
        size += os.path.getsize(path)
        with open(path, "rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(n))
        tensors.update({k: v for k, v in header.items() if k != "__metadata__"})
    return tensors, size


def read_model_index(path: str) -> dict | None:
    p = os.path.join(path, "model_index.json")
    if not os.path.isfile(p):
        return None
    with open(p) as fh:
        return json.load(fh)


def is_wan_folder(path: str) -> bool:
    index = read_model_index(path) if os.path.isdir(path) else None
    return index is not None and index.get("_class_name") == PIPELINE_CLASS


def check_wan_folder(path: str) -> tuple[bool, list[str], dict]:
    """(ok, report lines, facts). Problem lines start with "ERROR"; ``facts``
    holds configs and tensor headers for callers (memory planning)."""
    lines: list[str] = []
    facts: dict = {"configs": {}, "tensors": {}, "bytes": {}}
    if not os.path.isdir(path):
        return False, [f"ERROR {path}: not a folder (download {REPO_HINT} there, or make a tiny one with "
                       "'inhabit doctor --engine wan-animate --save-tiny DIR')"], facts
    index = read_model_index(path)
    if index is None:
        return False, [f"ERROR {path}: no model_index.json -- not a Diffusers pipeline folder (expected the "
                       f"{REPO_HINT} layout)"], facts
    cls = index.get("_class_name")
    if cls != PIPELINE_CLASS:
        return False, [f"ERROR {path}: this is a {cls!r} folder, not Wan-Animate ({PIPELINE_CLASS}); "
                       f"pass a copy of {REPO_HINT}"], facts
    for comp, (cfg_name, has_weights) in COMPONENTS.items():
        folder = os.path.join(path, comp)
        optional = comp in ONLY_FOR_NEW_PROMPTS
        tag = "WARN" if optional else "ERROR"
        why = " (needed only to embed a prompt that is not cached yet)" if optional else ""
        if not os.path.isdir(folder):
            lines.append(f"{tag} {comp}: missing folder {comp}/{why}")
            continue
        if comp == "tokenizer":
            if not any(f.startswith(("tokenizer", "spiece")) for f in os.listdir(folder)):
                lines.append(f"{tag} tokenizer: no tokenizer files in {comp}/{why}")
            else:
                lines.append("ok    tokenizer")
            continue
        assert cfg_name is not None   # only the tokenizer (handled above) has no config file
        cfg_path = os.path.join(folder, cfg_name)
        if not os.path.isfile(cfg_path):
            lines.append(f"{tag} {comp}: missing {comp}/{cfg_name}{why}")
            continue
        with open(cfg_path) as fh:
            facts["configs"][comp] = json.load(fh)
        if not has_weights:
            lines.append(f"ok    {comp}: {facts['configs'][comp].get('_class_name') or cfg_name}")
            continue
        if any(f.endswith((".bin", ".pth", ".pt", ".ckpt")) for f in os.listdir(folder)):
            lines.append(f"ERROR {comp}: pickle-based weight files in {comp}/; only safetensors are loaded")
            continue
        tensors, size = safetensors_headers(folder)
        shard_index = [f for f in os.listdir(folder) if f.endswith(".safetensors.index.json")]
        if shard_index:
            with open(os.path.join(folder, shard_index[0])) as fh:
                wanted = set(json.load(fh).get("weight_map", {}).values())
            absent = sorted(w for w in wanted if not os.path.isfile(os.path.join(folder, w)))
            if absent:
                lines.append(f"{tag} {comp}: {len(absent)} of {len(wanted)} weight shards missing "
                             f"(first: {absent[0]}); finish the download{why}")
                continue
        if not tensors:
            lines.append(f"{tag} {comp}: no .safetensors weights in {comp}/{why}")
            continue
        facts["tensors"][comp] = tensors
        facts["bytes"][comp] = size
        dtypes = sorted({v["dtype"] for v in tensors.values()})
        params = sum(_numel(v["shape"]) for v in tensors.values())
        lines.append(f"ok    {comp}: {len(tensors)} tensors, {params / 1e6:.1f} M params, {'/'.join(dtypes)}, "
                     f"{human_size(size)}")
    lines += _consistency(facts)
    ok = not any(line.startswith("ERROR") for line in lines)
    total = sum(facts["bytes"].values())
    lines.append(f"{'folder OK' if ok else 'folder has problems (see ERROR lines)'}: Wan-Animate, "
                 f"{human_size(total)} of weights")
    return ok, lines, facts


def human_size(n: int) -> str:
    return f"{n / GiB:.2f} GiB" if n >= GiB / 10 else f"{n / 2 ** 20:.2f} MiB"


def _numel(shape) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def _consistency(facts: dict) -> list[str]:
    out = []
    cfg, tensors = facts["configs"], facts["tensors"]
    tr = cfg.get("transformer")
    if tr:
        if tr.get("_class_name") not in (None, "WanAnimateTransformer3DModel"):
            out.append(f"ERROR transformer: class {tr.get('_class_name')!r}, expected WanAnimateTransformer3DModel")
        if tr.get("in_channels") != 36:
            out.append(f"ERROR transformer: in_channels {tr.get('in_channels')}, expected 36 "
                       "([noise 16 | mask 4 | conditioning 16])")
        emb = tensors.get("transformer", {}).get("patch_embedding.weight")
        if emb is not None and emb["shape"][1] != tr.get("in_channels"):
            out.append(f"ERROR transformer: patch_embedding.weight takes {emb['shape'][1]} channels, "
                       f"config says {tr.get('in_channels')}")
        te = cfg.get("text_encoder")
        if te and te.get("d_model") != tr.get("text_dim"):
            out.append(f"ERROR text_encoder: d_model {te.get('d_model')} != transformer text_dim {tr.get('text_dim')}")
        ie = cfg.get("image_encoder")
        if ie and ie.get("hidden_size") != tr.get("image_dim"):
            out.append(f"ERROR image_encoder: hidden_size {ie.get('hidden_size')} != transformer image_dim "
                       f"{tr.get('image_dim')}")
    vae = cfg.get("vae")
    if vae and tr and vae.get("z_dim") != tr.get("latent_channels", 16):
        out.append(f"ERROR vae: z_dim {vae.get('z_dim')} != transformer latent_channels {tr.get('latent_channels')}")
    return out


def transformer_params(facts: dict) -> int:
    return sum(_numel(v["shape"]) for v in facts["tensors"].get("transformer", {}).values())
