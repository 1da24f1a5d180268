"""The one tiny random Wan-Animate configuration: the real diffusers and
transformers classes, widths and depths cut down so a CPU runs a 64x64,
5-frame segment in seconds with no network.

Used by the tests, ``inhabit doctor --engine wan-animate --save-tiny``, the
demo and ``bench/wan_animate.py``. Differences from diffusers' own test
fixture (tests/pipelines/wan/test_wan_animate.py), each for a reason:
the image cross-attention (``added_kv_proj_dim``) is built, as in the real model, so
Wan 2.1 I2V LoRAs (``k_img``/``v_img``) have their layers;
the text encoder is a UMT5 built from a config and the tokenizer a WordLevel
one built in memory (the fixture downloads both from the hub); the image
processor is ``CLIPImageProcessorPil`` (``CLIPImageProcessor`` is the
torchvision backend in transformers 5); the scheduler is the real repo's UniPC
flow-prediction one; ``rope_max_seq_len`` is the real 1024 (the fixture's 32
caps frames at 512 px); encoders are put in eval mode (built directly they
train, with dropout on).
"""
from __future__ import annotations

TINY_FACE = 16        # transformer.config.motion_encoder_size of the tiny model
TINY_TEXT_DIM = 32


def tiny_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2}
    for w in "a person walks in the room dance moves character video".split():
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


def tiny_components(seed: int = 0) -> dict:
    import torch
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanAnimateTransformer3DModel
    from transformers import CLIPImageProcessorPil, CLIPVisionConfig, CLIPVisionModel, UMT5Config, UMT5EncoderModel

    torch.manual_seed(seed)
    vae = AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                           temperal_downsample=[False, True, True])
    scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True,
                                        num_train_timesteps=1000, flow_shift=5.0)
    torch.manual_seed(seed)
    text_encoder = UMT5EncoderModel(UMT5Config(vocab_size=32, d_model=TINY_TEXT_DIM, d_kv=8, d_ff=37, num_layers=2,
                                               num_heads=4, relative_attention_num_buckets=8))
    torch.manual_seed(seed)
    transformer = WanAnimateTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=36, latent_channels=16,
        out_channels=16, text_dim=TINY_TEXT_DIM, freq_dim=256, ffn_dim=32, num_layers=2, cross_attn_norm=True,
        qk_norm="rms_norm_across_heads", image_dim=4, added_kv_proj_dim=24, rope_max_seq_len=1024,
        motion_encoder_channel_sizes={"4": 16, "8": 16, "16": 16}, motion_encoder_size=TINY_FACE,
        motion_style_dim=8, motion_dim=4, motion_encoder_dim=16, face_encoder_hidden_dim=16,
        face_encoder_num_heads=2, inject_face_latents_blocks=2)
    torch.manual_seed(seed)
    image_encoder = CLIPVisionModel(CLIPVisionConfig(hidden_size=4, projection_dim=4, num_hidden_layers=2,
                                                     num_attention_heads=2, image_size=4, intermediate_size=16,
                                                     patch_size=1))
    for m in (vae, text_encoder, transformer, image_encoder):
        m.eval()
    return dict(transformer=transformer, vae=vae, scheduler=scheduler, text_encoder=text_encoder,
                tokenizer=tiny_tokenizer(), image_encoder=image_encoder,
                image_processor=CLIPImageProcessorPil(crop_size=4, size=4))


def tiny_pipeline(seed: int = 0):
    from diffusers import WanAnimatePipeline
    pipe = WanAnimatePipeline(**tiny_components(seed))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def save_tiny(folder: str, seed: int = 0) -> str:
    """Write the tiny pipeline as a Diffusers folder (the real repo's layout)."""
    tiny_pipeline(seed).save_pretrained(folder, safe_serialization=True)
    return folder
