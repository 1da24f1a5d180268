"""Write a state dict as a .safetensors file one tensor at a time.

``safetensors.torch.save_file`` turns every tensor into a ``bytes`` copy
before it writes, so saving a 5 GB UNet needs 5 GB more RAM; here each tensor
is written straight from its (possibly memory-mapped) storage. The layout is
the safetensors format: an 8-byte little-endian header length, a JSON header
of ``{name: {dtype, shape, data_offsets}}``, then the raw little-endian bytes.
"""
from __future__ import annotations

import json
import struct

import torch

_DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64",
           torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
           torch.bool: "BOOL"}


def save_file_streaming(tensors: dict, path: str, metadata: dict | None = None) -> None:
    header, offset = {}, 0
    items = sorted(tensors.items())
    for name, t in items:
        n = t.numel() * t.element_size()
        header[name] = {"dtype": _DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + n]}
        offset += n
    header["__metadata__"] = {"format": "pt", **(metadata or {})}
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)  # tensors start 8-byte aligned
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(raw)))
        fh.write(raw)
        for _, t in items:
            t = t.detach().contiguous()
            if t.numel():
                # bf16 has no numpy dtype: view as bytes through uint8.
                fh.write(memoryview(t.reshape(-1).view(torch.uint8).numpy()))
