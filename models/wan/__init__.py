"""Wan2.2-Animate-14B (replacement mode) through diffusers' WanAnimatePipeline.

Split by job: ``inputs`` (masks, background, face crops, letterbox: numpy/cv2),
``pose`` (Wan's own skeleton drawing), ``segments`` (segment plan), ``tiny`` (the
one tiny random configuration), ``loading`` (folder -> pipeline, memory tiers,
LoRA), ``prompts`` (text embeddings cached on disk), ``generate`` (the segment
loop), ``seams`` (colour matching between segments), ``weights_check`` (folder
check from headers only), ``resave`` (bf16 re-save). Nothing here imports
pyzmq or bpy, so the GPU benchmark can run it on a bare CUDA box.
"""
