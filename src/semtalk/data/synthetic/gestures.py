"""Poses of the synthetic speaker: rest pose, hand shapes and semantic gesture key poses.

Every joint's local rotation is written as intrinsic XYZ Euler angles (radians) in the parent's
frame, ``R = Rx(a) @ Ry(b) @ Rz(c)``. Poses are authored for the **left** side and mirrored for
the right: a reflection ``x -> -x`` maps ``(a, b, c)`` to ``(a, -b, -c)``.

Left-arm angle meanings (SMPL-X T-pose frame; the arm points along +x, palm down):

- shoulder ``c``: ``-1.15`` hangs the arm down beside the body, ``0`` is horizontal (abduction);
  ``a < 0`` raises the arm forward (flexion); ``b < 0`` turns the forearm towards the midline.
- elbow ``b < 0``: flexion (forearm forward and up).
- wrist ``c < 0``: flexion towards the palm; ``a``: forearm twist.
- finger joints ``c < 0``: curl towards the palm.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from semtalk.body.parts import JOINT_NAMES, NUM_JOINTS

JOINT = {name: index for index, name in enumerate(JOINT_NAMES)}
MIRROR = np.array([1.0, -1.0, -1.0])
FINGERS = ("index", "middle", "pinky", "ring", "thumb")


def side_joint(side: str, name: str) -> int:
    return JOINT[f"{side}_{name}"]


def side_of(joint: int) -> str:
    """``"right"`` for right-side joints, else ``"left"`` (midline joints use left angles)."""
    return "right" if JOINT_NAMES[joint].startswith("right_") else "left"


def mirrored(angles: npt.ArrayLike, side: str) -> np.ndarray:
    """Left-side angles as they apply to ``side``."""
    return np.asarray(angles, dtype=np.float64) * (MIRROR if side == "right" else 1.0)


HAND_SHAPES: dict[str, tuple[float, float, float, float, float]] = {
    # curl per finger joint: index, middle, pinky, ring, thumb
    "relaxed": (0.30, 0.38, 0.50, 0.45, 0.15),
    "flat": (0.04, 0.04, 0.06, 0.05, 0.05),
    "open": (0.0, 0.0, 0.02, 0.0, -0.1),
    "point": (0.02, 1.35, 1.35, 1.35, 0.70),
    "pinch": (0.75, 1.05, 1.15, 1.10, 0.65),
}


def hand_angles(shape: str, side: str) -> dict[int, np.ndarray]:
    """Euler angles of the 15 finger joints of one hand for a named shape."""
    curls = HAND_SHAPES[shape]
    angles = {}
    for finger, curl in zip(FINGERS, curls, strict=True):
        for k in (1, 2, 3):
            if finger == "thumb":
                left = np.array([0.0, 0.4 * curl, -0.5 * curl])
            else:
                left = np.array([0.0, 0.0, -curl])
            angles[side_joint(side, f"{finger}{k}")] = mirrored(left, side)
    return angles


ARM_REST = {
    "collar": (0.0, 0.0, -0.05),
    "shoulder": (0.0, -0.20, -1.15),
    "elbow": (0.0, -0.55, 0.0),
    "wrist": (-0.15, 0.0, -0.10),
}


def rest_pose() -> np.ndarray:
    """``[55, 3]`` Euler angles of the speaker's neutral standing pose (legs are solved by
    inverse kinematics, see :mod:`semtalk.data.synthetic.legs`)."""
    pose = np.zeros((NUM_JOINTS, 3))
    pose[JOINT["pelvis"]] = (-0.06, 0.0, 0.0)
    pose[JOINT["spine1"]] = (0.10, 0.0, 0.0)
    pose[JOINT["neck"]] = (0.08, 0.0, 0.0)
    pose[JOINT["head"]] = (-0.04, 0.0, 0.0)
    pose[JOINT["jaw"]] = (0.02, 0.0, 0.0)
    for side in ("left", "right"):
        for name, angles in ARM_REST.items():
            pose[side_joint(side, name)] = mirrored(angles, side)
        for joint, hand in hand_angles("relaxed", side).items():
            pose[joint] = hand
    return pose


@dataclass(frozen=True)
class GestureClass:
    """A semantic gesture: key pose of the arm(s) used, hand shape, optional oscillation."""

    name: str
    arms: tuple[str, ...]
    shoulder: tuple[float, float, float]
    elbow: tuple[float, float, float]
    wrist: tuple[float, float, float]
    hand: str
    score: float
    """Typical semantic relevance written to ``sem`` (jittered per instance)."""
    oscillation: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    """Joint name (``"shoulder"``, ``"head"``...) -> amplitude (a, b, c) of a 2.5 Hz wiggle."""
    head: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """Added to the neck while the gesture is held."""

    def joints(self) -> list[int]:
        """Joints whose rotations this gesture overrides."""
        names = ("collar", "shoulder", "elbow", "wrist",
                 *(f"{f}{k}" for f in FINGERS for k in (1, 2, 3)))
        return [side_joint(side, n) for side in self.arms for n in names]

    def key_pose(self) -> dict[int, np.ndarray]:
        """Euler angles of the overridden joints at the gesture's apex."""
        pose: dict[int, np.ndarray] = {}
        for side in self.arms:
            pose[side_joint(side, "collar")] = mirrored(ARM_REST["collar"], side)
            pose[side_joint(side, "shoulder")] = mirrored(self.shoulder, side)
            pose[side_joint(side, "elbow")] = mirrored(self.elbow, side)
            pose[side_joint(side, "wrist")] = mirrored(self.wrist, side)
            pose.update(hand_angles(self.hand, side))
        return pose


GESTURES: dict[str, GestureClass] = {g.name: g for g in (
    GestureClass("self", ("right",), (-0.45, -0.75, -1.0), (0.0, -2.0, 0.0),
                 (-0.6, 0.0, 0.2), "flat", 0.6),
    GestureClass("listener", ("right",), (-1.45, -0.10, -1.38), (0.0, -0.25, 0.0),
                 (-0.4, 0.0, 0.0), "point", 0.75, head=(0.08, 0.0, 0.0)),
    GestureClass("large", ("left", "right"), (-0.95, 0.10, -0.75), (0.0, -0.55, 0.0),
                 (-1.2, 0.0, 0.0), "open", 0.9),
    GestureClass("small", ("left", "right"), (-0.55, -0.50, -1.05), (0.0, -1.60, 0.0),
                 (-1.0, 0.0, 0.0), "pinch", 0.8),
    GestureClass("negation", ("right",), (-0.55, -0.35, -1.0), (0.0, -1.40, 0.0),
                 (0.3, 0.0, 0.0), "flat", 0.85,
                 oscillation={"shoulder": (0.0, 0.35, 0.0), "head": (0.0, 0.15, 0.0)}),
    GestureClass("counting", ("left",), (-0.60, -0.25, -1.0), (0.0, -1.95, 0.0),
                 (-1.3, 0.0, 0.0), "open", 0.9),
    GestureClass("rise", ("right",), (-2.3, 0.0, -1.35), (0.0, -0.35, 0.0),
                 (-1.0, 0.0, 0.0), "open", 0.8, head=(-0.10, 0.0, 0.0)),
    GestureClass("think", ("right",), (-1.2, 0.25, -0.60), (0.0, -2.30, 0.0),
                 (-0.5, 0.0, 0.0), "point", 0.7, head=(0.05, 0.0, 0.12)),
)}
