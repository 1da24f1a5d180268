"""Add-on preferences: how to start a local server, and the default address."""
from __future__ import annotations

import bpy

from ..core import protocol

ADDON_ID = __package__.rsplit(".", 1)[0]  # the add-on's package, whatever repo it was installed into


class InhabitPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_ID

    server_command: bpy.props.StringProperty(
        name="Server Command",
        description="Command that starts a local server, e.g. 'inhabit serve' or "
                    "'/path/to/venv/bin/python -m backend.cli serve'",
        default="inhabit serve")
    default_server: bpy.props.StringProperty(
        name="Default Address", description="Server address new scenes start with",
        default=protocol.DEFAULT_ADDRESS)

    def draw(self, context):
        col = self.layout.column()
        col.prop(self, "server_command")
        col.prop(self, "default_server")


def get_prefs(context=None):
    context = context or bpy.context
    addon = context.preferences.addons.get(ADDON_ID)
    return addon.preferences if addon else None


CLASSES = (InhabitPreferences,)
