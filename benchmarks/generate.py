"""Generation speed: real-time factor of speech -> motion, time per window, peak memory.

Run: ``python benchmarks/generate.py [--preset tiny|paper|both] [--seconds 60] [--threads 2]
[--repeat 3] [--work DIR] [--plain] [--lanes auto|on|off] [--precision fp32|bf16]``.

Builds a random-weight release of the preset in memory (tokenizer, base and sparse models;
the default offline features as ``semtalk prepare`` makes them without optional models:
spectral γ_h 240-d, beat 4-d, pooled sentence vectors, prosody emotion 10-d; a vocabulary of
``--vocab`` words) and times, on ``--seconds`` of synthetic speech (espeak-ng, with its exact
word timings):

- features: the release's featurizer on the audio and words;
- generate: the windowed generator (base + sparse + the next window's seed, per window) and
  the final detokenize; rendering is not included;
- end to end: features + generate, as the real-time factor RTF = processing time / audio
  duration (below 1 = faster than real time);
- per window (instrumented): the seed-independent work computed ahead for several windows at
  once (ψ and f_t, the base audio latents; "ahead"), each window's task graph (both models,
  fusion and the next window's seed decode, on one or two lanes; "window graph") and glue
  (bookkeeping between windows);
- peak resident memory of the process (``ru_maxrss``; each preset runs in its own process).

Random weights give an arbitrary ψ, and the engine runs only what fusion reads: the sparse body
branch and heads in a window where a token takes the sparse codes (ψ > β), the base body heads
where a token keeps them. So every run forces ψ with emphasis: the scale 10^6 makes every token
semantic (the end-to-end figures); per window, three cases are timed: every token semantic,
*mixed* (ψ 0.9 on every 8th word and 0 elsewhere: about one token in six semantic, spread over
the windows like real speech, so nearly every window needs both models in full: the most work a
window can take) and no token semantic (the base model alone).

Wall-clock figures are the best of ``--repeat`` runs, with the process CPU time of that run
beside them (other programs on the machine inflate CPU time much less than wall time; with
several threads it adds up the threads). The load average before and after is printed.
``--plain`` runs the plain models (``SemTalk(fast=False)``: PyTorch's own layers, no packed
weights, each window by the models' own forward on one lane); ``--lanes off`` runs each window's
task graph on one lane (see :mod:`semtalk.inference.lanes`). The feature
cache that defines the feature identities (a 6-second synthetic clip) is built in ``--work`` (a
temporary folder by default).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from semtalk import AUDIO_SAMPLE_RATE
from semtalk.data.textgrid import Word
from semtalk.features.text import SPECIAL_TOKENS, Vocabulary, normalize_word

PRESETS = ("tiny", "paper")


# --------------------------------------------------------------------------- inputs
def synthetic_speech(seconds: float, seed: int = 0) -> tuple[np.ndarray, list[Word]]:
    """``seconds`` of espeak-ng speech at 16 kHz (silence-padded) and its word timings."""
    from semtalk.data.audio import to_mono
    from semtalk.data.synthetic.script import sample_script
    from semtalk.data.synthetic.tts import synthesize

    script = sample_script(np.random.default_rng(seed), seconds, "neutral")
    speech = synthesize(script.words, script.prosody, pause_after=script.pause_after)
    audio = to_mono(speech.audio, speech.sample_rate)
    samples = round(seconds * AUDIO_SAMPLE_RATE)
    audio = np.pad(audio[:samples], (0, max(0, samples - len(audio))))
    words = [Word(w.text, w.start, w.end) for w in speech.words if w.end <= seconds]
    return audio.astype(np.float32), words


def feature_identity_of_default_cache(work: Path) -> tuple[Any, dict[int, int]]:
    """``(release.FeatureSpec, speakers)`` of a tiny cache made with the offline defaults."""
    from semtalk.data.synthetic.dataset import SynthConfig, generate_dataset
    from semtalk.features.cache import FeatureCache, prepare_cache
    from semtalk.features.registry import ExtractorChoice, build_extractors
    from semtalk.release import FeatureSpec as TrainedFeatures
    from semtalk.release import cache_speakers

    data, cache = work / "data", work / "cache"
    if not (cache / "manifest.json").is_file():
        generate_dataset(data, SynthConfig(minutes=0.1, clip_seconds=6.0, seed=0),
                         progress=False)
        audio, window = build_extractors(ExtractorChoice(sentence_encoder="pooled"))
        prepare_cache(data, cache, audio_extractors=audio, window_extractors=window,
                      progress=False)
    opened = FeatureCache(cache)
    return TrainedFeatures.from_cache(opened, "spectral"), cache_speakers(opened)


def vocabulary(words: list[Word], size: int) -> Vocabulary:
    """The utterance's words plus filler words: ``size`` entries in all."""
    spoken = sorted({normalize_word(w.text) for w in words} - {""})
    fillers = (f"word{i:05d}" for i in range(size))
    tokens = list(SPECIAL_TOKENS) + spoken
    tokens += [next(fillers) for _ in range(max(0, size - len(tokens)))]
    return Vocabulary(tuple(tokens))


def build_model(preset: str, features: Any, speakers: dict[int, int],
                vocab: Vocabulary, folder: Path, precision: str = "fp32",
                fast: bool = True) -> tuple[Any, dict[str, str]]:
    """A :class:`SemTalk` on a random-weight release of ``preset`` (built in memory), its
    generators in ``precision``; ``fast`` False: the plain models (no inference fast path).
    With it, the parameter count of each model (before preparing them for inference)."""
    from semtalk.generation.engine import SemTalk
    from semtalk.generation.speech import UtteranceFeaturizer
    from semtalk.models.base_generator import BaseMotionGenerator
    from semtalk.models.sparse_generator import SparseMotionGenerator
    from semtalk.models.tokenizer import MotionTokenizer
    from semtalk.release import Release
    from semtalk.training.presets import load_preset

    torch.manual_seed(0)
    audio, window = features.audio_features, features.window_features
    speech_dim = int(audio[features.speech_feature]["dim"])
    tokenizer = MotionTokenizer.from_config(load_preset("tokenizer", preset)).eval()
    base = BaseMotionGenerator(load_preset("base_generator", preset, speech_dim=speech_dim,
                                           beat_dim=int(audio["beat"]["dim"]))).eval()
    sparse = SparseMotionGenerator(load_preset(
        "sparse_generator", preset, speech_dim=speech_dim, vocab_size=len(vocab),
        sentence_dim=int(window["sentence"]["dim"]),
        emotion_dim=int(window["emotion"]["dim"]))).eval()
    release = Release(folder, tokenizer, base, sparse, features, vocab, speakers)
    sizes = {"tokenizer": parameters(tokenizer), "base": parameters(base),
             "sparse": parameters(sparse)}
    return SemTalk(release, UtteranceFeaturizer(features, vocab, folder), precision=precision,
                   fast=fast), sizes


# --------------------------------------------------------------------------- timing
@dataclass
class Clock:
    """Accumulated wall and process CPU seconds."""

    wall: float = 0.0
    cpu: float = 0.0

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.wall += time.perf_counter() - wall
            self.cpu += time.process_time() - cpu


@dataclass
class Stages:
    """Clocks of one run, by stage name."""

    clocks: dict[str, Clock] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Clock:
        return self.clocks.setdefault(name, Clock())


def best(runs: list[Stages], key: str) -> Stages:
    """The run whose ``key`` stage took the least wall time."""
    return min(runs, key=lambda run: run[key].wall)


@contextlib.contextmanager
def instrumented(target: Any, name: str, clock: Clock) -> Iterator[None]:
    """Time every call of ``target.name`` (an instance attribute shadows the method)."""
    method = getattr(target, name)

    def timed(*args: Any, **kwargs: Any) -> Any:
        with clock.running():
            return method(*args, **kwargs)

    setattr(target, name, timed)
    try:
        yield
    finally:
        delattr(target, name)


def end_to_end(model: Any, audio: np.ndarray, words: list[Word], emphasis: Any) -> Stages:
    """features -> windows -> detokenize, as :meth:`SemTalk.generate` runs them."""
    stages = Stages()
    with stages["total"].running():
        with stages["features"].running():
            features = model.extract_features(audio, AUDIO_SAMPLE_RATE, words)
        with (instrumented(model.release.tokenizer, "detokenize", stages["detokenize"]),
              stages["generate"].running()):
            model.generate_features(features, audio=audio, emphasis=emphasis)
    return stages


def per_window(model: Any, features: Any, emphasis: Any) -> tuple[Stages, Any]:
    """One generation with the windows timed, and its result: the seed-independent inputs
    computed ahead for several windows at once (ψ and f_t, the base audio latents), and each
    window's task graph (both models, fusion and the next window's seed decode)."""
    stages = Stages()
    release = model.release
    with contextlib.ExitStack() as stack:
        stack.enter_context(instrumented(release.sparse, "score", stages["ahead"]))
        stack.enter_context(instrumented(release.base, "encode_audio", stages["ahead"]))
        stack.enter_context(instrumented(model, "_window", stages["window graph"]))
        stack.enter_context(instrumented(release.tokenizer, "detokenize",
                                         stages["detokenize"]))
        with stages["generate"].running():
            result = model.generate_features(features, emphasis=emphasis)
    return stages, result


def window_line(runs: list[Stages], windows: int) -> str:
    """Per-window milliseconds of the best run."""
    run = best(runs, "generate")
    loop = run["generate"].wall - run["detokenize"].wall
    parts = {name: run[name].wall for name in ("ahead", "window graph")}
    parts["glue"] = loop - sum(parts.values())
    cpu = run["generate"].cpu - run["detokenize"].cpu
    return (", ".join(f"{k} {1000 * v / windows:.1f}" for k, v in parts.items())
            + f"; total {1000 * loop / windows:.1f} ms (cpu {1000 * cpu / windows:.1f} ms)")


def mixed_emphasis(words: list[Word], every: int = 8) -> Any:
    """ψ 0 everywhere but on every ``every``-th word, where it is 0.9: about one token in
    six semantic, spread over the windows like real speech (the synthetic test clip's
    trained release takes 15 % of its tokens from the sparse model)."""
    from semtalk.generation.emphasis import Emphasis

    chosen = tuple(sorted({normalize_word(w.text) for w in words[::every]} - {""}))
    return Emphasis(emphasize=chosen, scale=0.0)


def semantic_share(result: Any, window: int) -> str:
    """How many tokens, and windows, take sparse codes; how many windows need both models."""
    from semtalk.generation.engine import window_starts

    tokens = result.sparse_tokens
    starts = window_starts(result.num_frames, window)
    spans = [tokens[s // 4:(s + window) // 4] for s in starts]
    some = sum(bool(span.any()) for span in spans)
    both = sum(bool(span.any()) and not bool(span.all()) for span in spans)
    return (f"{100 * tokens.mean():.0f} % of tokens semantic; {some} of {len(spans)} windows "
            f"run the sparse model, {both} need both models' body heads")


def megabytes_rss() -> float:
    """Current resident memory in MB."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def parameters(module: torch.nn.Module) -> str:
    return f"{sum(p.numel() for p in module.parameters()) / 1e6:.1f} M"


def run_preset(args: argparse.Namespace, work: Path) -> None:
    from semtalk.generation.emphasis import Emphasis
    from semtalk.generation.engine import SEED_FRAMES, window_starts

    load_before = os.getloadavg()
    features, speakers = feature_identity_of_default_cache(work)
    torch.set_num_threads(args.threads)  # after the cache: building a clip sets one thread
    audio, words = synthetic_speech(args.seconds)
    model, sizes = build_model(args.preset, features, speakers,
                               vocabulary(words, args.vocab), work, args.precision,
                               fast=not args.plain)
    built_rss = megabytes_rss()
    release = model.release
    duration = len(audio) / AUDIO_SAMPLE_RATE
    print(f"== preset {args.preset}: tokenizer {sizes['tokenizer']}, base "
          f"{sizes['base']}, sparse {sizes['sparse']} parameters "
          f"(random weights), vocabulary {len(release.vocab)}")
    model.parallel = {"auto": None, "on": True, "off": False}[args.lanes]
    lanes = model.fast and (model.parallel if model.parallel is not None
                            else torch.get_num_threads() >= 2)
    model.parallel = lanes
    print(f"   torch {torch.__version__}, {torch.get_num_threads()} torch thread(s), "
          f"{'two lanes' if lanes else 'one lane'}, generators in {args.precision}"
          + ("; inference fast path OFF" if args.plain else ""))
    model.extract_features(audio[:AUDIO_SAMPLE_RATE], AUDIO_SAMPLE_RATE, [])  # build extractors

    every, none = Emphasis(scale=1e6), Emphasis(scale=0.0)  # ψ = 1 / 0 on every token
    runs = [end_to_end(model, audio, words, every) for _ in range(args.repeat)]
    features = model.extract_features(audio, AUDIO_SAMPLE_RATE, words)
    windows = len(window_starts(features.num_frames, model.window))
    cases = {"every token semantic": every, "mixed": mixed_emphasis(words),
             "no token semantic": none}
    timed = {name: [per_window(model, features, emphasis) for _ in range(args.repeat)]
             for name, emphasis in cases.items()}

    print(f"   audio: {duration:.1f} s of synthetic speech, {len(words)} words, "
          f"{features.num_frames} frames, {windows} windows of {model.window} frames "
          f"(stride {model.window - SEED_FRAMES})")
    top = best(runs, "total")
    print(f"   {'stage':34s} {'wall s':>8s} {'cpu s':>8s}   (best of {args.repeat})")
    for name in ("features", "generate", "detokenize", "total"):
        clock = best(runs, name)[name]
        print(f"   {name:34s} {clock.wall:8.3f} {clock.cpu:8.3f}")
    print(f"   end to end, every token semantic: RTF {top['total'].wall / duration:.3f} (features "
          f"{top['features'].wall / duration:.3f} + generator "
          f"{top['generate'].wall / duration:.3f}); generator per window "
          f"{1000 * (top['generate'].wall - top['detokenize'].wall) / windows:.1f} ms")
    for name, runs_of_case in timed.items():
        stages = [stages for stages, _ in runs_of_case]
        print(f"   per window, {name}, ms (best of {args.repeat}): "
              f"{window_line(stages, windows)}")
        print(f"      {semantic_share(runs_of_case[0][1], model.window)}")
    detokenize = best([s for s, _ in timed["every token semantic"]], "generate")["detokenize"]
    print(f"   detokenize {1000 * detokenize.wall:.0f} ms per utterance")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"   memory: peak RSS {peak:.0f} MB (after building the models {built_rss:.0f} MB)")
    load_after = os.getloadavg()
    print(f"   load average (1, 5, 15 min): before {load_before[0]:.2f} {load_before[1]:.2f} "
          f"{load_before[2]:.2f}, after {load_after[0]:.2f} {load_after[1]:.2f} "
          f"{load_after[2]:.2f} on {os.cpu_count()} CPUs")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=(*PRESETS, "both"), default="both")
    parser.add_argument("--seconds", type=float, default=60.0, help="audio length")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--repeat", type=int, default=3, help="runs; the best is shown")
    parser.add_argument("--vocab", type=int, default=4000, help="vocabulary size")
    parser.add_argument("--work", type=Path, default=None,
                        help="folder for the tiny feature cache (kept; default temporary)")
    parser.add_argument("--plain", action="store_true",
                        help="PyTorch's own layers (no inference fast path, no packed weights)")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                        help="generator precision (bf16 changes the output; see SemTalk)")
    parser.add_argument("--lanes", choices=("auto", "on", "off"), default="auto",
                        help="two CPU lanes per window (auto: with two or more threads)")
    args = parser.parse_args(argv)
    if args.threads < 1 or args.repeat < 1 or args.seconds <= 0:
        parser.error("--threads and --repeat must be >= 1 and --seconds > 0")
    with contextlib.ExitStack() as stack:
        work = args.work or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        work.mkdir(parents=True, exist_ok=True)
        if args.preset != "both":
            run_preset(args, work)
            return
        for preset in PRESETS:  # one process each: separate peak memory
            command = [sys.executable, __file__, "--preset", preset, "--work", str(work),
                       *_passed_on(args)]
            subprocess.run(command, check=True)


def _passed_on(args: argparse.Namespace) -> list[str]:
    flags = ["--seconds", str(args.seconds), "--threads", str(args.threads), "--repeat",
             str(args.repeat), "--vocab", str(args.vocab), "--lanes", args.lanes,
             "--precision", args.precision]
    return flags + ["--plain"] * args.plain


if __name__ == "__main__":
    main()
