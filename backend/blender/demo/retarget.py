"""Drive a character with a BVH through the two keypoint maps (bpy).

Both skeletons are mapped (``core.rig_map``), so the BVH's names never have
to match the character's. Per frame: the character's hips bone takes the
mocap's body frame (hips left-right, hips-to-neck up) and its root motion
(scaled by leg length, the performer's first heading turned to the
character's); the first spine bone bends the torso towards the neck, the head
bone turns towards the nose, and every limb bone -- upper arm, forearm,
thigh, shin, foot -- is swung so that its segment points where the performer's does. The result is
baked as keyframes on the character; the BVH armature is removed again.
"""
from __future__ import annotations

import math

import bpy
from mathutils import Matrix

from blender_addon.core import keypoint_map
from blender_addon.core.settings import SetupError
from blender_addon.scene.rig import PosedRig, map_armature

SEGMENTS = tuple((f"{s}_{a}", f"{s}_{b}") for s in ("left", "right")
                 for a, b in (("hip", "knee"), ("knee", "ankle"), ("shoulder", "elbow"), ("elbow", "wrist")))
NEEDED = ("nose", "neck", "left_hip", "right_hip", "left_shoulder", "right_shoulder", "left_knee", "right_knee",
          "left_elbow", "right_elbow", "left_ankle", "right_ankle", "left_wrist", "right_wrist")


def map_bvh_source(src):
    """The keypoint mapping of BVH armature ``src``, refused in one sentence when it is not a whole humanoid."""
    try:
        m = map_armature(src)
    except keypoint_map.MappingError as exc:
        raise SetupError("motion", f"The BVH skeleton {src.name!r} cannot be mapped to a body ({exc}): use a "
                                   "humanoid BVH (CMU-style names, or any two-armed, two-legged skeleton).") from None
    missing = [k for k in NEEDED if m.joints.get(k) is None]
    if missing:
        raise SetupError("motion", f"The BVH skeleton {src.name!r} has no {', '.join(missing)} joint: "
                                   "use a BVH of a whole humanoid body.")
    return m


def body_frame(p) -> Matrix:
    """3x3 whose columns are the body's left, forward, up (from hips and neck)."""
    mid = (p["left_hip"] + p["right_hip"]) / 2
    up = (p["neck"] - mid).normalized()
    left = p["left_hip"] - p["right_hip"]
    left = (left - up * left.dot(up)).normalized()
    fwd = left.cross(up)
    return Matrix((left, fwd, up)).transposed()


def _lca(arm, a: str, b: str) -> str:
    chain = []
    bone = arm.data.bones[a]
    while bone is not None:
        chain.append(bone.name)
        bone = bone.parent
    bone = arm.data.bones[b]
    while bone is not None and bone.name not in chain:
        bone = bone.parent
    return bone.name if bone is not None else a


def _child_towards(arm, root: str, bone: str) -> str | None:
    """The child of ``root`` on the way to ``bone`` (the first spine bone), or None."""
    b = arm.data.bones[bone]
    while b.parent is not None and b.parent.name != root:
        b = b.parent
    return b.name if b.parent is not None and b.name != root else None


def _world(posed: PosedRig, names) -> dict:
    return {k: posed.world(posed.mapping.joints[k]).copy() for k in names}


def retarget_bvh(src, dst, dst_map, scene, frames: int, *, start: int | None = None, to_frame: int | None = None
                 ) -> int:
    """Bake ``frames`` frames of ``src``'s motion onto ``dst`` from scene frame ``start`` (default: the
    action's first); the keys land from ``to_frame`` on (default: ``start``). Returns ``start``."""
    src_map = map_bvh_source(src)
    missing = [k for k in NEEDED if dst_map.joints.get(k) is None]
    if missing:
        raise SetupError("character", f"The character's rig has no {', '.join(missing)} joint to drive from a BVH.")
    act = src.animation_data.action if src.animation_data else None
    if start is None:
        start = int(math.floor(act.frame_range[0])) if act else 1
    shift = 0 if to_frame is None else to_frame - start
    view = bpy.context.view_layer
    dst.animation_data_clear()  # the character's own action would fight the baked keys
    src_posed, dst_posed = PosedRig(src, src_map), PosedRig(dst, dst_map)
    for pb in dst.pose.bones:
        pb.rotation_mode = "QUATERNION"
        pb.matrix_basis = Matrix.Identity(4)
    view.update()
    rest = _world(dst_posed, NEEDED)
    scene.frame_set(start)
    first = _world(src_posed, NEEDED)

    def leg(p):
        return sum(((p[f"{s}_hip"] - p[f"{s}_knee"]).length + (p[f"{s}_knee"] - p[f"{s}_ankle"]).length)
                   for s in ("left", "right"))
    scale = leg(rest) / max(leg(first), 1e-9)
    # Turn the performer's first heading onto the character's rest heading.
    f_src, f_dst = body_frame(first).col[0], body_frame(rest).col[0]
    turn = Matrix.Rotation(math.atan2(f_dst.y, f_dst.x) - math.atan2(f_src.y, f_src.x), 3, "Z")
    src_mid0 = (first["left_hip"] + first["right_hip"]) / 2
    dst_mid0 = (rest["left_hip"] + rest["right_hip"]) / 2
    # The bone above both legs and the spine (BCN: the legs hang from a lower pelvis bone).
    root = _lca(dst, _lca(dst, dst_map.joints["left_hip"].bone, dst_map.joints["right_hip"].bone),
                dst_map.joints["neck"].bone)
    mw = dst.matrix_world
    spine = _child_towards(dst, root, dst_map.joints["neck"].bone)
    head = dst_map.joints["nose"].bone if dst_map.joints["nose"].bone != dst_map.joints["neck"].bone else None
    if head in (root, spine):
        head = None
    # Feet point their toes where the performer's do, when both skeletons have toes.
    feet = [(f"{s}_ankle", f"{s}_toe") for s in ("left", "right")
            if src_map.joints.get(f"{s}_toe") is not None and dst_map.joints.get(f"{s}_toe") is not None]
    touched = {root} | {dst_map.joints[a].bone for a, _ in list(SEGMENTS) + feet} | {b for b in (spine, head) if b}
    for f in range(start, start + frames):
        scene.frame_set(f)
        raw = _world(src_posed, NEEDED + tuple(k for seg in feet for k in seg))
        target = {k: dst_mid0 + turn @ ((p - src_mid0) * scale) for k, p in raw.items()}
        for pb in dst.pose.bones:
            pb.matrix_basis = Matrix.Identity(4)
        view.update()
        rot = (body_frame(target) @ body_frame(rest).transposed()).to_4x4()
        mid = (target["left_hip"] + target["right_hip"]) / 2
        pb = dst.pose.bones[root]
        world = Matrix.Translation(mid) @ rot @ Matrix.Translation(-dst_mid0) @ (mw @ pb.matrix)
        pb.matrix = mw.inverted() @ world
        view.update()
        # The spine bends (hips -> neck), the head turns (neck -> nose), then the limbs swing.
        for bone_name, a, b in ([(spine, "_mid", "neck"), (head, "neck", "nose")]
                                + [(dst_map.joints[a].bone, a, b) for a, b in list(SEGMENTS) + feet]):
            if bone_name is None:
                continue
            bone = dst.pose.bones[bone_name]
            pivot = (mw @ bone.matrix).to_translation()
            tip = dst_posed.world(dst_map.joints[b])
            start_w = pivot if a == "_mid" else dst_posed.world(dst_map.joints[a])
            want = target[b] - (mid if a == "_mid" else target[a])
            have = tip - start_w
            if have.length < 1e-9 or want.length < 1e-9:
                continue
            q = have.rotation_difference(want).to_matrix().to_4x4()
            world = Matrix.Translation(pivot) @ q @ Matrix.Translation(-pivot) @ (mw @ bone.matrix)
            bone.matrix = mw.inverted() @ world
            view.update()
        for name in touched:
            pbone = dst.pose.bones[name]
            pbone.keyframe_insert("rotation_quaternion", frame=f + shift)
            if name == root:
                pbone.keyframe_insert("location", frame=f + shift)
    if dst.animation_data is not None and dst.animation_data.action is not None:
        dst.animation_data.action.name = f"{src.name} (retargeted)"
    bpy.data.objects.remove(src)
    return start
