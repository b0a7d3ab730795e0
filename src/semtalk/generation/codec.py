"""How a family turns motion into generator seeds and codes back into motion.

The generation loop (:mod:`semtalk.generation.engine`) is the same for both architecture
families; what differs is the motion representation around it, a :class:`MotionCodec`:

- the first window's 4 seed rows (337-d) from a seed motion (a rest pose or the user's);
- the next window's seed rows from a window's decoded parts;
- the final motion from the stitched codes of the whole utterance;
- the word id that pads the windows past the last word (silence).

:class:`PaperCodec` is the ``paper`` family's (the tokenizer's own representation: lower-body
root velocity, normalised features); the ``official`` family's is
:class:`semtalk.official.codec.OfficialCodec`.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch

from semtalk.body.motion import Motion
from semtalk.body.parts import EYE_JOINTS, BodyPart
from semtalk.body.representation import (
    LOWER_ROOT_SLICE,
    motion_to_seed_features,
    tokenizer_parts_to_motion,
    tokenizer_parts_to_seed_features,
)
from semtalk.body.skeleton import BuiltinSkeleton, foot_contacts
from semtalk.features.text import SIL
from semtalk.models.generator_common import FRAMES_PER_TOKEN
from semtalk.models.tokenizer import MotionTokenizer

SEED_FRAMES = FRAMES_PER_TOKEN
"""Seed frames per window: exactly one token, so a window's first token is the previous one's
last."""


class MotionCodec(Protocol):
    """The motion side of generation for one family (see the module docstring)."""

    silence_id: int
    """The word id of a frame in no word (pads the windows past the end)."""

    def neutral_seed(self) -> Motion:
        """The default seed: a one-frame rest pose."""
        ...

    def first_seed(self, seed: Motion, contacts: np.ndarray | None = None) -> torch.Tensor:
        """``[4, 337]`` seed rows of the first window from ``seed``'s first frames
        (``contacts``: their ``[>= 4, 4]`` foot contacts; None: computed)."""
        ...

    def next_seed(self, decoded: dict[BodyPart, torch.Tensor], seed: Motion) -> torch.Tensor:
        """``[4, 337]`` seed rows of the next window from one window's decoded parts
        ``{part: [T, D]}`` (``seed``: the utterance's first seed)."""
        ...

    def decode(self, codes: dict[BodyPart, torch.Tensor], frames: int, seed: Motion,
               user_seed: bool) -> Motion:
        """The utterance's motion, ``frames`` frames, from its stitched codes ``{part: [N, Q]}``
        (``user_seed``: ``seed`` was given by the user rather than the rest pose)."""
        ...


class PaperCodec:
    """The ``paper`` family: the tokenizer's representation (:mod:`semtalk.body.representation`).
    """

    silence_id = SIL

    def __init__(self, tokenizer: MotionTokenizer) -> None:
        self.tokenizer = tokenizer

    def neutral_seed(self) -> Motion:
        """The tokenizer's per-channel training mean, standing still.

        The mean of the training 6D rotations, re-orthogonalised, is the speaker's average pose
        (arms down, not the SMPL-X T-pose); an untrained tokenizer (zero mean) gives the T-pose.
        """
        tokenizer = self.tokenizer
        parts = {part: tokenizer[part].feature_mean.detach().float().cpu()[None].clone()
                 for part in tokenizer.parts}
        lower = parts[BodyPart.LOWER]
        lower[:, [LOWER_ROOT_SLICE.start, LOWER_ROOT_SLICE.start + 2]] = 0.0  # no root velocity
        poses, expressions, trans = tokenizer_parts_to_motion(parts)
        poses = torch.nan_to_num(poses, nan=0.0, posinf=0.0, neginf=0.0)
        return Motion(poses.numpy(), expressions.numpy(), trans.numpy())

    def first_seed(self, seed: Motion, contacts: np.ndarray | None = None) -> torch.Tensor:
        """The first :data:`SEED_FRAMES` frames of ``seed`` (the last one repeated when it is
        shorter), foot contacts given or by the built-in skeleton."""
        index = np.minimum(np.arange(SEED_FRAMES), seed.num_frames - 1)
        poses = torch.from_numpy(seed.poses[index])
        trans = torch.from_numpy(seed.trans[index])
        found = (foot_contacts(BuiltinSkeleton().joints(poses, trans)) if contacts is None
                 else torch.from_numpy(np.asarray(contacts, np.float32)[index]))
        return motion_to_seed_features(poses, trans, found.to(poses.dtype)).float()

    def next_seed(self, decoded: dict[BodyPart, torch.Tensor], seed: Motion) -> torch.Tensor:
        """The window's last frames as a training seed of the same motion shows them
        (:func:`tokenizer_parts_to_seed_features`: 6D kept, each frame's own root velocity,
        0/1 contacts), with the eye pose :meth:`decode` writes."""
        last = {part: x[-SEED_FRAMES:] for part, x in decoded.items()}
        eyes = torch.from_numpy(eye_pose(seed))
        return tokenizer_parts_to_seed_features(last, eyes).float()

    def decode(self, codes: dict[BodyPart, torch.Tensor], frames: int, seed: Motion,
               user_seed: bool) -> Motion:
        """:meth:`MotionTokenizer.detokenize`, starting at the user seed's position, with the
        seed's eye pose (eyes are not generated)."""
        start_xz = seed.trans[0, [0, 2]] if user_seed else None
        return self.tokenizer.detokenize(codes, num_frames=frames, start_xz=start_xz,
                                         eye_pose=eye_pose(seed), betas=seed.betas)


def eye_pose(seed: Motion) -> np.ndarray:
    """``[6]`` axis-angle of both eyes in ``seed``'s first frame (rest for the neutral seed)."""
    channels = [3 * joint + axis for joint in EYE_JOINTS for axis in range(3)]
    return np.asarray(seed.poses[0, channels], np.float32)
