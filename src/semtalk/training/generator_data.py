"""Generator training examples: one 64-frame window with every input SemTalk reads.

An example is a dict of tensors (default collation stacks them into a batch):

=================  ===================  ================================================
key                shape                what
=================  ===================  ================================================
``speech``         ``[T, speech_dim]``  γ_h (``spectral`` or ``hubert`` cache features)
``beat``           ``[T, 4]``           γ_b
``motion``         ``[T, 337]``         seed / target motion (:func:`motion_to_seed_features`)
``parts.<part>``   ``[T, part.dim]``    tokenizer features of each part (code targets)
``speaker``        ``[]`` long          speaker class
``word_ids``       ``[T]`` long         φ_l vocabulary ids
``sentence``       ``[sentence_dim]``   φ_g of this window
``emotion``        ``[emotion_dim]``    φ_e of this window
``semantic``       ``[T]``              frame semantic score (0 where unlabelled)
``has_semantic``   ``[]`` bool          whether the clip has semantic labels
``clip``           ``[]`` long          index of the window's clip in this dataset
``start``          ``[]`` long          the window's first frame in its clip
=================  ===================  ================================================

``clip`` and ``start`` tell which windows of a batch overlap (training windows every 20
frames share frames), so the global rhythmic InfoNCE does not take them as negatives.

Window features are stored one row per window start every ``hop`` frames, so window starts
must be multiples of the cache's hop (strides are checked).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from semtalk.body.parts import BodyPart
from semtalk.body.representation import motion_to_seed_features, motion_to_tokenizer_parts
from semtalk.errors import DataError
from semtalk.features.cache import FeatureCache
from semtalk.models.generator_common import GeneratorInputs
from semtalk.training.windows import CachedWindows, Window, read_rows

SENTENCE = "sentence"
EMOTION = "emotion"


def speech_feature_name(cache: FeatureCache, wanted: str = "auto") -> str:
    """The cache's γ_h feature: ``hubert`` when present (``auto``), else ``spectral``."""
    have = set(cache.manifest["audio_features"])
    if wanted == "auto":
        wanted = "hubert" if "hubert" in have else "spectral"
    if wanted not in have:
        raise DataError(cache.path, f"the cache has no {wanted!r} speech features (it has "
                                    f"{sorted(have)}); prepare it with them")
    return wanted


def feature_dims(cache: FeatureCache, speech: str) -> dict[str, int]:
    """Channel counts of the cached inputs (read from the first complete clip)."""
    ids = cache.ids()
    if not ids:
        raise DataError(cache.path, "the cache has no complete clips")
    clip = cache.load(ids[0])
    for kind, name in (("window", SENTENCE), ("window", EMOTION), ("audio", "beat")):
        store = clip.windows if kind == "window" else clip.audio
        if name not in store:
            raise DataError(cache.path, f"the cache lacks the {name!r} features the generators "
                                        f"need; prepare it with the default extractors")
    return {"speech": int(clip.audio[speech].shape[1]), "beat": int(clip.audio["beat"].shape[1]),
            "sentence": int(clip.windows[SENTENCE].shape[1]),
            "emotion": int(clip.windows[EMOTION].shape[1])}


class GeneratorWindows(CachedWindows):
    """Examples (see the module docstring) of ``windows`` of a cache."""

    def __init__(self, cache: FeatureCache, windows: list[Window], speech: str) -> None:
        hop = cache.hop
        bad = [w for w in windows if w.start % hop]
        if bad:
            raise ValueError(f"window starts must be multiples of the cache hop {hop}; "
                             f"got {bad[0].start}")
        super().__init__(cache, windows)
        self.speech = speech
        self.clip_index = {clip_id: i for i, clip_id in
                           enumerate(dict.fromkeys(w.clip_id for w in windows))}

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        window = self.windows[index]
        clip = self.clip(window)
        frames = slice(window.start, window.stop)
        row = window.start // self.cache.hop

        def read(array: Any, rows: slice | int = frames) -> torch.Tensor:
            return read_rows(array, rows)

        poses, trans, contacts = read(clip.poses), read(clip.trans), read(clip.contacts)
        parts = motion_to_tokenizer_parts(poses, read(clip.expressions), trans, contacts)
        has_semantic = clip.semantic is not None
        example = {
            "speech": read(clip.audio[self.speech]),
            "beat": read(clip.audio["beat"]),
            "motion": motion_to_seed_features(poses, trans, contacts),
            "speaker": torch.tensor(clip.speaker_class, dtype=torch.long),
            "word_ids": torch.from_numpy(np.array(clip.word_ids[frames], dtype=np.int64)),
            "sentence": read(clip.windows[SENTENCE], row),
            "emotion": read(clip.windows[EMOTION], row),
            "semantic": read(clip.semantic) if has_semantic else torch.zeros(window.length),
            "has_semantic": torch.tensor(has_semantic),
            "clip": torch.tensor(self.clip_index[window.clip_id], dtype=torch.long),
            "start": torch.tensor(window.start, dtype=torch.long),
        }
        example.update({f"parts.{part.value}": parts[part] for part in BodyPart})
        return example


def batch_inputs(batch: dict[str, torch.Tensor], mask: torch.Tensor) -> GeneratorInputs:
    """:class:`GeneratorInputs` of a collated batch with the given ``[B, T, 337]`` mask."""
    return GeneratorInputs(speech=batch["speech"], beat=batch["beat"], motion=batch["motion"],
                           mask=mask, speaker=batch["speaker"], word_ids=batch["word_ids"],
                           sentence=batch["sentence"], emotion=batch["emotion"])


def batch_parts(batch: dict[str, torch.Tensor]) -> dict[BodyPart, torch.Tensor]:
    """``{part: [B, T, part.dim]}`` tokenizer features of a collated batch."""
    return {part: batch[f"parts.{part.value}"] for part in BodyPart}


def token_semantic(semantic: torch.Tensor, frames_per_token: int) -> torch.Tensor:
    """Frame scores ``[B, T]`` -> token scores ``[B, T/4]`` (mean over each token's frames)."""
    return semantic.unflatten(1, (-1, frames_per_token)).mean(dim=-1)
