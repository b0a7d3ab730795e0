"""Speed of the stick-figure preview: frames rendered and encoded per second.

Run: ``python benchmarks/render.py [--frames 300] [--size 1280x720]``. Renders a waving,
walking built-in skeleton with words and ψ, once without and once with audio, and prints
frames/s for each (the issue's target: at least 20 frames/s at 1280x720 on 2 cores).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from semtalk import AUDIO_SAMPLE_RATE, MOTION_FPS
from semtalk.render import render_video
from semtalk.skeleton import BuiltinSkeleton


def moving_clip(num_frames: int) -> tuple[np.ndarray, np.ndarray, list[tuple[str, float, float]]]:
    """``(joints [T, 55, 3], psi [T], words)`` of a body waving its arms and drifting sideways."""
    t = torch.arange(num_frames, dtype=torch.float64) / MOTION_FPS
    poses = torch.zeros(num_frames, 55, 3, dtype=torch.float64)
    poses[:, 16, 2] = -1.2 + 0.6 * torch.sin(2 * torch.pi * 0.7 * t)  # left shoulder
    poses[:, 17, 2] = 1.2 + 0.4 * torch.sin(2 * torch.pi * 0.5 * t)   # right shoulder
    poses[:, 18, 1] = 0.8 * torch.sin(2 * torch.pi * 1.1 * t)         # left elbow
    poses[:, 25:55, 2] = 0.3 * torch.sin(2 * torch.pi * 0.9 * t)[:, None]  # fingers curl
    poses[:, 15, 0] = 0.15 * torch.sin(2 * torch.pi * 0.4 * t)        # head nod
    trans = torch.stack([0.3 * torch.sin(2 * torch.pi * 0.1 * t), 0 * t, 0 * t], dim=-1)
    joints = BuiltinSkeleton().joints(poses.reshape(num_frames, 165), trans).numpy()
    psi = 0.5 + 0.5 * np.sin(2 * np.pi * 0.3 * t.numpy())
    words = [(f"word{i}", 0.4 * i, 0.4 * i + 0.3) for i in range(int(num_frames / 12))]
    return joints, psi, words


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--size", default="1280x720")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    joints, psi, words = moving_clip(args.frames)
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal(args.frames * AUDIO_SAMPLE_RATE // MOTION_FPS))
    with tempfile.TemporaryDirectory() as tmp:
        for label, sound in (("no audio", None), ("with audio", audio.astype(np.float32))):
            out = Path(tmp) / "preview.mp4"
            start = time.perf_counter()
            render_video(joints, out, audio=sound, words=words, psi=psi, size=size,
                         title="semtalk benchmark")
            seconds = time.perf_counter() - start
            print(f"render {args.frames} frames {size[0]}x{size[1]} {label:<10s} "
                  f"{seconds:6.2f} s  {args.frames / seconds:6.1f} frames/s  "
                  f"{out.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
