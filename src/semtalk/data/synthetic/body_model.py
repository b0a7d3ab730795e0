"""A stand-in SMPL-X model file: the built-in skeleton dressed in tubes, for tests and benchmarks.

The real ``SMPLX_NEUTRAL_2020.npz`` is licensed and cannot ship with semtalk. This writes a file
with the same keys and shapes that the ``smplx`` package loads (300 betas + 100 expression
components), so everything that takes a body model file can be exercised without it:

- the rest joints are the built-in skeleton's (vertices ``0..54`` sit on the joints and the
  joint regressor picks them), so the exact SMPL-X path and :class:`BuiltinSkeleton` give the
  same joints;
- the surface is a closed tube around every bone (elliptic for the trunk, flat for the palms),
  an ellipsoid head and finger tips, each tube skinned rigidly to the bone's parent joint:
  about 10.4k vertices and 20k triangles, the size of the real mesh;
- ``beta[0]`` scales the whole body by ``scale_beta0`` per unit; the first expression
  component pushes the face (the front half of the head) forward by 5 cm per unit; pose
  correctives are zero.

It is not a body shape anyone should animate for real: it is test data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from semtalk.body.parts import HEAD, NUM_JOINTS, PARENTS
from semtalk.body.skeleton import BUILTIN_REST_JOINTS

SMPLX_MIN_VERTICES = 9930
"""``smplx`` reads vertex indices up to 9929 (its extra joints); fewer vertices fail to load."""
NUM_BETAS, NUM_EXPRESSIONS, NUM_POSE_BASIS = 300, 100, 486
EXPRESSION_PUSH_M = 0.05
"""How far expression component 0 moves the face forward per unit."""

# Tube radii (across the bone, (u, w)) keyed by the bone's child joint; u is horizontal for a
# vertical bone (left-right) and vertical for a horizontal one, w the remaining direction.
_TRUNK = {3: (0.15, 0.10), 6: (0.15, 0.10), 9: (0.16, 0.11), 12: (0.13, 0.09)}
_LIMBS = {
    1: (0.085, 0.085), 4: (0.075, 0.075), 7: (0.055, 0.055), 10: (0.045, 0.05),
    13: (0.06, 0.06), 15: (0.05, 0.05), 16: (0.06, 0.06), 18: (0.05, 0.05), 20: (0.04, 0.04),
}
_PALM = (0.016, 0.042)
_FINGER = (0.010, 0.010)
_TUBE_SIDES, _TUBE_RINGS = 30, 14
_FINGER_SIDES, _FINGER_RINGS = 8, 3
_HEAD_CENTRE_OFFSET = np.array([0.0, 0.055, 0.005])
_HEAD_RADII = np.array([0.085, 0.115, 0.10])
_HEAD_SEGMENTS = (24, 32)  # (latitude rings, longitude sides)


def _mirror(radii: dict[int, tuple[float, float]]) -> dict[int, tuple[float, float]]:
    """Add the right-side joints (left + 1 in SMPL-X's numbering for hips..wrists)."""
    out = dict(radii)
    for joint, r in radii.items():
        if joint in (1, 4, 7, 10, 13, 16, 18, 20):
            out[joint + 1] = r
    return out


def _bone_radii(child: int) -> tuple[tuple[float, float], int, int] | None:
    """``((r_u, r_w), sides, rings)`` of the tube ending at ``child``; None: no tube."""
    if child in (22, 23, 24):  # jaw and eyes are inside the head
        return None
    radii = {**_TRUNK, **_mirror(_LIMBS)}
    if child in radii:
        return radii[child], _TUBE_SIDES, _TUBE_RINGS
    if PARENTS[child] in (20, 21):  # wrist -> first finger joint
        return (_PALM if child in (28, 43) else _FINGER), _FINGER_SIDES, _FINGER_RINGS
    return _FINGER, _FINGER_SIDES, _FINGER_RINGS


def _frame(direction: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors across ``direction``: ``u = d x z`` (x when d is along z), ``w``."""
    d = direction / np.linalg.norm(direction)
    u = np.cross(d, [0.0, 0.0, 1.0])
    if np.linalg.norm(u) < 1e-6:
        u = np.array([1.0, 0.0, 0.0])
    u /= np.linalg.norm(u)
    return u, np.cross(u, d)


def _tube(start: np.ndarray, end: np.ndarray, radii: tuple[float, float], sides: int,
          rings: int) -> tuple[np.ndarray, np.ndarray]:
    """A closed elliptic tube from ``start`` to ``end``, overlapping each end by its radius.

    Returns ``(vertices [rings * sides + 2, 3], faces [2 * sides * rings, 3])`` with faces
    wound counter-clockwise seen from outside.
    """
    axis = end - start
    length = np.linalg.norm(axis)
    d = axis / length
    u, w = _frame(axis)
    pad = 0.6 * min(radii)
    a = np.linspace(-pad, length + pad, rings)
    theta = np.linspace(0.0, 2 * np.pi, sides, endpoint=False)
    ring = radii[0] * np.cos(theta)[:, None] * u + radii[1] * np.sin(theta)[:, None] * w
    body = start + a[:, None, None] * d + ring[None]  # [rings, sides, 3]
    verts = np.concatenate([body.reshape(-1, 3), [start - pad * d], [end + pad * d]])
    i = np.arange(rings - 1)[:, None] * sides
    j = np.arange(sides)[None, :]
    j1 = (j + 1) % sides
    a0, a1, b0, b1 = (i + j).ravel(), (i + j1).ravel(), (i + sides + j).ravel(), \
        (i + sides + j1).ravel()
    side = np.concatenate([np.stack([a0, b0, a1], 1), np.stack([a1, b0, b1], 1)])
    bottom, top = rings * sides, rings * sides + 1
    jj = np.arange(sides)
    last = (rings - 1) * sides
    caps = np.concatenate([
        np.stack([np.full(sides, bottom), jj, (jj + 1) % sides], 1),
        np.stack([np.full(sides, top), last + (jj + 1) % sides, last + jj], 1)])
    faces = np.concatenate([side, caps])
    return verts, _outward(verts, faces, (start + end) / 2)


def _outward(verts: np.ndarray, faces: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """Wind every face of a convex shape around ``centre`` counter-clockwise from outside."""
    tri = verts[faces]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    flip = np.einsum("ij,ij->i", normal, tri.mean(axis=1) - centre) < 0
    faces = faces.copy()
    faces[flip] = faces[flip][:, ::-1]
    return faces


def _ellipsoid(centre: np.ndarray, radii: np.ndarray,
               segments: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """A UV ellipsoid: ``(vertices, faces)`` wound outwards."""
    lat, lon = segments
    phi = np.linspace(0, np.pi, lat + 1)[1:-1]
    theta = np.linspace(0, 2 * np.pi, lon, endpoint=False)
    unit = np.stack([np.sin(phi)[:, None] * np.sin(theta), np.cos(phi)[:, None]
                     * np.ones_like(theta), np.sin(phi)[:, None] * np.cos(theta)], -1)
    verts = np.concatenate([[[0, 1, 0]], unit.reshape(-1, 3), [[0, -1, 0]]]) * radii + centre
    top, bottom = 0, len(verts) - 1
    j = np.arange(lon)
    j1 = (j + 1) % lon
    faces = [np.stack([np.full(lon, top), 1 + j, 1 + j1], 1)]
    for r in range(lat - 2):
        a, b = 1 + r * lon, 1 + (r + 1) * lon
        faces += [np.stack([a + j, b + j, a + j1], 1), np.stack([a + j1, b + j, b + j1], 1)]
    last = 1 + (lat - 2) * lon
    faces.append(np.stack([np.full(lon, bottom), last + j1, last + j], 1))
    return verts, _outward(verts, np.concatenate(faces), centre)


def build_tube_body() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(vertices [V, 3], faces [F, 3], joint [V])`` of the rest-pose body; ``joint`` is the
    joint each vertex is skinned to. Vertices ``0..54`` are the joints themselves."""
    rest = np.asarray(BUILTIN_REST_JOINTS, dtype=np.float64)
    verts, faces, owner = [rest], [], [np.arange(NUM_JOINTS)]
    count = NUM_JOINTS

    def add(v: np.ndarray, f: np.ndarray, joint: int) -> None:
        nonlocal count
        verts.append(v)
        faces.append(f + count)
        owner.append(np.full(len(v), joint))
        count += len(v)

    children = {j: [c for c in range(NUM_JOINTS) if PARENTS[c] == j] for j in range(NUM_JOINTS)}
    for child in range(1, NUM_JOINTS):
        spec = _bone_radii(child)
        if spec is None:
            continue
        parent = PARENTS[child]
        add(*_tube(rest[parent], rest[child], *spec), parent)
        if child >= 25 and not children[child]:  # a finger tip beyond the last joint
            tip = rest[child] + 0.8 * (rest[child] - rest[parent])
            add(*_tube(rest[child], tip, *spec), child)
    add(*_ellipsoid(rest[HEAD] + _HEAD_CENTRE_OFFSET, _HEAD_RADII, _HEAD_SEGMENTS), HEAD)
    vertices, joint = np.concatenate(verts), np.concatenate(owner)
    if len(vertices) < SMPLX_MIN_VERTICES:  # unused filler at the pelvis
        extra = SMPLX_MIN_VERTICES - len(vertices)
        vertices = np.concatenate([vertices, np.repeat(rest[:1], extra, axis=0)])
        joint = np.concatenate([joint, np.zeros(extra, dtype=joint.dtype)])
    return vertices, np.concatenate(faces), joint


def write_synthetic_smplx(path: str | Path, *, shape_components: int = NUM_BETAS + NUM_EXPRESSIONS,
                          scale_beta0: float = 0.0) -> Path:
    """Write the stand-in ``SMPLX_NEUTRAL_2020.npz`` (see the module docstring) to ``path``.

    Args:
        path: the file to write (``.npz``; compressed, about 1 MB).
        shape_components: last dimension of ``shapedirs``; below 400 ``smplx`` falls back to
            10 betas + 10 expressions (what :class:`~semtalk.body.skeleton.SMPLXBodyModel` refuses).
        scale_beta0: ``beta[0] = 1`` scales the whole body (joints included) by
            ``1 + scale_beta0``.
    """
    vertices, faces, joint = build_tube_body()
    n = len(vertices)
    v_template = vertices.astype(np.float32)
    j_regressor = np.zeros((NUM_JOINTS, n), np.float32)
    j_regressor[np.arange(NUM_JOINTS), np.arange(NUM_JOINTS)] = 1.0
    weights = np.zeros((n, NUM_JOINTS), np.float32)
    weights[np.arange(n), joint] = 1.0
    shapedirs = np.zeros((n, 3, shape_components), np.float32)
    shapedirs[:, :, 0] = scale_beta0 * v_template
    if shape_components > NUM_BETAS:
        face = (joint == HEAD) & (v_template[:, 2] > BUILTIN_REST_JOINTS[HEAD, 2] + 0.02)
        shapedirs[face, 2, NUM_BETAS] = EXPRESSION_PUSH_M
    kintree = np.array([[4294967295, *PARENTS[1:]], list(range(NUM_JOINTS))], np.int64)
    path = Path(path)
    np.savez_compressed(
        path, v_template=v_template, f=faces.astype(np.uint32), J_regressor=j_regressor,
        kintree_table=kintree, weights=weights,
        posedirs=np.zeros((n, 3, NUM_POSE_BASIS), np.float32), shapedirs=shapedirs,
        hands_componentsl=np.eye(45, dtype=np.float32),
        hands_componentsr=np.eye(45, dtype=np.float32),
        hands_meanl=np.zeros(45, np.float32), hands_meanr=np.zeros(45, np.float32),
        lmk_faces_idx=np.zeros(51, np.int64),
        lmk_bary_coords=np.full((51, 3), 1 / 3, np.float32))
    return path
