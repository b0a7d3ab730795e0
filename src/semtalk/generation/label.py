"""``semtalk label``: frame-level pseudo semantic labels from a release's sem-gate (paper §4.1).

SHOW has no semantic annotations; the paper labels it with the sem-gate of a SemTalk model
trained on BEAT2. :func:`label_dataset` does that for every clip of a SHOW root (or a BEAT2
root, handy to compare with its ``sem/`` truth): the clip's words come from its TextGrid when it
has one, else from offline recognition (:func:`~semtalk.generation.inputs.load_utterance`, or a
local faster-whisper model); its features are computed by the release's own featurizer, and
the sparse model's gate scores it in the windows generation uses (64 frames, hop 60, every
token scored once: a window's seed token is the previous window's last token). Only the gate
runs (:meth:`~semtalk.models.sparse_generator.SparseMotionGenerator.score`), not generation.

The output layout, and how ``semtalk prepare --labels`` reads it, is
:mod:`semtalk.data.pseudo_labels`. Each ``.npy`` is written atomically; ``labels.json`` is
rewritten every few clips and at the end, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from semtalk.constants import MOTION_FPS, __version__
from semtalk.data.beat2 import Beat2Dataset, resolve_root
from semtalk.data.pseudo_labels import (
    LABELS_FILE,
    LABELS_FORMAT,
    beat2_label_key,
    label_path,
    read_labels_record,
)
from semtalk.data.show import ShowDataset, is_show_root
from semtalk.errors import DataError
from semtalk.fileio import atomic_path, file_sha256, write_text_atomic
from semtalk.generation.codec import SEED_FRAMES
from semtalk.generation.engine import SemTalk, _padded_inputs, window_starts
from semtalk.generation.inputs import load_utterance
from semtalk.generation.speech import SpeechFeatures
from semtalk.models.fusion import DEFAULT_BETA
from semtalk.models.generator_common import FRAMES_PER_TOKEN, GeneratorInputs
from semtalk.release import SPARSE

RECORD_EVERY = 20
"""``labels.json`` is rewritten after this many newly labelled clips (and at the end)."""


@dataclass(frozen=True)
class LabelTarget:
    """One clip to label: its key in the labels folder, its audio and (optionally) words."""

    key: str
    audio: Path
    textgrid: Path | None = None


@dataclass(frozen=True)
class LabelSummary:
    """What :func:`label_dataset` did."""

    out: Path
    labelled: list[str]
    skipped: list[str]
    kind: str
    """``"show"`` or ``"beat2"``."""
    warnings: list[str]


def label_targets(root: str | Path, *, split_file: str | Path | None = None
                  ) -> tuple[str, list[LabelTarget], list[str]]:
    """``(kind, clips, warnings)`` of a SHOW root (detected by layout) or a BEAT2 root.

    A SHOW root's clips come from :class:`~semtalk.data.show.ShowDataset` (``split_file``
    limits them to those it lists); a BEAT2 root's are all its clips, with their TextGrids.
    """
    path = Path(root)
    if is_show_root(path):
        show = ShowDataset(path, split_file=split_file)
        clips = [LabelTarget(c.key, c.audio_path) for c in show]
        return "show", clips, list(show.warnings)
    beat2 = Beat2Dataset(resolve_root(path), splits=None)
    targets = [LabelTarget(beat2_label_key(c), c.path("audio"),
                           c.path("words") if c.path("words").is_file() else None)
               for c in beat2]
    return "beat2", targets, []


def sparse_sha256(release: str | Path) -> str:
    """SHA-256 of the release's ``sparse/model.safetensors`` (which model made the labels)."""
    path = Path(release) / SPARSE / "model.safetensors"
    if not path.is_file():
        raise DataError(path, "not found: a release folder has sparse/model.safetensors")
    return file_sha256(path)


@torch.inference_mode()
def clip_psi(model: SemTalk, features: SpeechFeatures, speaker: int | None = None) -> np.ndarray:
    """``[T]`` float32 ψ per 30 fps frame of ``features`` (the sparse model's gate, unedited),
    scored in generation's windows (each token once; repeated over its 4 frames)."""
    frames = features.num_frames
    stride = model.window - SEED_FRAMES
    if stride % features.hop:
        raise ValueError(f"window features need a row every {stride} frames; their hop "
                         f"{features.hop} does not divide {stride}")
    _, speaker_cls = model.speaker_class(speaker)
    starts = window_starts(frames, model.window)
    padded = starts[-1] + model.window
    inputs = _padded_inputs(features, padded, starts, model.device, model.dtype,
                            silence_id=model.codec.silence_id)
    sparse = model.release.sparse
    count = len(starts)
    motion_dim = sparse.config.motion_dim
    batch = GeneratorInputs(
        speech=torch.stack([inputs["speech"][s:s + model.window] for s in starts]),
        beat=torch.stack([inputs["beat"][s:s + model.window] for s in starts]),
        motion=torch.zeros(count, model.window, motion_dim, device=model.device,
                           dtype=model.dtype),
        mask=torch.ones(count, model.window, motion_dim, dtype=torch.bool, device=model.device),
        speaker=torch.full((count,), speaker_cls, device=model.device, dtype=torch.long),
        word_ids=torch.stack([inputs["word_ids"][s:s + model.window] for s in starts]),
        sentence=inputs["sentence"][[s // features.hop for s in starts]],
        emotion=inputs["emotion"][[s // features.hop for s in starts]])
    psi = sparse.score(batch).psi.float().cpu().numpy()  # [windows, tokens per window]
    tokens = np.zeros(padded // FRAMES_PER_TOKEN, np.float32)
    for k, start in enumerate(starts):
        keep = 0 if k == 0 else 1  # the seed token was scored by the previous window
        first = start // FRAMES_PER_TOKEN
        tokens[first + keep:first + psi.shape[1]] = psi[k, keep:]
    return np.clip(np.repeat(tokens, FRAMES_PER_TOKEN)[:frames], 0.0, 1.0).astype(np.float32)


def _open_record(out: Path, identity: dict[str, Any], overwrite: bool) -> dict[str, Any]:
    """The existing ``labels.json`` (checked against ``identity``) or a fresh record."""
    if (out / LABELS_FILE).is_file():
        record = read_labels_record(out)
        differing = [k for k in ("sparse_sha256", "beta") if record.get(k) != identity[k]]
        if not differing:
            return record
        if not overwrite:
            was = ", ".join(f"{k}={record.get(k)!r}" for k in differing)
            raise DataError(out / LABELS_FILE, f"labels were made with another release or beta "
                                               f"({was}); use another --out folder or "
                                               "--overwrite")
    elif out.exists() and any(out.iterdir()) and not overwrite:
        raise DataError(out, "folder is not empty and holds no labels.json; choose an empty "
                             "folder or pass --overwrite")
    return {**identity, "clips": {}}


def label_dataset(root: str | Path, release: str | Path, out: str | Path, *,
                  beta: float = DEFAULT_BETA, split_file: str | Path | None = None,
                  whisper_model: str | Path | None = None, speaker: int | None = None,
                  device: str = "cpu", overwrite: bool = False, progress: bool = True,
                  model: SemTalk | None = None,
                  on_clip: Callable[[str], None] | None = None) -> LabelSummary:
    """Write ψ for every clip of ``root`` into ``out`` (see :mod:`semtalk.data.pseudo_labels`).

    Args:
        root: a SHOW root or a BEAT2-layout root.
        release: the release whose sem-gate labels the clips.
        out: the labels folder (created; resumed when it holds labels of the same release
            and β).
        beta: the threshold recorded for ``prepare --labels-mode hard``.
        split_file: TalkSHOW's ``train_val_test.json`` (SHOW roots only).
        whisper_model: a local faster-whisper folder for recognition (else the offline
            recogniser).
        speaker: the BEAT2 speaker id whose style conditions the gate (default the release's
            first speaker).
        overwrite: replace labels made with another release or β.
        model: an already loaded engine for ``release`` (saves loading it again).
        on_clip: called with each clip's key after it is written (tests, progress hooks).
    """
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"beta must be in [0, 1], got {beta}")
    out = Path(out)
    kind, targets, warnings = label_targets(root, split_file=split_file)
    if not targets:
        raise DataError(Path(root), "no clips to label")
    identity = {"format": LABELS_FORMAT, "release": str(Path(release).resolve()),
                "sparse_sha256": sparse_sha256(release), "beta": beta,
                "root": str(Path(root).resolve()), "kind": kind, "fps": MOTION_FPS,
                "semtalk_version": __version__}
    record = _open_record(out, identity, overwrite)
    record.update({k: v for k, v in identity.items() if k != "clips"})
    out.mkdir(parents=True, exist_ok=True)
    done = record["clips"]
    todo = [t for t in targets if not (t.key in done and label_path(out, t.key).is_file())]
    skipped = [t.key for t in targets if t not in todo]
    labelled: list[str] = []
    engine = model or SemTalk.from_pretrained(release, device, beta=beta, fast=False)

    def save() -> None:
        write_text_atomic(out / LABELS_FILE, json.dumps(record, indent=1, sort_keys=True))

    try:
        for target in tqdm(todo, desc=f"labelling {out.name}", unit="clip", disable=not progress):
            utterance = load_utterance(target.audio, textgrid=target.textgrid,
                                       allow_recognition=True, whisper_model=whisper_model)
            features = engine.extract_features(utterance.audio, utterance.sample_rate,
                                               utterance.words)
            psi = clip_psi(engine, features, speaker)
            path = label_path(out, target.key)
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp, tmp.open("wb") as handle:
                np.save(handle, psi, allow_pickle=False)
            done[target.key] = {"words_source": utterance.words_source,
                                "words_method": utterance.words_method,
                                "words": len(utterance.words), "num_frames": len(psi),
                                "audio": str(target.audio)}
            labelled.append(target.key)
            if on_clip is not None:
                on_clip(target.key)
            if len(labelled) % RECORD_EVERY == 0:
                save()
    finally:
        save()
    return LabelSummary(out, labelled, skipped, kind, warnings)
