"""Learned evaluation metrics in plain torch: LPIPS (AlexNet) and FVD (I3D).

Weights load from local files only (safetensors or ``torch.load(weights_only=True)``);
nothing here downloads. See docs/evaluation.md for the key layouts.
"""
