"""Add-on preferences: how to start a local server, the default address, CurveZMQ keys."""
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

    server_key: bpy.props.StringProperty(
        name="Server Key", subtype="FILE_PATH",
        description="A server off this machine needs CurveZMQ: its public key file (server.key), or the "
                    "40-character public key pasted")
    client_key: bpy.props.StringProperty(
        name="Client Key", subtype="FILE_PATH",
        description="This client's secret key file (client.key_secret); its client.key goes on the "
                    "server's --allow-client-key list")
    key_dir: bpy.props.StringProperty(
        name="Key Folder", subtype="DIR_PATH",
        description="Where Generate Client Keys writes (default: Blender's config folder)")

    def draw(self, context):
        from .keys import client_public_key
        col = self.layout.column()
        col.prop(self, "server_command")
        col.prop(self, "default_server")
        box = self.layout.box()
        box.label(text="CurveZMQ keys (servers off this machine)", icon="LOCKED")
        box.prop(self, "server_key")
        box.prop(self, "client_key")
        row = box.row(align=True)
        row.prop(self, "key_dir")
        row.operator("inhabit.generate_client_keys", icon="KEY_HLT")
        public = client_public_key(context)
        if public:
            row = box.row(align=True)
            row.label(text=f"Client public key: {public}")
            row.operator("inhabit.copy_client_public_key", text="", icon="COPYDOWN")


def get_prefs(context=None):
    context = context or bpy.context
    addon = context.preferences.addons.get(ADDON_ID)
    return addon.preferences if addon else None


CLASSES = (InhabitPreferences,)
