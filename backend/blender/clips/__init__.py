"""Headless-Blender side of ``inhabit dataset make`` (random clips, rendered with the add-on's passes)."""
