"""Inhabit: put an animated character into a Blender scene (Blender extension).

This package must stay importable without bpy: the server imports
``blender_addon.core.*``. Everything that touches bpy is imported inside
``register()`` / ``unregister()`` only.
"""

_registered_classes: list = []
_full = False  # False: only the notice panel is registered (see dependencies.py)


def _class_groups():
    from .ui import keys, operators, panels, preferences, properties
    return (preferences.CLASSES, properties.CLASSES, operators.CLASSES, keys.CLASSES, panels.CLASSES)


def register():
    global _full
    import bpy
    from . import dependencies
    problem = dependencies.problem()
    if problem:
        from .ui import notice
        notice.show(problem)
        groups = (notice.CLASSES,)
    else:
        groups = _class_groups()
    for group in groups:
        for cls in group:
            bpy.utils.register_class(cls)
            _registered_classes.append(cls)
    _full = not problem
    if _full:
        from .ui import properties, runner
        properties.register_props()
        runner.register()


def unregister():
    global _full
    import bpy
    if _full:
        from .ui import properties, runner
        runner.unregister()
        if hasattr(bpy.types.Scene, "inhabit"):
            properties.unregister_props()
    _full = False
    while _registered_classes:
        bpy.utils.unregister_class(_registered_classes.pop())
