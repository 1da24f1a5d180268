"""The self-contained demo behind ``inhabit demo`` / ``make demo``: a procedural
scene, its reference image, ground truth, metrics and contact sheet."""
