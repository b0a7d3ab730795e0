"""Speed of the foundation: synthetic-speaker generation, BEAT2 loading, forward kinematics.

Run: ``python benchmarks/foundation.py [--minutes 5]``. Prints one line per measurement.
The issue's target: 5 minutes of synthetic data in under a minute on 2 cores.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch

from semtalk.body.skeleton import BuiltinSkeleton, foot_contacts
from semtalk.data.beat2 import Beat2Dataset
from semtalk.data.synthetic.dataset import SynthConfig, generate_dataset

T = TypeVar("T")


def timed(label: str, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    print(f"{label:<48s} {time.perf_counter() - start:8.2f} s")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=5.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        config = SynthConfig(minutes=args.minutes, seed=0)
        for workers in (1, 2):
            root = Path(tmp) / f"w{workers}"
            timed(f"synth {args.minutes:g} min, {workers} worker(s)", generate_dataset, root,
                  config, workers=workers, progress=False)
        dataset = Beat2Dataset(Path(tmp) / "w1", splits=None)
        clips = timed(f"load {len(dataset)} clips (decode, resample, validate)",
                      lambda: [dataset.load(info) for info in dataset])
        frames = sum(c.num_frames for c in clips)
        poses = torch.cat([torch.from_numpy(c.motion.poses) for c in clips]).double()
        skeleton = BuiltinSkeleton()
        joints = timed(f"built-in FK, {frames} frames (float64)", skeleton.joints, poses)
        timed("foot contacts", foot_contacts, joints)
        print(f"synthetic audio+motion: {frames / 30 / 60:.2f} min in {len(clips)} clips")


if __name__ == "__main__":
    main()
