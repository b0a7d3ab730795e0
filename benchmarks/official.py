"""Speed and memory of the ``official`` family (converted official SemTalk weights) on CPU.

Run: ``python benchmarks/official.py [--part generator|end-to-end|both] [--seconds 60]
[--threads 2] [--repeat 2]``.

Builds a random-weight release of the official sizes in memory (the four official RVQ-VAEs,
the global-motion net, the official base and sparse generators: 217 M + 171 M parameters as
stored, ~330 M as run), and times on ``--seconds`` of audio (one process per part, so each has
its own peak memory):

- ``generator``: the windowed generation from precomputed features (random HuBERT/beat/CLIP
  inputs, words every 0.4 s), per 64-frame window, three ways: the fast engine (prepared
  models, each window's task graph on two lanes: the default), the fast engine on one lane,
  and the plain models (PyTorch's own layers, each window by the models' forward: the official
  computation, as the official code runs it, which is the reference for "faster than the
  official code"); plus peak resident memory.
- ``end-to-end``: features (official beat features, HuBERT-large through the official pipeline
  with random weights of the real size: 24 layers, width 1024; a random CLIP ViT-B/32 text
  tower of the real size on the window sentences) plus generation, as a real-time factor
  (processing time / audio duration), fp32; and the opt-in bf16 HuBERT path with its token
  agreement against fp32.

Random generator weights give an arbitrary ψ; ψ is forced high (emphasis scale 10^6) so each
window runs both models in full (the most work a window can take).

Measured on the project machine (2 cores, torch 2.13.0+cpu; see the issue notes for the run).
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from semtalk.constants import AUDIO_SAMPLE_RATE
from semtalk.data.textgrid import Word


def official_release() -> Any:
    """A random-weight official-family :class:`~semtalk.release.Release` (not on disk)."""
    from semtalk.body.parts import BodyPart
    from semtalk.features.text import Vocabulary
    from semtalk.models.base_generator import BaseMotionGenerator
    from semtalk.models.global_motion import GlobalMotionConfig, GlobalMotionNet
    from semtalk.models.rvqvae import RVQVAE
    from semtalk.models.sparse_generator import SparseMotionGenerator
    from semtalk.models.tokenizer import MotionTokenizer
    from semtalk.official.convert import official_feature_spec
    from semtalk.official.generators import official_base_config, official_sparse_config
    from semtalk.official.tokenizers import official_rvq_config
    from semtalk.release import Release

    torch.manual_seed(0)
    specials = ("<PAD>", "<SOS>", "<EOS>", "<UNK>")
    words = tuple(f"w{i}" for i in range(11195 - len(specials) - 1))
    vocab = Vocabulary((*specials, "", *words), specials=specials, unk_id=3, sil_id=4)
    tokenizer = MotionTokenizer({part: RVQVAE(official_rvq_config(part)) for part in BodyPart})
    return Release(folder=Path("<random official release>"), tokenizer=tokenizer.eval(),
                   base=BaseMotionGenerator(official_base_config()).eval(),
                   sparse=SparseMotionGenerator(official_sparse_config()).eval(),
                   features=official_feature_spec(), vocab=vocab, speakers={1: 2},
                   family="official",
                   global_motion=GlobalMotionNet(GlobalMotionConfig()).eval())


def speech(seconds: float) -> tuple[np.ndarray, list[Word]]:
    """Noise-like audio (HuBERT's cost does not depend on content) and a word every 0.4 s."""
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal(int(seconds * AUDIO_SAMPLE_RATE))).astype(np.float32)
    words = [Word(f"w{i % 500}", 0.4 * i, 0.4 * i + 0.3) for i in range(int(seconds / 0.4))]
    return audio, words


def random_features(seconds: float) -> Any:
    from semtalk.generation.speech import SpeechFeatures

    frames = int(seconds * 30)
    rng = np.random.default_rng(1)
    windows = -(-(frames - 4) // 60)
    return SpeechFeatures(
        speech=rng.normal(0, 0.5, (frames, 1024)).astype(np.float32),
        beat=rng.random((frames, 3)).astype(np.float32),
        word_ids=rng.integers(4, 11195, frames), hop=60,
        sentence=rng.normal(0, 0.45, (windows, 512)).astype(np.float32),
        emotion=np.zeros((windows, 512), np.float32),
        words=[Word(f"w{i}", 0.4 * i, 0.4 * i + 0.3) for i in range(int(seconds / 0.4))])


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def generator_part(args: argparse.Namespace) -> None:
    from semtalk.generation.emphasis import Emphasis
    from semtalk.generation.engine import SemTalk

    features = random_features(args.seconds)
    emphasis = Emphasis(scale=1e6)
    print(f"== official generator, {args.seconds:.0f} s ({features.num_frames} frames), "
          f"{torch.get_num_threads()} threads")
    results = {}
    for name, fast, parallel in (("fast, two lanes", True, True),
                                 ("fast, one lane", True, False),
                                 ("plain (official computation)", False, False)):
        model = SemTalk(official_release(), None, fast=fast, parallel=parallel)
        model.generate_features(random_features(4.0), emphasis=emphasis)  # warm-up
        best = float("inf")
        for _ in range(args.repeat):
            started = time.perf_counter()
            gen = model.generate_features(features, emphasis=emphasis)
            best = min(best, time.perf_counter() - started)
        windows = -(-(features.num_frames - 4) // 60)
        results[name] = best / windows
        print(f"{name:32s} {best:6.2f} s total, {1000 * best / windows:6.0f} ms per window "
              f"({windows} windows, {int(gen.sparse_tokens.sum())}/{len(gen.sparse_tokens)} "
              f"tokens sparse), peak RSS so far {peak_mb():.0f} MB")
        del model
    plain = results["plain (official computation)"]
    print(f"speed-up over the official computation: {plain / results['fast, two lanes']:.2f}x "
          f"(two lanes), {plain / results['fast, one lane']:.2f}x (one lane)")


class RandomClip:
    """A random CLIP ViT-B/32 text tower of the real size; words map to token ids by hash."""

    def __init__(self) -> None:
        from transformers import CLIPTextConfig, CLIPTextModelWithProjection

        config = CLIPTextConfig(vocab_size=49408, hidden_size=512, intermediate_size=2048,
                                num_hidden_layers=12, num_attention_heads=8,
                                max_position_embeddings=77, projection_dim=512,
                                hidden_act="quick_gelu", bos_token_id=49406,
                                eos_token_id=49407, pad_token_id=49407)
        self.model = CLIPTextModelWithProjection(config).eval()

    def encode(self, sentences: list[str]) -> np.ndarray:
        rows = [[49406, *[hash(w) % 49406 for w in s.split()][:75], 49407] for s in sentences]
        width = max(len(r) for r in rows)
        ids = torch.tensor([r + [49407] * (width - len(r)) for r in rows])
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
        with torch.inference_mode():
            out = self.model(input_ids=ids, attention_mask=mask).text_embeds
        return out.float().numpy()


def end_to_end_part(args: argparse.Namespace) -> None:
    from transformers import HubertConfig, HubertModel

    from semtalk.generation.emphasis import Emphasis
    from semtalk.generation.engine import SemTalk
    from semtalk.generation.official import OfficialFeaturizer

    release = official_release()
    config = HubertConfig(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                          intermediate_size=4096, feat_extract_norm="layer",
                          do_stable_layer_norm=True, conv_bias=True, feat_proj_layer_norm=True)
    torch.manual_seed(0)
    hubert = HubertModel(config).eval()
    featurizer = OfficialFeaturizer(release.vocab, release.folder, hubert_model="<random>",
                                    sentence_model="<random>")
    from semtalk.inference.packed import pack_linear_layers

    pack_linear_layers(hubert)  # what the featurizer does with a loaded HuBERT in fp32
    featurizer._hubert, featurizer._clip = hubert, RandomClip()
    model = SemTalk(release, featurizer)
    audio, words = speech(args.seconds)
    emphasis = Emphasis(scale=1e6)
    print(f"== official end to end, {args.seconds:.0f} s of audio, "
          f"{torch.get_num_threads()} threads, HuBERT-large + CLIP ViT-B/32 text (random "
          f"weights, real sizes)")
    best: dict[str, float] = {}
    for _ in range(args.repeat):
        started = time.perf_counter()
        features = model.extract_features(audio, AUDIO_SAMPLE_RATE, words)
        middle = time.perf_counter()
        gen = model.generate_features(features, emphasis=emphasis)
        done = time.perf_counter()
        for key, value in (("features", middle - started), ("generate", done - middle),
                           ("total", done - started)):
            best[key] = min(best.get(key, float("inf")), value)
    print(f"features {best['features']:.1f} s, generate {best['generate']:.1f} s, total "
          f"{best['total']:.1f} s: RTF {best['total'] / args.seconds:.2f} (fp32); peak RSS "
          f"{peak_mb():.0f} MB")
    # opt-in bf16 HuBERT: its token agreement with fp32
    reference = gen.codes
    del hubert
    featurizer._hubert = None
    torch.manual_seed(0)
    hubert = HubertModel(config).eval()  # the same weights again, dense: --hubert-bf16 casts it
    featurizer._hubert = hubert.to(torch.bfloat16)  # what --hubert-bf16 does
    started = time.perf_counter()
    features = model.extract_features(audio, AUDIO_SAMPLE_RATE, words)
    elapsed = time.perf_counter() - started
    gen = model.generate_features(features, emphasis=emphasis)
    agree = np.mean([np.mean(gen.codes[p] == reference[p]) for p in reference])
    print(f"bf16 HuBERT: features {elapsed:.1f} s; codes equal to fp32's on {100 * agree:.1f}% "
          f"of (token, layer) entries")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=("generator", "end-to-end", "both"), default="both")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.part == "both":  # one process each: separate peak memory
        for part in ("generator", "end-to-end"):
            subprocess.run([sys.executable, __file__, "--part", part, "--seconds",
                            str(args.seconds), "--threads", str(args.threads), "--repeat",
                            str(args.repeat)], check=True)
        return
    with torch.inference_mode():
        (generator_part if args.part == "generator" else end_to_end_part)(args)


if __name__ == "__main__":
    main()
