"""Speech in, holistic motion out: windowed SemTalk inference with ψ fusion (paper §3.5).

For an utterance of ``T`` frames, windows of ``W`` = 64 frames start every ``W - S`` = 60
frames; the first ``S`` = 4 frames (one token) of each window are its seed: the previous
window's output (decoded), or for the first window a neutral rest pose (the tokenizer's
training mean pose) or the user's seed motion. In each window the frozen base model predicts
rhythmic codes for all four parts and the sparse model semantic codes for the body parts plus
the semantic score ψ per token; the fusion E(q^b, q^s; ψ) takes the sparse codes where
ψ > β (0.5) and the base codes elsewhere, and the face always from the base model. Every token
is produced once (a window's seed token is the previous window's last token), and all tokens
are decoded together at the end, so the decoder sees one continuous sequence: no seams. The
motion is cut to exactly ``T`` frames, one per 1/30 s of audio (the official code drops the
tail that does not fill a window).

A window's seed rows are what training feeds for the same motion (the codec's ``next_seed``:
for the ``paper`` family the decoded 6D, root velocity and rounded contacts as they are, and
the seed's eyes). The last window's frames past the audio read the ``paper`` extractors'
features of silence (what training reads where a clip's motion outlasts its audio); features
given without their audio, and the ``official`` family, repeat the last frame instead.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from semtalk.body.motion import Motion
from semtalk.body.parts import BodyPart
from semtalk.constants import AUDIO_SAMPLE_RATE, MOTION_FPS
from semtalk.data.audio import num_frames_for, to_mono
from semtalk.data.beat2 import speaker_class
from semtalk.data.textgrid import Word, as_words
from semtalk.devices import resolve_device
from semtalk.errors import DataError
from semtalk.generation.codec import SEED_FRAMES, MotionCodec, PaperCodec
from semtalk.generation.emphasis import Emphasis, PsiEdit, psi_edit
from semtalk.generation.outputs import (
    Generation,
    ProgressFn,
    describe_non_finite,
    motion_arrays,
)
from semtalk.generation.speech import SpeechFeatures, UtteranceFeaturizer, pad_rows
from semtalk.inference import is_prepared, prepare_for_inference, return_freed_memory
from semtalk.inference.lanes import Lanes, lanes_available
from semtalk.inference.window import WindowInputs, WindowModels, run_window
from semtalk.models.base_generator import BaseAudio
from semtalk.models.fusion import DEFAULT_BETA, fuse_codes
from semtalk.models.generator_common import FRAMES_PER_TOKEN, GeneratorInputs
from semtalk.models.sparse_generator import SemanticScore
from semtalk.models.tokenizer import MotionTokenizer
from semtalk.release import Release

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16}
"""Generator precisions (:class:`SemTalk`'s ``precision``)."""
DEFAULT_SPEAKER_ID = 2
"""BEAT2 speaker 2 (Scott), the paper's protocol speaker (and the synthetic speaker's id)."""
SEEDLESS_BATCH = 16
"""Windows whose seed-independent inputs (ψ, f_t, audio latents) are computed together."""


@dataclass
class _Seedless:
    """One window's inputs and what is computed from them before its seed is known."""

    inputs: GeneratorInputs
    score: SemanticScore
    raw_psi: torch.Tensor
    audio: BaseAudio


def neutral_seed(tokenizer: MotionTokenizer) -> Motion:
    """The ``paper`` family's rest pose (:meth:`PaperCodec.neutral_seed`)."""
    return PaperCodec(tokenizer).neutral_seed()


def family_codec(release: Release) -> MotionCodec:
    """The motion codec of ``release``'s architecture family."""
    if release.family == "official":
        from semtalk.official.codec import OfficialCodec

        if release.global_motion is None:
            raise DataError(release.folder, "an official-family release needs its global-motion "
                                            "network")
        return OfficialCodec(release.tokenizer, release.global_motion, release.vocab)
    return PaperCodec(release.tokenizer)


LENGTHS = ("full", "official")
"""Output length modes: ``full`` = one frame per 1/30 s of audio (default); ``official`` = the
official code's length (trim to a multiple of 8, whole 60-frame hops only, tail dropped)."""


def official_length(frames: int, window: int = 64, seed: int = SEED_FRAMES) -> int:
    """Frames the official code generates for ``frames`` input frames: ``n = frames - frames %
    8``, ``R = (n - seed) // (window - seed)`` windows, ``R * (window - seed) + seed`` frames."""
    trimmed = frames - frames % 8
    windows = (trimmed - seed) // (window - seed)
    if windows < 1:
        raise ValueError(f"{frames} frames are too short for one official window "
                         f"({window} frames after trimming to a multiple of 8)")
    return windows * (window - seed) + seed


def window_starts(num_frames: int, window: int, seed: int = SEED_FRAMES) -> list[int]:
    """Starts of the windows (stride ``window - seed``) that cover ``num_frames`` frames."""
    stride = window - seed
    count = max(1, -(-(num_frames - seed) // stride))
    return [k * stride for k in range(count)]


class Featurizer(Protocol):
    """Audio + words -> :class:`SpeechFeatures` (a family's feature recipe).

    The engine calls it with 16 kHz mono float32 ``[N]`` audio (already through
    :func:`~semtalk.data.audio.to_mono`) and ``num_frames`` up to the end of the last window.
    """

    tail_is_silence: bool
    """True: the frames past the audio are the features of silence, as training sees it, and
    the last window reads them; False: the engine pads the last window by repeating the last
    frame of the audio (the ``official`` family's featurizer)."""

    def __call__(self, audio: np.ndarray, sample_rate: int, words: list[Word] | None,
                 num_frames: int, hop: int) -> SpeechFeatures:
        ...


class SemTalk:
    """A loaded release that turns speech (+ words) into motion.

    >>> model = SemTalk.from_pretrained("semtalk-demo/release")      # doctest: +SKIP
    >>> result = model.generate(audio, 16000, words=words)            # doctest: +SKIP
    >>> result.save_npz("out.npz"); result.psi                        # doctest: +SKIP
    """

    def __init__(self, release: Release, featurizer: Featurizer | None,
                 device: torch.device | str = "cpu", beta: float = DEFAULT_BETA,
                 parallel: bool | None = None, precision: str = "fp32",
                 fast: bool = True) -> None:
        """``featurizer`` None: an engine for precomputed features only (e.g. a cached dataset,
        where the local models behind the release's features need not be present);
        :meth:`generate` and :meth:`extract_features` then refuse.

        ``parallel``: run each window's independent jobs on two CPU lanes (see
        :mod:`semtalk.inference.lanes`; the outputs are the same). None: on a CPU with at
        least two torch threads. During generation the torch thread count is halved per lane
        and restored afterwards.

        ``precision``: ``"fp32"`` (default: the models as trained), or ``"bf16"``, which casts
        the base and sparse generators to bfloat16 (the tokenizer stays float32): about 1.5x
        faster on CPUs with AVX-512 BF16 or AMX (other CPUs emulate it and may be slower), at
        the price of slightly different codes (measured in the README). Unlike every other
        speed path, it changes the output.

        ``fast``: prepare the release's models for CPU inference once, in place
        (:func:`semtalk.inference.prepare_for_inference`: packed weights, decoder fast path,
        stacked code heads; they then serve inference only) and run each window as a task
        graph (:mod:`semtalk.inference.window`). False: the plain models, each window by their
        own forward (the reference; the same motion up to float rounding)."""
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"beta must be in [0, 1], got {beta}")
        self.release = release
        self.featurizer = featurizer
        self.device = resolve_device(str(device))
        self.beta = beta
        self.parallel = parallel
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
        self.precision = precision
        self.dtype = PRECISIONS[precision]
        self.fast = fast
        for model in (release.base, release.sparse):
            if is_prepared(model):  # already prepared (by another engine): cast before that
                if next(model.parameters()).dtype != self.dtype:
                    raise ValueError("this release's models were prepared for inference in "
                                     "another precision; load the release again")
                if not fast:
                    raise ValueError("this release's models were prepared for inference; load "
                                     "the release again for the plain models")
                continue
            model.to(self.dtype)
            if fast:
                prepare_for_inference(model)
        if fast:
            prepare_for_inference(release.tokenizer)
        self.window = release.base.config.window
        self.codec = family_codec(release)
        self._neutral = self.codec.neutral_seed()

    @classmethod
    def from_pretrained(cls, path: str | Path, device: torch.device | str = "cpu", *,
                        hubert_model: str | Path | None = None,
                        sentence_model: str | Path | None = None,
                        emotion_model: str | Path | None = None,
                        beta: float = DEFAULT_BETA, parallel: bool | None = None,
                        precision: str = "fp32", fast: bool = True,
                        clip_fp16: bool = False, hubert_bf16: bool = False) -> SemTalk:
        """Load a release folder (see :mod:`semtalk.release`) of either family.

        ``hubert_model`` / ``sentence_model`` / ``emotion_model``: local folders of the models
        the release's features were computed with, when it used any (an ``official`` release:
        HuBERT-large and CLIP ViT-B/32). ``clip_fp16``: official family, run CLIP in float16
        as the official code did; ``hubert_bf16``: official family, run HuBERT in bfloat16
        (opt-in speed-up). ``beta``, ``parallel``, ``precision`` and ``fast``: as in the
        constructor.
        """
        device = resolve_device(str(device))  # "auto" included
        release = Release.load(path, device)
        featurizer: Featurizer
        if release.family == "official":
            from semtalk.generation.official import OfficialFeaturizer

            featurizer = OfficialFeaturizer(release.vocab, Path(path), hubert_model=hubert_model,
                                            sentence_model=sentence_model, device=str(device),
                                            clip_fp16=clip_fp16, hubert_bf16=hubert_bf16)
        else:
            featurizer = UtteranceFeaturizer(
                release.features, release.vocab, Path(path), hubert_model=hubert_model,
                sentence_model=sentence_model, emotion_model=emotion_model, device=str(device))
        return cls(release, featurizer, device, beta, parallel, precision, fast)

    # ------------------------------------------------------------------------- speakers
    @property
    def speakers(self) -> dict[int, int] | None:
        """``{speaker class: BEAT2 id}`` the release was trained on, when recorded."""
        return self.release.speakers

    def speaker_class(self, speaker: int | None) -> tuple[int, int]:
        """``(BEAT2 id, class)`` of ``speaker`` (a BEAT2 id; default: the release's first)."""
        known = self.release.speakers
        if speaker is None:
            speaker = min(known.values()) if known else DEFAULT_SPEAKER_ID
        classes = self.release.base.config.num_speakers
        cls_ = speaker_class(int(speaker))
        if known is not None and int(speaker) not in known.values():
            raise DataError(self.release.folder, f"unknown speaker id {speaker}: this release "
                                                 f"was trained on speaker(s) "
                                                 f"{sorted(known.values())}")
        if not 0 <= cls_ < classes:
            raise DataError(self.release.folder, f"unknown speaker id {speaker}: the models "
                                                 f"have {classes} speaker classes")
        return int(speaker), cls_

    # ------------------------------------------------------------------------- features
    def extract_features(self, audio: np.ndarray, sample_rate: int = AUDIO_SAMPLE_RATE,
                         words: Sequence[Word | tuple[str, float, float]] | None = None
                         ) -> SpeechFeatures:
        """The generators' inputs for ``audio`` (any rate/channels) and its timed words, with
        window rows exactly where generation's windows start."""
        words = None if words is None else as_words(words)
        features, frames = self._features(to_mono(audio, sample_rate), words)
        return _trim(features, frames)

    def _features(self, mono: np.ndarray, words: list[Word] | None
                  ) -> tuple[SpeechFeatures, int]:
        """``(features up to the end of the last window, frames of the audio)`` of 16 kHz
        mono ``mono``: the frames past the audio are what the featurizer computes for them
        (the ``paper`` extractors: silence)."""
        frames = num_frames_for(len(mono))
        if frames < 1:
            raise ValueError(f"audio of {len(mono)} samples is shorter than one motion frame "
                             f"(1/{MOTION_FPS} s)")
        padded = window_starts(frames, self.window)[-1] + self.window
        if self.featurizer is None:
            raise DataError(self.release.folder, "this engine generates from precomputed "
                                                 "features only; load it with "
                                                 "SemTalk.from_pretrained to use audio")
        features = self.featurizer(mono, AUDIO_SAMPLE_RATE, words, num_frames=padded,
                                   hop=self.window - SEED_FRAMES)
        return features, frames

    # ------------------------------------------------------------------------- generation
    def generate(self, audio: np.ndarray, sample_rate: int = AUDIO_SAMPLE_RATE,
                 words: Sequence[Word | tuple[str, float, float]] | None = None, *,
                 speaker: int | None = None,
                 seed: Motion | None = None, emphasis: Emphasis | None = None,
                 length: str = "full", progress: ProgressFn | None = None) -> Generation:
        """Motion for ``audio`` (``[N]`` or ``[N, channels]`` at ``sample_rate``, an int;
        channels-first ``[channels, N]`` with up to 8 channels is transposed) and its timed
        ``words`` (seconds; None or empty = no words, e.g. silence).

        ``words`` are :class:`Word` objects or ``(text, start, end)`` tuples; a bare string,
        or times that are NaN, negative or reversed, are refused naming the word
        (:func:`semtalk.data.textgrid.as_words`).

        Args:
            speaker: BEAT2 speaker id (default: the release's first speaker).
            seed: motion whose first 4 frames seed the first window (default a rest pose).
            emphasis: ψ edits (see :class:`Emphasis`).
            length: ``"full"`` (one frame per 1/30 s of audio) or ``"official"``
                (:func:`official_length`, for comparisons with the official code).
            progress: called as ``progress(windows_done, windows)`` after each window of the
                motion generation (not during feature extraction).
        """
        words = None if words is None else as_words(words)
        mono = to_mono(audio, sample_rate)  # the one conversion
        features, frames = self._features(mono, words)
        if self.featurizer is None or not self.featurizer.tail_is_silence:
            features = _trim(features, frames)  # the last window repeats the last frame
        return self.generate_features(features, speaker=speaker, seed=seed, emphasis=emphasis,
                                      audio=mono, length=length, progress=progress,
                                      num_frames=frames)

    @torch.inference_mode()
    def generate_features(self, features: SpeechFeatures, *, speaker: int | None = None,
                          seed: Motion | None = None, emphasis: Emphasis | None = None,
                          audio: np.ndarray | None = None, length: str = "full",
                          seed_contacts: np.ndarray | None = None,
                          progress: ProgressFn | None = None,
                          num_frames: int | None = None) -> Generation:
        """Motion for precomputed features (e.g. a cached dataset clip).

        Window rows of ``features`` must exist at every window start (multiples of 60
        frames), i.e. its ``hop`` must divide 60. ``length`` and ``progress`` as in
        :meth:`generate`; ``seed_contacts``: the seed's foot contacts (``[>= 4, 4]``; default:
        computed).

        ``num_frames``: the frames to generate (default all of ``features``'); the frames of
        ``features`` past them pad the last window (e.g. the features of the silence after the
        audio). Past the end of ``features``, the last window repeats its last frame (and reads
        silence as words).

        Raises:
            ValueError: bad arguments or features.
            DataError: the models produced NaN or infinite ψ or motion (naming the release
                folder of the stage that did, e.g. corrupt tokenizer weights).
        """
        if length not in LENGTHS:
            raise ValueError(f"length must be one of {LENGTHS}, got {length!r}")
        release, device = self.release, self.device
        stride = self.window - SEED_FRAMES
        if stride % features.hop:
            raise ValueError(f"window features need a row every {stride} frames; their hop "
                             f"{features.hop} does not divide {stride}")
        speaker_id, speaker_cls = self.speaker_class(speaker)
        frames = features.num_frames if num_frames is None else num_frames
        if not 1 <= frames <= features.num_frames:
            raise ValueError(f"num_frames must be in 1..{features.num_frames}, got {frames}")
        if length == "official":
            frames = official_length(frames, self.window)
        starts = window_starts(frames, self.window)
        padded = starts[-1] + self.window
        tokens = padded // FRAMES_PER_TOKEN
        edit = psi_edit(emphasis or Emphasis(), features.words, tokens)
        inputs = _padded_inputs(features, padded, starts, device, self.dtype,
                                silence_id=self.codec.silence_id)

        seed_motion = seed if seed is not None else self._neutral
        if seed_motion.num_frames == 0:
            raise ValueError("the seed motion has no frames")
        seed_rows = self.codec.first_seed(seed_motion, seed_contacts).to(device)
        codes: dict[BodyPart, list[torch.Tensor]] = {part: [] for part in BodyPart}
        psi_used, psi_model = np.zeros(tokens, np.float32), np.zeros(tokens, np.float32)
        chosen = np.zeros(tokens, bool)
        speaker_t = torch.tensor([speaker_cls], device=device)
        parallel = self.fast and (lanes_available(device) if self.parallel is None
                                  else self.parallel)
        windows = self._seedless(inputs, starts, speaker_t, edit)
        with Lanes(parallel) as lanes:
            for k, (start, seedless) in enumerate(zip(starts, windows, strict=True)):
                first_token = start // FRAMES_PER_TOKEN
                window_codes, psi, raw, seed_rows = self._window(
                    seedless, seed_rows, lanes, seed_motion, next_seed=k + 1 < len(starts))
                keep = slice(0 if k == 0 else 1, None)  # the seed token came from the last one
                span = slice(first_token + keep.start,
                             first_token + window_codes_len(window_codes))
                psi_used[span], psi_model[span] = psi[keep], raw[keep]
                chosen[span] = psi[keep] > self.beta
                for part in BodyPart:
                    codes[part].append(window_codes[part][keep])
                if progress is not None:
                    progress(k + 1, len(starts))
        self._check_finite({"psi": psi_model}, "sparse", "the sparse generator's semantic "
                           "score ψ")
        full = {part: torch.cat(chunks) for part, chunks in codes.items()}
        motion = self.codec.decode(full, frames, seed_motion, user_seed=seed is not None)
        self._check_finite(motion_arrays(motion), "tokenizer", "the tokenizer's decoder")
        if self.fast:
            return_freed_memory()  # what the windows freed, before the next utterance
        frame_psi = np.repeat(psi_used, FRAMES_PER_TOKEN)[:frames]
        frame_raw = np.repeat(psi_model, FRAMES_PER_TOKEN)[:frames]
        count = -(-frames // FRAMES_PER_TOKEN)
        record = _emphasis_record(edit, psi_model, psi_used, emphasis)
        return Generation(
            motion=motion, psi=frame_psi, psi_model=frame_raw, token_psi=psi_used[:count],
            token_psi_model=psi_model[:count], sparse_tokens=chosen[:count],
            words=list(features.words), emphasis=record, beta=self.beta, speaker=speaker_id,
            speaker_class=speaker_cls, release=str(release.folder), audio=audio,
            precision=self.precision,
            codes={part.value: c.cpu().numpy() for part, c in full.items()})

    def _check_finite(self, arrays: dict[str, np.ndarray], stage: str, producer: str) -> None:
        """Stop (DataError naming the release's ``stage`` folder) when ``producer`` made NaN or
        infinite values: they would be written as a motion that animates nothing."""
        problem = describe_non_finite(arrays)
        if problem is not None:
            raise DataError(Path(self.release.folder) / stage,
                            f"{producer} produced {problem}; the release's {stage} weights may "
                            f"be corrupt (retrain or download this stage again)")

    def _seedless(self, inputs: dict[str, Any], starts: list[int], speaker: torch.Tensor,
                  edit: PsiEdit) -> Iterator[_Seedless]:
        """What each window computes without its seed motion, in order: its inputs, ψ and f_t
        (the sparse model's :meth:`score`) and the base model's audio latents.

        These run for up to :data:`SEEDLESS_BATCH` windows at once, on all threads (a few per cent
        of a window's work, which would otherwise run on one lane while the other waits)."""
        base_model, sparse_model = self.release.base, self.release.sparse
        motion_dim = base_model.config.motion_dim
        for first in range(0, len(starts), SEEDLESS_BATCH):
            chunk = starts[first:first + SEEDLESS_BATCH]
            frames = [slice(start, start + self.window) for start in chunk]
            rows = [start // int(inputs["hop"]) for start in chunk]
            count = len(chunk)
            mask = torch.ones(count, self.window, motion_dim, dtype=torch.bool,
                              device=self.device)
            mask[:, :SEED_FRAMES] = False
            batch = GeneratorInputs(
                speech=torch.stack([inputs["speech"][f] for f in frames]),
                beat=torch.stack([inputs["beat"][f] for f in frames]),
                motion=torch.zeros(count, self.window, motion_dim, device=self.device,
                                   dtype=self.dtype),
                mask=mask, speaker=speaker.expand(count),
                word_ids=torch.stack([inputs["word_ids"][f] for f in frames]),
                sentence=inputs["sentence"][rows], emotion=inputs["emotion"][rows])
            raw: list[torch.Tensor] = []

            def edit_psi(psi: torch.Tensor, chunk: list[int] = chunk,
                         raw: list[torch.Tensor] = raw) -> torch.Tensor:
                raw.append(psi)
                return torch.cat([edit.apply(psi[i:i + 1], start // FRAMES_PER_TOKEN)
                                  for i, start in enumerate(chunk)])

            score = sparse_model.score(batch, psi_edit=edit_psi)
            audio = base_model.encode_audio(batch)
            for i in range(count):
                one = slice(i, i + 1)
                yield _Seedless(
                    inputs=GeneratorInputs(
                        speech=batch.speech[one], beat=batch.beat[one],
                        motion=batch.motion[one].clone(), mask=mask[one],
                        speaker=speaker, word_ids=batch.word_ids[one],  # type: ignore[index]
                        sentence=batch.sentence[one],  # type: ignore[index]
                        emotion=batch.emotion[one]),  # type: ignore[index]
                    score=SemanticScore(psi=score.psi[one], semantic=score.semantic[one]),
                    raw_psi=raw[0][i],
                    audio=BaseAudio(**{f.name: getattr(audio, f.name)[one]
                                       for f in fields(audio)}))

    def _window(self, seedless: _Seedless, seed_rows: torch.Tensor, lanes: Lanes,
                seed_motion: Motion, next_seed: bool
                ) -> tuple[dict[BodyPart, torch.Tensor], np.ndarray, np.ndarray, torch.Tensor]:
        """Fused codes ``{part: [n, Q]}``, used ψ ``[n]``, model ψ ``[n]`` of one window and
        the next window's seed rows (``seed_rows`` again when ``next_seed`` is False).

        Fast: the window's task graph (:func:`semtalk.inference.window.run_window`) on
        ``lanes``; plain: :meth:`_plain_window`.
        """
        seedless.inputs.motion[0, :SEED_FRAMES] = seed_rows
        psi = seedless.score.psi[0]
        release = self.release
        window = WindowInputs(seedless.inputs, seedless.score, seedless.audio)
        if self.fast:
            models = WindowModels(release.base, release.sparse, release.tokenizer)
            fused, decoded = run_window(lanes, models, window, self.beta, next_seed)
        else:
            fused, decoded = self._plain_window(window, next_seed)
        if decoded is not None:
            seed_rows = self.codec.next_seed(decoded, seed_motion).to(seed_rows.device)
        return (fused, psi.float().cpu().numpy(), seedless.raw_psi.float().cpu().numpy(),
                seed_rows)

    def _plain_window(self, window: WindowInputs, next_seed: bool
                      ) -> tuple[dict[BodyPart, torch.Tensor], dict[BodyPart, torch.Tensor] | None]:
        """The reference window: both models in full (by their own steps, on the audio
        latents and ψ computed ahead), E(q^b, q^s; ψ), and the next seed's decoded parts."""
        base, sparse = self.release.base, self.release.sparse
        batch, score, audio = window.inputs, window.score, window.audio
        encoding = base.encode(batch, audio=audio, rhythm=False)
        base_logits, _ = base.predict_codes(encoding)
        sparse_out = sparse.predict(batch, score, base_features=encoding.features)
        fused = fuse_codes({part: logits[0].argmax(dim=-1) for part, logits in base_logits.items()},
                           {part: codes[0] for part, codes in sparse_out.codes().items()},
                           score.psi[0], self.beta)
        if not next_seed:
            return fused, None
        decoded = self.release.tokenizer.decode_parts({part: c[None] for part, c in fused.items()})
        return fused, {part: x[0].float() for part, x in decoded.items()}


def window_codes_len(codes: dict[BodyPart, torch.Tensor]) -> int:
    """Tokens of a window's codes."""
    return int(next(iter(codes.values())).shape[0])


def _trim(features: SpeechFeatures, frames: int) -> SpeechFeatures:
    return SpeechFeatures(speech=features.speech[:frames], beat=features.beat[:frames],
                          word_ids=features.word_ids[:frames], sentence=features.sentence,
                          emotion=features.emotion, hop=features.hop, words=features.words)


def _padded_inputs(features: SpeechFeatures, padded: int, starts: list[int],
                   device: torch.device, dtype: torch.dtype = torch.float32,
                   silence_id: int = PaperCodec.silence_id) -> dict[str, Any]:
    """Frame features cut or extended to ``padded`` frames (past their end: the last row
    repeated; words: ``silence_id``) and window rows cut or extended to cover every start, as
    tensors (the float ones as ``dtype``)."""
    rows = starts[-1] // features.hop + 1
    word_ids = np.full(padded, silence_id, np.int64)
    word_ids[:features.num_frames] = features.word_ids[:padded]
    arrays = {"speech": pad_rows(features.speech, padded),
              "beat": pad_rows(features.beat, padded), "word_ids": word_ids,
              "sentence": pad_rows(features.sentence, rows),
              "emotion": pad_rows(features.emotion, rows)}
    tensors: dict[str, Any] = {
        name: torch.from_numpy(np.ascontiguousarray(
            value, dtype=np.int64 if name == "word_ids" else np.float32)).to(
                device, dtype=torch.int64 if name == "word_ids" else dtype)
        for name, value in arrays.items()}
    tensors["hop"] = features.hop
    return tensors


def _emphasis_record(edit: PsiEdit, model: np.ndarray, used: np.ndarray,
                     emphasis: Emphasis | None) -> dict[str, Any]:
    """The edit's record with ψ before/after for every matched occurrence."""
    record = dict(edit.record, active=bool(emphasis is not None and emphasis.active))
    for action in ("emphasize", "suppress"):
        for match in record[action]:
            first, last = match["tokens"]
            match["psi_before"] = round(float(model[first:last].mean()), 4)
            match["psi_after"] = round(float(used[first:last].mean()), 4)
    changed = np.abs(used - model) > 1e-6
    record["tokens_changed"] = int(changed.sum())
    return record
