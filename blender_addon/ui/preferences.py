"""Add-on preferences: how to start a local server, CurveZMQ keys (and reading them for a shot)."""
from __future__ import annotations

import os

import bpy

ADDON_ID = __package__.rsplit(".", 1)[0]  # the add-on's package, whatever repo it was installed into


class InhabitPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_ID

    server_command: bpy.props.StringProperty(
        name="Server Command",
        description="Command that starts a local server, e.g. 'inhabit serve' or "
                    "'/path/to/venv/bin/python -m backend.cli serve'",
        default="inhabit serve")
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
        col = self.layout.column()
        col.prop(self, "server_command")
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


def client_public_key(context) -> str:
    from ..core.curve_keys import public_key_text
    prefs = get_prefs(context)
    return public_key_text(bpy.path.abspath(prefs.client_key)) if prefs and prefs.client_key else ""


def key_settings(context) -> dict:
    """The ShotSettings fields for the keys in the preferences (empty = no CurveZMQ)."""
    prefs = get_prefs(context)
    if prefs is None:
        return {"curve_server_key": None, "curve_client_key": None}
    server = prefs.server_key.strip()
    if server and os.path.exists(bpy.path.abspath(server)):
        server = bpy.path.abspath(server)
    return {"curve_server_key": server or None,
            "curve_client_key": bpy.path.abspath(prefs.client_key) if prefs.client_key else None}


CLASSES = (InhabitPreferences,)
