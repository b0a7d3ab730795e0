"""Binary glTF 2.0 (``.glb``) with the SMPL-X skeleton, its animation, and the skinned mesh.

Layout written by :func:`write_glb` (through ``pygltflib``, ``pip install 'semtalk[export]'``):

- nodes ``0..54``: the 55 SMPL-X joints under their SMPL-X names
  (:data:`semtalk.body.JOINT_NAMES`), nested as the SMPL-X kinematic tree; each node's
  ``translation`` is its rest bone vector (the root's: the rest pelvis position), from the
  built-in skeleton or from the SMPL-X model shaped by the motion's betas;
- one animation, named after the file: per joint a ``rotation`` channel (unit quaternions
  ``x, y, z, w``: the joint's local SMPL-X rotation, with SMPL-X's mean hand pose added for an
  SMPL-X model) and on the root a ``translation`` channel (rest pelvis + ``trans``); one key per
  frame at ``fps`` (30), ``LINEAR`` interpolation;
- with an :class:`~semtalk.body.skeleton.SMPLXBodyModel`: node 55 holds the skinned mesh
  (rest vertices shaped by the betas, normals, ``JOINTS_0``/``WEIGHTS_0``: each vertex's 4
  largest SMPL-X skinning weights renormalised, or 8 in two sets with ``influences=8``; a skin
  whose inverse bind matrices are the rest pose), and the face as 100 morph targets
  (``expression_000`` ..., the SMPL-X expression blendshapes, stored sparse where they move
  few vertices) driven by an animated ``weights`` channel equal to the npz ``expressions``;
  the jaw and eyes move through the skeleton. Pose-corrective blendshapes are not carried;
- without one (or with ``stick=True``): node 55 (56 beside a body mesh) holds a *stick figure*
  so that viewers that draw meshes only (three.js, gradio's ``Model3D``, a Blender viewport
  with the bones hidden) show the motion: one mesh primitive (flat normals, material
  ``stick``) with, per bone (joint ``j >= 1`` and its parent ``p``), an octahedral spindle from
  ``p``'s rest position to ``j``'s, :data:`STICK_WIDTH` of the bone's length wide (at least
  :data:`STICK_MIN_WIDTH_M`), and a low-poly ball for the head; every vertex has weight 1 on
  one joint (a bone's on ``p``, the ball's on the head), through the same skin.

Units are metres. Axes: glTF is +Y up, +Z forward (the character faces +Z), as SMPL-X is, so
``up="y"`` (default) writes SMPL-X coordinates unchanged and every glTF importer (Blender's
included, which turns +Y up into its own +Z up) shows the body upright. ``up="z"`` bakes a
+90° turn about X into the root (and the mesh), so that the file's raw coordinates are Z up
with the character facing -Y: for pipelines that read glTF coordinates without converting
axes, as Blender-style Z-up tools expect; a converting importer then shows the body lying down.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from semtalk.body.motion import Motion
from semtalk.body.parts import JOINT_NAMES, NUM_JOINTS, PARENTS
from semtalk.constants import __version__
from semtalk.export.rig import Rig, SkinnedMesh, build_rig
from semtalk.fileio import atomic_path

if TYPE_CHECKING:
    import pygltflib

    from semtalk.body.skeleton import BodyModel

UP_AXES = ("y", "z")
INFLUENCES = (4, 8)
"""Joint influences per vertex :func:`write_glb` can write: one ``JOINTS``/``WEIGHTS`` set
(what every glTF importer reads) or two."""
MORPH_EPSILON_M = 1e-7
"""A morph target offset shorter than this (0.1 µm) counts as no move (sparse storage)."""
STICK_WIDTH = 0.1
"""A stick-figure bone's widest cross-section, as a fraction of its length."""
STICK_MIN_WIDTH_M = 0.004
"""The narrowest a stick-figure bone is at its widest (4 mm: finger bones)."""
STICK_WAIST = 0.2
"""Where along a stick-figure bone (from the parent joint) it is widest."""
HEAD = JOINT_NAMES.index("head")
_EYES = (JOINT_NAMES.index("left_eye"), JOINT_NAMES.index("right_eye"))

_FLOAT, _UBYTE, _USHORT, _UINT = 5126, 5121, 5123, 5125
_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963
_TYPES = {1: "SCALAR", 3: "VEC3", 4: "VEC4", 16: "MAT4"}
_DTYPES = {_FLOAT: np.float32, _UBYTE: np.uint8, _USHORT: np.uint16, _UINT: np.uint32}


def _import_pygltflib() -> Any:
    try:
        import pygltflib
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("writing glTF needs the 'pygltflib' package: "
                          "pip install 'semtalk[export]'") from exc
    return pygltflib


def up_rotation(up: str) -> np.ndarray:
    """``[3, 3]`` rotation from SMPL-X axes (y up) to the file's axes for ``up``."""
    if up == "y":
        return np.eye(3)
    if up == "z":  # +90° about x: y -> z, z -> -y
        return np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    raise ValueError(f"up must be one of {', '.join(UP_AXES)}, got {up!r}")


@dataclass
class _Blob:
    """The GLB's binary chunk, and the buffer views and accessors that point into it."""

    gltf: pygltflib.GLTF2
    chunks: list[bytes] = field(default_factory=list)
    size: int = 0

    def view(self, data: np.ndarray, target: int | None = None) -> int:
        """Append ``data``'s bytes (4-byte aligned) as a buffer view; its index."""
        import pygltflib

        raw = np.ascontiguousarray(data).tobytes()
        pad = (-self.size) % 4
        if pad:
            self.chunks.append(b"\0" * pad)
            self.size += pad
        self.gltf.bufferViews.append(pygltflib.BufferView(
            buffer=0, byteOffset=self.size, byteLength=len(raw), target=target))
        self.chunks.append(raw)
        self.size += len(raw)
        return len(self.gltf.bufferViews) - 1

    def accessor(self, data: np.ndarray, component: int, *, target: int | None = None,
                 bounds: bool = False, name: str | None = None) -> int:
        """An accessor over ``data`` ``[N]`` or ``[N, C]``, stored as ``component``; its index.

        ``bounds`` records the per-component ``min``/``max`` (required for positions and
        animation inputs).
        """
        import pygltflib

        array = np.asarray(data)
        columns = 1 if array.ndim == 1 else int(np.prod(array.shape[1:]))
        stored = array.reshape(array.shape[0], columns).astype(_DTYPES[component])
        accessor = pygltflib.Accessor(
            bufferView=self.view(stored, target), componentType=component,
            count=int(stored.shape[0]), type=_TYPES[columns], name=name)
        if bounds:
            accessor.min = stored.min(axis=0).tolist()
            accessor.max = stored.max(axis=0).tolist()
        self.gltf.accessors.append(accessor)
        return len(self.gltf.accessors) - 1

    def sparse_vec3(self, data: np.ndarray, name: str | None = None) -> int:
        """A VEC3 float accessor over ``data [N, 3]``: sparse when few rows are non-zero (an
        all-zero one has no storage at all); its index."""
        import pygltflib

        stored = np.asarray(data, dtype=np.float32)
        moving = np.flatnonzero(stored.any(axis=1))
        count = len(stored)
        index_type = _USHORT if count <= 0xFFFF else _UINT
        index_bytes = 2 if index_type == _USHORT else 4
        if len(moving) * (12 + index_bytes) >= count * 12:
            return self.accessor(stored, _FLOAT, target=_ARRAY_BUFFER, bounds=True, name=name)
        accessor = pygltflib.Accessor(  # no bufferView: zeros, plus the sparse rows
            byteOffset=None, componentType=_FLOAT, count=count, type="VEC3", name=name,
            min=stored.min(axis=0).tolist(), max=stored.max(axis=0).tolist())
        if len(moving):
            indices = self.view(moving.astype(_DTYPES[index_type]))
            values = self.view(stored[moving])
            accessor.sparse = pygltflib.Sparse(
                count=len(moving),
                indices=pygltflib.AccessorSparseIndices(bufferView=indices,
                                                        componentType=index_type),
                values=pygltflib.AccessorSparseValues(bufferView=values))
        self.gltf.accessors.append(accessor)
        return len(self.gltf.accessors) - 1

    def data(self) -> bytes:
        return b"".join(self.chunks) + b"\0" * ((-self.size) % 4)


def _continuous(quaternions: np.ndarray) -> np.ndarray:
    """``[T, J, 4]`` with each key's sign chosen nearest the previous key's (``q`` and ``-q``
    are one rotation; interpolating between opposite signs would take the long way)."""
    q = quaternions.copy()
    for t in range(1, q.shape[0]):
        flip = np.einsum("jk,jk->j", q[t], q[t - 1]) < 0
        q[t, flip] *= -1.0
    return q


def _skeleton_nodes(gltf: pygltflib.GLTF2, rig: Rig, turn: np.ndarray) -> None:
    """Nodes ``0..54``: the joints in their rest pose (the root turned by ``turn``)."""
    import pygltflib
    from scipy.spatial.transform import Rotation

    offsets = rig.rest_joints.copy()
    offsets[1:] = rig.rest_joints[1:] - rig.rest_joints[list(PARENTS[1:])]
    offsets[0] = turn @ rig.rest_joints[0]
    children: dict[int, list[int]] = {j: [] for j in range(NUM_JOINTS)}
    for j, parent in enumerate(PARENTS):
        if parent >= 0:
            children[parent].append(j)
    for j, name in enumerate(JOINT_NAMES):
        node = pygltflib.Node(name=name, translation=offsets[j].tolist(),
                              children=children[j] or [])
        if j == 0 and not np.allclose(turn, np.eye(3)):
            node.rotation = Rotation.from_matrix(turn).as_quat().tolist()
        gltf.nodes.append(node)


def _skin(gltf: pygltflib.GLTF2, blob: _Blob, rig: Rig, turn: np.ndarray) -> int:
    """The skin of the 55 joints (inverse bind matrices of the rest pose); its index.

    Written even without a mesh: importers such as Blender's make bones only of the joints a
    skin lists (a skeleton-only file would otherwise arrive as empty objects)."""
    import pygltflib

    bind = np.zeros((NUM_JOINTS, 4, 4))  # inverse of each joint's rest transform [turn | p]
    bind[:, :3, :3] = turn.T
    bind[:, :3, 3] = -rig.rest_joints
    bind[:, 3, 3] = 1.0
    gltf.skins.append(pygltflib.Skin(
        name="SMPLX", joints=list(range(NUM_JOINTS)), skeleton=0,
        inverseBindMatrices=blob.accessor(bind.transpose(0, 2, 1), _FLOAT)))  # column-major
    return len(gltf.skins) - 1


def _mesh_node(gltf: pygltflib.GLTF2, blob: _Blob, mesh: SkinnedMesh, rig: Rig,
               turn: np.ndarray, influences: int, skin: int) -> int:
    """The skinned mesh (bound to ``skin``) and its material; the index of its node."""
    import pygltflib

    positions = mesh.vertices @ turn.T
    attributes = pygltflib.Attributes(
        POSITION=blob.accessor(positions, _FLOAT, target=_ARRAY_BUFFER, bounds=True),
        NORMAL=blob.accessor(mesh.normals() @ turn.T, _FLOAT, target=_ARRAY_BUFFER))
    joints, weights = mesh.top_influences(influences)
    for k in range(influences // 4):
        cols = slice(4 * k, 4 * k + 4)
        set_weights = weights[:, cols].astype(np.float32)
        if k == 0:  # float32 sums off by an ulp fail validation: fold it into the largest
            set_weights[:, 0] += np.float32(1.0) - weights.astype(np.float32).sum(axis=1)
        setattr(attributes, f"JOINTS_{k}",
                blob.accessor(joints[:, cols], _UBYTE, target=_ARRAY_BUFFER))
        setattr(attributes, f"WEIGHTS_{k}",
                blob.accessor(set_weights, _FLOAT, target=_ARRAY_BUFFER))
    faces = mesh.faces.reshape(-1)
    index_type = _USHORT if mesh.num_vertices <= 0xFFFF else _UINT
    names = [f"expression_{k:03d}" for k in range(len(mesh.expression_offsets))]
    offsets = mesh.expression_offsets @ turn.T  # [100, V, 3]
    offsets = np.where(np.abs(offsets) >= MORPH_EPSILON_M, offsets, 0.0).astype(np.float32)
    targets = [pygltflib.Attributes(POSITION=blob.sparse_vec3(target, name))
               for target, name in zip(offsets, names, strict=True)]
    gltf.materials.append(pygltflib.Material(
        name="body", doubleSided=False, pbrMetallicRoughness=pygltflib.PbrMetallicRoughness(
            baseColorFactor=[0.72, 0.72, 0.75, 1.0], metallicFactor=0.0, roughnessFactor=0.7)))
    primitive = pygltflib.Primitive(
        attributes=attributes, targets=targets, material=len(gltf.materials) - 1,
        indices=blob.accessor(faces, index_type, target=_ELEMENT_ARRAY_BUFFER))
    gltf.meshes.append(pygltflib.Mesh(name="SMPLX", primitives=[primitive],
                                      weights=[0.0] * len(targets),
                                      extras={"targetNames": names}))
    gltf.nodes.append(pygltflib.Node(name="SMPLX_mesh", mesh=len(gltf.meshes) - 1, skin=skin))
    return len(gltf.nodes) - 1


def _bone_spindle(start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """``[8, 3, 3]``: the 8 outward-facing triangles of an octahedron from ``start`` to
    ``end``, widest (a square :data:`STICK_WIDTH` of the length across, at least
    :data:`STICK_MIN_WIDTH_M`) at :data:`STICK_WAIST` along it."""
    axis = end - start
    length = float(np.linalg.norm(axis))
    direction = axis / length
    helper = np.eye(3)[int(np.argmin(np.abs(direction)))]  # the axis least along the bone
    side = np.cross(direction, helper)
    side /= np.linalg.norm(side)
    other = np.cross(direction, side)
    half = 0.5 * max(STICK_WIDTH * length, STICK_MIN_WIDTH_M)
    waist = start + STICK_WAIST * axis
    ring = waist + half * np.stack([side, other, -side, -other])  # counter-clockwise about axis
    triangles = []
    for k in range(4):
        a, b = ring[k], ring[(k + 1) % 4]
        triangles += [(start, b, a), (end, a, b)]  # outward for a counter-clockwise ring
    return np.array(triangles)


def _ball(centre: np.ndarray, radius: float, rings: int = 6, segments: int = 10
          ) -> tuple[np.ndarray, np.ndarray]:
    """A UV sphere: ``(vertices [V, 3], triangles [F, 3])``, counter-clockwise seen from
    outside (poles shared, so its normals are ``(vertex - centre) / radius``)."""
    theta = np.linspace(0.0, np.pi, rings + 1)[1:-1]  # latitude rings between the poles
    phi = np.linspace(0.0, 2 * np.pi, segments, endpoint=False)
    ring_points = np.stack([np.sin(theta)[:, None] * np.sin(phi),
                            np.broadcast_to(np.cos(theta)[:, None], (len(theta), segments)),
                            np.sin(theta)[:, None] * np.cos(phi)], axis=-1).reshape(-1, 3)
    unit = np.concatenate([[[0.0, 1.0, 0.0]], ring_points, [[0.0, -1.0, 0.0]]])
    bottom = len(unit) - 1

    def at(ring: int, segment: int) -> int:
        return 1 + ring * segments + segment % segments

    faces = []
    for s in range(segments):
        faces.append((0, at(0, s), at(0, s + 1)))
        faces.append((bottom, at(rings - 2, s + 1), at(rings - 2, s)))
        for r in range(rings - 2):
            faces.append((at(r, s), at(r + 1, s), at(r + 1, s + 1)))
            faces.append((at(r, s), at(r + 1, s + 1), at(r, s + 1)))
    return centre + radius * unit, np.array(faces)


def stick_figure(rest_joints: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                    np.ndarray]:
    """The stick figure of a rest skeleton ``[55, 3]`` (SMPL-X axes).

    Returns:
        ``(vertices [V, 3], normals [V, 3], triangles [F, 3], joints [V])``: a spindle per bone
        (flat-shaded: 24 vertices of its own, weighted to the bone's parent joint) and a ball
        for the head (weighted to the head joint), in that order; ``joints`` is each vertex's
        one joint.
    """
    vertices, normals, joints = [], [], []
    for j in range(1, NUM_JOINTS):
        parent = PARENTS[j]
        triangles = _bone_spindle(rest_joints[parent], rest_joints[j])
        face_normals = np.cross(triangles[:, 1] - triangles[:, 0],
                                triangles[:, 2] - triangles[:, 0])
        face_normals /= np.linalg.norm(face_normals, axis=1, keepdims=True)
        vertices.append(triangles.reshape(-1, 3))
        normals.append(np.repeat(face_normals, 3, axis=0))
        joints.append(np.full(triangles.shape[0] * 3, parent))
    faces = np.arange(sum(len(v) for v in vertices)).reshape(-1, 3)
    # the head: a ball reaching from the head joint past the eyes (SMPL-X heads are ~2x that)
    head, eyes = rest_joints[HEAD], rest_joints[list(_EYES)].mean(axis=0)
    radius = float(np.linalg.norm(eyes - head))
    centre = 0.5 * (head + eyes) + np.array([0.0, 0.5 * radius, 0.0])
    ball, ball_faces = _ball(centre, radius)
    faces = np.concatenate([faces, ball_faces + len(faces) * 3])
    vertices.append(ball)
    normals.append((ball - centre) / radius)
    joints.append(np.full(len(ball), HEAD))
    return (np.concatenate(vertices), np.concatenate(normals), faces,
            np.concatenate(joints))


def _stick_node(gltf: pygltflib.GLTF2, blob: _Blob, rig: Rig, turn: np.ndarray,
                skin: int) -> int:
    """The stick figure (:func:`stick_figure`, bound to ``skin``) and its material; the
    index of its node."""
    import pygltflib

    vertices, normals, faces, owner = stick_figure(rig.rest_joints)
    joints = np.zeros((len(owner), 4), dtype=np.uint8)
    joints[:, 0] = owner
    weights = np.zeros((len(owner), 4), dtype=np.float32)
    weights[:, 0] = 1.0
    attributes = pygltflib.Attributes(
        POSITION=blob.accessor(vertices @ turn.T, _FLOAT, target=_ARRAY_BUFFER, bounds=True),
        NORMAL=blob.accessor(normals @ turn.T, _FLOAT, target=_ARRAY_BUFFER),
        JOINTS_0=blob.accessor(joints, _UBYTE, target=_ARRAY_BUFFER),
        WEIGHTS_0=blob.accessor(weights, _FLOAT, target=_ARRAY_BUFFER))
    gltf.materials.append(pygltflib.Material(
        name="stick", doubleSided=False, pbrMetallicRoughness=pygltflib.PbrMetallicRoughness(
            baseColorFactor=[0.85, 0.45, 0.15, 1.0], metallicFactor=0.0, roughnessFactor=0.6)))
    index_type = _USHORT if len(vertices) <= 0xFFFF else _UINT
    primitive = pygltflib.Primitive(
        attributes=attributes, material=len(gltf.materials) - 1,
        indices=blob.accessor(faces.reshape(-1), index_type, target=_ELEMENT_ARRAY_BUFFER))
    gltf.meshes.append(pygltflib.Mesh(name="SMPLX_stick", primitives=[primitive]))
    gltf.nodes.append(pygltflib.Node(name="SMPLX_stick", mesh=len(gltf.meshes) - 1,
                                     skin=skin))
    return len(gltf.nodes) - 1


def _animation(gltf: pygltflib.GLTF2, blob: _Blob, motion: Motion, rig: Rig,
               turn: np.ndarray, mesh_node: int | None, name: str) -> None:
    """One animation: joint rotations, root translation, morph weights (with a mesh)."""
    import pygltflib
    from scipy.spatial.transform import Rotation

    num_frames = motion.num_frames
    rotations = rig.local_rotations(motion.poses)
    quats = rotations.as_quat().reshape(num_frames, NUM_JOINTS, 4)  # x, y, z, w
    quats[:, 0] = (Rotation.from_matrix(turn) * rotations[::NUM_JOINTS]).as_quat()
    quats = _continuous(quats)
    root = (rig.rest_joints[0] + motion.trans.astype(np.float64)) @ turn.T
    times = blob.accessor(np.arange(num_frames, dtype=np.float64) / motion.fps, _FLOAT,
                          bounds=True)
    animation = pygltflib.Animation(name=name)

    def channel(node: int, path: str, output: int) -> None:
        animation.samplers.append(pygltflib.AnimationSampler(
            input=times, output=output, interpolation=pygltflib.ANIM_LINEAR))
        animation.channels.append(pygltflib.AnimationChannel(
            sampler=len(animation.samplers) - 1,
            target=pygltflib.AnimationChannelTarget(node=node, path=path)))

    channel(0, "translation", blob.accessor(root, _FLOAT))
    for j in range(NUM_JOINTS):
        channel(j, "rotation", blob.accessor(quats[:, j], _FLOAT))
    if mesh_node is not None:
        weights = motion.expressions.astype(np.float32).reshape(-1)  # [T * 100], frame-major
        channel(mesh_node, "weights", blob.accessor(weights, _FLOAT))
    gltf.animations.append(animation)


def write_glb(motion: Motion, path: str | Path, *, body_model: BodyModel | None = None,
              up: str = "y", influences: int = 4, stick: bool | None = None) -> Path:
    """Write ``motion`` as a binary glTF 2.0 file, atomically (see the module docs).

    Args:
        motion: the clip (poses, trans, expressions and betas are used).
        path: the ``.glb`` to write.
        body_model: ``None`` or the built-in skeleton: skeleton and animation only, with the
            built-in rest joints. An :class:`~semtalk.body.skeleton.SMPLXBodyModel`: its rest
            joints shaped by ``motion.betas``, plus the skinned mesh with the expressions as
            animated morph targets.
        up: ``"y"`` (glTF's own axes, default) or ``"z"`` (Z-up coordinates, see above).
        influences: joints per vertex: 4 (one ``JOINTS_0``/``WEIGHTS_0`` set, read everywhere)
            or 8 (two sets; closer to SMPL-X's skinning where importers read both).
        stick: add the stick-figure mesh (bones as spindles and a ball for the head, skinned
            to the joints, see above) so that viewers that show meshes only draw the motion;
            ``None`` (default): when there is no body mesh.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ImportError: ``pygltflib`` is not installed (``pip install 'semtalk[export]'``).
        ValueError: a bad ``up`` or ``influences``, or non-finite motion values.
    """
    pygltflib = _import_pygltflib()
    turn = up_rotation(up)
    if influences not in INFLUENCES:
        raise ValueError(f"influences must be one of {INFLUENCES}, got {influences}")
    for key in ("poses", "trans", "expressions", "betas"):
        if not np.isfinite(getattr(motion, key)).all():
            raise ValueError(f"motion.{key} holds NaN or Inf values")
    path = Path(path)
    rig = build_rig(body_model, motion.betas)
    gltf = pygltflib.GLTF2(
        asset=pygltflib.Asset(generator=f"semtalk {__version__} (pygltflib)"),
        scene=0, extras={"fps": motion.fps, "up": up, "body_model": rig.body_model,
                         "frames": motion.num_frames})
    blob = _Blob(gltf)
    _skeleton_nodes(gltf, rig, turn)
    skin = _skin(gltf, blob, rig, turn)
    mesh_node = None if rig.mesh is None else _mesh_node(gltf, blob, rig.mesh, rig, turn,
                                                         influences, skin)
    stick_node = (_stick_node(gltf, blob, rig, turn, skin)
                  if (rig.mesh is None if stick is None else stick) else None)
    gltf.scenes.append(pygltflib.Scene(
        name="SMPLX", nodes=[0] + [n for n in (mesh_node, stick_node) if n is not None]))
    _animation(gltf, blob, motion, rig, turn, mesh_node, path.stem)
    data = blob.data()
    gltf.buffers.append(pygltflib.Buffer(byteLength=len(data)))
    gltf.set_binary_blob(data)
    with atomic_path(path) as tmp:
        gltf.save_binary(str(tmp))
    return path
