"""The ``official`` family's motion codec: seeds and final motion exactly as the official loop.

It plugs into the shared generation loop (:class:`semtalk.generation.codec.MotionCodec`):

- first seed: the official 337-d vector (:func:`~semtalk.official.motion.latent_all`) of the
  seed's first 4 frames, contacts given (a features file's ``tar_contact``) or computed with
  the built-in skeleton;
- next seed: :func:`~semtalk.official.motion.seed_from_window_decode` of the window's decoded
  upper, hands and lower (jaw and eyes identity, translation integrated from the *first* seed
  frame in every window, raw contacts, the official quaternion route), its last 4 frames;
- final motion: one decode of the stitched codes per part, the pose through the official
  double conversion, translation from the global-motion network (re-orthonormalised lower
  rotations, zero translation, decoded contacts) with x and z integrated from the first seed
  frame and y taken directly, expressions from the face decoder (dims 6:106), eyes 0.

The default seed (no ``--seed-pose``) is a rest pose: arms relaxed at the sides (shoulders and
elbows at rounded values of BEAT2 speaker 2's mean pose, every other joint 0), standing at
(0, 1.3, 0) m (speaker 2's mean height), feet in contact. The official code instead seeded
from the first test-set sequence of BEAT2.
"""

from __future__ import annotations

import numpy as np
import torch

from semtalk.body.motion import Motion
from semtalk.body.parts import BodyPart
from semtalk.body.skeleton import BuiltinSkeleton, foot_contacts
from semtalk.features.text import Vocabulary
from semtalk.models.global_motion import GlobalMotionNet
from semtalk.models.tokenizer import MotionTokenizer
from semtalk.official.motion import (
    decoded_expressions,
    global_motion_input,
    integrate_translation,
    latent_all,
    official_pose_output,
    pose_6d_from_decoded,
    seed_from_window_decode,
)

SEED_FRAMES = 4
REST_JOINTS = {16: (0.0, -0.25, -0.9), 17: (0.0, 0.25, 0.9), 18: (0.0, -0.8, 0.2),
               19: (0.0, 0.8, -0.2)}
"""Axis-angle of the rest pose's left/right shoulder and elbow (joints 16-19)."""
REST_TRANSLATION = (0.0, 1.3, 0.0)


def official_rest_seed() -> tuple[Motion, np.ndarray]:
    """The default seed (one frame) and its foot contacts ``[1, 4]`` (all in contact)."""
    poses = np.zeros((1, 165), np.float32)
    for joint, rotation in REST_JOINTS.items():
        poses[0, 3 * joint:3 * joint + 3] = rotation
    motion = Motion(poses, np.zeros((1, 100), np.float32),
                    np.asarray([REST_TRANSLATION], np.float32))
    return motion, np.ones((1, 4), np.float32)


def seed_contacts(seed: Motion) -> np.ndarray:
    """``[T, 4]`` foot contacts of a seed motion by the built-in skeleton (joints 7, 8, 10, 11
    moving less than 1 cm to the next frame)."""
    joints = BuiltinSkeleton().joints(torch.from_numpy(seed.poses),
                                      torch.from_numpy(seed.trans))
    return foot_contacts(joints).float().numpy()


class OfficialCodec:
    """The official family's :class:`~semtalk.generation.codec.MotionCodec`."""

    def __init__(self, tokenizer: MotionTokenizer, global_motion: GlobalMotionNet,
                 vocab: Vocabulary) -> None:
        self.tokenizer = tokenizer
        self.global_motion = global_motion
        self.silence_id = vocab.sil_id

    def neutral_seed(self) -> Motion:
        return official_rest_seed()[0]

    def first_seed(self, seed: Motion, contacts: np.ndarray | None = None) -> torch.Tensor:
        index = np.minimum(np.arange(SEED_FRAMES), seed.num_frames - 1)
        # computed: a one-frame seed (the rest pose) is in contact, as its last frame
        contacts = np.asarray(seed_contacts(seed) if contacts is None else contacts, np.float32)
        found = contacts[np.minimum(index, len(contacts) - 1)]
        return latent_all(torch.from_numpy(seed.poses[index]).float(),
                          torch.from_numpy(seed.trans[index]).float(),
                          torch.from_numpy(found)).float()

    def next_seed(self, decoded: dict[BodyPart, torch.Tensor], seed: Motion) -> torch.Tensor:
        first = torch.from_numpy(np.asarray(seed.trans[0], np.float32))
        rows = seed_from_window_decode(decoded[BodyPart.UPPER].float(),
                                       decoded[BodyPart.HANDS].float(),
                                       decoded[BodyPart.LOWER].float(), first)
        return rows[-SEED_FRAMES:].float()

    @torch.inference_mode()
    def decode(self, codes: dict[BodyPart, torch.Tensor], frames: int, seed: Motion,
               user_seed: bool) -> Motion:
        decoded = {part: x[0].float().cpu() for part, x in self.tokenizer.decode_parts(
            {part: c[None] for part, c in codes.items()}).items()}
        poses = official_pose_output(pose_6d_from_decoded(decoded))
        device = next(self.global_motion.parameters()).device
        rec = self.global_motion(global_motion_input(decoded[BodyPart.LOWER])[None].to(device))
        first = torch.from_numpy(np.asarray(seed.trans[0], np.float32))
        trans = integrate_translation(rec[0].float().cpu(), first)
        expressions = decoded_expressions(decoded[BodyPart.FACE])
        return Motion(poses[:frames].numpy(), expressions[:frames].numpy(),
                      trans[:frames].numpy(), betas=seed.betas)
