"""Speed rows of the wan-animate model, each feature alone and combined, on one
segment with one pipeline in one process (``bench/wan_animate.py`` calls it):

  20 steps (Wan's recipe), + first-block cache, + MagCache;
  4 steps (preset fast: distilled Euler schedule + a step-distillation LoRA in ComfyUI's key
  layout), + first-block cache, + MagCache, + TaylorSeer, + each attention backend available,
  + regional compile (cold: compile and first run; warm: the next run), + fp8 weights;
  4 steps + MagCache + compile + fp8 + the best attention backend.

Each row: seconds per output frame (reference encoding, denoising and VAE decode),
peak VRAM, and the relative L1 difference of its final latents from the 20-step
row's at equal seed. The weights (model and LoRA) are random: that difference
checks the mechanics (same noise, same inputs, how far each shortcut moves the
result), not picture quality. Compile, fp8 and attention act per forward, so
their rows are measured on the 4-step recipe; caches depend on the step count,
so they have 20-step rows too.

Imports only models/ code (no pyzmq, no bpy), so the GPU bundle carries it.
"""
from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Row:
    label: str
    preset: str = "fast"
    cache: str = "none"
    attention: str = "sdpa"
    compile: str = ""          # "", "cold", "warm"
    fp8: bool = False


def rows_for(device: str) -> list[Row]:
    """Every row, in an order where the irreversible steps (compile, fp8) come last."""
    from models.wan.accel import attention_problem
    rows = [Row("20 steps (Wan's recipe, UniPC)", preset="wan"),
            Row("20 steps + first-block cache", preset="wan", cache="first-block"),
            Row("20 steps + MagCache", preset="wan", cache="mag"),
            Row("4 steps (preset fast)"),
            Row("4 steps + first-block cache", cache="first-block"),
            Row("4 steps + MagCache", cache="mag"),
            Row("4 steps + TaylorSeer", cache="taylorseer")]
    backends = [b for b in ("flash", "sage") if attention_problem(b, device) is None]
    rows += [Row(f"4 steps + attention {b}", attention=b) for b in backends]
    rows += [Row("4 steps + regional compile, cold (compile + first run)", compile="cold"),
             Row("4 steps + regional compile, warm", compile="warm"),
             Row("4 steps + fp8 weights", fp8=True)]
    best = backends[0] if backends else "sdpa"
    rows += [Row(f"4 steps + compile + fp8 + {best}, warm", attention=best, compile="warm", fp8=True),
             Row(f"4 steps + MagCache + compile + fp8 + {best}, warm", cache="mag", attention=best, compile="warm",
                 fp8=True)]
    return rows


def unavailable_backends(device: str) -> list[str]:
    from models.wan.accel import attention_problem
    return [f"attention {b}: {attention_problem(b, device)}" for b in ("flash", "sage")
            if attention_problem(b, device) is not None]


def synthetic_distill_lora(transformer, folder: str, rank: int, seed: int = 0) -> str:
    """A random step-distillation-shaped LoRA for ``transformer`` in ComfyUI's key layout
    (``diffusion_model.blocks.N.self_attn.q.lora_down.weight``), every block Linear, bf16."""
    import torch
    from safetensors.torch import save_file

    from models.wan.lora_layouts import BLOCK_NAMES
    modules = dict(transformer.named_modules())
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for i in range(len(transformer.blocks)):
        for wan, ours in BLOCK_NAMES.items():
            layer = modules.get(f"blocks.{i}.{ours}")
            if layer is None:
                continue
            sd[f"diffusion_model.blocks.{i}.{wan}.lora_down.weight"] = (
                torch.randn(rank, layer.in_features, generator=g) / layer.in_features ** 0.5).to(torch.bfloat16)
            sd[f"diffusion_model.blocks.{i}.{wan}.lora_up.weight"] = (
                torch.randn(layer.out_features, rank, generator=g) * 0.01).to(torch.bfloat16)
    path = os.path.join(folder, "synthetic_distill_lora.safetensors")
    save_file(sd, path)
    return path


def run_rows(pipe, device: str, *, height: int, width: int, frames: int, inputs, reference, prompt_embeds,
             budget_s: float, lora_rank: int, repeats: int = 1, only=None) -> tuple[list[dict], list[str]]:
    """(rows, notes). Row dicts: label, steps, s_per_frame, peak_gib (None on CPU), latent_diff, wall_s.
    ``repeats`` > 1: each row but a cold compile runs that often and keeps its fastest run (on a shared
    CPU the machine's other load otherwise decides the order of the rows). ``only``: labels to run
    (the 20-step row, the reference, always runs)."""
    import torch

    from models.wan import cache
    from models.wan.accel import apply_fp8, attention_backend, compile_blocks, image_tokens
    from models.wan.generate import ShotGenerator
    from models.wan.lora import AdapterSet
    from models.wan.presets import sampling_for
    from models.wan.segments import plan_segments

    cuda = str(device).startswith("cuda")
    tr = pipe.transformer
    seg = plan_segments(frames, frames, 5)[0]
    adapters = AdapterSet(pipe)
    with tempfile.TemporaryDirectory() as tmp:
        adapters.ensure("distill", synthetic_distill_lora(tr, tmp, lora_rank))
    t_start = time.perf_counter()
    out, notes, ref_latents = [], unavailable_backends(device), None
    state = {"compiled": False, "fp8": False, "compile_s": 0.0}

    def one(row: Row):
        if row.fp8 and not state["fp8"]:
            if state["compiled"]:              # fp8 changes the weights' types: compile again afterwards
                for block in tr.blocks:
                    block._compiled_call_impl = None
                state["compiled"] = False
            apply_fp8(tr, "torchao" if cuda and _has("torchao") else "layerwise")
            state["fp8"] = True
        tr.set_attention_backend(attention_backend(row.attention))
        state["compile_s"] = 0.0
        if row.compile and not state["compiled"]:
            state["compile_s"] = compile_blocks(tr, device, image_tokens(pipe))
            state["compiled"] = True
        adapters.activate({"distill": 1.0} if row.preset == "fast" else {})
        sampling = sampling_for(row.preset, pipe.scheduler, steps=20, guidance=1.0)
        cache.enable(tr, row.cache, 0.0, sampling.steps)
        try:
            if cuda:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            gen = ShotGenerator(pipe, height=height, width=width, steps=sampling.steps, guidance=1.0, seed=0,
                                prompt_embeds=prompt_embeds, sampling=sampling)
            gen.set_reference(reference)
            gen.segment(seg, inputs)
            gen.finish()
            if cuda:
                torch.cuda.synchronize()
            wall = time.perf_counter() - t0 + (state["compile_s"] if row.compile == "cold" else 0.0)
        finally:
            cache.disable(tr)
        return gen.last_latents.float().cpu(), wall, (torch.cuda.max_memory_allocated() / 2**30 if cuda else None)

    for row in rows_for(device):
        if only and row.preset != "wan" and row.label not in only or only and row.preset == "wan" and row.cache != \
                "none" and row.label not in only:
            continue
        if time.perf_counter() - t_start > budget_s:
            notes.append(f"{row.label}: not run (time budget of {budget_s:.0f} s spent)")
            continue
        try:
            if row.compile == "warm" and not state["compiled"]:
                one(Row(row.label, row.preset, row.cache, row.attention, "cold", row.fp8))   # pay the compile first
            latents, wall, peak = one(row)
            for _ in range(repeats - 1 if row.compile != "cold" else 0):
                _, again, _ = one(row)
                wall = min(wall, again)
        except Exception as exc:  # noqa: BLE001 -- a feature this machine cannot run is a note, not the end
            notes.append(f"{row.label}: failed ({type(exc).__name__}: {str(exc).splitlines()[0][:160]})")
            continue
        if ref_latents is None:
            ref_latents = latents
        diff = float((latents - ref_latents).abs().mean() / ref_latents.abs().mean())
        out.append({"label": row.label, "steps": 20 if row.preset == "wan" else 4, "s_per_frame": wall / frames,
                    "peak_gib": peak, "latent_diff": diff, "wall_s": wall})
    return out, notes


def _has(module: str) -> bool:
    import importlib.util
    return importlib.util.find_spec(module) is not None


def table(rows: list[dict], notes: list[str], heading: str) -> str:
    lines = [heading, "", "| row | steps | s/frame | vs 20 steps | peak VRAM GiB | latent difference vs 20-step row |",
             "|---|---|---|---|---|---|"]
    base = rows[0]["s_per_frame"] if rows else None
    for r in rows:
        peak = "-" if r["peak_gib"] is None else f"{r['peak_gib']:.1f}"
        lines.append(f"| {r['label']} | {r['steps']} | {r['s_per_frame']:.3f} | {base / r['s_per_frame']:.2f}x | "
                     f"{peak} | {r['latent_diff']:.3f} |")
    lines += [""] + [f"- {n}" for n in notes] if notes else []
    lines += ["", "Random weights (model and LoRA): the latent difference checks the mechanics (same noise and "
              "inputs; how far each shortcut moves the result), not picture quality."]
    return "\n".join(lines)
