"""CurveZMQ keys in the add-on: generate this client's pair, show its public key, copy it.

The files live in the preferences (``InhabitPreferences.server_key`` and
``client_key``); the bpy-free work is in ``core.curve_keys``.
"""
from __future__ import annotations

import os

import bpy

from .preferences import client_public_key, get_prefs


def default_key_dir() -> str:
    return bpy.utils.user_resource("CONFIG", path="inhabit_keys", create=True)


class INHABIT_OT_generate_client_keys(bpy.types.Operator):
    """Write a client key pair (client.key, client.key_secret) and use it; put client.key on the
    server's --allow-client-key list"""
    bl_idname = "inhabit.generate_client_keys"
    bl_label = "Generate Client Keys"

    def execute(self, context):
        from ..core.curve_keys import generate_client_pair
        prefs = get_prefs(context)
        if prefs is None:
            self.report({"ERROR"}, "Inhabit: the add-on's preferences are not available.")
            return {"CANCELLED"}
        folder = bpy.path.abspath(prefs.key_dir) if prefs.key_dir else default_key_dir()
        try:
            public, secret = generate_client_pair(folder)
        except OSError as exc:
            self.report({"ERROR"}, f"Inhabit: cannot write keys into {folder!r} ({exc.strerror}): choose a "
                                   "writable Key Folder.")
            return {"CANCELLED"}
        prefs.client_key = secret
        self.report({"INFO"}, f"Inhabit: client keys in {folder}; give the server {os.path.basename(public)}")
        return {"FINISHED"}


class INHABIT_OT_copy_client_public_key(bpy.types.Operator):
    """Copy this client's public key (for the server's allow list) to the clipboard"""
    bl_idname = "inhabit.copy_client_public_key"
    bl_label = "Copy Public Key"

    def execute(self, context):
        text = client_public_key(context)
        if not text:
            self.report({"ERROR"}, "Inhabit: no client key yet: generate one or pick a client.key_secret file.")
            return {"CANCELLED"}
        context.window_manager.clipboard = text
        self.report({"INFO"}, "Inhabit: client public key copied")
        return {"FINISHED"}


CLASSES = (INHABIT_OT_generate_client_keys, INHABIT_OT_copy_client_public_key)
