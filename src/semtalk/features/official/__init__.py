"""Official-compatible features: the inputs the official SemTalk network was trained on.

The ``official`` architecture family runs the published SemTalk weights, so its features must
be computed as the official code computed them, quirks included (each module lists the quirks
it reproduces):

- :mod:`.beat`: the 3-channel beat features (amplitude-channel quirk, ``int(duration * 30)``
  frames);
- :mod:`.hubert`: HuBERT-large fed the 22.05 kHz waveform as 16 kHz, chunked, interpolated to
  ``N16 // 533`` frames;
- :mod:`.vocab`: the official ``vocab.pkl`` through a restricted unpickler;
- :mod:`.words`: per-frame word ids (raw TextGrid marks, silence ``""``, UNK outside every
  interval) and per-window sentences;
- :mod:`.clip_text`: CLIP ViT-B/32 text embeddings of the window sentences (float32, or the
  official float16).

Verified against ``official-fixture/golden`` (``audio_text.npz``, ``features.npz``).
"""

from semtalk.features.official.beat import (
    official_beat_features,
    official_beat_features_from_file,
)
from semtalk.features.official.clip_text import (
    OfficialClipTextEncoder,
    convert_to_openai_half,
    official_clip_text_features,
)
from semtalk.features.official.hubert import (
    OfficialHubertResult,
    OfficialHubertSizes,
    load_official_hubert,
    official_chunk_bounds,
    official_frame_counts,
    official_hubert_features,
    official_wave22,
    run_official_hubert,
)
from semtalk.features.official.vocab import (
    OfficialVocab,
    RefusedGlobalError,
    load_official_vocab,
)
from semtalk.features.official.words import (
    OfficialFrameWords,
    aligned_frame_words,
    num_official_windows,
    official_inference_word,
    read_official_word_tier,
    textgrid_frame_words,
    window_sentences,
)

__all__ = [
    "OfficialClipTextEncoder",
    "OfficialFrameWords",
    "OfficialHubertResult",
    "OfficialHubertSizes",
    "OfficialVocab",
    "RefusedGlobalError",
    "aligned_frame_words",
    "convert_to_openai_half",
    "load_official_hubert",
    "load_official_vocab",
    "num_official_windows",
    "official_beat_features",
    "official_beat_features_from_file",
    "official_chunk_bounds",
    "official_clip_text_features",
    "official_frame_counts",
    "official_hubert_features",
    "official_inference_word",
    "official_wave22",
    "read_official_word_tier",
    "run_official_hubert",
    "textgrid_frame_words",
    "window_sentences",
]
