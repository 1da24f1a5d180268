"""Seeded clothing patterns and hair variants for the random character (bpy).

Patterns are procedural shader nodes on the shirt and trousers materials
(no image files): ``stripes`` (a wave texture in bands, hard-edged through a
constant colour ramp), ``checks`` (the checker texture) or ``solid`` (the
plain colour). They read the mesh's Generated coordinates, which follow the
armature's deformation, so a pattern stays on the cloth as the body moves.
Hair variants add or remove meshes skinned to the head bone: ``short`` (the
builder's cap), ``long`` (down the back of the neck), ``bun``, ``bald``.
"""
from __future__ import annotations

import bpy

from .. import scene_kit as kit
from ..demo.scene import BODY_COLLECTION, PREFIX

PATTERNS = ("solid", "stripes", "checks")
HAIR = ("short", "long", "bun", "bald")


def _colour(rng, lo=0.05, hi=0.9):
    return tuple(float(c) for c in rng.uniform(lo, hi, 3))


def apply_pattern(mat, pattern: str, colour, second, scale: float) -> None:
    """Drive ``mat``'s base colour by ``pattern`` between ``colour`` and ``second``."""
    nt = mat.node_tree
    bsdf = next(n for n in nt.nodes if n.type == "BSDF_PRINCIPLED")
    if pattern == "solid":
        return
    coords = nt.nodes.new("ShaderNodeTexCoord")
    if pattern == "checks":
        tex = nt.nodes.new("ShaderNodeTexChecker")
        tex.inputs["Color1"].default_value = (*colour, 1.0)
        tex.inputs["Color2"].default_value = (*second, 1.0)
        tex.inputs["Scale"].default_value = scale
        nt.links.new(coords.outputs["Generated"], tex.inputs["Vector"])
        nt.links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
        return
    if pattern != "stripes":
        raise ValueError(f"unknown pattern {pattern!r}")
    wave = nt.nodes.new("ShaderNodeTexWave")
    wave.wave_type = "BANDS"
    wave.bands_direction = "Z"      # horizontal stripes round the body
    wave.inputs["Scale"].default_value = scale
    wave.inputs["Distortion"].default_value = 0.0
    ramp = nt.nodes.new("ShaderNodeValToRGB")
    ramp.color_ramp.interpolation = "CONSTANT"
    ramp.color_ramp.elements[0].color = (*colour, 1.0)
    ramp.color_ramp.elements[1].position = 0.5
    ramp.color_ramp.elements[1].color = (*second, 1.0)
    nt.links.new(coords.outputs["Generated"], wave.inputs["Vector"])
    nt.links.new(wave.outputs["Fac"], ramp.inputs["Fac"])
    nt.links.new(ramp.outputs["Color"], bsdf.inputs["Base Color"])


def _skinned(arm, name: str, p0, p1, radius: float, mat):
    obj = kit.mesh_object(name, kit.ellipsoid(p0, p1, radius, 1.0, 0.1), mat, bpy.data.collections[BODY_COLLECTION])
    obj.vertex_groups.new(name=PREFIX + "Head").add(list(range(len(obj.data.vertices))), 1.0, "REPLACE")
    obj.parent = arm
    obj.modifiers.new("Armature", "ARMATURE").object = arm
    return obj


def apply_hair(arm, variant: str) -> None:
    """Change the builder's short hair into ``variant`` (positions in the rig's rest space)."""
    hair = bpy.data.objects.get("Hair")
    if variant == "short" or hair is None:
        return
    mat = hair.data.materials[0]
    if variant == "bald":
        bpy.data.objects.remove(hair)
    elif variant == "long":
        _skinned(arm, "HairLong", (0, 0.07, 1.46), (0, 0.06, 1.78), 0.1, mat)
    elif variant == "bun":
        _skinned(arm, "HairBun", (0, 0.1, 1.74), (0, 0.14, 1.80), 0.06, mat)
    else:
        raise ValueError(f"unknown hair {variant!r}")


def dress(arm, rng) -> dict:
    """Draw and apply the clothing patterns and hair; returns the choices (for meta.json)."""
    looks = {}
    for part in ("Shirt", "Trousers"):
        mat = bpy.data.materials[part]
        pattern = PATTERNS[int(rng.integers(len(PATTERNS)))]
        colour = tuple(mat.diffuse_color[:3])
        apply_pattern(mat, pattern, colour, _colour(rng), float(rng.uniform(3.0, 9.0)))
        looks[part.lower()] = pattern
    looks["hair"] = HAIR[int(rng.integers(len(HAIR)))]
    apply_hair(arm, looks["hair"])
    return looks
