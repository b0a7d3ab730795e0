"""Time and size of USD export for a clip: skeleton only and skinned mesh, text and binary.

Run: ``python benchmarks/export_usd.py [--seconds 60] [--motion CLIP.npz] [--mesh SMPLX_PATH]``.
The motion is ``--motion`` (a BEAT2 ``.npz``, cropped or looped to the length) or a synthetic
waving body with random expressions. The mesh is the user's ``SMPLX_NEUTRAL_2020.npz`` when
``--mesh`` names one, else the stand-in model of :mod:`semtalk.data.synthetic.body_model`
(10.7k vertices, 21k faces, about the real mesh's size; its expression blend shapes move only
the face, so real SMPL-X files, whose expressions move the whole head, are larger). Prints one
row per file: seconds to write, megabytes on disk, and seconds for OpenUSD to open the stage and
compute every frame's joint transforms. Needs the ``usd`` extra (and ``smplx`` for the mesh).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from semtalk.body.motion import Motion, read_motion_npz
from semtalk.body.skeleton import BodyModel, SMPLXBodyModel
from semtalk.constants import MOTION_FPS
from semtalk.export.usd import write_usd


def synthetic_motion(num_frames: int) -> Motion:
    """A body waving its arms and drifting sideways, with random smooth expressions."""
    t = np.arange(num_frames) / MOTION_FPS
    poses = np.zeros((num_frames, 55, 3))
    poses[:, 16, 2] = -1.2 + 0.6 * np.sin(2 * np.pi * 0.7 * t)
    poses[:, 17, 2] = 1.2 + 0.4 * np.sin(2 * np.pi * 0.5 * t)
    poses[:, 18, 1] = 0.8 * np.sin(2 * np.pi * 1.1 * t)
    poses[:, 25:55, 2] = 0.3 * np.sin(2 * np.pi * 0.9 * t)[:, None]
    trans = np.stack([0.3 * np.sin(2 * np.pi * 0.1 * t), 0 * t, 0 * t], axis=-1)
    rng = np.random.default_rng(0)
    phases = rng.uniform(0, 2 * np.pi, 100)
    expressions = np.sin(2 * np.pi * 0.5 * t[:, None] + phases) * rng.uniform(0, 1.5, 100)
    return Motion(poses.reshape(num_frames, 165), expressions, trans)


def clip_motion(path: Path, num_frames: int) -> Motion:
    """A BEAT2 clip cropped (or looped) to ``num_frames``."""
    motion, _ = read_motion_npz(path)
    index = np.arange(num_frames) % motion.num_frames
    return Motion(motion.poses[index], motion.expressions[index], motion.trans[index],
                  motion.betas)


def read_back_seconds(path: Path) -> float:
    """Seconds for OpenUSD to open ``path`` and compute all frames' joint transforms."""
    from pxr import Usd, UsdSkel

    start = time.perf_counter()
    stage = Usd.Stage.Open(str(path))
    cache = UsdSkel.Cache()
    cache.Populate(UsdSkel.Root(stage.GetDefaultPrim()), Usd.TraverseInstanceProxies())
    query = cache.GetSkelQuery(UsdSkel.Skeleton(stage.GetPrimAtPath("/Body/Skeleton")))
    for frame in range(int(stage.GetEndTimeCode()) + 1):
        query.ComputeJointSkelTransforms(frame)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--motion", type=Path, help="a BEAT2 .npz (default: synthetic)")
    parser.add_argument("--mesh", type=Path, help="SMPLX_NEUTRAL_2020.npz (default: stand-in)")
    args = parser.parse_args()
    num_frames = round(args.seconds * MOTION_FPS)
    motion = synthetic_motion(num_frames) if args.motion is None \
        else clip_motion(args.motion, num_frames)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        mesh_path = args.mesh
        if mesh_path is None:
            from semtalk.data.synthetic.body_model import write_synthetic_smplx

            mesh_path = write_synthetic_smplx(work / "SMPLX_NEUTRAL_2020.npz")
        smplx_model = SMPLXBodyModel(mesh_path)
        print(f"{num_frames} frames ({num_frames / MOTION_FPS:.0f} s at {MOTION_FPS} fps); "
              f"mesh: {'stand-in' if args.mesh is None else mesh_path}")
        write_usd(motion.crop(0, 2), work / "warm-up.usdc")  # load OpenUSD's plugins once
        print(f"{'file':<22}{'write s':>9}{'MB':>9}{'read s':>9}")
        models: list[tuple[str, BodyModel | None]] = [("skeleton", None),
                                                      ("mesh", smplx_model)]
        for label, model in models:
            for suffix in (".usdc", ".usda"):
                out = work / f"{label}{suffix}"
                start = time.perf_counter()
                write_usd(motion, out, body_model=model)
                seconds = time.perf_counter() - start
                size_mb = out.stat().st_size / 1e6
                print(f"{out.name:<22}{seconds:>9.2f}{size_mb:>9.2f}"
                      f"{read_back_seconds(out):>9.2f}")


if __name__ == "__main__":
    main()
