"""The Blender side of FBX export: a glTF binary in, an FBX file out, inside a Python with bpy.

This module imports only ``bpy`` and the standard library, so :mod:`semtalk.export.fbx` can
either call :func:`convert` in its own process (when ``bpy`` is importable there) or run this
file as a script in another interpreter that has ``bpy`` (``SEMTALK_BPY_PYTHON``)::

    python -P fbx_bpy.py IN.glb OUT.fbx --fps 30

Steps of :func:`convert`:

1. a fresh, empty Blender scene (``read_factory_settings(use_empty=True)``) at ``fps``, so the
   glTF importer puts the sample at ``t`` seconds on frame ``t * fps``;
2. ``import_scene.gltf`` with :data:`GLTF_IMPORT_SETTINGS`; the scene's frame range is set to
   the imported actions' range (Blender's default 1-250 would be baked otherwise);
3. the rest pose is keyed on the frame before that range and made current
   (:func:`_key_rest_pose`), so the FBX nodes' default transforms are the rest pose;
4. ``export_scene.fbx`` with :data:`FBX_EXPORT_SETTINGS`: only the frame range is baked.
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

MISSING_BPY_EXIT = 3
"""Exit status of the script when ``bpy`` cannot be imported."""

GLTF_IMPORT_SETTINGS: dict[str, Any] = {
    # "BLENDER" keeps each glTF node's own axes for its bone (bone tip on the node's +Y), so a
    # node with an identity rest rotation (every SMPL-X joint) becomes an FBX joint with an
    # identity rest orientation again, and its FBX local rotations are the glTF ones.
    "bone_heuristic": "BLENDER",
    # no icosphere display object per bone (it would be exported as an extra mesh)
    "disable_bone_shape": True,
}
"""Options of ``bpy.ops.import_scene.gltf``."""

FBX_EXPORT_SETTINGS: dict[str, Any] = {
    "use_selection": False,
    "object_types": {"ARMATURE", "MESH", "EMPTY"},
    # Lengths stay in metres: Blender units are metres, "FBX_SCALE_UNITS" writes them unscaled
    # and declares the file's unit as the metre (UnitScaleFactor 100, i.e. 100 cm per unit).
    "global_scale": 1.0,
    "apply_unit_scale": True,
    "apply_scale_options": "FBX_SCALE_UNITS",
    # Axes: the glTF importer turns glTF's y-up into Blender's z-up; FBX "-Z forward, Y up"
    # turns it back, so FBX coordinates are the glTF file's (for semtalk: SMPL-X's, x to the
    # body's left, y up, z forward).
    "axis_forward": "-Z",
    "axis_up": "Y",
    "bake_space_transform": False,
    # Bones: Blender's Y (along the bone) is the FBX joint's Y, X stays X; no "_end" leaf
    # bones, every bone exported (deforming or not), as FBX "Null" nodes under the armature.
    "primary_bone_axis": "Y",
    "secondary_bone_axis": "X",
    "add_leaf_bones": False,
    "use_armature_deform_only": False,
    "armature_nodetype": "NULL",
    # Animation: one take with the active action of every object (bones and shape keys),
    # a key on every frame of the scene range, none removed by simplification.
    "bake_anim": True,
    "bake_anim_use_all_bones": True,
    "bake_anim_use_nla_strips": False,
    "bake_anim_use_all_actions": False,
    "bake_anim_force_startend_keying": True,
    "bake_anim_step": 1.0,
    "bake_anim_simplify_factor": 0.0,
    # Meshes as imported (glTF normals kept), shape keys exported as FBX blend shapes.
    "use_mesh_modifiers": True,
    "mesh_smooth_type": "OFF",
    "use_tspace": False,
    "path_mode": "AUTO",
    "embed_textures": False,
    "use_custom_props": False,
}
"""Options of ``bpy.ops.export_scene.fbx``."""


def _action_frame_range(bpy: Any) -> tuple[int, int]:
    """First and last frame over every action in the file (``(0, 0)`` when none)."""
    ranges = [tuple(action.frame_range) for action in bpy.data.actions]
    if not ranges:
        return 0, 0
    return (math.floor(min(r[0] for r in ranges) + 1e-6),
            math.ceil(max(r[1] for r in ranges) - 1e-6))


def _key_rest_pose(bpy: Any, frame: int) -> None:
    """Key the rest pose (and neutral shape keys) at ``frame``, a frame before the baked range.

    The FBX exporter writes each node's default transform from the scene's current frame; a
    file with a mesh-less armature has no bind pose, so importers take those defaults as the
    rest pose. Exporting from this frame makes the defaults the rest pose, not the first
    frame's pose.
    """
    for obj in bpy.context.scene.objects:
        if obj.type == "ARMATURE" and obj.animation_data and obj.animation_data.action:
            for bone in obj.pose.bones:
                bone.matrix_basis.identity()
                rotation = ("rotation_quaternion" if bone.rotation_mode == "QUATERNION"
                            else "rotation_axis_angle" if bone.rotation_mode == "AXIS_ANGLE"
                            else "rotation_euler")
                for path in ("location", rotation, "scale"):
                    bone.keyframe_insert(path, frame=frame)
        keys = obj.data.shape_keys if obj.type == "MESH" else None
        if keys is not None and keys.animation_data and keys.animation_data.action:
            for block in keys.key_blocks[1:]:
                block.value = 0.0
                block.keyframe_insert("value", frame=frame)


def convert(glb_path: str, fbx_path: str, fps: int) -> dict[str, int]:
    """Convert one ``.glb`` into an ``.fbx`` through a fresh Blender scene.

    Replaces whatever scene the running Blender holds.

    Args:
        glb_path: the glTF binary to read.
        fbx_path: the FBX file to (over)write.
        fps: frame rate of the scene and of the FBX take.

    Returns:
        Counts of what was written: ``armatures``, ``bones``, ``meshes``, ``shape_keys``
        (over all meshes, without each mesh's basis) and ``frames``.

    Raises:
        RuntimeError: Blender could not import the glTF or write the FBX.
    """
    import bpy

    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.fps = int(fps)
    scene.render.fps_base = 1.0
    if "FINISHED" not in bpy.ops.import_scene.gltf(filepath=glb_path, **GLTF_IMPORT_SETTINGS):
        raise RuntimeError(f"Blender's glTF importer did not finish on {glb_path}")
    scene.frame_start, scene.frame_end = _action_frame_range(bpy)
    _key_rest_pose(bpy, scene.frame_start - 1)
    scene.frame_set(scene.frame_start - 1)
    if "FINISHED" not in bpy.ops.export_scene.fbx(filepath=fbx_path, **FBX_EXPORT_SETTINGS):
        raise RuntimeError(f"Blender's FBX exporter did not finish on {fbx_path}")
    armatures = [o for o in scene.objects if o.type == "ARMATURE"]
    meshes = [o for o in scene.objects if o.type == "MESH"]
    return {
        "armatures": len(armatures),
        "bones": sum(len(o.data.bones) for o in armatures),
        "meshes": len(meshes),
        "shape_keys": sum(len(o.data.shape_keys.key_blocks) - 1
                          for o in meshes if o.data.shape_keys is not None),
        "frames": scene.frame_end - scene.frame_start + 1,
    }


def main(argv: list[str] | None = None) -> int:
    """Script entry point: ``fbx_bpy.py IN.glb OUT.fbx [--fps N]``; prints the counts."""
    parser = argparse.ArgumentParser(description="Convert a .glb to .fbx with Blender (bpy).")
    parser.add_argument("glb")
    parser.add_argument("fbx")
    parser.add_argument("--fps", type=int, default=30)
    args = parser.parse_args(argv)
    try:
        import bpy  # noqa: F401
    except ImportError as exc:
        print(f"{sys.executable} cannot import bpy: {exc}", file=sys.stderr)
        return MISSING_BPY_EXIT
    counts = convert(args.glb, args.fbx, args.fps)
    print("semtalk fbx:", " ".join(f"{k}={v}" for k, v in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
