"""Step caching on the Wan-Animate transformer through diffusers' ``enable_cache``
configs (``WanAnimateTransformer3DModel`` is a ``CacheMixin``).

  none         every step runs every block
  first-block  ``FirstBlockCacheConfig``: when block 0's residual barely changed since the
               last full step (relative mean abs difference <= threshold, default 0.05), the
               other 39 blocks are replaced by their residual from that step
  mag          ``MagCacheConfig``: skips whole steps while the accumulated magnitude-ratio error
               stays <= threshold (default 0.06), at most 3 in a row, never in the first 20%;
               the ratios are MagCache's published Wan2.1 I2V-14B 480p calibration (conditional
               branch), which diffusers interpolates to the job's step count
  taylorseer   ``TaylorSeerCacheConfig`` (lite): the first 3 steps run in full, then one step in
               5 does and the others predict the output projection by a first-order Taylor
               expansion (lite mode: the full mode stores two factors per attention/FFN output,
               ~80 GB at 832x480x77); no threshold

Two things diffusers 0.42 does not do for this model, done here:
- its block registry knows ``transformer_wan.WanTransformerBlock`` but not the Animate
  model's own copy of that class, so first-block and MagCache would refuse it: the same
  metadata is registered for it;
- the Animate model adds its face adapter's output after every 5th block, outside the
  blocks. When first-block or MagCache replaces the blocks by a cached residual, that
  residual already holds the adapters' contributions, so the adapters must add nothing
  on those steps, or the face motion is counted twice (``_FaceAdapterFollowsCache``).

The cache is enabled per job (its step count is part of MagCache's config) and
disabled after it; ``ShotGenerator`` resets its state at every segment.
"""
from __future__ import annotations

MODES = ("none", "first-block", "mag", "taylorseer")
DEFAULT_THRESHOLD = {"first-block": 0.05, "mag": 0.06}
_CONFIG_CLASS = {"first-block": "FirstBlockCacheConfig", "mag": "MagCacheConfig", "taylorseer": "TaylorSeerCacheConfig"}

# MagCache4Wan2.1/magcache_generate.py (github.com/Zehong-Ma/MagCache), Wan2.1 I2V-14B 480P, 40 steps:
# the conditional branch's magnitude ratios (every other value of the published cond/uncond list).
WAN21_I2V_480P_MAG_RATIOS = (
    1.0, 0.98783, 0.97559, 0.98311, 0.98202, 0.9888, 0.98762, 0.98957, 0.99052, 0.99383, 0.98857, 0.99065, 0.98845,
    0.99057, 0.98957, 0.98601, 0.98823, 0.98756, 0.98808, 0.98721, 0.98571, 0.98543, 0.98157, 0.98411, 0.97952,
    0.98149, 0.9774, 0.97825, 0.97355, 0.97085, 0.97056, 0.96588, 0.96113, 0.9567, 0.94961, 0.93973, 0.93217,
    0.91878, 0.90955, 0.92617)
_FACE_HOOK = "inhabit_face_adapter_follows_cache"


def mode_problem(mode: str) -> str | None:
    """One sentence when the installed diffusers lacks ``mode``'s config class, else None."""
    if mode == "none":
        return None
    if mode not in _CONFIG_CLASS:
        return f"params.cache must be one of {list(MODES)}, got {mode!r}"
    import diffusers
    import diffusers.hooks as hooks
    cls = _CONFIG_CLASS[mode]
    if not hasattr(hooks, cls):
        return (f"params.cache {mode!r} needs diffusers' {cls}, which diffusers {diffusers.__version__} on this "
                "server lacks: use cache 'none' or 'first-block', or upgrade diffusers on the server")
    return None


def make_config(mode: str, threshold: float, steps: int):
    import diffusers.hooks as hooks
    if mode == "first-block":
        return hooks.FirstBlockCacheConfig(threshold=threshold or DEFAULT_THRESHOLD["first-block"])
    if mode == "mag":
        return hooks.MagCacheConfig(threshold=threshold or DEFAULT_THRESHOLD["mag"], num_inference_steps=steps,
                                    mag_ratios=list(WAN21_I2V_480P_MAG_RATIOS))
    if mode == "taylorseer":
        return hooks.TaylorSeerCacheConfig(use_lite_mode=True, taylor_factors_dtype=None)
    raise ValueError(f"no cache config for {mode!r}")


def register_animate_block() -> None:
    """Give the Animate model's block class the metadata diffusers has for Wan's (idempotent)."""
    from diffusers.hooks._helpers import TransformerBlockMetadata, TransformerBlockRegistry
    from diffusers.models.transformers import transformer_wan_animate
    block = transformer_wan_animate.WanTransformerBlock
    try:
        TransformerBlockRegistry.get(block)
    except ValueError:
        TransformerBlockRegistry.register(block, TransformerBlockMetadata(return_hidden_states_index=0,
                                                                          return_encoder_hidden_states_index=None))


def enable(transformer, mode: str, threshold: float, steps: int) -> None:
    """Turn ``mode`` on for one job (``none`` turns any cache off)."""
    disable(transformer)
    if mode == "none":
        return
    register_animate_block()
    transformer.enable_cache(make_config(mode, threshold, steps))
    if mode in ("first-block", "mag"):
        _guard_face_adapter(transformer, mode)


def disable(transformer) -> None:
    if getattr(transformer, "is_cache_enabled", False):
        transformer.disable_cache()
    from diffusers.hooks import HookRegistry
    for adapter in getattr(transformer, "face_adapter", ()):
        registry = HookRegistry.check_if_exists_or_initialize(adapter)
        if registry.get_hook(_FACE_HOOK) is not None:
            registry.remove_hook(_FACE_HOOK)


def _guard_face_adapter(transformer, mode: str) -> None:
    from diffusers.hooks import HookRegistry, ModelHook
    from diffusers.hooks.first_block_cache import _FBC_LEADER_BLOCK_HOOK
    from diffusers.hooks.mag_cache import _MAG_CACHE_LEADER_BLOCK_HOOK

    leader = HookRegistry.check_if_exists_or_initialize(transformer.blocks[0]).get_hook(
        _FBC_LEADER_BLOCK_HOOK if mode == "first-block" else _MAG_CACHE_LEADER_BLOCK_HOOK)

    class _FaceAdapterFollowsCache(ModelHook):
        """Adds nothing on a step whose blocks came from the cache (the residual holds it already)."""

        def new_forward(self, module, hidden_states, *args, **kwargs):
            if not leader.state_manager.get_state().should_compute:
                import torch
                return torch.zeros_like(hidden_states)
            return self.fn_ref.original_forward(hidden_states, *args, **kwargs)

    HookRegistry.check_if_exists_or_initialize(transformer).invalidate_child_registries_cache()
    for adapter in transformer.face_adapter:
        HookRegistry.check_if_exists_or_initialize(adapter).register_hook(_FaceAdapterFollowsCache(), _FACE_HOOK)
