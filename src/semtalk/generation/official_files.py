"""``semtalk features``: an official-family features file from one speech file.

The file (the fixture's ``generation_inputs.npz`` layout, :mod:`semtalk.official.inputs`) holds
everything ``semtalk generate --features`` needs, so features can be computed on one machine
and motion generated on another.
"""

from __future__ import annotations

from pathlib import Path

from semtalk.errors import DataError
from semtalk.features.text import Vocabulary
from semtalk.generation.official import OfficialFeaturizer, official_inputs_from_audio


def write_features(audio_path: Path, release: Path, out: Path, *, hubert: Path | None,
                   sentence_model: Path | None, transcript: str | None = None,
                   textgrid: Path | None = None, seed_pose: Path | None = None,
                   speaker: int | None = None, clip_fp16: bool = False,
                   hubert_bf16: bool = False,
                   allow_recognition: bool = True, whisper_model: Path | None = None,
                   device: str = "cpu") -> tuple[Path, str]:
    """``semtalk features``: the features file of one speech file for an official-family
    ``release`` (only its manifest and vocabulary are read); ``(path, summary line)``."""
    from semtalk.data.beat2 import speaker_class
    from semtalk.features.local_models import check_model_option
    from semtalk.generation.files import load_seed
    from semtalk.generation.inputs import load_utterance
    from semtalk.official.codec import official_rest_seed
    from semtalk.release import SPARSE, VOCAB_FILE, Manifest

    for option, value in (("--hubert", hubert), ("--sentence-model", sentence_model),
                          ("--whisper-model", whisper_model)):
        check_model_option(option, value)
    manifest = Manifest.load(release)
    if manifest is None or manifest.family != "official":
        family = "no manifest" if manifest is None else f"the {manifest.family} family"
        raise DataError(release, f"not an official-family release ({family}): official "
                                 f"features are for releases made by `semtalk convert "
                                 f"official`; a paper-family release computes its own features "
                                 f"in `semtalk generate`")
    vocab = Vocabulary.load(release / SPARSE / VOCAB_FILE)
    known = manifest.speakers or {}
    beat2_id = speaker if speaker is not None else (min(known.values()) if known else 2)
    cls = speaker_class(beat2_id)
    if known and cls not in known:
        raise DataError(release, f"unknown speaker id {beat2_id}: this release was converted "
                                 f"for speaker(s) {sorted(known.values())}")
    user_seed = load_seed(seed_pose)
    if user_seed is None:
        seed, contacts = official_rest_seed()
    else:
        from semtalk.official.codec import seed_contacts

        seed, contacts = user_seed, seed_contacts(user_seed)
    utterance = load_utterance(audio_path, transcript=transcript, textgrid=textgrid,
                               allow_recognition=allow_recognition, whisper_model=whisper_model)
    featurizer = OfficialFeaturizer(vocab, release, hubert_model=hubert,
                                    sentence_model=sentence_model, device=device,
                                    clip_fp16=clip_fp16, hubert_bf16=hubert_bf16)
    inputs = official_inputs_from_audio(utterance.audio, utterance.words, featurizer=featurizer,
                                        seed=seed, seed_contacts=contacts, speaker_class=cls,
                                        textgrid=textgrid)
    inputs.save(out)
    summary = (f"{audio_path.name}: {inputs.num_frames} frames, {len(inputs.feat_clip_text)} "
               f"windows, {len(utterance.words)} words ({utterance.words_source}), speaker "
               f"{beat2_id} -> {out}")
    return out, summary
