"""FBX export through Blender: a hand-made animated GLB converted and read back with bpy.

Blender runs where :func:`semtalk.export.fbx.bpy_interpreter` finds it: ``bpy`` in this
interpreter, or the interpreter named by ``SEMTALK_BPY_PYTHON`` (e.g. a separate ``.venv-bpy``,
since bpy 5.0.1 needs numpy<2). The FBX is read back by Blender's FBX importer in a subprocess
of that interpreter, which reports bones, frames, world rotations and shape keys as JSON.
"""

from __future__ import annotations

import importlib.util
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from semtalk.errors import DataError
from semtalk.export.fbx import BPY_PYTHON_ENV, bpy_interpreter, glb_to_fbx, write_fbx

FPS = 30
FRAMES = 10
CHAIN = np.array([[0.0, 0.9, 0.0], [0.0, 0.2, 0.0], [0.05, 0.25, 0.0], [0.0, 0.15, 0.02]])
"""Rest offsets (metres, y up) of a 4-joint chain: each joint's translation from its parent."""
CHAIN_NAMES = ("chain0", "chain1", "chain2", "chain3")
MORPH = "smile"


def _blender_python() -> str | None:
    """The interpreter that has bpy, or ``None`` (then the Blender tests skip)."""
    if os.environ.get(BPY_PYTHON_ENV):
        return os.environ[BPY_PYTHON_ENV]
    return sys.executable if importlib.util.find_spec("bpy") is not None else None


BLENDER_PYTHON = _blender_python()
needs_bpy = pytest.mark.skipif(
    BLENDER_PYTHON is None,
    reason=f"bpy is not importable here and {BPY_PYTHON_ENV} is unset "
           f"(pip install 'semtalk[fbx]', or point {BPY_PYTHON_ENV} at a Python with bpy)")


# ---------------------------------------------------------------------------------------------
# a small GLB written by hand: the stand-in for semtalk.export.glb in these tests
# ---------------------------------------------------------------------------------------------

_FLOAT, _USHORT = 5126, 5123
_ARRAY_BUFFER, _ELEMENT_BUFFER = 34962, 34963


class _GlbBuffer:
    """Accessors and buffer views over one binary chunk."""

    def __init__(self) -> None:
        self.blob = bytearray()
        self.views: list[dict] = []
        self.accessors: list[dict] = []

    def add(self, array: np.ndarray, kind: str, *, target: int | None = None,
            bounds: bool = False) -> int:
        array = np.ascontiguousarray(array)
        self.blob.extend(b"\0" * (-len(self.blob) % 4))
        view = {"buffer": 0, "byteOffset": len(self.blob), "byteLength": array.nbytes}
        if target is not None:
            view["target"] = target
        self.blob.extend(array.tobytes())
        self.views.append(view)
        component = _USHORT if array.dtype == np.uint16 else _FLOAT
        accessor = {"bufferView": len(self.views) - 1, "componentType": component,
                    "count": int(array.shape[0]), "type": kind}
        if bounds:
            flat = array.reshape(array.shape[0], -1)
            accessor["min"], accessor["max"] = flat.min(0).tolist(), flat.max(0).tolist()
        self.accessors.append(accessor)
        return len(self.accessors) - 1


def write_chain_glb(path: Path, quaternions: np.ndarray, root_position: np.ndarray,
                    morph_weight: np.ndarray | None) -> Path:
    """A skinned 4-joint chain with one morph target, animated (no mesh when no morph weight).

    Args:
        quaternions: ``[T, 4, 4]`` local joint rotations ``(x, y, z, w)``.
        root_position: ``[T, 3]`` root translation (metres).
        morph_weight: ``[T]`` weight of the morph target :data:`MORPH`; ``None`` writes the
            skeleton alone (its joints still listed in a skin, which makes them bones).
    """
    buf = _GlbBuffer()
    joints = len(CHAIN)
    rest = np.cumsum(CHAIN, axis=0)
    # two vertices per joint, rigidly bound to it; quads between consecutive joints
    vertices = np.repeat(rest, 2, axis=0) + np.tile([[-0.05, 0, 0], [0.05, 0, 0]], (joints, 1))
    bone = np.zeros((2 * joints, 4), np.uint16)
    bone[:, 0] = np.repeat(np.arange(joints), 2)
    weight = np.zeros((2 * joints, 4), np.float32)
    weight[:, 0] = 1.0
    quads = [[2 * j, 2 * j + 1, 2 * j + 3, 2 * j, 2 * j + 3, 2 * j + 2] for j in range(joints - 1)]
    displacement = np.zeros_like(vertices)
    displacement[:, 2] = 0.1
    inverse_bind = np.tile(np.eye(4), (joints, 1, 1))
    inverse_bind[:, 3, :3] = -rest  # column-major storage: the translation column is row 3
    times = np.arange(len(quaternions)) / FPS
    mesh = {
        "name": "body", "weights": [0.0], "extras": {"targetNames": [MORPH]},
        "primitives": [{
            "attributes": {
                "POSITION": buf.add(vertices.astype(np.float32), "VEC3",
                                    target=_ARRAY_BUFFER, bounds=True),
                "JOINTS_0": buf.add(bone, "VEC4", target=_ARRAY_BUFFER),
                "WEIGHTS_0": buf.add(weight, "VEC4", target=_ARRAY_BUFFER)},
            "indices": buf.add(np.array(quads, np.uint16).reshape(-1), "SCALAR",
                               target=_ELEMENT_BUFFER),
            "targets": [{"POSITION": buf.add(displacement.astype(np.float32), "VEC3",
                                             target=_ARRAY_BUFFER, bounds=True)}]}],
    }
    skin = {"joints": list(range(joints)), "skeleton": 0,
            "inverseBindMatrices": buf.add(inverse_bind.astype(np.float32), "MAT4")}
    time = buf.add(times.astype(np.float32), "SCALAR", bounds=True)
    outputs = [(j, "rotation", buf.add(quaternions[:, j].astype(np.float32), "VEC4"))
               for j in range(joints)]
    outputs.append((0, "translation", buf.add(root_position.astype(np.float32), "VEC3")))
    if morph_weight is not None:
        outputs.append((joints, "weights", buf.add(morph_weight.astype(np.float32), "SCALAR")))
    animation = {
        "name": "motion",
        "samplers": [{"input": time, "output": out, "interpolation": "LINEAR"}
                     for _, _, out in outputs],
        "channels": [{"sampler": k, "target": {"node": node, "path": channel}}
                     for k, (node, channel, _) in enumerate(outputs)],
    }
    nodes = [{"name": CHAIN_NAMES[j], "translation": CHAIN[j].tolist(),
              **({"children": [j + 1]} if j + 1 < joints else {})} for j in range(joints)]
    document = {
        "asset": {"version": "2.0", "generator": "semtalk test stand-in"},
        "scene": 0, "scenes": [{"nodes": [0]}], "nodes": nodes,
        "skins": [skin], "animations": [animation],
        "accessors": buf.accessors, "bufferViews": buf.views,
        "buffers": [{"byteLength": len(buf.blob) + (-len(buf.blob) % 4)}],
    }
    if morph_weight is not None:
        nodes.append({"name": "body", "mesh": 0, "skin": 0})
        document["meshes"] = [mesh]
        document["scenes"] = [{"nodes": [0, joints]}]
    text = json.dumps(document).encode()
    text += b" " * (-len(text) % 4)
    blob = bytes(buf.blob) + b"\0" * (-len(buf.blob) % 4)
    header = struct.pack("<4sII", b"glTF", 2, 12 + 8 + len(text) + 8 + len(blob))
    path.write_bytes(header + struct.pack("<I4s", len(text), b"JSON") + text
                     + struct.pack("<I4s", len(blob), b"BIN\0") + blob)
    return path


# ---------------------------------------------------------------------------------------------
# reading an FBX back with Blender
# ---------------------------------------------------------------------------------------------

_READ_FBX = r"""
import json, sys
import bpy
fbx, out = sys.argv[1], sys.argv[2]
bpy.ops.wm.read_factory_settings(use_empty=True)
bpy.ops.import_scene.fbx(filepath=fbx, anim_offset=0.0)
scene = bpy.context.scene
(armature,) = [o for o in scene.objects if o.type == "ARMATURE"]
action = armature.animation_data.action
start, end = (round(v) for v in action.frame_range)
report = {"fps": scene.render.fps / scene.render.fps_base, "start": start, "end": end,
          "bones": [b.name for b in armature.data.bones], "rotations": {}, "root": [],
          "shape_keys": {}, "rest": {}}
for bone in armature.data.bones:  # bone axes (columns) in Blender's world
    rest = (armature.matrix_world @ bone.matrix_local).to_quaternion().to_matrix()
    report["rest"][bone.name] = [list(r) for r in rest]
for frame in range(start, end + 1):
    scene.frame_set(frame)
    for bone in armature.pose.bones:
        rest = (armature.matrix_world @ bone.bone.matrix_local).to_quaternion()
        posed = (armature.matrix_world @ bone.matrix).to_quaternion()
        delta = (posed @ rest.inverted()).to_matrix()  # world rotation relative to rest
        report["rotations"].setdefault(bone.name, []).append([list(r) for r in delta])
    root = armature.pose.bones[0]
    report["root"].append(list(armature.matrix_world @ root.head))
    for mesh in (o for o in scene.objects if o.type == "MESH" and o.data.shape_keys):
        keys = mesh.data.shape_keys
        for block in keys.key_blocks[1:]:
            report["shape_keys"].setdefault(block.name, []).append(block.value)
        report["shape_key_animated"] = bool(keys.animation_data and keys.animation_data.action)
json.dump(report, open(out, "w"))
"""

_BLENDER_TO_Y_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
"""Blender's z-up world (x, y, z) to the FBX/glTF y-up frame (x, z, -y)."""


def read_fbx_with_blender(fbx: Path, tmp_path: Path) -> dict:
    """What Blender's FBX importer finds in ``fbx``; rotations and positions in y-up axes.

    ``rotations[bone]`` is ``[T, 3, 3]``: each frame's world rotation relative to the rest pose;
    ``rest[bone]`` the rest orientation (bone axes as columns); ``root`` ``[T, 3]`` the first
    bone's world position.
    """
    assert BLENDER_PYTHON is not None
    out = tmp_path / "report.json"
    done = subprocess.run([BLENDER_PYTHON, "-P", "-c", _READ_FBX, str(fbx), str(out)],
                          capture_output=True, text=True, cwd=tmp_path, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    c = _BLENDER_TO_Y_UP
    report["rotations"] = {name: c @ np.array(r) @ c.T for name, r in report["rotations"].items()}
    report["root"] = np.array(report["root"]) @ c.T
    report["rest"] = {name: c @ np.array(r) for name, r in report["rest"].items()}
    return report


def fbx_global_setting(data: bytes, name: str) -> float:
    """A number from a binary FBX's GlobalSettings (property record: 3 strings, type, value)."""
    at = data.index(name.encode()) + len(name)
    for _ in range(3):  # type name, label, flags: each 'S' + uint32 length + bytes
        assert data[at : at + 1] == b"S"
        at += 5 + struct.unpack_from("<I", data, at + 1)[0]
    code = data[at : at + 1]
    return struct.unpack_from("<d" if code == b"D" else "<i", data, at + 1)[0]


# ---------------------------------------------------------------------------------------------
# tests
# ---------------------------------------------------------------------------------------------


@pytest.fixture()
def chain_motion() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random local rotations (up to ~70 degrees), a moving root, a morph weight ramp."""
    rng = np.random.default_rng(7)
    rotations = Rotation.from_rotvec(rng.normal(0.0, 0.5, (FRAMES * len(CHAIN), 3)))
    quaternions = rotations.as_quat().reshape(FRAMES, len(CHAIN), 4)
    root = CHAIN[0] + rng.normal(0.0, 0.1, (FRAMES, 3))
    morph = np.abs(np.sin(np.linspace(0.0, 3.0, FRAMES)))
    return quaternions, root, morph


@needs_bpy
def test_glb_to_fbx_keeps_bones_frames_world_rotations_and_shape_keys(tmp_path, chain_motion):
    quaternions, root, morph = chain_motion
    glb = write_chain_glb(tmp_path / "chain.glb", quaternions, root, morph)
    out = tmp_path / "out" / "chain.fbx"
    assert glb_to_fbx(glb, out, python=BLENDER_PYTHON) == out
    assert sorted(p.name for p in out.parent.iterdir()) == ["chain.fbx"]  # no temp left over
    data = out.read_bytes()
    assert fbx_global_setting(data, "UnitScaleFactor") == 100.0  # centimetres per unit: metres
    assert fbx_global_setting(data, "UpAxis") == 1  # y
    assert fbx_global_setting(data, "CustomFrameRate") == FPS

    report = read_fbx_with_blender(out, tmp_path)
    assert report["fps"] == FPS
    assert report["bones"] == list(CHAIN_NAMES)
    assert (report["start"], report["end"]) == (0, FRAMES - 1)
    local = Rotation.from_quat(quaternions.reshape(-1, 4)).as_matrix()
    local = local.reshape(FRAMES, len(CHAIN), 3, 3)
    world = local.copy()
    for j in range(1, len(CHAIN)):
        world[:, j] = world[:, j - 1] @ local[:, j]
    for j, name in enumerate(CHAIN_NAMES):
        assert np.abs(report["rotations"][name] - world[:, j]).max() < 1e-4, name
        # identity rest orientation in the glTF stays identity: FBX local = glTF local rotations
        assert np.abs(report["rest"][name] - np.eye(3)).max() < 1e-5, name
    assert np.abs(report["root"] - root).max() < 1e-5  # metres, y up
    assert report["shape_key_animated"]
    assert np.abs(np.array(report["shape_keys"][MORPH]) - morph).max() < 1e-4


@needs_bpy
def test_a_skeleton_without_mesh_keeps_its_rest_pose(tmp_path, chain_motion):
    """No mesh, no FBX bind pose: the nodes' default transforms must be the rest pose."""
    quaternions, root, _ = chain_motion
    glb = write_chain_glb(tmp_path / "chain.glb", quaternions, root, None)
    report = read_fbx_with_blender(glb_to_fbx(glb, tmp_path / "c.fbx", python=BLENDER_PYTHON),
                                   tmp_path)
    assert report["bones"] == list(CHAIN_NAMES) and not report["shape_keys"]
    assert (report["start"], report["end"]) == (0, FRAMES - 1)
    local = Rotation.from_quat(quaternions[:, :2].reshape(-1, 4)).as_matrix()
    local = local.reshape(FRAMES, 2, 3, 3)
    for name in CHAIN_NAMES:
        assert np.abs(report["rest"][name] - np.eye(3)).max() < 1e-5, name
    assert np.abs(report["rotations"][CHAIN_NAMES[1]] - local[:, 0] @ local[:, 1]).max() < 1e-4
    assert np.abs(report["root"] - root).max() < 1e-5


@needs_bpy
def test_glb_to_fbx_honours_the_frame_rate(tmp_path, chain_motion):
    quaternions, root, morph = chain_motion
    glb = write_chain_glb(tmp_path / "chain.glb", quaternions, root, morph)
    # samples 1/30 s apart at 60 fps land on every second frame
    report = read_fbx_with_blender(glb_to_fbx(glb, tmp_path / "c.fbx", fps=60,
                                              python=BLENDER_PYTHON), tmp_path)
    assert report["fps"] == 60
    assert (report["start"], report["end"]) == (0, 2 * (FRAMES - 1))


def test_missing_bpy_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.delenv(BPY_PYTHON_ENV, raising=False)
    if importlib.util.find_spec("bpy") is not None:
        pytest.skip("bpy is importable here")
    with pytest.raises(ImportError, match=r"pip install 'semtalk\[fbx\]'"):
        bpy_interpreter()


def test_an_interpreter_without_bpy_is_an_import_error(tmp_path, monkeypatch, chain_motion):
    if importlib.util.find_spec("bpy") is not None:
        pytest.skip("bpy is importable here")
    glb = write_chain_glb(tmp_path / "chain.glb", *chain_motion)
    monkeypatch.setenv(BPY_PYTHON_ENV, sys.executable)
    with pytest.raises(ImportError, match="cannot import bpy"):
        glb_to_fbx(glb, tmp_path / "chain.fbx")
    with pytest.raises(ImportError, match="no Python interpreter"):
        glb_to_fbx(glb, tmp_path / "chain.fbx", python=tmp_path / "no-python")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chain.glb"]


def test_a_missing_glb_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="glTF binary"):
        glb_to_fbx(tmp_path / "missing.glb", tmp_path / "x.fbx", python=sys.executable)


@needs_bpy
def test_write_fbx_exports_a_semtalk_motion(tmp_path):
    pytest.importorskip("semtalk.export.glb", reason="needs semtalk.export.glb")
    from semtalk.body.motion import Motion
    from semtalk.body.parts import JOINT_NAMES, NUM_JOINTS
    from semtalk.body.rotation import axis_angle_to_matrix
    from semtalk.body.skeleton import BUILTIN_REST_JOINTS, forward_kinematics

    rng = np.random.default_rng(3)
    poses = rng.normal(0.0, 0.3, (FRAMES, NUM_JOINTS * 3))
    trans = rng.normal(0.0, 0.1, (FRAMES, 3))
    motion = Motion(poses, np.zeros((FRAMES, 100)), trans)
    out = write_fbx(motion, tmp_path / "clip.fbx", python=BLENDER_PYTHON)
    report = read_fbx_with_blender(out, tmp_path)
    assert report["fps"] == FPS
    assert set(JOINT_NAMES) <= set(report["bones"])
    assert (report["start"], report["end"]) == (0, FRAMES - 1)
    rotations = axis_angle_to_matrix(torch.tensor(motion.poses, dtype=torch.float64)
                                     .reshape(FRAMES, NUM_JOINTS, 3))
    _, world = forward_kinematics(rotations, torch.tensor(BUILTIN_REST_JOINTS))
    for name in ("pelvis", "spine3", "right_elbow", "left_wrist", "jaw"):
        j = JOINT_NAMES.index(name)
        assert np.abs(report["rotations"][name] - world[:, j].numpy()).max() < 1e-4, name
        assert np.abs(report["rest"][name] - np.eye(3)).max() < 1e-5, name  # T-pose rest
