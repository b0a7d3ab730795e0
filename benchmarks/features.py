"""Speed of the audio feature extractors, in seconds of compute per minute of audio.

Run: ``python benchmarks/features.py [--audio WAV] [--hubert-seconds 20] [--skip-large]``.
Uses the real BEAT2 sample clip (``../shared/data/beat2-sample`` beside the repository) when it
is there, else 60 s of synthetic speech-like audio. HuBERT runs on random weights (no hub
access): tiny (32-d, 2 layers), base-sized (768-d, 12 layers, as ``hubert-base-ls960``) and
large-sized (1024-d, 24 layers, as the paper's ``hubert-large-ls960-ft``); base and large are
timed on the first ``--hubert-seconds`` of the audio and scaled to a minute.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from semtalk import AUDIO_SAMPLE_RATE
from semtalk.data.audio import load_audio, num_frames_for
from semtalk.features.base import AudioFeatureExtractor
from semtalk.features.beat import BeatFeatures
from semtalk.features.hubert import HubertFeatures, HubertFeaturesConfig
from semtalk.features.spectral import SpectralFeatures

SAMPLE_WAV = (Path(__file__).resolve().parents[1].parent / "shared" / "data" / "beat2-sample"
              / "2_scott_0_1_1.wav")

HUBERT_SIZES: dict[str, dict[str, object]] = {
    "tiny": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
             "intermediate_size": 64, "conv_dim": (16,) * 7, "num_conv_pos_embeddings": 16,
             "num_conv_pos_embedding_groups": 4, "feat_extract_norm": "layer",
             "do_stable_layer_norm": True},
    "base": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
             "intermediate_size": 3072, "feat_extract_norm": "group",
             "do_stable_layer_norm": False},
    "large": {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16,
              "intermediate_size": 4096, "feat_extract_norm": "layer",
              "do_stable_layer_norm": True},
}


def synthetic_audio(seconds: float = 60.0, seed: int = 0) -> np.ndarray:
    """``[N]`` syllable-like tone bursts (4 per second) in faint noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * AUDIO_SAMPLE_RATE)) / AUDIO_SAMPLE_RATE
    syllables = np.clip(np.sin(2 * np.pi * 4 * t), 0, None) ** 2
    voice = np.sin(2 * np.pi * 150 * t) + 0.5 * np.sin(2 * np.pi * 900 * t)
    return (0.2 * syllables * voice + 1e-3 * rng.standard_normal(t.shape)).astype(np.float32)


def seconds_per_minute(extractor: AudioFeatureExtractor, audio: np.ndarray,
                       repeats: int) -> tuple[float, float]:
    """(first call, best of ``repeats`` warm calls), each in seconds per minute of audio."""
    minutes = audio.shape[0] / AUDIO_SAMPLE_RATE / 60
    frames = num_frames_for(audio.shape[0])
    timings = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        features = extractor.extract(audio, frames)
        timings.append(time.perf_counter() - start)
    assert features.shape == (frames, extractor.dim)
    return timings[0] / minutes, min(timings[1:]) / minutes


def random_hubert(folder: Path, size: str) -> Path:
    """Save a randomly initialised HuBERT of the given size to ``folder``."""
    from transformers import HubertConfig, HubertModel

    torch.manual_seed(0)
    HubertModel(HubertConfig(**HUBERT_SIZES[size])).save_pretrained(folder)
    return folder


def report(label: str, audio: np.ndarray, build: Callable[[], AudioFeatureExtractor],
           repeats: int) -> None:
    start = time.perf_counter()
    extractor = build()
    setup = time.perf_counter() - start
    first, warm = seconds_per_minute(extractor, audio, repeats)
    seconds = audio.shape[0] / AUDIO_SAMPLE_RATE
    print(f"{label:<34s} {extractor.dim:>5d} {seconds:>7.1f} {setup:>8.2f} {first:>9.3f} "
          f"{warm:>9.3f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--audio", type=Path, default=SAMPLE_WAV)
    parser.add_argument("--hubert-seconds", type=float, default=20.0)
    parser.add_argument("--skip-large", action="store_true")
    args = parser.parse_args()
    if args.audio.is_file():
        audio, source = load_audio(args.audio), args.audio.name
    else:
        audio, source = synthetic_audio(), "synthetic audio"
    print(f"audio: {source}, {audio.shape[0] / AUDIO_SAMPLE_RATE:.1f} s; torch threads "
          f"{torch.get_num_threads()}; seconds of compute per minute of audio")
    print(f"{'extractor':<34s} {'dim':>5s} {'audio s':>7s} {'setup s':>8s} {'first':>9s} "
          f"{'warm':>9s}")
    report("beat", audio, BeatFeatures, repeats=3)
    report("spectral (80 mels + d + dd)", audio, SpectralFeatures, repeats=3)
    clip = audio[: round(args.hubert_seconds * AUDIO_SAMPLE_RATE)]
    sizes = ["tiny", "base"] + ([] if args.skip_large else ["large"])
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            folder = random_hubert(Path(tmp) / f"hubert-{size}", size)
            part = audio if size == "tiny" else clip
            report(f"hubert {size} (random, cpu fp32)", part,
                   lambda folder=folder: HubertFeatures(HubertFeaturesConfig(model=str(folder))),
                   repeats=2 if size == "tiny" else 1)


if __name__ == "__main__":
    main()
