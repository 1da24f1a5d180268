"""A tiny random-initialised AA2 pipeline built from the real classes.

One builder, used by the tests, ``inhabit doctor`` (smoke run and
``--save-tiny``) and the benchmark, so they all exercise the same code as a
full-size pipeline -- only the widths and depths are small.
"""
from __future__ import annotations


CHANNELS = (32, 64)   # UNet block widths of every tiny UNet
LAYERS = 1            # resnet/attention layers per UNet block of every tiny UNet


def _block_types(suffix: str, n: int) -> tuple:
    """SD's layout for ``n`` levels: cross-attention everywhere but the deepest level."""
    down = tuple(f"CrossAttnDownBlock{suffix}" for _ in range(n - 1)) + (f"DownBlock{suffix}",)
    up = (f"UpBlock{suffix}",) + tuple(f"CrossAttnUpBlock{suffix}" for _ in range(n - 1))
    return down, up


def _tiny_unet(cls, suffix: str, heads: dict, in_channels: int, cross_attention_dim: int, seed: int | None,
               channels: tuple, layers: int):
    import torch
    if seed is not None:
        torch.manual_seed(seed)
    down, up = _block_types(suffix, len(channels))
    return cls(in_channels=in_channels, out_channels=4, block_out_channels=tuple(channels), layers_per_block=layers,
               down_block_types=down, up_block_types=up, cross_attention_dim=cross_attention_dim,
               norm_num_groups=8, sample_size=8, **heads).eval()


def tiny_unet2d(in_channels: int = 4, *, cross_attention_dim: int = 32, seed: int | None = None,
                channels: tuple = CHANNELS, layers: int = LAYERS):
    """The tiny ReferenceNet-shaped UNet (``UNet2DConditionModel``), in eval mode."""
    from diffusers import UNet2DConditionModel
    # attention_head_dim is the head count in this class; 2 keeps it fast on CPU.
    return _tiny_unet(UNet2DConditionModel, "2D", {"attention_head_dim": 2}, in_channels, cross_attention_dim, seed,
                      channels, layers)


def tiny_motion_unet(in_channels: int = 4, *, cross_attention_dim: int = 32, seed: int | None = None,
                     channels: tuple = CHANNELS, layers: int = LAYERS):
    """The tiny denoising UNet with motion modules (``UNetMotionModel``), in eval mode."""
    from diffusers import UNetMotionModel
    heads = {"num_attention_heads": 2, "motion_num_attention_heads": 2, "motion_max_seq_length": 32}
    return _tiny_unet(UNetMotionModel, "Motion", heads, in_channels, cross_attention_dim, seed, channels, layers)


def tiny_vae():
    from diffusers import AutoencoderKL
    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, norm_num_groups=8, layers_per_block=1,
        block_out_channels=(8, 8, 16, 16),
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        sample_size=64).eval()


def tiny_image_encoder(projection_dim: int = 32):
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection
    return CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=2,
        image_size=32, patch_size=8, projection_dim=projection_dim)).eval()


def tiny_components(seed: int = 0, *, fusion_mode: str = "mid_up", channels: tuple = CHANNELS,
                    layers: int = LAYERS) -> dict:
    """All AA2 components; ``channels``/``layers`` size both UNets (the trainer's
    ``small`` config is (64, 128, 256) x 2; the defaults are the tiny one)."""
    import torch

    from .denoising_unet import INPUT_CHANNELS
    from .depth_modulation import DepthModulation
    from .object_guider import ObjectGuider, decoder_blend_levels
    from .pose_guider import PoseGuider

    torch.manual_seed(seed)
    channels = tuple(channels)
    cross = 32
    reference_unet = tiny_unet2d(cross_attention_dim=cross, channels=channels, layers=layers)
    denoising_unet = tiny_motion_unet(INPUT_CHANNELS, cross_attention_dim=cross, channels=channels, layers=layers)
    # Same start as a converted checkpoint: the extra input channels are zero.
    with torch.no_grad():
        denoising_unet.conv_in.weight[:, 4:] = 0
    vae = tiny_vae()
    image_encoder = tiny_image_encoder(cross)
    pose_guider = PoseGuider(channels[0], 3, (4, 8, 8, 16))
    depth_modulation = DepthModulation(channels[0], (4, 8, 8, 16), num_heads=2)
    _, levels = decoder_blend_levels(denoising_unet.config)
    object_guider = ObjectGuider(4, channels, blend_levels=levels)
    scheduler = moore_scheduler()
    # Inference components: eval mode, as from_pretrained leaves them, so a
    # fresh tiny pipeline and its saved-and-loaded copy compute the same.
    for m in (vae, image_encoder, reference_unet, denoising_unet, pose_guider, depth_modulation, object_guider):
        m.eval()
    return dict(vae=vae, image_encoder=image_encoder, reference_unet=reference_unet,
                denoising_unet=denoising_unet, pose_guider=pose_guider,
                depth_modulation=depth_modulation, object_guider=object_guider,
                scheduler=scheduler, fusion_mode=fusion_mode)


def moore_scheduler():
    """DDIM as Moore-AnimateAnyone's weights need it: v-prediction, zero
    terminal SNR, trailing spacing, linear betas 0.00085-0.012."""
    from diffusers import DDIMScheduler
    return DDIMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                         beta_schedule="linear", clip_sample=False, set_alpha_to_one=False,
                         steps_offset=1, prediction_type="v_prediction",
                         rescale_betas_zero_snr=True, timestep_spacing="trailing")


def tiny_pipeline(seed: int = 0, *, fusion_mode: str = "mid_up", device: str = "cpu", dtype=None,
                  channels: tuple = CHANNELS, layers: int = LAYERS):
    from .pipeline import AnimateAnyone2Pipeline
    pipe = AnimateAnyone2Pipeline(**tiny_components(seed, fusion_mode=fusion_mode, channels=channels, layers=layers))
    pipe.to(device=device, dtype=dtype) if dtype is not None else pipe.to(device)
    return pipe


def tiny_inputs(frames: int = 4, height: int = 64, width: int = 64, *, seed: int = 0,
                with_depth: bool = True, with_objects: bool = True) -> dict:
    """Synthetic but well-formed per-frame inputs: a walking stick figure in
    front of a gradient room, optionally with a box it touches."""
    import numpy as np
    from blender_addon.core.conventions import NO_SURFACE_DEPTH, NUM_KEYPOINTS

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    env = np.stack([xx * 255 // max(width - 1, 1), yy * 255 // max(height - 1, 1),
                    np.full_like(xx, 96)], -1).astype(np.uint8)
    environment = np.repeat(env[None], frames, 0)
    mask = np.zeros((frames, height, width), np.uint8)
    kps = np.zeros((frames, NUM_KEYPOINTS, 4), np.float32)
    cdepth = np.full((frames, height, width), NO_SURFACE_DEPTH, np.float32)
    sdepth = np.full((frames, height, width), 5.0, np.float32)
    objects = np.zeros((frames, height, width), np.uint8)
    base = rng.uniform(0.25, 0.35, size=NUM_KEYPOINTS * 2).reshape(NUM_KEYPOINTS, 2)
    for f in range(frames):
        cx = width * (0.35 + 0.3 * f / max(frames - 1, 1))
        x0, x1 = int(cx - width * 0.15), int(cx + width * 0.15)
        y0, y1 = int(height * 0.15), int(height * 0.9)
        mask[f, y0:y1, max(x0, 0):x1] = 255
        cdepth[f][mask[f] > 0] = 3.0
        kps[f, :, 0] = cx + (base[:, 0] - 0.3) * width
        kps[f, :, 1] = y0 + base[:, 1] * (y1 - y0) * 2.5
        kps[f, :, 2] = 3.0
        kps[f, :, 3] = 1.0
        if with_objects:
            objects[f, int(height * 0.6):int(height * 0.8), int(width * 0.7):int(width * 0.9)] = 1
    out = dict(environment=environment, character_mask=mask, keypoints=kps)
    if with_depth:
        out.update(character_depth=cdepth, scene_depth=sdepth)
    if with_objects:
        out["object_labels"] = objects
    ref = np.zeros((48, 32, 3), np.uint8)
    ref[8:40, 8:24] = (200, 60, 60)
    out["reference"] = ref
    return out
