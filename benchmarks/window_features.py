"""Speed of the window-level features (φ_g sentence text, φ_e emotion) per minute of audio.

Run: ``python benchmarks/window_features.py [--minutes 1] [--audio X.wav --textgrid X.TextGrid]
[--clip-dir DIR] [--emotion2vec-dir DIR]``. Without ``--audio`` it speaks a synthetic script
(seeded) with the built-in TTS. Prints one row per available extractor (hop 4, window 64):
the first call (model import + load + one clip) and the steady cost per minute of audio
(median of repeated calls on a loaded extractor).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from semtalk import AUDIO_SAMPLE_RATE
from semtalk.data.audio import load_audio, num_frames_for, resample
from semtalk.data.synthetic.script import sample_script
from semtalk.data.synthetic.tts import synthesize
from semtalk.data.textgrid import Word, read_words
from semtalk.features.base import WindowFeatureExtractor, num_windows
from semtalk.features.emotion import EmotionConfig, EmotionFeatureExtractor
from semtalk.features.sentence import SentenceConfig, SentenceFeatureExtractor, minilm_installed

WINDOW, HOP = 64, 4


def synthetic_clip(minutes: float, seed: int = 0) -> tuple[np.ndarray, list[Word]]:
    """About ``minutes`` of synthetic speech (16 kHz) and its word timings."""
    script = sample_script(np.random.default_rng(seed), minutes * 60.0, "neutral")
    utterance = synthesize(script.words, script.prosody, pause_after=script.pause_after)
    audio = resample(utterance.audio, utterance.sample_rate, AUDIO_SAMPLE_RATE)
    return audio, [Word(w.text, w.start, w.end) for w in utterance.words]


def extractors(args: argparse.Namespace) -> dict[str, Callable[[], WindowFeatureExtractor]]:
    """Label -> constructor, for every extractor this machine can run."""
    found: dict[str, Callable[[], WindowFeatureExtractor]] = {
        "sentence/pooled": lambda: SentenceFeatureExtractor(SentenceConfig(encoder="pooled")),
    }
    if minilm_installed():
        found["sentence/minilm"] = lambda: SentenceFeatureExtractor(
            SentenceConfig(encoder="minilm"))
    if args.clip_dir:
        found["sentence/clip"] = lambda: SentenceFeatureExtractor(
            SentenceConfig(encoder="clip", model_dir=args.clip_dir))
    found["emotion/prosody"] = lambda: EmotionFeatureExtractor()
    if args.emotion2vec_dir:
        found["emotion/emotion2vec"] = lambda: EmotionFeatureExtractor(
            EmotionConfig(method="emotion2vec", model_dir=args.emotion2vec_dir))
    return found


def measure(make: Callable[[], WindowFeatureExtractor], audio: np.ndarray, words: list[Word],
            num_frames: int, repeats: int) -> tuple[int, float, float]:
    """(dim, seconds of the first call incl. loading, median seconds of later calls)."""
    start = time.perf_counter()
    extractor = make()
    values = extractor.extract(audio, words, num_frames, WINDOW, HOP)
    first = time.perf_counter() - start
    assert values.shape == (num_windows(num_frames, HOP), extractor.dim)
    steady = []
    for _ in range(repeats):
        start = time.perf_counter()
        extractor.extract(audio, words, num_frames, WINDOW, HOP)
        steady.append(time.perf_counter() - start)
    return extractor.dim, first, statistics.median(steady)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--audio", type=Path)
    parser.add_argument("--textgrid", type=Path)
    parser.add_argument("--clip-dir")
    parser.add_argument("--emotion2vec-dir")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.audio:
        audio = load_audio(args.audio)
        words = read_words(args.textgrid) if args.textgrid else []
    else:
        audio, words = synthetic_clip(args.minutes)
    num_frames = num_frames_for(len(audio))
    minutes = len(audio) / AUDIO_SAMPLE_RATE / 60.0
    print(f"clip: {minutes:.2f} min, {len(words)} words, {num_frames} frames, "
          f"{num_windows(num_frames, HOP)} windows (window {WINDOW}, hop {HOP})")
    print(f"{'extractor':<22s} {'dim':>5s} {'first call s':>13s} {'s / audio min':>14s}")
    for label, make in extractors(args).items():
        dim, first, steady = measure(make, audio, words, num_frames, args.repeats)
        print(f"{label:<22s} {dim:>5d} {first:>13.2f} {steady / minutes:>14.3f}")


if __name__ == "__main__":
    main()
