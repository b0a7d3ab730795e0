"""BVH motion capture files with the SMPL-X joint hierarchy.

Layout written by :func:`write_bvh`:

- the 55 SMPL-X joints under their SMPL-X names (:data:`semtalk.body.JOINT_NAMES`), nested as
  the SMPL-X kinematic tree; children in joint-index order; leaves get an ``End Site`` that
  continues their bone by half its length;
- ``OFFSET``s are rest-pose bone vectors (the root's is the rest pelvis position), in
  **centimetres** by default (``scale=100`` times metres: what Blender, MotionBuilder and most
  BVH tools expect); pass ``scale=1`` for metres;
- the root has 6 channels ``Xposition Yposition Zposition Zrotation Xrotation Yrotation``; the
  position is the pelvis's world position (rest pelvis + ``trans``), as BVH readers expect an
  absolute root position; every other joint has 3 channels ``Zrotation Xrotation Yrotation``;
- rotations are each joint's local SMPL-X rotation as intrinsic ZXY Euler angles in degrees,
  i.e. ``R = Rz @ Rx @ Ry``; axes are SMPL-X's (y up, z forward).

:func:`read_bvh` reads any BVH whose position channels sit on the root (enough to check a round
trip, or to bring such a file back to SMPL-X poses when its joints carry SMPL-X names).
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from semtalk.body.parts import JOINT_NAMES, NUM_JOINTS, PARENTS, POSE_DIM
from semtalk.constants import MOTION_FPS
from semtalk.errors import DataError, require_file
from semtalk.fileio import atomic_path

CENTIMETRES_PER_METRE = 100.0
EULER_ORDER = "ZXY"
"""Intrinsic Euler order of the rotation channels (``Zrotation Xrotation Yrotation``)."""
_POSITION_CHANNELS = ("Xposition", "Yposition", "Zposition")


def _children(parents: tuple[int, ...]) -> dict[int, list[int]]:
    children: dict[int, list[int]] = {j: [] for j in range(len(parents))}
    for j, p in enumerate(parents):
        if p >= 0:
            children[p].append(j)
    return children


def _depth_first(parents: tuple[int, ...]) -> list[int]:
    """Joint indices in depth-first order (the order of BVH channels), children by index."""
    children = _children(parents)
    order: list[int] = []
    stack = [j for j, p in enumerate(parents) if p < 0][::-1]
    while stack:
        j = stack.pop()
        order.append(j)
        stack.extend(reversed(children[j]))
    return order


LENGTH_FORMAT = "%.8f"
"""Offsets and root positions: 8 decimals keep 0.01 micrometre even when writing metres."""
ANGLE_FORMAT = "%.6f"
"""Euler angles in degrees: 1e-6 degrees is below 2e-8 rad."""


def _fmt(values: np.ndarray) -> str:
    return " ".join(LENGTH_FORMAT % v for v in values)


def _hierarchy_lines(offsets: np.ndarray, names: tuple[str, ...],
                     parents: tuple[int, ...]) -> Iterator[str]:
    """Lines of the HIERARCHY section for joints ``offsets [J, 3]`` (already scaled)."""
    children = _children(parents)
    rot_channels = "Zrotation Xrotation Yrotation"

    def emit(j: int, depth: int) -> Iterator[str]:
        pad = "\t" * depth
        if parents[j] < 0:
            yield f"ROOT {names[j]}"
            channels = f"CHANNELS 6 {' '.join(_POSITION_CHANNELS)} {rot_channels}"
        else:
            yield f"{pad}JOINT {names[j]}"
            channels = f"CHANNELS 3 {rot_channels}"
        yield f"{pad}{{"
        yield f"{pad}\tOFFSET {_fmt(offsets[j])}"
        yield f"{pad}\t{channels}"
        for child in children[j]:
            yield from emit(child, depth + 1)
        if not children[j]:
            yield f"{pad}\tEnd Site"
            yield f"{pad}\t{{"
            yield f"{pad}\t\tOFFSET {_fmt(0.5 * offsets[j])}"
            yield f"{pad}\t}}"
        yield f"{pad}}}"

    yield "HIERARCHY"
    for root in (j for j, p in enumerate(parents) if p < 0):
        yield from emit(root, 0)


def write_bvh(
    poses: np.ndarray,
    trans: np.ndarray,
    path: str | Path,
    *,
    rest_joints: np.ndarray | None = None,
    fps: float = MOTION_FPS,
    scale: float = CENTIMETRES_PER_METRE,
) -> Path:
    """Write SMPL-X motion as a BVH file, atomically.

    Args:
        poses: ``[T, 165]`` axis-angle of the 55 SMPL-X joints (BEAT2's ``poses``).
        trans: ``[T, 3]`` global translation in metres.
        path: the ``.bvh`` to write.
        rest_joints: ``[55, 3]`` rest joint positions in metres; default the built-in
            skeleton's (:data:`semtalk.body.skeleton.BUILTIN_REST_JOINTS`). Pass a real SMPL-X
            body's rest joints for its exact bone lengths.
        fps: frame rate (``Frame Time`` is ``1 / fps``).
        scale: length units per metre in the file: 100 (centimetres, default) or 1 (metres).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    from semtalk.body.skeleton import BUILTIN_REST_JOINTS

    poses = np.asarray(poses, dtype=np.float64)
    trans = np.asarray(trans, dtype=np.float64)
    rest = BUILTIN_REST_JOINTS if rest_joints is None else np.asarray(rest_joints, np.float64)
    if poses.ndim != 2 or poses.shape[1] != POSE_DIM or poses.shape[0] < 1:
        raise ValueError(f"poses must be [T, {POSE_DIM}] with T >= 1, got shape {poses.shape}")
    if trans.shape != (poses.shape[0], 3):
        raise ValueError(f"trans must be [T, 3] = [{poses.shape[0]}, 3], got {trans.shape}")
    if rest.shape != (NUM_JOINTS, 3):
        raise ValueError(f"rest_joints must be [{NUM_JOINTS}, 3], got {rest.shape}")
    if not (np.isfinite(poses).all() and np.isfinite(trans).all() and np.isfinite(rest).all()):
        raise ValueError("poses, trans and rest_joints must be finite")
    if not (fps > 0 and scale > 0):
        raise ValueError(f"fps and scale must be positive, got fps={fps}, scale={scale}")

    num_frames = poses.shape[0]
    offsets = rest.copy()
    offsets[1:] = rest[1:] - rest[list(PARENTS[1:])]
    order = _depth_first(PARENTS)
    rotations = Rotation.from_rotvec(poses.reshape(-1, 3))
    with warnings.catch_warnings():  # gimbal lock loses nothing: the matrix is unchanged
        warnings.filterwarnings("ignore", message="Gimbal lock detected")
        euler = rotations.as_euler(EULER_ORDER, degrees=True).reshape(num_frames, NUM_JOINTS, 3)
    root_position = (rest[0] + trans) * scale
    table = np.concatenate([root_position, euler[:, order].reshape(num_frames, -1)], axis=1)

    header = "\n".join(_hierarchy_lines(offsets * scale, JOINT_NAMES, PARENTS))
    body = io.StringIO()
    np.savetxt(body, table, fmt=[LENGTH_FORMAT] * 3 + [ANGLE_FORMAT] * (table.shape[1] - 3))
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(f"{header}\nMOTION\nFrames: {num_frames}\n"
                       f"Frame Time: {1.0 / fps:.10f}\n{body.getvalue()}", encoding="utf-8")
    return path


@dataclass(frozen=True)
class BvhMotion:
    """A BVH file's skeleton and motion, in file (depth-first) joint order.

    Attributes:
        names: ``J`` joint names.
        parents: ``J`` parent indices into ``names`` (-1 for the root).
        offsets: ``[J, 3]`` rest offsets in metres (the root's: its rest position).
        poses: ``[T, 3J]`` local joint rotations as axis-angle.
        trans: ``[T, 3]`` root translation in metres: root position minus root offset.
        fps: frame rate.
    """

    names: tuple[str, ...]
    parents: tuple[int, ...]
    offsets: np.ndarray
    poses: np.ndarray
    trans: np.ndarray
    fps: float

    def smplx_poses(self) -> np.ndarray:
        """``[T, 165]`` axis-angle in SMPL-X joint order (joints matched by name)."""
        missing = [n for n in JOINT_NAMES if n not in self.names]
        if missing:
            raise ValueError(f"BVH lacks SMPL-X joints {missing[:5]}"
                             f"{' ...' if len(missing) > 5 else ''}")
        index = [self.names.index(n) for n in JOINT_NAMES]
        per_joint = self.poses.reshape(self.poses.shape[0], len(self.names), 3)
        return per_joint[:, index].reshape(self.poses.shape[0], POSE_DIM)


@dataclass
class _Joint:
    name: str
    parent: int
    offset: tuple[float, float, float] = (0.0, 0.0, 0.0)
    channels: tuple[str, ...] = ()


def _parse_hierarchy(path: Path, lines: list[str]) -> tuple[list[_Joint], int]:
    """Joints in file order and the index of the ``MOTION`` line."""
    joints: list[_Joint] = []
    stack: list[int] = []  # open joints; -2 marks an End Site block
    pending: _Joint | None = None
    end_site = False
    for number, raw in enumerate(lines):
        words = raw.split()
        if not words or words[0] == "HIERARCHY":
            continue
        key = words[0]
        if key == "MOTION":
            if stack:
                raise DataError(path, "unbalanced braces in HIERARCHY")
            return joints, number
        if key in ("ROOT", "JOINT"):
            if len(words) < 2:
                raise DataError(path, f"line {number + 1}: {key} without a name")
            parent = next((j for j in reversed(stack) if j >= 0), -1)
            if key == "JOINT" and parent < 0:
                raise DataError(path, f"line {number + 1}: JOINT outside a ROOT")
            pending = _Joint(" ".join(words[1:]), parent)
        elif key == "End":
            end_site = True
        elif key == "{":
            if pending is not None:
                joints.append(pending)
                stack.append(len(joints) - 1)
                pending = None
            elif end_site:
                stack.append(-2)
                end_site = False
            else:
                raise DataError(path, f"line {number + 1}: '{{' without a joint")
        elif key == "}":
            if not stack:
                raise DataError(path, f"line {number + 1}: unmatched '}}'")
            stack.pop()
        elif key == "OFFSET" and stack and stack[-1] >= 0:
            x, y, z = (float(v) for v in words[1:4])
            joints[stack[-1]].offset = (x, y, z)
        elif key == "CHANNELS" and stack and stack[-1] >= 0:
            joints[stack[-1]].channels = tuple(words[2 : 2 + int(words[1])])
    raise DataError(path, "no MOTION section")


def _frame_rate(path: Path, frame_time: float) -> float:
    """``1 / frame_time``, snapped to a whole number when the file rounded it."""
    if not frame_time > 0:
        raise DataError(path, f"Frame Time must be positive, got {frame_time}")
    fps = 1.0 / frame_time
    return float(round(fps)) if abs(fps - round(fps)) < 1e-4 * fps else fps


def read_bvh(path: str | Path, *, scale: float = CENTIMETRES_PER_METRE) -> BvhMotion:
    """Read a BVH file (position channels on the root only; any rotation channel order).

    Args:
        path: the ``.bvh`` file.
        scale: length units per metre in the file (100 for centimetres, as written by
            :func:`write_bvh` by default).
    """
    path = require_file(path, "BVH file")
    lines = path.read_text(encoding="utf-8").splitlines()
    joints, motion_line = _parse_hierarchy(path, lines)
    if not joints:
        raise DataError(path, "no joints in HIERARCHY")
    try:
        num_frames = int(lines[motion_line + 1].split(":")[1])
        frame_time = float(lines[motion_line + 2].split(":")[1])
        table = np.loadtxt(io.StringIO("\n".join(lines[motion_line + 3 :])), ndmin=2)
    except (IndexError, ValueError) as exc:
        raise DataError(path, f"malformed MOTION section ({exc})") from exc
    width = sum(len(j.channels) for j in joints)
    if table.shape != (num_frames, width) and not (num_frames == 0 and table.size == 0):
        raise DataError(path, f"MOTION has shape {table.shape}, expected "
                              f"[{num_frames} frames, {width} channels]")
    rotvecs = np.zeros((num_frames, len(joints), 3))
    root_position = np.zeros((num_frames, 3))
    column = 0
    for j, joint in enumerate(joints):
        values = table[:, column : column + len(joint.channels)]
        column += len(joint.channels)
        axes = "".join(c[0].upper() for c in joint.channels if c.endswith("rotation"))
        rot_cols = [k for k, c in enumerate(joint.channels) if c.endswith("rotation")]
        pos_cols = {c: k for k, c in enumerate(joint.channels) if c.endswith("position")}
        if pos_cols and joint.parent >= 0:
            raise DataError(path, f"joint {joint.name!r} has position channels; only the "
                                  "root may")
        if pos_cols:
            root_position = np.stack([values[:, pos_cols[c]] if c in pos_cols
                                      else np.zeros(num_frames) for c in _POSITION_CHANNELS], -1)
        if axes:
            rotvecs[:, j] = Rotation.from_euler(axes, values[:, rot_cols],
                                                degrees=True).as_rotvec()
    offsets = np.array([j.offset for j in joints], dtype=np.float64) / scale
    return BvhMotion(
        names=tuple(j.name for j in joints),
        parents=tuple(j.parent for j in joints),
        offsets=offsets,
        poses=rotvecs.reshape(num_frames, -1),
        trans=root_position / scale - offsets[0],
        fps=_frame_rate(path, frame_time),
    )
