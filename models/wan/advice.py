"""The fastest wan-animate set-up this machine allows, for ``inhabit doctor
--engine wan-animate``: which server options and job params to use, and the
seconds per frame to expect.

Expected times come from the GPU speed rows of ``bench/wan_animate.py`` when a
GPU has run them (``bench/wan_speed_gpu.json``, written with bench/RESULTS.md),
otherwise from ``models.wan.presets.EXPECTED_S_PER_FRAME`` (projections) and the
published fp8 gain (1.1-1.3x on LightX2V's tables), said as such.
"""
from __future__ import annotations

import json
import os

ROWS_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                         "bench", "wan_speed_gpu.json")
FP8_GAIN = (1.1, 1.3)     # LightX2V's published tables (issue 22); replaced by the bench row once measured


def measured_rows(path: str = ROWS_FILE) -> dict | None:
    """{"device": name, "rows": [...]} from the last GPU speed run, or None."""
    try:
        with open(path) as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("rows") else None


def recommend(device: str, *, check_compiler: bool = True) -> list[str]:
    """Report lines: the combination, then where its expected time comes from."""
    from .accel import attention_problem, compile_problem, fp8_method
    from .presets import EXPECTED_S_PER_FRAME
    cuda = str(device).startswith("cuda")
    options = ["distill_lora=PATH"]
    params = ["preset=fast"]
    why = ["preset fast: 4 distilled steps instead of 20, guidance off (needs the step-distillation LoRA file on "
           "the server, docs/model.md)"]
    if not cuda:
        return ["speed: no CUDA device here; on a GPU the fastest set-up is preset=fast with the distillation LoRA "
                f"(~{EXPECTED_S_PER_FRAME['fast']} s/frame projected for an H100 at 832x480), plus fp8, flash "
                "attention and compile where installed"]
    options.append("fp8=on")
    why.append("fp8: torchao float8 weight-only" if fp8_method(device) == "torchao" else
               "fp8: layerwise casting (pip install torchao for float8 weight-only)")
    if attention_problem("flash", device) is None:
        options.append("attention=flash")
        why.append("attention flash (flash-attn installed)")
    else:
        why.append("attention sdpa (flash-attn not installed; sage is not recommended: users report worse "
                   "Animate faces)")
    problem = compile_problem(device) if check_compiler else "not checked"
    if problem is None:
        options.append("compile=on")
        why.append("compile: regional, paid once per worker at load")
    else:
        why.append(f"compile off ({problem})")
    why.append("cache none: at 4 steps the caches skip little, and MagCache's ratios are the 20-step model's")
    lines = [f"fastest set-up here: inhabit serve --engine wan-animate --weights DIR "
             f"{' '.join('--engine-option ' + o for o in options)}; job params {' '.join(params)}"]
    measured = measured_rows()
    if measured:
        best = min(measured["rows"], key=lambda r: r["s_per_frame"])
        base = measured["rows"][0]
        lines.append(f"expected: {best['s_per_frame']:.2f} s/frame ({best['label']}) against "
                     f"{base['s_per_frame']:.2f} for Wan's 20 steps, measured on {measured.get('device', 'a GPU')} "
                     "at 832x480 (bench/RESULTS.md)")
    else:
        fast = EXPECTED_S_PER_FRAME["fast"]
        lo, hi = fast / FP8_GAIN[1], fast / FP8_GAIN[0]
        lines.append(f"expected: ~{lo:.2f}-{hi:.2f} s/frame at 832x480 on an H100 against "
                     f"~{EXPECTED_S_PER_FRAME['wan']} for Wan's 20 steps (projected: no GPU has run "
                     "bench/wan_animate.py's speed rows yet; `make gpu-bench-bundle` carries them)")
    lines += [f"  - {w}" for w in why]
    return lines
