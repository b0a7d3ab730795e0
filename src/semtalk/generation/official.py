"""The ``official`` family's inputs: features from audio + words, and precomputed feature files.

:class:`OfficialFeaturizer` computes what the official network was trained on (see
:mod:`semtalk.features.official`): the official 3-channel beat features, HuBERT-large through
the official pipeline (a local ``facebook/hubert-large-ls960-ft`` folder), word ids through the
official vocabulary (silence between words gets the index of ``""`` as in training, unknown
words UNK = 3), one CLIP ViT-B/32 text embedding per window sentence (a local CLIP folder;
float32 by default, ``clip_fp16`` for the official float16), and zeros for the emotion input,
which has no effect on the official model's output.

:func:`official_inputs_to_features` turns a precomputed features file
(:class:`semtalk.official.inputs.OfficialInputs`, the fixture's ``generation_inputs.npz``
layout) into the engine's :class:`SpeechFeatures`, seed motion and speaker;
:func:`official_inputs_from_audio` writes such a file from audio.

Audio at another rate than 16 kHz is converted to 16 kHz mono first (the official code loaded
BEAT2's 16 kHz files); for 16 kHz input the features equal the official ones.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from semtalk.body.motion import Motion
from semtalk.constants import AUDIO_SAMPLE_RATE, MOTION_FPS
from semtalk.data.textgrid import Word
from semtalk.errors import DataError
from semtalk.features.official.vocab import OfficialVocab
from semtalk.features.text import Vocabulary
from semtalk.generation.speech import SpeechFeatures, pad_rows
from semtalk.official.inputs import OfficialInputs

WINDOW, HOP = 64, 60
SEED_FRAMES = 4


def official_vocab(vocab: Vocabulary) -> OfficialVocab:
    """The official lookup table (raw marks, no normalisation) of a converted release's
    vocabulary (which keeps the official indices)."""
    tokens = vocab.tokens
    specials = len(vocab.specials)
    return OfficialVocab(name="release", word2index={t: i for i, t in enumerate(tokens)
                                                     if i >= specials},
                         index2word=dict(enumerate(tokens)), n_words=len(tokens))


class OfficialFeaturizer:
    """Audio + timed words -> the official family's :class:`SpeechFeatures`.

    Args:
        vocab: the release's vocabulary (official indices).
        where: the release folder (for messages).
        hubert_model: local ``facebook/hubert-large-ls960-ft`` folder (transformers format).
        sentence_model: local CLIP ViT-B/32 folder (transformers format, with its tokenizer).
        device: where HuBERT and CLIP run.
        clip_fp16: run CLIP in float16 as the official code did (default float32).
        hubert_bf16: run HuBERT in bfloat16 (opt-in, about 2x faster on CPU; the features
            differ slightly from the official float32 ones, see the README).
    """

    tail_is_silence = False
    """Past the audio the engine repeats the last frame's features, as before (the official
    code drops that tail; its network never saw padding)."""

    def __init__(self, vocab: Vocabulary, where: Path, *, hubert_model: str | Path | None,
                 sentence_model: str | Path | None, device: str = "cpu",
                 clip_fp16: bool = False, hubert_bf16: bool = False) -> None:
        self.vocab = official_vocab(vocab)
        self.where = where
        self.hubert_dir = None if hubert_model is None else Path(hubert_model)
        self.sentence_dir = None if sentence_model is None else Path(sentence_model)
        self.device = device
        self.clip_fp16 = clip_fp16
        self.hubert_bf16 = hubert_bf16
        self._hubert: object | None = None
        self._clip: object | None = None

    def _models(self) -> tuple[object, object]:
        import torch

        from semtalk.features.official.clip_text import OfficialClipTextEncoder
        from semtalk.features.official.hubert import load_official_hubert

        missing = [f"--{flag} DIR ({what})" for flag, what, value in (
            ("hubert", "facebook/hubert-large-ls960-ft", self.hubert_dir),
            ("sentence-model", "openai/clip-vit-base-patch32", self.sentence_dir))
            if value is None]
        if missing or self.hubert_dir is None or self.sentence_dir is None:
            raise DataError(self.where, f"this release runs the official SemTalk weights, "
                                        f"whose features need local models: pass "
                                        f"{' and '.join(missing)} (transformers-format "
                                        f"folders), or generate from a features file "
                                        f"(--features)")
        if self._hubert is None:
            hubert = load_official_hubert(self.hubert_dir, self.device)
            if self.hubert_bf16:
                hubert = hubert.to(torch.bfloat16)
            else:  # fp32 on the CPU: products from weights packed once (same numbers)
                from semtalk.inference.packed import pack_linear_layers

                pack_linear_layers(hubert)
            self._hubert = hubert
        if self._clip is None:
            self._clip = OfficialClipTextEncoder(
                self.sentence_dir, self.device,
                torch.float16 if self.clip_fp16 else torch.float32)
        return self._hubert, self._clip

    def __call__(self, audio: np.ndarray, sample_rate: int, words: list[Word] | None,
                 num_frames: int, hop: int = HOP,
                 textgrid: Path | None = None) -> SpeechFeatures:
        """Features for ``num_frames`` frames (audio of 16 kHz mono; frames past the audio
        repeat its last feature row, and are silence for the words).

        ``textgrid``: take the word ids and window sentences from this TextGrid exactly as the
        official test-set builder does (raw marks of the first tier, UNK outside every
        interval, sentences from the frames inside an interval) instead of ``words``."""
        from semtalk.features.official.beat import official_beat_features
        from semtalk.features.official.hubert import run_official_hubert
        from semtalk.features.official.words import (
            aligned_frame_words,
            read_official_word_tier,
            textgrid_frame_words,
            window_sentences,
        )

        if sample_rate != AUDIO_SAMPLE_RATE:
            raise ValueError(f"the official featurizer takes {AUDIO_SAMPLE_RATE} Hz audio, got "
                             f"{sample_rate}")
        if hop != HOP:
            raise ValueError(f"the official windows start every {HOP} frames, not {hop}")
        hubert_model, clip = self._models()
        beat = official_beat_features(audio, sample_rate)
        hubert = run_official_hubert(audio, hubert_model,  # type: ignore[arg-type]
                                     sample_rate).features
        windows = max(1, -(-(num_frames - (WINDOW - HOP)) // HOP))
        if textgrid is None:
            frame_words = aligned_frame_words(words or [], num_frames, self.vocab)
            sentences = window_sentences(frame_words.marks, windows)
        else:
            frame_words = textgrid_frame_words(read_official_word_tier(textgrid), num_frames,
                                               self.vocab)
            sentences = window_sentences(frame_words.sentence_marks, windows)
        sentence = clip.encode(sentences)  # type: ignore[attr-defined]
        return SpeechFeatures(
            speech=pad_rows(hubert, num_frames).astype(np.float32),
            beat=pad_rows(beat, num_frames).astype(np.float32),
            word_ids=frame_words.ids.astype(np.int64), sentence=sentence,
            emotion=np.zeros_like(sentence, dtype=np.float32), hop=HOP,
            words=list(words or []))


def official_inputs_to_features(inputs: OfficialInputs) -> tuple[SpeechFeatures, Motion,
                                                                  np.ndarray, int]:
    """``(features, seed motion, seed contacts, speaker class)`` of a features file: n word
    frames, HuBERT and beat rows cut to n, one sentence row per 60-frame window."""
    n = inputs.num_frames
    features = SpeechFeatures(
        speech=inputs.hubert[:n].astype(np.float32), beat=inputs.beat[:n].astype(np.float32),
        word_ids=inputs.in_word.astype(np.int64),
        sentence=inputs.feat_clip_text.astype(np.float32),
        emotion=inputs.emo_clip_text.astype(np.float32), hop=HOP)
    frames = min(len(inputs.tar_pose), len(inputs.tar_trans))
    exps = (inputs.tar_exps[:frames] if inputs.tar_exps is not None
            else np.zeros((frames, 100), np.float32))
    betas = None if inputs.tar_beta is None else np.asarray(inputs.tar_beta).reshape(
        -1, np.asarray(inputs.tar_beta).shape[-1])[0]
    seed = Motion(inputs.tar_pose[:frames].astype(np.float32), exps.astype(np.float32),
                  inputs.tar_trans[:frames].astype(np.float32),
                  **({} if betas is None else {"betas": betas.astype(np.float32)}))
    return features, seed, inputs.tar_contact.astype(np.float32), inputs.speaker_class


def official_inputs_from_features(features: SpeechFeatures, seed: Motion, seed_contacts:
                                  np.ndarray, speaker_class: int) -> OfficialInputs:
    """The features file of :class:`SpeechFeatures` and a seed (its frames repeated to n)."""
    n = features.num_frames
    index = np.minimum(np.arange(n), seed.num_frames - 1)
    contacts = np.asarray(seed_contacts, np.float32)
    return OfficialInputs(
        hubert=features.speech.astype(np.float32), beat=features.beat.astype(np.float32),
        in_word=features.word_ids.astype(np.int32),
        feat_clip_text=features.sentence.astype(np.float32),
        emo_clip_text=features.emotion.astype(np.float32),
        tar_pose=seed.poses[index].astype(np.float32),
        tar_trans=seed.trans[index].astype(np.float32),
        tar_contact=contacts[np.minimum(np.arange(n), len(contacts) - 1)],
        tar_id=np.full((n, 1), speaker_class, np.int64),
        tar_exps=seed.expressions[index].astype(np.float32),
        tar_beta=np.tile(seed.betas.astype(np.float32), (n, 1)))


def duration_frames(num_samples: int, sample_rate: int = AUDIO_SAMPLE_RATE) -> int:
    """The official frame count of audio: ``int(duration * 30)`` (the beat features' length)."""
    return int(num_samples / sample_rate * MOTION_FPS)



def official_inputs_from_audio(audio: np.ndarray, words: list[Word] | None, *,
                               featurizer: OfficialFeaturizer, seed: Motion,
                               seed_contacts: np.ndarray, speaker_class: int,
                               textgrid: Path | None = None) -> OfficialInputs:
    """The features file of 16 kHz mono ``audio``: n = ``int(duration * 30)`` frames, window
    rows for every window that covers them; with ``textgrid``, the word ids follow the official
    test-set builder exactly (raw marks of the first tier, UNK outside every interval, window
    sentences from the frames inside an interval)."""
    frames = duration_frames(len(audio))
    if frames < SEED_FRAMES:
        raise ValueError(f"audio of {len(audio)} samples is shorter than {SEED_FRAMES} frames")
    features = featurizer(audio, AUDIO_SAMPLE_RATE, words, num_frames=frames,
                          textgrid=textgrid)
    return official_inputs_from_features(features, seed, seed_contacts, speaker_class)

