"""Re-save a Wan-Animate Diffusers folder with a bf16 transformer.

The published ``Wan-AI/Wan2.2-Animate-14B-Diffusers`` stores its transformer
in fp32 (69.1 GB of its 82.3 GB), while every GPU run loads it as bf16. This
converts it shard by shard -- tensor by tensor through ``safe_open``, so host
memory stays at one shard -- and copies everything else unchanged: about
48 GB on disk afterwards. Tensors of the modules diffusers keeps in fp32
(``WanAnimateTransformer3DModel._keep_in_fp32_modules``: norms, time
embedding, rope, ...) stay fp32, as ``from_pretrained(dtype=bf16)`` would
keep them. The VAE stays fp32 (it runs in fp32); the text and image encoders
are already bf16 and are copied.
"""
from __future__ import annotations

import json
import os
import shutil

CONVERT = ("transformer",)


def keep_fp32_modules() -> list[str]:
    from diffusers import WanAnimateTransformer3DModel
    return list(WanAnimateTransformer3DModel._keep_in_fp32_modules or [])


def resave_bf16(src: str, dst: str, *, on_file=None) -> dict:
    """Returns {"before": bytes, "after": bytes, "converted": tensors}."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    from .loading import check_or_raise

    check_or_raise(src)
    if os.path.abspath(src) == os.path.abspath(dst):
        raise ValueError("DST must be a new folder, not SRC itself")
    if os.path.exists(dst) and os.listdir(dst):
        raise ValueError(f"{dst} exists and is not empty: give a new folder")
    keep = keep_fp32_modules()
    before = after = converted = 0
    for root, _dirs, files in os.walk(src):
        rel = os.path.relpath(root, src)
        if rel.split(os.sep)[0].startswith(".inhabit"):
            continue
        os.makedirs(os.path.join(dst, rel), exist_ok=True)
        component = rel.split(os.sep)[0]
        for name in sorted(files):
            s, d = os.path.join(root, name), os.path.join(dst, rel, name)
            before += os.path.getsize(s)
            if component in CONVERT and name.endswith(".safetensors"):
                tensors = {}
                with safe_open(s, framework="pt") as fh:
                    meta = fh.metadata()
                    for key in fh.keys():
                        t = fh.get_tensor(key)
                        if t.dtype == torch.float32 and not any(m in key.split(".") for m in keep):
                            t = t.to(torch.bfloat16)
                            converted += 1
                        tensors[key] = t
                save_file(tensors, d + ".tmp", metadata=meta)
                os.replace(d + ".tmp", d)
                del tensors
            elif component in CONVERT and name.endswith(".safetensors.index.json"):
                continue   # rewritten below with the new total size
            else:
                shutil.copy2(s, d)
            if on_file:
                on_file(os.path.join(rel, name))
    for comp in CONVERT:
        _rewrite_index(os.path.join(src, comp), os.path.join(dst, comp))
    for root, _dirs, files in os.walk(dst):
        after += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    return {"before": before, "after": after, "converted": converted}


def _rewrite_index(src_dir: str, dst_dir: str) -> None:
    if not os.path.isdir(src_dir):
        return
    for name in os.listdir(src_dir):
        if name.endswith(".safetensors.index.json"):
            with open(os.path.join(src_dir, name)) as fh:
                index = json.load(fh)
            shards = set(index.get("weight_map", {}).values())
            index.setdefault("metadata", {})["total_size"] = sum(
                os.path.getsize(os.path.join(dst_dir, s)) for s in shards if os.path.isfile(os.path.join(dst_dir, s)))
            with open(os.path.join(dst_dir, name), "w") as fh:
                json.dump(index, fh, indent=2)
