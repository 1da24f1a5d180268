"""The one panel registered when Inhabit cannot run here (``dependencies.problem``).

Imports nothing but bpy: numpy or pyzmq may be what is missing.
"""
from __future__ import annotations

import bpy

_message = ""


def wrap(text: str, width: int) -> list[str]:
    """Lines of at most ``width`` characters, broken between words (a longer word keeps its own line)."""
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    if line:
        lines.append(line)
    return lines


def draw_sentence(layout, text: str, width: int, icon: str = "ERROR") -> None:
    """A whole sentence as labels, wrapped to the region's width; the icon on the first line."""
    col = layout.column(align=True)
    for i, line in enumerate(wrap(text, width)):
        col.label(text=line, icon=icon if i == 0 else "BLANK1")


def chars_for(context) -> int:
    """How many characters of label text fit the region (about 6.5 px each at 1x scale, measured on
    screenshots of the sidebar)."""
    region = getattr(context, "region", None)
    scale = getattr(getattr(context, "preferences", None), "system", None)
    px = getattr(scale, "ui_scale", 1.0) if scale is not None else 1.0
    width = region.width if region is not None else 300
    return max(20, int((width - 50) / (6.5 * px)))


class _NoticePanel:
    bl_label = "Inhabit"
    bl_region_type = "UI"
    bl_category = "Inhabit"

    def draw(self, context):
        box = self.layout.box()
        box.alert = True
        draw_sentence(box, _message, chars_for(context))


class VIEW3D_PT_inhabit_notice(_NoticePanel, bpy.types.Panel):
    bl_idname = "VIEW3D_PT_inhabit_notice"
    bl_space_type = "VIEW_3D"


class SEQUENCER_PT_inhabit_notice(_NoticePanel, bpy.types.Panel):
    bl_idname = "SEQUENCER_PT_inhabit_notice"
    bl_space_type = "SEQUENCE_EDITOR"


CLASSES = (VIEW3D_PT_inhabit_notice, SEQUENCER_PT_inhabit_notice)


def show(message: str) -> None:
    global _message
    _message = message
    print(f"Inhabit: {message}")
