"""Parts of the CPU ``preview`` engine: reference preparation, 2D skinning, compositing."""
