"""Time and peak memory of ``prepare`` on one long clip (default: 60 minutes).

The clip is the synthetic speaker's first clip repeated (motion, audio, words, semantic
annotations), written in the BEAT2 layout in a temporary folder. Run:
``python benchmarks/prepare_long.py [--minutes 60] [--sentence auto|pooled]``.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from semtalk.body.motion import Motion
from semtalk.data.audio import write_wav
from semtalk.data.beat2 import Beat2Dataset
from semtalk.data.semantic import SemanticSegment, write_semantic
from semtalk.data.synthetic.dataset import SynthConfig, generate_dataset
from semtalk.data.textgrid import Interval, write_textgrid
from semtalk.features.cache import prepare_cache
from semtalk.features.registry import ExtractorChoice, build_extractors


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def long_clip(folder: Path, minutes: float) -> Path:
    """A one-clip BEAT2 root whose clip repeats a synthetic clip for ``minutes``."""
    generate_dataset(folder / "src", SynthConfig(minutes=0.5, seed=0), workers=1,
                     progress=False)
    source = Beat2Dataset(folder / "src", splits=None)
    clip = source.load(source.clips[0])
    repeats = int(np.ceil(minutes * 60 / clip.duration))
    root = folder / "long"
    cid = "2_long_0_1_1"
    motion = clip.motion
    Motion(np.tile(motion.poses, (repeats, 1)), np.tile(motion.expressions, (repeats, 1)),
           np.tile(motion.trans, (repeats, 1))).save_npz(root / "smplxflame_30" / f"{cid}.npz")
    write_wav(root / "wave16k" / f"{cid}.wav", np.tile(clip.audio, repeats))
    words, segments = [], []
    for k in range(repeats):
        offset = k * clip.duration
        words += [Interval(w.start + offset, w.end + offset, w.text) for w in clip.words]
        segments += [SemanticSegment(s.name, s.start + offset, s.end + offset, s.score)
                     for s in clip.semantic]
    write_textgrid(root / "textgrid" / f"{cid}.TextGrid", {"words": words},
                   repeats * clip.duration)
    write_semantic(root / "sem" / f"{cid}.txt", segments)
    (root / "train_test_split.csv").write_text(f"id,type\n{cid},train\n")
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--sentence", default="auto")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = long_clip(Path(tmp), args.minutes)
        audio, window = build_extractors(ExtractorChoice(sentence_encoder=args.sentence))
        before = peak_rss_mb()
        start = time.perf_counter()
        cache = prepare_cache(root, Path(tmp) / "cache", audio_extractors=audio,
                              window_extractors=window, progress=False)
        seconds = time.perf_counter() - start
        clip = cache.load(cache.ids()[0])
        size = sum(p.stat().st_size for p in (Path(tmp) / "cache").rglob("*") if p.is_file())
        print(f"clip: {clip.num_frames / 30 / 60:.1f} min, {clip.num_frames} frames")
        print(f"features: {', '.join(f'{e.name}({e.dim})' for e in [*audio, *window])}")
        print(f"prepare: {seconds:.1f} s ({seconds / (clip.num_frames / 1800):.2f} s per minute)")
        print(f"peak RSS: {peak_rss_mb():.0f} MB (before prepare {before:.0f} MB, which includes "
              f"building the long clip)")
        print(f"cache size: {size / 1e6:.0f} MB")


if __name__ == "__main__":
    main()
