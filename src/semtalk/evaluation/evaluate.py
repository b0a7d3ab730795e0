"""``semtalk evaluate``: generate every clip of a cache split with a release, score it, report.

For each clip the release generates from the clip's cached speech, beat and word features and
its sentence/emotion window rows, seeded with the clip's first 4 ground-truth frames (the
official test protocol) and with torch's RNG seeded from the clip id (the "random ψ" variant
is reproducible). Generated clips are saved as ``OUT/generated/<clip>.npz`` together with a
key of the release's files, the cache and the fusion threshold: a re-run reuses every clip
whose key still matches and generates the rest, so an interrupted evaluation resumes.

Outputs (atomic): ``OUT/metrics.json`` (raw and paper-unit values of every row, per-clip
values, what was not computed and why) and ``OUT/metrics.md`` (the tables). Rows: the
generated motion, the ground truth ("upper bound": BC and DIV of the recorded motion) and for
both the BC of the motion against shuffled audio (see :mod:`semtalk.evaluation.scoring`).

``base_only`` evaluates the release without its sparse stage ("w/o SE" of the paper's
Table 3): the fusion threshold β is set to 1, which ψ never exceeds, so every token takes the
base model's codes.

The last window of a clip reaches past its end; it reads the cache's features of the silence
after the clip (``tail_*``, what generation from audio reads there), or repeats the last row
for the ``official`` family and for caches made before tails were kept (the report's
``generation.tail_padding`` says which).
"""

from __future__ import annotations

import hashlib
import json
import time
import zlib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from semtalk.body.motion import Motion
from semtalk.constants import __version__
from semtalk.evaluation.data import EvalClip, check_cache_features, load_eval_clips
from semtalk.evaluation.report import evaluation_markdown, paper_units, write_json, write_markdown
from semtalk.evaluation.scoring import ScoredSet, Scorer, ScoringOptions
from semtalk.features.cache import FeatureCache
from semtalk.fileio import atomic_path, write_together
from semtalk.generation.engine import DEFAULT_BETA, SEED_FRAMES, SemTalk
from semtalk.release import STAGES, Release

GENERATED_DIR = "generated"
METRICS_JSON = "metrics.json"
METRICS_MD = "metrics.md"
REPORT_FORMAT = 1
TAIL_SILENCE = "silence features (cache tails)"
TAIL_REPEAT = "last feature row repeated"
BASE_ONLY_BETA = 1.0
"""ψ never exceeds 1, so with β = 1 every token takes the base codes (no sparse stage)."""


@dataclass
class GeneratedClip:
    """One generated test clip.

    Attributes:
        clip_id: the cache's clip id.
        motion: ``T`` frames, BEAT2 layout.
        token_psi: ``[ceil(T/4)]`` ψ per token as the model predicted it.
        sparse_tokens: ``[ceil(T/4)]`` bool, the token took the sparse codes.
    """

    clip_id: str
    motion: Motion
    token_psi: np.ndarray
    sparse_tokens: np.ndarray


@dataclass
class EvaluationResult:
    """What :func:`evaluate_release` wrote.

    Attributes:
        report: the JSON report as a dict (raw values, NaN as None).
        json_path, markdown_path: the files.
    """

    report: dict[str, Any]
    json_path: Path
    markdown_path: Path

    def values(self, row: str = "generated") -> dict[str, float | None]:
        """Raw metric values of a row (``generated`` or ``ground_truth``)."""
        return next(r["values"] for r in self.report["rows"] if r["name"] == row)


def release_fingerprint(folder: str | Path) -> str:
    """Digest of the files of a release's three stages (names and contents): it changes when
    any model does, and not with anything else kept in the folder."""
    folder = Path(folder)
    digest = hashlib.sha256()
    files = sorted(p for stage in STAGES for p in (folder / stage).rglob("*") if p.is_file())
    for path in files:
        digest.update(str(path.relative_to(folder)).encode())
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def load_engine(release: str | Path, device: str = "cpu", *,
                base_only: bool = False) -> SemTalk:
    """A :class:`SemTalk` for cached features; ``base_only`` fuses with β = 1 (no sparse
    codes)."""
    loaded = Release.load(release, device)
    return SemTalk(loaded, None, device, BASE_ONLY_BETA if base_only else DEFAULT_BETA)


def clip_seed(clip_id: str) -> int:
    """The torch seed of a clip's generation (stable across runs and machines)."""
    return zlib.crc32(clip_id.encode())


def _save_generated(path: Path, clip: GeneratedClip, key: str) -> None:
    motion = clip.motion
    with atomic_path(path) as tmp, tmp.open("wb") as handle:
        np.savez(handle, poses=motion.poses, expressions=motion.expressions, trans=motion.trans,
                 betas=motion.betas, token_psi=clip.token_psi.astype(np.float32),
                 sparse_tokens=clip.sparse_tokens.astype(bool), key=np.array(key))


def _load_generated(path: Path, clip_id: str, key: str, frames: int) -> GeneratedClip | None:
    """The saved clip when it was generated under ``key`` with ``frames`` frames, else None."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            if str(data["key"]) != key or data["poses"].shape[0] != frames:
                return None
            motion = Motion(data["poses"], data["expressions"], data["trans"], data["betas"])
            return GeneratedClip(clip_id, motion, data["token_psi"], data["sparse_tokens"])
    except (OSError, ValueError, KeyError):  # a damaged file is generated again
        return None


def generate_clips(engine: SemTalk, clips: list[EvalClip], folder: str | Path, key: str, *,
                   progress: bool = True) -> list[GeneratedClip]:
    """Generate (or reuse from ``folder``) every clip; returns them in ``clips`` order.

    Args:
        engine: the loaded release.
        clips: the test clips (:func:`~semtalk.evaluation.data.load_eval_clips`).
        folder: where ``<clip>.npz`` files are kept.
        key: identity of this generation; saved clips with another key are regenerated.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    generated = []
    for clip in tqdm(clips, desc="generating", unit="clip", disable=not progress):
        path = folder / f"{clip.clip_id}.npz"
        result = _load_generated(path, clip.clip_id, key, clip.num_frames)
        if result is None:
            torch.manual_seed(clip_seed(clip.clip_id))
            out = engine.generate_features(clip.features, speaker=clip.speaker,
                                           seed=clip.motion.crop(0, SEED_FRAMES),
                                           num_frames=clip.num_frames)
            result = GeneratedClip(clip.clip_id, out.motion, np.asarray(out.token_psi_model),
                                   np.asarray(out.sparse_tokens))
            _save_generated(path, result, key)
        generated.append(result)
    return generated


def tail_padding(cache: FeatureCache, engine: SemTalk) -> str:
    """How the last window is padded past a clip's end: :data:`TAIL_SILENCE` (the cache's
    features of the silence after the clip, as generation from audio reads there) or
    :data:`TAIL_REPEAT` (the last row repeated: the ``official`` family, as the official code
    does, or a cache made before it kept tails)."""
    return TAIL_SILENCE if cache.tail and engine.release.family != "official" else TAIL_REPEAT


def generation_key(release: str | Path, cache: FeatureCache, beta: float,
                   tail: str = TAIL_SILENCE) -> str:
    """Identity of a generation run: release files, cache, β, the tail padding and the
    seeding rule."""
    identity = {"release": release_fingerprint(release), "cache": cache.fingerprint,
                "beta": beta, "tail": tail,
                "seed": f"first {SEED_FRAMES} GT frames; torch seed crc32(id)"}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def _row(name: str, label: str, values: dict[str, float | None],
         per_clip: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    row: dict[str, Any] = {"name": name, "label": label, "values": values,
                           "paper_units": paper_units(values)}
    if per_clip is not None:
        row["per_clip"] = per_clip
    return row


def _control(name: str, label: str, value: float | None, like: dict[str, Any]) -> dict[str, Any]:
    return _row(name, label, {k: (value if k == "bc" else None) for k in like})


def score_rows(scorer: Scorer, generated: list[GeneratedClip], label: str = "generated", *,
               base_only: bool = False) -> list[dict[str, Any]]:
    """The report rows: generated, its BC control, ground truth, its BC control.

    ``base_only``: the motion used no ψ (no sparse stage), so no semantic accuracy.
    """
    psi = None if base_only else [g.token_psi for g in generated]
    scored = scorer.score(ScoredSet([g.motion for g in generated], psi))
    truth = scorer.ground_truth()
    return [
        _row("generated", label, scored["values"], scored["per_clip"]),
        _control("generated_shuffled_audio", f"{label}, shuffled audio (BC control)",
                 scored["bc_shuffled"], scored["values"]),
        _row("ground_truth", "ground truth (upper bound)", truth["values"], truth["per_clip"]),
        _control("ground_truth_shuffled_audio", "ground truth, shuffled audio (BC control)",
                 truth["bc_shuffled"], truth["values"]),
    ]


def evaluate_release(release: str | Path, data: str | Path, out: str | Path,
                     options: ScoringOptions | None = None, *, base_only: bool = False,
                     progress: bool = True, scorer: Scorer | None = None,
                     label: str = "generated") -> EvaluationResult:
    """Generate the split's clips with ``release``, score them and write the report.

    Args:
        release: a release folder (or a training OUT folder with tokenizer/, base/, sparse/).
        data: the feature cache (a given ``scorer`` brings its own).
        out: the evaluation folder (generated clips, ``metrics.json``, ``metrics.md``).
        options: split and evaluation assets (ignored when ``scorer`` is given).
        base_only: generate without the sparse stage (β = 1).
        scorer: a prepared :class:`Scorer` of the same cache, to share across releases.
        label: the generated row's name in the tables.

    Raises:
        DataError: the release or cache is unusable, they do not fit together, or the audio
            for BC cannot be found.
    """
    out = Path(out)
    cache = scorer.cache if scorer is not None else FeatureCache(data)
    started = time.perf_counter()
    scorer = scorer or Scorer(cache, options or ScoringOptions())
    engine = load_engine(release, scorer.options.device, base_only=base_only)
    check_cache_features(cache, engine.release.features)
    tail = tail_padding(cache, engine)
    clips = load_eval_clips(cache, scorer.options.split, engine.release.features.speech_feature,
                            engine.release.vocab, tail=tail == TAIL_SILENCE,
                            silence_id=engine.codec.silence_id)
    prepared = time.perf_counter()
    key = generation_key(release, cache, engine.beta, tail)
    generated = generate_clips(engine, clips, out / GENERATED_DIR, key, progress=progress)
    generated_at = time.perf_counter()
    rows = score_rows(scorer, generated, label, base_only=base_only)
    sparse_share = float(np.mean(np.concatenate([g.sparse_tokens for g in generated])))
    report = {
        "format": REPORT_FORMAT, "semtalk_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "release": str(release), "release_fingerprint": release_fingerprint(release),
        "data": str(cache.path), "cache_fingerprint": cache.fingerprint,
        "generation": {"beta": engine.beta, "base_only": base_only,
                       "seed": f"first {SEED_FRAMES} ground-truth frames of each clip",
                       "rng": "torch seeded with crc32(clip id) per clip",
                       "tail_padding": tail,
                       "sparse_token_share": sparse_share},
        "scoring": scorer.describe(),
        "rows": rows,
        "timings_s": {"setup": round(prepared - started, 2),
                      "generation": round(generated_at - prepared, 2),
                      "scoring": round(time.perf_counter() - generated_at, 2)},
    }
    json_path, markdown_path = out / METRICS_JSON, out / METRICS_MD
    write_together({json_path: lambda path: write_json(path, report),  # both or neither
                    markdown_path: lambda path: write_markdown(path,
                                                               evaluation_markdown(report))})
    return EvaluationResult(json.loads(json_path.read_text()), json_path, markdown_path)
