"""ReferenceNet fusion through forward hooks (no diffusers patching).

The ReferenceNet (a 2D UNet run once per shot on the reference latent) and
the denoising UNet share module names for their spatial self-attention
layers (``...transformer_blocks.N.attn1``). A forward-pre-hook on each chosen
ReferenceNet ``attn1`` banks its input tokens; a forward-pre-hook on the
denoising UNet's ``attn1`` of the same name turns its self-attention into
attention over ``[frame tokens, reference tokens]`` by passing
``encoder_hidden_states``. With identical weights and inputs that is exactly
the plain self-attention (duplicated keys leave softmax weights unchanged),
which the tests check.

Modes: "mid_up" (Animate Anyone 2: mid and up blocks) or "all" (as
Moore-AnimateAnyone / Animate Anyone 1 do).
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

FUSION_MODES = ("mid_up", "all")


def spatial_self_attention_names(unet: nn.Module, mode: str = "mid_up") -> list[str]:
    if mode not in FUSION_MODES:
        raise ValueError(f"fusion mode must be one of {FUSION_MODES}, got {mode!r}")
    names = []
    for name, _ in unet.named_modules():
        if not name.endswith(".attn1") or "motion_modules" in name:
            continue
        if mode == "mid_up" and not (name.startswith("mid_block.") or name.startswith("up_blocks.")):
            continue
        names.append(name)
    return names


class ReferenceBank:
    """Banked reference tokens per layer name; computed once per shot."""

    def __init__(self, mode: str = "mid_up"):
        self.mode = mode
        self.tokens: dict[str, torch.Tensor] = {}

    def compute(self, reference_unet: nn.Module, reference_latent: torch.Tensor,
                encoder_hidden_states: torch.Tensor, *, grad: bool = False) -> "ReferenceBank":
        """Run the ReferenceNet at t=0 and keep every chosen attn1 input
        (``grad=True`` keeps the graph: training the ReferenceNet)."""
        with torch.set_grad_enabled(grad):
            return self._compute(reference_unet, reference_latent, encoder_hidden_states, grad)

    def _compute(self, reference_unet, reference_latent, encoder_hidden_states, grad):
        self.tokens.clear()
        names = spatial_self_attention_names(reference_unet, self.mode)
        modules = dict(reference_unet.named_modules())
        handles = []
        for name in names:
            def bank(module, args, kwargs, _name=name):
                hs = args[0] if args else kwargs["hidden_states"]
                self.tokens[_name] = hs if grad else hs.detach()
            handles.append(modules[name].register_forward_pre_hook(bank, with_kwargs=True))
        try:
            t = torch.zeros((), device=reference_latent.device)
            reference_unet(reference_latent, t, encoder_hidden_states=encoder_hidden_states)
        finally:
            for h in handles:
                h.remove()
        if not self.tokens:
            raise ValueError("the ReferenceNet has no spatial self-attention layers for "
                             f"fusion mode {self.mode!r}")
        return self


@contextmanager
def fuse_reference(unet: nn.Module, bank: ReferenceBank, num_frames: int):
    """While active, the denoising UNet's attn1 layers attend to the bank.

    The bank holds one entry per reference (batch b); the UNet's attn1 sees
    [B*F, L, C] where B may be a multiple of b (classifier-free guidance runs
    the conditional and unconditional halves with the same reference, as
    Moore-AnimateAnyone does). The bank is repeated to match.
    """
    modules = dict(unet.named_modules())
    missing = [n for n in bank.tokens if n not in modules]
    if missing:
        raise ValueError(f"denoising UNet lacks reference-fusion layers {missing[:3]} -- "
                         "ReferenceNet and denoising UNet must have the same block layout")
    handles = []
    for name, ref in bank.tokens.items():
        def hook(module, args, kwargs, _ref=ref):
            hs = args[0] if args else kwargs["hidden_states"]
            r = _ref.to(hs.dtype)
            if r.shape[0] != hs.shape[0]:
                # [b, L, C] -> [b*F] (frames of a sample are consecutive) -> [B*F].
                if hs.shape[0] % (r.shape[0] * num_frames):
                    raise ValueError(f"reference bank batch {r.shape[0]} does not divide "
                                     f"the UNet batch {hs.shape[0]} for {num_frames} frames")
                r = r.repeat_interleave(num_frames, dim=0)
                r = r.repeat(hs.shape[0] // r.shape[0], 1, 1)
            kwargs = dict(kwargs)
            kwargs["encoder_hidden_states"] = torch.cat([hs, r], dim=1)
            if args:
                args = (hs,) + tuple(args[1:])
            return args, kwargs
        handles.append(modules[name].register_forward_pre_hook(hook, with_kwargs=True))
    try:
        yield
    finally:
        for h in handles:
            h.remove()
