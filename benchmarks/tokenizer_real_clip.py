"""Tokenizer reconstruction on the real BEAT2 clip: tiny preset vs a "mean pose" baseline.

The clip ``2_scott_0_1_1`` (from ``../shared/data/beat2-sample``, or ``--sample DIR``) is cut by
time: frames [0, 60 %) train, [60 %, 70 %) validate (model selection), [70 %, 100 %) are the
held-out test. Each part's tokenizer (``tiny`` preset, or ``--preset``) is trained on the
first 70 % only; the test tail is then tokenized and detokenized as one sequence and compared
with the ground truth:

- mean joint-angle error (degrees) over the part's joints and frames;
- mean joint-position error (mm) of the part's joints, the part posed alone on the built-in
  skeleton (the jaw's position does not depend on its rotation, so the face reports the
  expression RMSE instead);
- the same errors for the baseline that repeats the training frames' mean pose (mean of the 6D
  features, re-orthonormalised) for every test frame.

Usage: ``python benchmarks/tokenizer_real_clip.py [--steps N] [--out DIR]``. Prints a table.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from semtalk.body.parts import BodyPart
from semtalk.body.representation import motion_to_tokenizer_parts
from semtalk.features.beat import BeatFeatures
from semtalk.features.cache import FeatureCache, prepare_cache
from semtalk.losses.reconstruction import joint_position_error_mm, rotation_error_degrees
from semtalk.models.rvqvae import RVQVAE
from semtalk.training.tokenizer import TokenizerSolver, load_tokenizer_config, with_solver
from semtalk.training.windows import Segment

SAMPLE_ID = "2_scott_0_1_1"
DEFAULT_SAMPLE = Path(__file__).resolve().parents[1].parent / "shared/data/beat2-sample"


def make_cache(sample: Path, work: Path) -> FeatureCache:
    root = work / "beat2"
    for folder, suffix in {"smplxflame_30": ".npz", "wave16k": ".wav",
                           "textgrid": ".TextGrid"}.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        (root / folder / f"{SAMPLE_ID}{suffix}").symlink_to(sample / f"{SAMPLE_ID}{suffix}")
    (root / "train_test_split.csv").write_text(f"id,type\n{SAMPLE_ID},train\n")
    return prepare_cache(root, work / "cache", audio_extractors=[BeatFeatures()],
                         progress=False)


def part_features(cache: FeatureCache, start: int, stop: int) -> dict[BodyPart, torch.Tensor]:
    clip = cache.load(SAMPLE_ID)

    def read(array: object) -> torch.Tensor:
        return torch.from_numpy(array[start:stop].astype("float32"))  # type: ignore[index]

    return motion_to_tokenizer_parts(read(clip.poses), read(clip.expressions),
                                     read(clip.trans), read(clip.contacts))


def errors(part: BodyPart, prediction: torch.Tensor, target: torch.Tensor) -> tuple[float, float]:
    angle = rotation_error_degrees(prediction, target, part).item()
    if part is BodyPart.FACE:
        face_rot = 6
        second = (prediction[..., face_rot:] - target[..., face_rot:]).pow(2).mean().sqrt().item()
    else:
        second = joint_position_error_mm(prediction, target, part).item()
    return angle, second


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=Path, default=DEFAULT_SAMPLE)
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--steps", type=int, default=None, help="override solver.max_steps")
    parser.add_argument("--out", type=Path, default=None, help="keep runs here")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    work = Path(tempfile.mkdtemp(prefix="semtalk-tok-")) if args.out is None else args.out
    work.mkdir(parents=True, exist_ok=True)
    cache = make_cache(args.sample, work) if not (work / "cache").is_dir() \
        else FeatureCache(work / "cache")
    n = cache.load(SAMPLE_ID).num_frames
    train_end, val_end = round(0.6 * n), round(0.7 * n)
    test_stop = val_end + (n - val_end) // 4 * 4
    segments = ([Segment(SAMPLE_ID, 0, train_end)], [Segment(SAMPLE_ID, train_end, val_end)])
    config = load_tokenizer_config(args.preset)
    if args.steps is not None:
        config = with_solver(config, max_steps=args.steps)
    train_parts = part_features(cache, 0, val_end)
    test_parts = part_features(cache, val_end, test_stop)
    print(f"clip {SAMPLE_ID}: {n} frames; train {train_end}, validation {val_end - train_end}, "
          f"test {test_stop - val_end} frames; preset {args.preset}, "
          f"{config.solver.max_steps} steps")
    print(f"{'part':6} {'tokenizer deg':>14} {'baseline deg':>13} {'tokenizer mm':>13} "
          f"{'baseline mm':>12} {'train s':>8}")
    for part in BodyPart:
        start = time.perf_counter()
        solver = TokenizerSolver(config, part, cache.path, work / "runs" / part.value, segments)
        model = RVQVAE.from_pretrained(solver.fit(progress=False))
        seconds = time.perf_counter() - start
        target = test_parts[part].unsqueeze(0)
        with torch.no_grad():
            reconstruction = model.decode(model.encode(target))
        mean = train_parts[part][:train_end].mean(dim=0)
        baseline = mean.expand_as(target)
        tok = errors(part, reconstruction, target)
        base = errors(part, baseline, target)
        unit = "expr RMSE" if part is BodyPart.FACE else ""
        print(f"{part.value:6} {tok[0]:14.2f} {base[0]:13.2f} {tok[1]:13.3f} {base[1]:12.3f} "
              f"{seconds:8.1f} {unit}")
    print(f"runs in {work}")


if __name__ == "__main__":
    main()
