"""Animate Anyone 2: the components (``ModelMixin`` + ``ConfigMixin``), the pipeline,
the conditioning maps, tiny configurations, weight checks and conversion from the
published checkpoints. Importing the package loads nothing heavy."""
