"""Speed of the preview videos: frames rendered and encoded per second, stick figure and mesh.

Run: ``python benchmarks/render.py [--frames 300] [--size 1280x720] [--mesh SMPLX_PATH]``.
Renders a waving, walking body with words and ψ, once without and once with audio, as a stick
figure (built-in skeleton) and as an SMPL-X mesh, and prints frames/s for each (the issue's
target: at least 20 frames/s at 1280x720 on 2 cores). The mesh is the user's
``SMPLX_NEUTRAL_2020.npz`` when ``--mesh`` names one, else the stand-in model of
:mod:`semtalk.data.synthetic.body_model` (10.7k vertices, 21k faces, about the real mesh's
size). The mesh times include computing the vertices (SMPL-X forward passes) and opening the
OpenGL context. The mesh rows need the ``render`` extra.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from semtalk import AUDIO_SAMPLE_RATE, MOTION_FPS
from semtalk.body.skeleton import BuiltinSkeleton
from semtalk.render import render_preview, render_video


def moving_poses(num_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(poses [T, 165], trans [T, 3])`` of a body waving its arms and drifting sideways."""
    t = torch.arange(num_frames, dtype=torch.float64) / MOTION_FPS
    poses = torch.zeros(num_frames, 55, 3, dtype=torch.float64)
    poses[:, 16, 2] = -1.2 + 0.6 * torch.sin(2 * torch.pi * 0.7 * t)  # left shoulder
    poses[:, 17, 2] = 1.2 + 0.4 * torch.sin(2 * torch.pi * 0.5 * t)   # right shoulder
    poses[:, 18, 1] = 0.8 * torch.sin(2 * torch.pi * 1.1 * t)         # left elbow
    poses[:, 25:55, 2] = 0.3 * torch.sin(2 * torch.pi * 0.9 * t)[:, None]  # fingers curl
    poses[:, 15, 0] = 0.15 * torch.sin(2 * torch.pi * 0.4 * t)        # head nod
    trans = torch.stack([0.3 * torch.sin(2 * torch.pi * 0.1 * t), 0 * t, 0 * t], dim=-1)
    return poses.reshape(num_frames, 165), trans


def moving_clip(num_frames: int) -> tuple[np.ndarray, np.ndarray, list[tuple[str, float, float]]]:
    """``(joints [T, 55, 3], psi [T], words)`` of :func:`moving_poses` on the built-in skeleton."""
    poses, trans = moving_poses(num_frames)
    joints = BuiltinSkeleton().joints(poses, trans).numpy()
    t = np.arange(num_frames) / MOTION_FPS
    psi = 0.5 + 0.5 * np.sin(2 * np.pi * 0.3 * t)
    words = [(f"word{i}", 0.4 * i, 0.4 * i + 0.3) for i in range(int(num_frames / 12))]
    return joints, psi, words


def mesh_renderer(model_path: Path | None, work: Path, num_frames: int) -> Callable[..., Path]:
    """``render(out, **preview_kwargs)`` drawing the mesh of :func:`moving_poses`."""
    from semtalk.body.skeleton import SMPLXBodyModel
    from semtalk.render.mesh import MeshView

    if model_path is None:
        from semtalk.data.synthetic.body_model import write_synthetic_smplx

        model_path = write_synthetic_smplx(work / "SMPLX_NEUTRAL_2020.npz")
    body = SMPLXBodyModel(model_path)
    poses, trans = moving_poses(num_frames)

    def render(out: Path, **kwargs: object) -> Path:
        view = MeshView.from_motion(body, poses.numpy(), trans.numpy())
        return render_preview(view, out, **kwargs)  # type: ignore[arg-type]

    return render


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--mesh", type=Path, default=None, metavar="SMPLX_PATH",
                        help="SMPLX_NEUTRAL_2020.npz for the mesh rows (default: the stand-in)")
    parser.add_argument("--no-mesh", action="store_true", help="stick figure only")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    joints, psi, words = moving_clip(args.frames)
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal(args.frames * AUDIO_SAMPLE_RATE // MOTION_FPS))
    with tempfile.TemporaryDirectory() as tmp:
        renderers: dict[str, Callable[..., Path]] = {
            "stick": lambda out, **kw: render_video(joints, out, **kw)}
        if not args.no_mesh:
            renderers["mesh"] = mesh_renderer(args.mesh, Path(tmp), args.frames)
        for name, render in renderers.items():
            for label, sound in (("no audio", None), ("with audio", audio.astype(np.float32))):
                out = Path(tmp) / "preview.mp4"
                start = time.perf_counter()
                render(out, audio=sound, words=words, psi=psi, size=size,
                       title="semtalk benchmark")
                seconds = time.perf_counter() - start
                print(f"{name:<6s} {args.frames} frames {size[0]}x{size[1]} {label:<10s} "
                      f"{seconds:6.2f} s  {args.frames / seconds:6.1f} frames/s  "
                      f"{out.stat().st_size / 1e6:.2f} MB", flush=True)


if __name__ == "__main__":
    main()
