"""Held-out semantic accuracy of ψ on the synthetic speaker: learned sem-gate vs random ψ.

Two modes:

- ``--release DIR`` scores a trained release (e.g. ``semtalk demo``'s ``DIR/release``) on the
  cache's test clips exactly as ``semtalk evaluate`` does (it calls the same
  :func:`~semtalk.evaluation.evaluate.evaluate_release`: whole clips generated window by window
  from the first ground-truth frames, ψ per token against the ``sem`` labels), so the two
  report the same numbers.
- ``--run RUN`` trains sparse stages and scores them per window (below).

The ``--run`` mode needs a run folder with a tokenizer release and a base release
(``semtalk train tokenizer --part all`` then ``semtalk train base``, both with ``--out RUN``).
Trains the sparse stage (tiny preset) once per gate variant, then scores ψ (> 0.5 =
semantic) against the ``sem`` labels of the cache's **test** clips, token by token (a token's
label: mean frame score > 0), with the seed-only mask used at generation.

Usage: ``python benchmarks/semantic_gate.py --data CACHE --release DIR`` or
``python benchmarks/semantic_gate.py --data CACHE --run RUN [--steps N]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from semtalk.evaluation.evaluate import evaluate_release
from semtalk.features.cache import FeatureCache
from semtalk.metrics.semantic import semantic_accuracy
from semtalk.models.base_generator import BaseMotionGenerator
from semtalk.models.generator_common import FRAMES_PER_TOKEN
from semtalk.models.sparse_generator import SparseMotionGenerator
from semtalk.training.generator import SparseSolver, load_generator_config
from semtalk.training.generator_data import (
    GeneratorWindows,
    batch_inputs,
    speech_feature_name,
    token_semantic,
)
from semtalk.training.masking import MaskSchedule
from semtalk.training.windows import Segment, cut_windows


@torch.no_grad()
def test_scores(cache: FeatureCache, base: BaseMotionGenerator,
                sparse: SparseMotionGenerator) -> dict[str, float]:
    segments = [Segment(c, 0, cache.load(c).num_frames) for c in cache.ids("test")]
    data = GeneratorWindows(cache, cut_windows(segments, 64, 64),
                            speech_feature_name(cache))
    psi, labels = [], []
    torch.manual_seed(0)
    for batch in DataLoader(data, batch_size=32):
        inputs = batch_inputs(batch, MaskSchedule().seed_mask(batch["motion"].shape))
        features = base(inputs).features if sparse.config.blend_base else None
        out = sparse(inputs, base_features=features)
        keep = batch["has_semantic"]
        psi.append(out.psi[keep].flatten())
        labels.append(token_semantic(batch["semantic"], FRAMES_PER_TOKEN)[keep].flatten())
    scores = semantic_accuracy(torch.cat(psi), torch.cat(labels))
    return {"accuracy": scores.accuracy, "balanced": scores.balanced_accuracy,
            "precision": scores.precision, "recall": scores.recall, "f1": scores.f1,
            "positives": float((torch.cat(labels) > 0).float().mean())}


def release_scores(release: Path, data: Path) -> None:
    """Print the release's ψ scores on the test split, as ``semtalk evaluate`` computes them."""
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        result = evaluate_release(release, data, out, progress=False)
        seconds = time.perf_counter() - start
    values = next(r for r in result.report["rows"] if r["name"] == "generated")["values"]
    print(f"{'release':8} {'acc':>6} {'bal.acc':>8} {'prec':>6} {'recall':>7} {'f1':>6} "
          f"{'eval s':>8}")
    print(f"{release.name:8} {values['sem_accuracy']:6.3f} "
          f"{values['sem_balanced_accuracy']:8.3f} {values['sem_precision']:6.3f} "
          f"{values['sem_recall']:7.3f} {values['sem_f1']:6.3f} {seconds:8.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--release", type=Path, help="score this release as semtalk evaluate")
    mode.add_argument("--run", type=Path, help="train sparse stages on this run's tokenizer "
                                               "and base")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--variants", nargs="+", default=["learned", "random"])
    parser.add_argument("--tag", default="", help="suffix of the run folders")
    parser.add_argument("overrides", nargs="*", help="config overrides key=value")
    args = parser.parse_args()
    if args.release is not None:
        release_scores(args.release, args.data)
        return
    cache = FeatureCache(args.data)
    base = BaseMotionGenerator.from_pretrained(args.run / "base")
    print(f"{'gate':8} {'acc':>6} {'bal.acc':>8} {'prec':>6} {'recall':>7} {'f1':>6} "
          f"{'train s':>8}")
    for variant in args.variants:
        config = load_generator_config("tiny", overrides=[
            f"sparse_model.gate={variant}", f"solver.max_steps={args.steps}",
            "solver.tensorboard=false", *args.overrides])
        start = time.perf_counter()
        solver = SparseSolver(config, args.data, args.run / "tokenizer", args.run / "base",
                              args.run / f"sparse_{variant}{args.tag}")
        sparse = SparseMotionGenerator.from_pretrained(solver.fit(progress=False))
        seconds = time.perf_counter() - start
        s = test_scores(cache, base, sparse)
        print(f"{variant:8} {s['accuracy']:6.3f} {s['balanced']:8.3f} {s['precision']:6.3f} "
              f"{s['recall']:7.3f} {s['f1']:6.3f} {seconds:8.1f}   "
              f"(semantic tokens {100 * s['positives']:.1f} %)")


if __name__ == "__main__":
    main()
