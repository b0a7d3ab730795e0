"""Which feature extractors a cache (and later a model) uses, built from one spec.

``prepare`` and, later, generation build their extractors through :func:`build_extractors`, so
the features a model was trained on are the ones computed for new audio.

=================  ===========================================  ==============================
cache name         what                                         default / full option
=================  ===========================================  ==============================
``beat``           γ_b: envelope, energy, onset strength, onsets  always
``spectral``       γ_h offline default: log-mel + deltas        when no HuBERT model is given
``hubert``         γ_h: HuBERT hidden states                     ``hubert_model`` (local dir)
``sentence``       φ_g: window sentence embedding                MiniLM if installed, else
                                                                 pooled; CLIP from a local dir
``emotion``        φ_e: window emotion features                  prosody; emotion2vec (local)
=================  ===========================================  ==============================
"""

from __future__ import annotations

from dataclasses import dataclass

from semtalk.features.base import AudioFeatureExtractor, WindowFeatureExtractor
from semtalk.features.beat import BeatFeatures
from semtalk.features.emotion import EmotionConfig, EmotionFeatureExtractor
from semtalk.features.sentence import SentenceConfig, SentenceFeatureExtractor
from semtalk.features.spectral import SpectralFeatures


@dataclass(frozen=True)
class ExtractorChoice:
    """The extractors to use; model locations are local folders (or cached hub ids)."""

    hubert_model: str | None = None
    """HuBERT checkpoint for γ_h; ``None`` uses the built-in spectral front end."""
    hubert_layer: int | None = None
    sentence_encoder: str = "auto"
    """``auto`` (MiniLM when installed, else pooled), ``minilm``, ``clip`` or ``pooled``."""
    sentence_model: str | None = None
    emotion_method: str = "prosody"
    """``prosody`` (offline default) or ``emotion2vec``."""
    emotion_model: str | None = None
    device: str = "cpu"

    @property
    def speech_feature(self) -> str:
        """Cache name of γ_h."""
        return "spectral" if self.hubert_model is None else "hubert"


def build_extractors(
    spec: ExtractorChoice,
) -> tuple[list[AudioFeatureExtractor], list[WindowFeatureExtractor]]:
    """``(frame-level extractors, window-level extractors)`` for ``spec``."""
    speech: AudioFeatureExtractor
    if spec.hubert_model is None:
        speech = SpectralFeatures()
    else:
        from semtalk.features.hubert import HubertFeatures, HubertFeaturesConfig

        speech = HubertFeatures(HubertFeaturesConfig(model=spec.hubert_model,
                                                     layer=spec.hubert_layer,
                                                     device=spec.device))
    sentence = SentenceFeatureExtractor(SentenceConfig(
        encoder=spec.sentence_encoder, model_dir=spec.sentence_model, device=spec.device))
    emotion = EmotionFeatureExtractor(EmotionConfig(
        method=spec.emotion_method, model_dir=spec.emotion_model, device=spec.device))
    return [BeatFeatures(), speech], [sentence, emotion]
