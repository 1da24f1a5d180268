"""Inhabit: put an animated character into a Blender scene (Blender extension).

This package must stay importable without bpy: the server imports
``blender_addon.core.*``. Everything that touches bpy is imported inside
``register()`` / ``unregister()`` only.
"""

_registered_classes: list = []


def _class_groups():
    from .ui import keys, operators, panels, preferences, properties
    return (preferences.CLASSES, properties.CLASSES, operators.CLASSES, keys.CLASSES, panels.CLASSES)


def register():
    import bpy
    from .ui import properties, runner
    for group in _class_groups():
        for cls in group:
            bpy.utils.register_class(cls)
            _registered_classes.append(cls)
    properties.register_props()
    runner.register()


def unregister():
    import bpy
    from .ui import properties, runner
    runner.unregister()
    if hasattr(bpy.types.Scene, "inhabit"):
        properties.unregister_props()
    while _registered_classes:
        bpy.utils.unregister_class(_registered_classes.pop())
