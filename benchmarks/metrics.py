"""Speed and sanity of the evaluation metrics on one real BEAT2 clip (or a synthetic stand-in).

Run: ``python benchmarks/metrics.py [--clip ../shared/data/beat2-sample/2_scott_0_1_1]``.
Prints one line per measurement: time to encode the clip for FGD (random-weight encoder: speed
only), BC of the GT motion against its own audio and against the audio shifted by 10 s (a
control that should score lower), with the fixed and with the official (quirky) definition, DIV,
and their run times. Joints come from the built-in
skeleton, so BC / DIV are approximations of the SMPL-X values; the speed normaliser is the
clip's own mean joint speed.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

from semtalk.body.rotation import axis_angle_to_rot6d
from semtalk.body.skeleton import BuiltinSkeleton
from semtalk.data.audio import load_audio
from semtalk.metrics import (
    BeatConsistencyConfig,
    FGDAutoencoder,
    beat_consistency,
    encode_sequences,
    l1_diversity,
    mean_joint_speed,
)
from semtalk.training.presets import load_preset

T = TypeVar("T")
DEFAULT_CLIP = Path(__file__).resolve().parents[2] / "shared/data/beat2-sample/2_scott_0_1_1"


def timed(label: str, fn: Callable[..., T], *args: object) -> T:
    start = time.perf_counter()
    result = fn(*args)
    print(f"{label:<52s} {time.perf_counter() - start:8.3f} s")
    return result


def load_clip(stem: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(poses [T, 165], audio [S] at 16 kHz)``; synthetic noise-driven motion if absent."""
    if stem.with_suffix(".npz").is_file():
        poses = np.load(stem.with_suffix(".npz"))["poses"].astype(np.float64)
        return poses, load_audio(stem.with_suffix(".wav"))
    print(f"{stem}: not found, using 60 s of synthetic motion and noise audio")
    rng = np.random.default_rng(0)
    steps = rng.normal(0, 0.01, (1800, 165))
    return np.cumsum(steps, axis=0), rng.normal(0, 0.1, 60 * 16_000).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clip", type=Path, default=DEFAULT_CLIP,
                        help="path stem of a BEAT2 clip (.npz and .wav beside each other)")
    args = parser.parse_args()
    poses, audio = load_clip(args.clip)
    frames = poses.shape[0]
    print(f"clip: {frames} frames ({frames / 30:.1f} s), torch threads {torch.get_num_threads()}")
    joints = timed("forward kinematics (built-in skeleton)",
                   lambda: BuiltinSkeleton().joints(torch.from_numpy(poses)).numpy())
    rot6d = axis_angle_to_rot6d(torch.from_numpy(poses).reshape(frames, 55, 3)).float()
    torch.manual_seed(0)
    encoder = FGDAutoencoder(load_preset("fgd_encoder", "paper")).eval()
    latents = timed("FGD encode (official architecture, random weights)",
                    encode_sequences, encoder, [rot6d])
    print(f"  latents {latents.shape}")
    mean_speed = mean_joint_speed([joints])
    bc = timed("BC, GT motion vs its own audio", beat_consistency, joints, audio, mean_speed)
    shifted = np.roll(audio, 10 * 16_000)
    control = timed("BC, GT motion vs audio shifted by 10 s", beat_consistency, joints, shifted,
                    mean_speed)
    quirky = BeatConsistencyConfig(official_quirks=True)
    paper_bc = beat_consistency(joints, audio, mean_speed, quirky)
    paper_control = beat_consistency(joints, shifted, mean_speed, quirky)
    div = timed("DIV", l1_diversity, [joints])
    print(f"  BC {bc:.4f} (x10: {10 * bc:.3f}), shifted-audio control {control:.4f}")
    print(f"  BC with official quirks {paper_bc:.4f}, shifted-audio control {paper_control:.4f}")
    print(f"  DIV {div:.4f}")


if __name__ == "__main__":
    main()
