"""Synthetic SHOW-format clips: the keys, shapes, dtypes and pickle globals of a real ``.pkl``
(spec show-format.md §2), torch tensors in ``losses_to_log`` included, and a 22 kHz stereo
16-bit wav. No real SHOW data is used."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

SHOW_RATE = 22000


def show_record(frames: int, seed: int = 0) -> dict:
    """A dict with exactly the keys, shapes and dtypes of a SHOW ``.pkl``."""
    rng = np.random.default_rng(seed)

    def f32(*shape: int, scale: float = 0.3) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    return {
        "betas": f32(1, 300), "global_orient": f32(frames, 1, 3),
        "body_pose_axis": f32(frames, 63), "jaw_pose": f32(frames, 3),
        "leye_pose": f32(frames, 3), "reye_pose": f32(frames, 3),
        "left_hand_pose": f32(frames, 12), "right_hand_pose": f32(frames, 12),
        "expression": f32(frames, 100), "transl": f32(frames, 3),
        "camera_transl": np.array([0.0, 0.1, 6.0], np.float32),
        "focal_length": np.array(5000.0, np.float32), "width": 1280, "height": 720,
        "center": [640.0, 360.0], "batch_size": frames, "pose_embedding": f32(frames, 32),
        "mica_head_transl": f32(1, 3),
        "losses_to_log": {"loss_total": torch.tensor(1.25),
                          "loss_matrix": torch.arange(6.0).reshape(2, 3).t()},
    }


def write_show_clip(root: Path, speaker: str, video_fn: str, clip: str, frames: int,
                    audio: np.ndarray | None = None, seed: int = 0) -> Path:
    """``root/speaker/video_fn/clip/clip.{pkl,wav}``; ``audio``: stereo float [N, 2] at 22 kHz
    (default a quiet tone as long as the motion)."""
    folder = root / speaker / video_fn / clip
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{clip}.pkl").write_bytes(pickle.dumps(show_record(frames, seed), protocol=2))
    if audio is None:
        t = np.arange(round(frames / 30 * SHOW_RATE)) / SHOW_RATE
        audio = 0.1 * np.stack([np.sin(2 * np.pi * 220 * t), np.sin(2 * np.pi * 330 * t)], 1)
    pcm = np.clip(np.round(audio * 32767), -32768, 32767).astype(np.int16)
    sf.write(folder / f"{clip}.wav", pcm, SHOW_RATE, subtype="PCM_16")
    return folder


def write_hands_npz(path: Path, seed: int = 7) -> Path:
    """A stand-in SMPL-X model file holding only what SHOW's hands need: random (not
    orthonormal, like the real ones) hand PCA bases ``hands_components{l,r}`` [45, 45]."""
    rng = np.random.default_rng(seed)
    np.savez(path, hands_componentsl=rng.standard_normal((45, 45)),
             hands_componentsr=rng.standard_normal((45, 45)),
             hands_meanl=np.zeros(45), hands_meanr=np.zeros(45))
    return path
