"""The command line's headless-Blender side: the only package under backend/
that imports bpy.

``inhabit render``, ``export`` and ``demo`` run Blender as a Python module in
their own process (never inside the server, which must start without bpy):
``shot_args`` turns their options and an opened .blend into ``ShotSettings``;
``demo/`` builds the procedural demo scene, renders its reference and ground
truth, and runs the demo job. Modules import bpy at the top only where the
module is never imported by a bpy-free caller; ``tests/test_layers.py`` keeps
the rule.
"""
