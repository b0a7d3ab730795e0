"""GLB export of a 60 s clip: file sizes and write times, skeleton only and with a mesh.

Writes a 60 s (1,800 frame) random-walk motion with :func:`semtalk.export.glb.write_glb`:
the built-in skeleton with its stick figure and without, and the stand-in SMPL-X body
(:mod:`semtalk.data.synthetic.body_model`: ~10.7k vertices, 21k triangles, the real mesh's
size; needs the ``smplx`` extra) with its skinned mesh and 100 expression morph targets, with 4
and with 8 joint influences per vertex. The stand-in's expression blendshapes move only the
face (stored sparse); the real SMPL-X's move the head's vertices (denser), so its mesh files
are larger by up to ``100 x V x 12`` bytes.

Usage: ``python benchmarks/export.py [--seconds 60] [--repeats 3]``.

Measured on the project machine (2 CPU cores shared with other jobs, so times vary about 2x
between runs; pygltflib 1.16.5; 60 s, best of 3, two runs):

    skeleton + stick figure         1.70 MB   0.03 s
    skeleton (stick=False)          1.64 MB   0.04 s
    mesh, 4 weights (10,695 verts)  2.98 MB   0.36-0.44 s
    mesh, 8 weights (10,695 verts)  3.19 MB   0.19-0.37 s

Each file passes the Khronos glTF validator 2.0.0-dev.3.10 with 0 errors and 0 warnings (the
skeleton file with ``stick=False`` has 1 info: its skin is bound to no mesh; the skeleton
timings are from a later single run).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from semtalk.body.motion import Motion
from semtalk.export.glb import write_glb


def random_motion(num_frames: int, seed: int = 0) -> Motion:
    """Smooth random joint rotations, a wandering root and expressions (BEAT2 layout)."""
    rng = np.random.default_rng(seed)
    kernel = np.hanning(31) / np.hanning(31).sum()

    def smooth(noise: np.ndarray) -> np.ndarray:
        return np.apply_along_axis(np.convolve, 0, noise, kernel, mode="same")

    poses = smooth(rng.standard_normal((num_frames, 165))) * 2.0
    trans = np.cumsum(0.002 * rng.standard_normal((num_frames, 3)), axis=0)
    return Motion(poses, smooth(rng.standard_normal((num_frames, 100))) * 3.0, trans)


def timed(fn: object, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    motion = random_motion(round(args.seconds * 30))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        cases: dict[str, dict[str, object]] = {"skeleton + stick figure": {},
                                                "skeleton (stick=False)": {"stick": False}}
        try:
            from semtalk.body.skeleton import SMPLXBodyModel
            from semtalk.data.synthetic.body_model import write_synthetic_smplx

            model_file = write_synthetic_smplx(folder / "SMPLX_NEUTRAL_2020.npz")
            body = SMPLXBodyModel(model_file)
            vertices = body.model.v_template.shape[0]
            cases[f"mesh, 4 weights ({vertices} vertices)"] = {"body_model": body}
            cases[f"mesh, 8 weights ({vertices} vertices)"] = {"body_model": body,
                                                               "influences": 8}
        except ImportError as exc:
            print(f"(no mesh cases: {exc})")
        print(f"{motion.num_frames} frames ({motion.duration:.0f} s), best of {args.repeats}")
        for name, kwargs in cases.items():
            path = folder / "clip.glb"
            seconds = timed(lambda kw=kwargs, p=path: write_glb(motion, p, **kw),  # type: ignore[misc]
                            args.repeats)
            print(f"  {name:34s} {path.stat().st_size / 1e6:6.2f} MB  {seconds:6.2f} s")


if __name__ == "__main__":
    main()
