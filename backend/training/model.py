"""The AA2 pipeline's trainable part as one ``nn.Module`` whose forward is the loss.

The conditioning goes through the pipeline's own code (``prepare_conditioning``,
the VAE and CLIP encoders, the ReferenceNet bank, the hooks of
``fuse_reference`` / ``add_after_conv_in`` / ``blend_objects``), so training
and inference cannot drift apart. One module means one DDP wrapper for
``accelerate`` and one ``autocast``.

Stage 1: ReferenceNet (the part that feeds the bank), denoising UNet spatial
layers, pose guider, depth modulation, object guider; motion modules frozen.
Stage 2: the motion modules only. Frozen always: VAE, image encoder.
"""
from __future__ import annotations

import contextlib

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models.aa2.denoising_unet import add_after_conv_in, blend_objects
from models.aa2.object_guider import decoder_blend_levels
from models.aa2.reference_attention import ReferenceBank, fuse_reference

TRAINABLE = ("reference_unet", "denoising_unet", "pose_guider", "depth_modulation", "object_guider")


def is_motion(name: str) -> bool:
    return "motion_modules" in name


class AA2Trainee(nn.Module):
    def __init__(self, pipe, stage: int):
        super().__init__()
        if stage not in (1, 2):
            raise ValueError(f"stage must be 1 or 2, got {stage}")
        self.stage = stage
        for name in TRAINABLE:
            setattr(self, name, getattr(pipe, name))
        object.__setattr__(self, "pipe", pipe)   # not a submodule: its frozen encoders stay out of DDP
        for m in (pipe.vae, pipe.image_encoder):
            m.requires_grad_(False)
        for name in TRAINABLE:
            getattr(self, name).requires_grad_(stage == 1)
        for name, p in self.denoising_unet.named_parameters():
            p.requires_grad_(is_motion(name) == (stage == 2))
        if stage == 1:
            self._freeze_reference_tail()
        self._hooks: contextlib.ExitStack | None = None

    @torch.no_grad()
    def _ref_latent_probe(self):
        pipe = self.pipe
        m = pipe.size_multiple
        lat = torch.zeros(1, 4, m // pipe.vae_scale, m // pipe.vae_scale, device=pipe.device)
        return lat, torch.zeros(1, 1, self.reference_unet.config.cross_attention_dim, device=pipe.device)

    def _freeze_reference_tail(self):
        """Freeze the ReferenceNet layers after the last banked input (they never
        reach the loss: only the bank does), found by one backward of the bank."""
        lat, enc = self._ref_latent_probe()
        with torch.enable_grad():   # whatever the caller's grad mode
            bank = ReferenceBank(self.pipe.config.fusion_mode).compute(self.reference_unet, lat, enc, grad=True)
            sum(t.float().sum() for t in bank.tokens.values()).backward()
        for p in self.reference_unet.parameters():
            if p.grad is None:
                p.requires_grad_(False)
            p.grad = None

    def trainable_parameters(self) -> list[tuple[str, nn.Parameter]]:
        return [(n, p) for n, p in self.named_parameters() if p.requires_grad]

    def release_hooks(self) -> None:
        """Remove the conditioning hooks; call after backward (gradient
        checkpointing re-runs the forward, hooks included, during backward)."""
        if self._hooks is not None:
            self._hooks.close()
            self._hooks = None

    def forward(self, batch: list[dict], noise_seed: int) -> torch.Tensor:
        pipe = self.pipe
        self.release_hooks()
        n_frames = len(batch[0]["frames"])
        height, width = batch[0]["gt"].shape[1:3]
        work = pipe.work_size(height, width)
        lat_hw = (work[0] // pipe.vae_scale, work[1] // pipe.vae_scale)
        device, dtype = pipe.device, self.denoising_unet.dtype
        with torch.no_grad():
            gt = np.concatenate([s["gt"] for s in batch])
            z0 = pipe.encode_images(pipe.prepare_images(gt, work, pipe.vae.dtype)).float()          # [B*F, 4, h, w]
            refs = [pipe.prepare_reference(s["reference"]) for s in batch]
            ref_lat = pipe.encode_images(pipe.prepare_images(np.stack(refs), work, pipe.vae.dtype))  # [B, 4, h, w]
            clip = torch.cat([pipe.encode_reference_clip(r) for r in refs]).to(dtype)                     # [B, 1, D]
        conds = [pipe.prepare_conditioning(s["frames"], s["agnostic"], work, lat_hw, height, width) for s in batch]
        objects = self._batch_objects(conds, n_frames, work)

        g = torch.Generator("cpu").manual_seed(int(noise_seed))
        noise = torch.randn(z0.shape, generator=g).to(device)
        sched = pipe.scheduler
        t = torch.randint(0, sched.config.num_train_timesteps, (len(batch),), generator=g).to(device)
        t_frames = t.repeat_interleave(n_frames)
        noisy = sched.add_noise(z0, noise, t_frames)
        if sched.config.prediction_type == "v_prediction":
            target = sched.get_velocity(z0, noise, t_frames)
        elif sched.config.prediction_type == "epsilon":
            target = noise
        else:
            raise ValueError(f"scheduler prediction_type {sched.config.prediction_type!r} is not trained here: "
                             "use epsilon or v_prediction")

        env = torch.cat([c["env"] for c in conds])
        mask = torch.cat([c["mask"] for c in conds])
        pose = torch.cat([c["pose"] for c in conds])
        x = torch.cat([noisy.to(dtype), env, mask], dim=1)                                     # [B*F, 9, h, w]
        x = x.view(len(batch), n_frames, *x.shape[1:]).permute(0, 2, 1, 3, 4)                 # [B, 9, F, h, w]
        drop = torch.tensor([s["drop_reference"] for s in batch], device=device)
        enc = torch.where(drop.view(-1, 1, 1), torch.zeros_like(clip), clip).repeat_interleave(n_frames, dim=0)

        bank = ReferenceBank(pipe.config.fusion_mode).compute(self.reference_unet, ref_lat.to(dtype), clip,
                                                              grad=self.stage == 1)
        blend_names, _ = decoder_blend_levels(self.denoising_unet.config)
        self._hooks = contextlib.ExitStack()
        self._hooks.enter_context(fuse_reference(self.denoising_unet, bank, n_frames))
        self._hooks.enter_context(add_after_conv_in(self.denoising_unet, pose))
        self._hooks.enter_context(blend_objects(self.denoising_unet, self.object_guider, blend_names, objects))
        pred = self.denoising_unet(x, t, encoder_hidden_states=enc).sample                     # [B, 4, F, h, w]
        pred = pred.permute(0, 2, 1, 3, 4).reshape(z0.shape)
        return F.mse_loss(pred.float(), target.float())

    def _batch_objects(self, conds, n_frames, work):
        """Per-level object features for the batch; samples without props get the
        features of an empty object image, as the pipeline gives frames without
        labels in a window that has some."""
        if all(c["objects"] is None for c in conds):
            return None
        pipe = self.pipe
        empty = None
        per = []
        for c in conds:
            if c["objects"] is None:
                if empty is None:
                    blank = np.zeros((n_frames, work[0], work[1], 3), np.uint8)
                    with torch.no_grad():
                        z = pipe.encode_images(pipe.prepare_images(blank, work, pipe.vae.dtype))
                    empty = z.to(self.object_guider.dtype)
                per.append([o.to(self.denoising_unet.dtype) for o in self.object_guider(empty)])
            else:
                per.append(c["objects"])
        return [torch.cat(level) for level in zip(*per)]


class VAETrainee(nn.Module):
    """Stage 0, for configs trained from scratch (tiny): fit the autoencoder on
    the dataset's frames first. A random VAE does not reconstruct, so no
    denoiser trained in its latent space could produce a picture. Loss: MSE
    of the reconstruction plus a small KL term (as the SD autoencoder)."""

    KL_WEIGHT = 1e-6

    def __init__(self, pipe):
        super().__init__()
        self.vae = pipe.vae
        object.__setattr__(self, "pipe", pipe)
        for name in ("image_encoder",) + TRAINABLE:
            getattr(pipe, name).requires_grad_(False)
        self.vae.requires_grad_(True)
        self.latent_std = None

    def trainable_parameters(self) -> list[tuple[str, nn.Parameter]]:
        return [(n, p) for n, p in self.named_parameters() if p.requires_grad]

    def release_hooks(self) -> None:
        pass

    def forward(self, batch: list[dict], noise_seed: int) -> torch.Tensor:
        pipe = self.pipe
        images = np.concatenate([np.concatenate([s["gt"], np.stack([f["environment"] for f in s["frames"]])])
                                 for s in batch])
        x = pipe.prepare_images(images, images.shape[1:3], self.vae.dtype)
        g = torch.Generator("cpu").manual_seed(int(noise_seed))
        dist = self.vae.encode(x).latent_dist
        z = dist.mean + dist.std * torch.randn(dist.mean.shape, generator=g).to(x.device, x.dtype)
        rec = self.vae.decode(z).sample
        self.latent_std = float(dist.mean.detach().float().std())
        kl = dist.kl().mean()
        return F.mse_loss(rec.float(), x.float()) + self.KL_WEIGHT * kl.float()

    def calibrate(self) -> None:
        """Latents enter the denoiser at unit scale: scaling_factor = 1 / std (as SD's 0.18215 was found)."""
        if self.latent_std:
            self.vae.register_to_config(scaling_factor=round(1.0 / max(self.latent_std, 1e-3), 5))
