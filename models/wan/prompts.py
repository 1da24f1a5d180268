"""Text embeddings for Wan-Animate, computed once per prompt and cached on disk.

The UMT5-XXL encoder is 11 GB; the prompt of a replace job rarely changes
(Wan's own is one fixed sentence). So the engine loads the pipeline without
it, and for a prompt it has not seen loads the encoder, embeds the prompt,
saves the embedding (safetensors, in a capped ``PromptCache``) and releases
the encoder. ``prompt=`` is never passed to the pipeline: its ``prompt_clean``
needs ftfy, which the server does not ship; the cleaning here is the same
minus ftfy's mojibake repair.
"""
from __future__ import annotations

import hashlib
import html
import os
import re

DEFAULT_PROMPT = "视频中的人在做动作"   # wan/configs/wan_animate_14B.py: "the person in the video is moving"
MAX_SEQUENCE_LENGTH = 512
CACHE_SUBDIR = ".inhabit_prompt_cache"


def clean(prompt: str) -> str:
    text = html.unescape(html.unescape(prompt)).strip()
    return re.sub(r"\s+", " ", text).strip()


class PromptCache:
    """Cached embeddings in one folder, at most ``cap_bytes`` of them.

    The folder is the server's (``--engine-option prompt_cache=DIR``) or the
    user cache, never the weights folder: a client's new prompt must not
    write into it. Embeddings an older version cached next to the weights
    (``CACHE_SUBDIR``) are still read. Past the cap, the least recently used
    embeddings are deleted -- never Wan's own prompt's nor the empty one's,
    which every job needs and which a folder without text_encoder/ could not
    make again."""

    def __init__(self, weights: str, folder: str | None = None, *, cap_bytes: int = 1 << 30):
        key = hashlib.sha256(os.path.abspath(weights).encode()).hexdigest()[:16]
        self.folder = folder or os.path.join(os.path.expanduser("~"), ".cache", "inhabit", "prompts", key)
        self.legacy = os.path.join(weights, CACHE_SUBDIR)
        self.cap_bytes = int(cap_bytes)
        self.pinned = {cache_key(weights, t, MAX_SEQUENCE_LENGTH) + ".safetensors" for t in (DEFAULT_PROMPT, "")}

    def find(self, name: str) -> str | None:
        for folder in (self.folder, self.legacy):
            path = os.path.join(folder, name)
            if os.path.isfile(path):
                if folder == self.folder:
                    os.utime(path)          # recently used: evicted last
                return path
        return None

    def path_for(self, name: str) -> str:
        os.makedirs(self.folder, exist_ok=True)
        return os.path.join(self.folder, name)

    def evict(self, keep: str) -> None:
        """Delete the least recently used embeddings until the folder is under the cap."""
        entries = []
        for f in os.listdir(self.folder):
            path = os.path.join(self.folder, f)
            if f.endswith(".safetensors") and os.path.isfile(path):
                st = os.stat(path)
                entries.append((st.st_mtime, st.st_size, f, path))
        total = sum(e[1] for e in entries)
        for _, size, f, path in sorted(entries):
            if total <= self.cap_bytes:
                break
            if f in self.pinned or path == keep:
                continue
            os.remove(path)
            total -= size


def cache_key(weights: str, prompt: str, max_length: int) -> str:
    """From the prompt, the length and the transformer's text width -- not from the
    text encoder's files, so the cache still serves once text_encoder/ is deleted
    to save 11 GB (the cache is keyed by the weights folder's path, so it is
    that folder's encoder that made it)."""
    import json
    h = hashlib.sha256()
    h.update(clean(prompt).encode())
    h.update(str(max_length).encode())
    cfg = os.path.join(weights, "transformer", "config.json")
    if os.path.isfile(cfg):
        with open(cfg) as fh:
            h.update(str(json.load(fh).get("text_dim")).encode())
    return h.hexdigest()[:32]


def prompt_embeddings(weights: str, prompt: str, *, device: str = "cpu", max_length: int = MAX_SEQUENCE_LENGTH,
                      on_event=None, cache: PromptCache | None = None):
    """float32 [1, max_length, text_dim] on the CPU, from the cache or computed
    (and cached; ``cache`` defaults to the user cache with a 1 GiB cap)."""
    from safetensors.torch import load_file, save_file

    cache = cache or PromptCache(weights)
    name = cache_key(weights, prompt, max_length) + ".safetensors"
    found = cache.find(name)
    if found:
        return load_file(found)["prompt_embeds"]
    if on_event:
        on_event("embedding a new prompt (loading the text encoder once)")
    emb = _encode(weights, prompt, device=device, max_length=max_length)
    path = cache.path_for(name)
    tmp = path + ".tmp"
    save_file({"prompt_embeds": emb.contiguous()}, tmp, metadata={"prompt": clean(prompt)[:500]})
    os.replace(tmp, path)
    cache.evict(keep=path)
    return emb


def _encode(weights: str, prompt: str, *, device: str, max_length: int):
    import gc

    import torch
    from transformers import AutoTokenizer, UMT5EncoderModel

    for sub in ("text_encoder", "tokenizer"):
        if not os.path.isdir(os.path.join(weights, sub)):
            raise FileNotFoundError(f"the weights folder has no {sub}/ and this prompt is not cached: restore "
                                    f"{sub}/ from the Diffusers repo, or use a prompt embedded before")
    dtype = torch.bfloat16 if str(device).startswith("cuda") else torch.float32
    tok = AutoTokenizer.from_pretrained(weights, subfolder="tokenizer", local_files_only=True)
    enc = UMT5EncoderModel.from_pretrained(weights, subfolder="text_encoder", dtype=dtype,
                                           local_files_only=True).eval().to(device)
    try:
        ids = tok([clean(prompt)], padding="max_length", max_length=max_length, truncation=True,
                  add_special_tokens=True, return_attention_mask=True, return_tensors="pt")
        with torch.no_grad():
            hidden = enc(ids.input_ids.to(device), ids.attention_mask.to(device)).last_hidden_state
        # As the pipeline's _get_t5_prompt_embeds: keep the real tokens, zero the padding.
        n = int(ids.attention_mask.gt(0).sum())
        out = torch.zeros(1, max_length, hidden.shape[-1], dtype=torch.float32)
        out[0, :n] = hidden[0, :n].float().cpu()
        return out
    finally:
        del enc
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
