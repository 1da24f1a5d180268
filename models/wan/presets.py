"""Sampling presets of the wan-animate engine: which scheduler, timesteps,
steps and guidance a job runs, and which server-side LoRA it needs.

``wan``  Wan's own recipe: the folder's UniPC flow scheduler (shift 5), ``steps``
         (20) and ``guidance`` from the job (wan/configs/wan_animate_14B.py).
``fast`` 4 steps, guidance off, with lightx2v's Wan 2.1 I2V step/CFG distillation LoRA
         (``lightx2v_I2V_14B_480p_cfg_step_distill_rank32_bf16.safetensors``, the file
         LightX2V's configs/wan22/wan_animate_replace_lora.json gives replace mode). Each
         value and where it comes from (LightX2V, github.com/ModelTC/LightX2V):
           - steps 4 and sigmas at t = 1000, 750, 500, 250: ``denoising_step_list`` of
             configs/distill/wan_i2v_distill_4step_cfg.json and every Wan 2.1 I2V distill config;
           - shift 5: ``sample_shift`` of the same configs (and of wan_animate_replace_lora.json);
           - Euler flow update x <- x + (sigma_next - sigma) * v, last sigma 0:
             ``WanStepDistillScheduler`` (lightx2v/models/schedulers/wan/step_distill/scheduler.py),
             the scheduler the ``wan2.1_distill`` runner uses; the shifted sigmas are
             shift*s / (1 + (shift-1)*s) of s = t/1000 there as here;
           - guidance 1 (no unconditional pass): ``sample_guide_scale: 1.0`` and ``enable_cfg:
             false`` in wan_animate_replace_lora.json -- the LoRA distils CFG away;
           - LoRA strength 1.0: ``lora_configs[0].strength`` of that file.
         LightX2V's own Animate LoRA configs keep their default UniPC scheduler (``WanScheduler``)
         for these 4 steps; ``preset=wan steps=4 guidance=1`` with the LoRA in ``params.lora``
         reproduces that variant. Its timesteps (999, 937, 833, 625) match the distilled ones
         within one step.

diffusers' ``FlowMatchEulerDiscreteScheduler(shift=5)`` given these sigmas is that
scheduler step for step (tests/test_wan_fast.py checks the timesteps against the formula).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

PRESETS = ("wan", "fast")
# LightX2V configs/distill/wan_i2v_distill_4step_cfg.json: denoising_step_list, sample_shift.
DISTILL_TIMESTEPS = (1000, 750, 500, 250)
DISTILL_SHIFT = 5.0
NUM_TRAIN_TIMESTEPS = 1000
DISTILL_SLOT = "distill"          # the server-side LoRA slot the fast preset needs

# Expected seconds per output frame at 832x480 on one H100, one 77-frame segment, no CFG.
# Projections, not measurements: 'wan' is shared/spec/wan-animate.md section 4's 20-step figure; 'fast'
# scales its transformer share by 4/20 (VAE, CLIP and pose encoding unchanged: ~0.06 s/frame of the
# 1.1). Replace with bench/wan_animate.py's GPU rows once a GPU has run them (bench/RESULTS.md).
EXPECTED_S_PER_FRAME = {"wan": 1.1, "fast": round((1.1 - 0.06) * 4 / 20 + 0.06, 2)}


@dataclass(frozen=True)
class Sampling:
    """What one job samples with: ``start(device)`` (re)sets the timesteps at each segment."""
    scheduler: Any                   # a diffusers scheduler (UniPC or flow-match Euler)
    steps: int
    guidance: float
    sigmas: tuple | None = None      # base sigmas, shifted by the scheduler; None: ``steps`` evenly

    def start(self, device):
        if self.sigmas is not None:
            self.scheduler.set_timesteps(sigmas=list(self.sigmas), device=device)
        else:
            self.scheduler.set_timesteps(self.steps, device=device)
        return self.scheduler.timesteps


def sampling_for(preset: str, pipe_scheduler, *, steps: int, guidance: float) -> Sampling:
    """The job's sampling. ``wan`` uses the pipeline's own scheduler object; ``fast`` a new Euler one."""
    if preset == "wan":
        return Sampling(pipe_scheduler, steps, guidance)
    if preset == "fast":
        from diffusers import FlowMatchEulerDiscreteScheduler
        euler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=NUM_TRAIN_TIMESTEPS, shift=DISTILL_SHIFT)
        return Sampling(euler, len(DISTILL_TIMESTEPS), 1.0,
                        sigmas=tuple(t / NUM_TRAIN_TIMESTEPS for t in DISTILL_TIMESTEPS))
    raise ValueError(f"preset must be one of {PRESETS}, got {preset!r}")


def distilled_timesteps() -> list[float]:
    """LightX2V's WanStepDistillScheduler timesteps, by its formula (for the check against diffusers)."""
    s = [t / NUM_TRAIN_TIMESTEPS for t in DISTILL_TIMESTEPS]
    return [NUM_TRAIN_TIMESTEPS * DISTILL_SHIFT * x / (1 + (DISTILL_SHIFT - 1) * x) for x in s]


def describe() -> dict:
    """The presets as INFO lists them."""
    return {
        "wan": {"steps": "params.steps (20)", "guidance": "params.guidance (1)", "scheduler": "UniPC, shift 5",
                "lora": None, "expected_s_per_frame": {"H100 832x480": EXPECTED_S_PER_FRAME["wan"]}},
        "fast": {"steps": len(DISTILL_TIMESTEPS), "guidance": 1.0,
                 "scheduler": f"Euler flow, shift {DISTILL_SHIFT:g}, t={list(DISTILL_TIMESTEPS)}",
                 "lora": f"server slot '{DISTILL_SLOT}' (lightx2v Wan 2.1 I2V step/CFG distillation)",
                 "expected_s_per_frame": {"H100 832x480 (projected)": EXPECTED_S_PER_FRAME["fast"]}},
    }
