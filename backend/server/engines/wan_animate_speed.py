"""The wan-animate engine's speed features: what a job chooses (preset, cache,
LoRAs and their strengths) and how the server runs the model (LoRA slots,
attention kernel, compilation, fp8), each checked with one sentence before
anything long starts. The mechanisms live in ``models.wan`` (``presets``,
``cache``, ``lora``, ``accel``); this module declares them to the server and
applies them to the engine's pipeline.

LoRA slots: ``--engine-option distill_lora=PATH`` (the step-distillation LoRA the
``fast`` preset needs) and ``relight_lora=PATH`` (Wan's relighting LoRA, which a
job asks for with ``params.lora=relight``) are loaded once per worker at load,
before compilation. ``params.lora`` may also name a file of the server's
``lora_dir``, loaded at its first job. Several act at once, each with its
strength (peft adapters).
"""
from __future__ import annotations

import os

from blender_addon.core.protocol import ParamSpec
from models.wan.accel import ATTENTION
from models.wan.cache import MODES as CACHE_MODES
from models.wan.presets import DISTILL_SLOT, EXPECTED_S_PER_FRAME, PRESETS

from .base import EngineInputError

RELIGHT_SLOT = "relight"
JOB_ADAPTER = "job"
SLOT_OPTIONS = {DISTILL_SLOT: "distill_lora", RELIGHT_SLOT: "relight_lora"}

JOB_PARAMS = (
    ParamSpec("preset", "choice", "wan", choices=PRESETS,
              doc=f"sampling: 'wan' = Wan's recipe (UniPC, params.steps, ~{EXPECTED_S_PER_FRAME['wan']} s/frame on "
                  f"an H100 at 832x480); 'fast' = 4 steps, guidance off, with the server's step-distillation LoRA "
                  f"(~{EXPECTED_S_PER_FRAME['fast']} s/frame projected; ignores params.steps and guidance)"),
    ParamSpec("cache", "choice", "none", choices=CACHE_MODES,
              doc="step caching (diffusers): first-block or mag skip blocks/steps whose change is under "
                  "cache_threshold; taylorseer predicts 4 of every 5 steps after the third; gains shrink at 4 steps"),
    ParamSpec("cache_threshold", "float", 0.0, 0.0, 1.0,
              doc="first-block / mag threshold; 0 = the mode's default (0.05 / 0.06); higher = faster, rougher"),
    ParamSpec("distill_strength", "float", 1.0, 0.0, 2.0,
              doc="strength of the step-distillation LoRA under preset 'fast' (LightX2V uses 1.0)"),
)
SERVER_OPTIONS = (
    ParamSpec("distill_lora", "str", "",
              doc="step-distillation LoRA for preset 'fast' (lightx2v_I2V_14B_480p_cfg_step_distill_rank32_bf16"
                  ".safetensors or a Wan 2.1 I2V 4-step LoRA), loaded once at load"),
    ParamSpec("relight_lora", "str", "",
              doc="Wan-Animate's relighting LoRA (safetensors, or Wan's relighting_lora.ckpt), loaded once at "
                  "load; jobs use it with params.lora=relight"),
    ParamSpec("compile", "bool", False,
              doc="regional torch.compile of the transformer blocks, once per worker at load (its cost is paid "
                  "there; needs a working inductor)"),
    ParamSpec("attention", "choice", "sdpa", choices=ATTENTION,
              doc="attention kernel: sdpa (torch), flash (flash-attn 3 or 2), sage (sageattention; users report "
                  "worse Animate faces, unverified)"),
)


def options_problem(options: dict, device: str) -> str | None:
    """One sentence when this server's options cannot work here (checked before it listens)."""
    from models.wan.accel import attention_problem, compile_problem
    for slot, name in SLOT_OPTIONS.items():
        path = options.get(name) or ""
        if path and not os.path.isfile(path):
            return (f"--engine-option {name}={path!r} is not a file: give the path of the {slot} LoRA "
                    "(.safetensors) on this server")
    problem = attention_problem(options.get("attention", "sdpa"), device)
    if problem:
        return problem
    if options.get("compile"):
        return compile_problem(device)
    return None


def check_job(params: dict, options: dict) -> None:
    """EngineInputError (one sentence, the field named) for speed choices this server cannot run."""
    from models.wan.cache import mode_problem
    if params["preset"] == "fast" and not options.get("distill_lora"):
        raise EngineInputError(
            "params.preset 'fast' needs the step-distillation LoRA on the server, which this one was started "
            "without: start it with --engine-option distill_lora=PATH (e.g. lightx2v_I2V_14B_480p_cfg_step_distill_"
            "rank32_bf16.safetensors), or use preset 'wan'", field="params.preset")
    problem = mode_problem(params["cache"])
    if problem:
        raise EngineInputError(problem, field="params.cache")
    if params["lora"] and params["lora"] not in SLOT_OPTIONS and options.get("fp8"):
        raise EngineInputError("params.lora: this server stores its weights in fp8, so only its LoRA slots "
                               "(loaded before the cast) can be used: use lora 'relight', or a server without fp8",
                               field="params.lora")
    if params["lora"] == RELIGHT_SLOT and not options.get("relight_lora"):
        raise EngineInputError("params.lora 'relight' needs the relighting LoRA on the server: start it with "
                               "--engine-option relight_lora=PATH, or name a file of its lora_dir",
                               field="params.lora")


def load_slots(engine, pipe) -> None:
    """The LoRA slots, into the freshly loaded pipeline: before fp8 (peft wraps plain Linear layers
    and the LoRA matrices keep their dtype) and before compilation."""
    from models.wan.lora import AdapterSet
    engine.adapters = AdapterSet(pipe)
    for slot, name in SLOT_OPTIONS.items():
        if engine.options.get(name):
            engine.adapters.ensure(slot, engine.options[name])
    engine.adapters.activate({})


def after_load(engine) -> list[str]:
    """torchao fp8 (full tier) and compilation, once the pipeline is placed. Lines for the log."""
    from models.wan.accel import apply_fp8, compile_blocks, fp8_method
    notes = [f"LoRA slot {slot}: {os.path.basename(path)}" for slot, path in engine.adapters.paths.items()]
    if engine.options.get("fp8") and engine.tier == "full" and fp8_method(engine.device) == "torchao":
        # After the slots: peft then wraps plain Linear layers, and the LoRA matrices stay bf16.
        apply_fp8(engine.pipe.transformer, "torchao")
        notes.append("fp8: torchao float8 weight-only on the blocks' Linear layers")
    if engine.options.get("compile"):
        import time

        from models.wan.accel import image_tokens, warm_up
        tokens = image_tokens(engine.pipe)
        seconds = compile_blocks(engine.pipe.transformer, engine.device, tokens)
        t0 = time.perf_counter()
        # Each adapter state is its own compiled graph: build the fast preset's too, so no job pays it.
        if DISTILL_SLOT in engine.adapters.paths:
            engine.adapters.activate({DISTILL_SLOT: 1.0})
            warm_up(engine.pipe.transformer, engine.device, tokens)
            engine.adapters.activate({})
        notes.append(f"compiled the repeated blocks in {seconds + time.perf_counter() - t0:.1f} s")
    return notes


def start_job(engine, params: dict, lora: str):
    """Activate the job's LoRAs and cache; returns its ``Sampling``. Undo with ``end_job``.
    ``lora``: "", the relight slot's name, or the path of the job's LoRA file."""
    from models.wan import cache
    from models.wan.lora import LoraMismatch
    from models.wan.presets import sampling_for
    wanted = {}
    if params["preset"] == "fast":
        wanted[DISTILL_SLOT] = params["distill_strength"]
    if lora:
        name = lora if lora in SLOT_OPTIONS else JOB_ADAPTER
        if name == JOB_ADAPTER:
            try:
                engine.adapters.ensure(JOB_ADAPTER, lora)
            except LoraMismatch as exc:
                raise EngineInputError(str(exc), field="params.lora") from None
        wanted[name] = params["lora_strength"]
    engine.adapters.activate(wanted)
    sampling = sampling_for(params["preset"], engine.pipe.scheduler, steps=params["steps"],
                            guidance=params["guidance"])
    cache.enable(engine.pipe.transformer, params["cache"], params["cache_threshold"], sampling.steps)
    return sampling


def end_job(engine) -> None:
    from models.wan import cache
    cache.disable(engine.pipe.transformer)
