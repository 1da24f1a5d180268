"""Peak RAM of ``inhabit weights convert`` on synthetic Moore checkpoints.

The checkpoints are SD-1.5-shaped (same blocks, layers and key names as
Moore's denoising_unet.pth / reference_unet.pth / motion_module.pth) with every
channel count divided by ``--scale``, so each file is scale^2 smaller and the
three keep the real files' size ratio (3.44 : 3.44 : 1.82 GB). Each
conversion runs in a fresh process; its peak RSS (VmHWM, reset after the
imports) minus the RSS after importing torch/diffusers/transformers is the conversion's own peak,
which grows with the largest component. Written to bench/RESULTS.md.

    .venv/bin/python bench/convert_memory.py [--scales 10,5]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_file import write_section  # noqa: E402

REAL_GB = {"denoising_unet": 3.44, "reference_unet": 3.44, "motion_module": 1.82}
SD15 = dict(block_out_channels=(320, 640, 1280, 1280), cross_attention_dim=768, attention_head_dim=8,
            layers_per_block=2, norm_num_groups=32, sample_size=64)


def make_inputs(root: Path, scale: int) -> dict:
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel, UNetMotionModel
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    cfg = dict(SD15, block_out_channels=tuple(c // scale for c in SD15["block_out_channels"]),
               cross_attention_dim=SD15["cross_attention_dim"] // scale,
               norm_num_groups=min(32, SD15["block_out_channels"][0] // scale))
    unet = UNet2DConditionModel(**cfg)
    unet.save_config(root / "sd15" / "unet")
    moore = root / "moore"
    moore.mkdir(parents=True)
    sd = unet.state_dict()
    torch.save(sd, moore / "denoising_unet.pth")
    torch.save({k: v for k, v in sd.items() if not k.startswith(("conv_norm_out", "conv_out"))},
               moore / "reference_unet.pth")
    motion = UNetMotionModel.from_unet2d(unet, load_weights=False)
    from tests.test_weights import to_animatediff  # the independent AnimateDiff naming
    torch.save({n: v for k, v in motion.state_dict().items() if ".motion_modules." in k for n in to_animatediff(k)},
               moore / "motion_module.pth")
    del unet, motion, sd
    AutoencoderKL(block_out_channels=(8, 8, 16, 16), down_block_types=("DownEncoderBlock2D",) * 4,
                  up_block_types=("UpDecoderBlock2D",) * 4, norm_num_groups=8,
                  layers_per_block=1).save_pretrained(root / "vae")
    CLIPVisionModelWithProjection(CLIPVisionConfig(hidden_size=32, intermediate_size=37, num_hidden_layers=1,
                                                   num_attention_heads=2, image_size=32, patch_size=8,
                                                   projection_dim=16)).save_pretrained(root / "enc")
    return {name: os.path.getsize(moore / f"{name}.pth") for name in REAL_GB}


CHILD = r"""
import json, sys
sys.path.insert(0, sys.argv[2])
import torch, diffusers, transformers  # noqa: F401
from models.moore_folder import convert_to_folder
def status_mb(key):
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith(key + ":")) / 1024
base = status_mb("VmRSS")
with open("/proc/self/clear_refs", "w") as f:  # reset the high-water mark: importing peaks higher than it settles
    f.write("5")
root = sys.argv[1]
convert_to_folder(moore_dir=root + "/moore", sd15_dir=root + "/sd15", vae_dir=root + "/vae",
                  image_encoder_dir=root + "/enc", out=root + "/out", log=lambda *_: None)
print(json.dumps({"base_mb": base, "peak_mb": status_mb("VmHWM")}))
"""


def measure(scale: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        sizes = make_inputs(Path(tmp), scale)
        out = subprocess.run([sys.executable, "-c", CHILD, tmp, str(ROOT)], capture_output=True, text=True)
        if out.returncode:
            raise SystemExit(out.stderr[-3000:])
        m = json.loads(out.stdout.strip().splitlines()[-1])
    # one component at a time: the largest is the denoising UNet with its motion modules
    m["largest_mb"] = (sizes["denoising_unet"] + sizes["motion_module"]) / 2**20
    m["total_mb"] = sum(sizes.values()) / 2**20
    m["own_mb"] = m["peak_mb"] - m["base_mb"]
    return m


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scales", default="10,5",
                    help="channel divisors, comma-separated; 320/scale must be a whole number (default %(default)s)")
    ap.add_argument("--no-write", action="store_true", help="print only; leave bench/RESULTS.md as it is")
    args = ap.parse_args(argv)
    runs = {int(s): measure(int(s)) for s in args.scales.split(",")}
    if len(runs) < 2:  # one size: no line to fit
        for s, m in runs.items():
            print(f"channels / {s}: largest component {m['largest_mb']:.0f} MB, own peak {m['own_mb']:.0f} MB")
        return 0
    (s_small, small), (s_big, big) = sorted(runs.items(), reverse=True)[:2]
    # The conversion's own peak against the largest component's size: a line through the two sizes.
    slope = (big["own_mb"] - small["own_mb"]) / (big["largest_mb"] - small["largest_mb"])
    fixed = big["own_mb"] - slope * big["largest_mb"]
    real_largest = (REAL_GB["denoising_unet"] + REAL_GB["motion_module"]) * 1024
    projected = big["base_mb"] + fixed + slope * real_largest
    rows = [f"| channels / {s} | {m['total_mb']:.0f} | {m['largest_mb']:.0f} | {m['base_mb']:.0f} | "
            f"{m['peak_mb']:.0f} | {m['own_mb']:.0f} |" for s, m in sorted(runs.items(), reverse=True)]
    text = "\n".join([
        "## weights convert: peak RAM (bench/convert_memory.py)",
        "",
        "Synthetic Moore checkpoints with SD-1.5's blocks and key names, channels divided (the real files' size "
        "ratio); one fresh process per conversion, peak = VmHWM reset after the imports.",
        "",
        "| checkpoints | total MB | largest component MB | RSS after imports MB | peak RSS MB | own peak MB |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        f"Own peak = {fixed:.0f} MB + {slope:.2f} x the largest component. Projected for the real files "
        f"(largest component {real_largest / 1024:.2f} GB: denoising UNet + motion modules): "
        f"**{projected / 1024:.1f} GB** peak RSS (was 20.7 GB).",
    ])
    if not args.no_write:
        write_section("convert_memory", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
