"""The generation engine: release loading, windowing, fusion, emphasis, seeds, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from semtalk.body.motion import Motion
from semtalk.body.parts import BodyPart
from semtalk.data.audio import num_frames_for
from semtalk.data.textgrid import Word
from semtalk.errors import DataError
from semtalk.features.text import SIL
from semtalk.generation.emphasis import Emphasis, phrase_matches, psi_edit
from semtalk.generation.engine import SemTalk, fuse_codes, neutral_seed, window_starts
from semtalk.generation.speech import SpeechFeatures
from semtalk.models.pretrained import write_checksums
from semtalk.models.tokenizer import MotionTokenizer
from semtalk.release import MANIFEST, Release
from semtalk.training.presets import load_preset

WORDS = [Word("we", 0.20, 0.40), Word("never", 0.45, 0.90), Word("give", 1.00, 1.30),
         Word("up", 1.30, 1.60), Word("the", 2.10, 2.20), Word("dream", 2.20, 2.60),
         Word("job", 2.60, 3.00)]


@pytest.fixture(scope="module")
def model(tiny_release: Path) -> SemTalk:
    return SemTalk.from_pretrained(tiny_release)


def _features(model: SemTalk, frames: int, seed: int = 0, words: list[Word] = WORDS,
              hop: int = 4) -> SpeechFeatures:
    """Random features with the release's dimensions (``frames`` frames)."""
    rng = np.random.default_rng(seed)
    config = model.release.sparse.config
    rows = -(-frames // hop)
    spoken = rng.random(frames) < 0.5
    ids = np.where(spoken, rng.integers(3, config.vocab_size, frames), SIL).astype(np.int32)
    return SpeechFeatures(
        speech=rng.standard_normal((frames, config.speech_dim)).astype(np.float32),
        beat=rng.random((frames, model.release.base.config.beat_dim)).astype(np.float32),
        word_ids=ids, sentence=rng.standard_normal((rows, config.sentence_dim)).astype(
            np.float32),
        emotion=rng.standard_normal((rows, config.emotion_dim)).astype(np.float32), hop=hop,
        words=words)


def test_windows_cover_every_frame_with_one_token_of_overlap() -> None:
    assert window_starts(1, 64) == [0]
    assert window_starts(64, 64) == [0]
    assert window_starts(65, 64) == [0, 60]
    assert window_starts(124, 64) == [0, 60]
    assert window_starts(125, 64) == [0, 60, 120]
    for frames in range(1, 400, 7):
        starts = window_starts(frames, 64)
        assert starts[-1] + 64 >= frames
        assert len(starts) == 1 or starts[-2] + 64 < frames


@pytest.mark.parametrize("frames", [1, 3, 64, 65, 125, 241])
def test_exactly_one_frame_per_frame_of_input(model: SemTalk, frames: int) -> None:
    result = model.generate_features(_features(model, frames))
    n_tokens = -(-frames // 4)
    assert result.motion.num_frames == frames
    assert result.psi.shape == (frames,) and result.token_psi.shape == (n_tokens,)
    assert result.sparse_tokens.shape == (n_tokens,)
    assert np.isfinite(result.motion.poses).all() and np.isfinite(result.motion.trans).all()
    assert ((result.psi >= 0) & (result.psi <= 1)).all()


def test_audio_of_any_rate_and_channels_gives_one_frame_per_thirtieth(model: SemTalk) -> None:
    seconds = 2.345
    t = np.arange(int(44100 * seconds)) / 44100
    stereo = np.stack([np.sin(2 * np.pi * 220 * t), np.sin(2 * np.pi * 330 * t)], 1) * 0.3
    result = model.generate(stereo.astype(np.float32), 44100, WORDS[:3])
    expected = num_frames_for(int(np.ceil(len(t) * 16000 / 44100)))
    assert result.num_frames == expected == int(seconds * 30)
    assert result.audio is not None and len(result.audio) == int(np.ceil(len(t) * 16000 / 44100))


def test_channels_first_audio_and_tuple_words_give_the_same_motion(model: SemTalk) -> None:
    t = np.arange(16000 * 2) / 16000
    stereo = (np.stack([np.sin(2 * np.pi * 220 * t), np.sin(2 * np.pi * 330 * t)], 1)
              * 0.3).astype(np.float32)
    reference = model.generate(stereo, 16000, WORDS[:3])
    result = model.generate(stereo.T, 16000, [(w.text, w.start, w.end) for w in WORDS[:3]])
    assert result.num_frames == 60 and result.words == WORDS[:3]
    np.testing.assert_array_equal(result.motion.poses, reference.motion.poses)


def test_last_window_is_padded_with_the_features_of_silence(
        model: SemTalk, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the audio the last window reads what the extractors give for silence appended to
    it (as training reads a clip whose motion outlasts its audio), not the last frame again."""
    from dataclasses import replace

    from semtalk.generation import engine

    seen: list[dict] = []
    original = engine._padded_inputs

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(original(*args, **kwargs))
        return seen[-1]

    monkeypatch.setattr(engine, "_padded_inputs", spy)
    rng = np.random.default_rng(0)
    samples = 100 * 16000 // 30  # 100 frames; windows 0 and 60 read 124
    t = np.arange(samples) / 16000
    audio = (0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t))
             + 0.02 * rng.standard_normal(samples)).astype(np.float32)
    result = model.generate(audio, 16000, WORDS[:3])
    assert result.num_frames == 100
    inputs = {name: np.asarray(value.cpu()) for name, value in seen[0].items()
              if name != "hop"}
    frames, extractors = model.featurizer.extractors()  # type: ignore[union-attr]
    with_silence = np.concatenate([audio, np.zeros(24 * 16000 // 30 + 1, np.float32)])
    np.testing.assert_allclose(inputs["beat"][100:], frames["beat"].extract(
        with_silence, 124)[100:], atol=1e-6)
    assert np.abs(inputs["beat"][100:, 1] - inputs["beat"][99, 1]).max() > 1.0  # log energy
    # the spectral rows past the audio are silence normalised with the speech's statistics:
    # unnormalised, they equal those of silence appended to the audio
    spectral = frames["spectral"]
    np.testing.assert_allclose(inputs["speech"][100:], spectral.extract(audio, 124)[100:],
                               atol=1e-5)
    raw = type(spectral)(replace(spectral.settings, normalization="none"))
    np.testing.assert_allclose(raw.extract(audio, 124)[100:],
                               raw.extract(with_silence, 124)[100:], atol=1e-4)
    assert (inputs["word_ids"][100:] == SIL).all()
    np.testing.assert_allclose(inputs["emotion"][1], extractors["emotion"].extract(
        audio, WORDS[:3], 124, 64, 60)[1], atol=1e-6)
    # the audio is converted once, by generate
    from semtalk.generation import speech

    calls: list[int] = []
    for module in (engine, speech):
        monkeypatch.setattr(module, "to_mono", lambda *a, _f=module.to_mono, **k:  # type: ignore[misc]
                            calls.append(1) or _f(*a, **k))
    again = model.generate(np.stack([audio, audio], 1).astype(np.float64), 16000, WORDS[:3])
    assert len(calls) == 1
    np.testing.assert_array_equal(again.motion.poses, result.motion.poses)


def test_bad_words_and_rates_are_refused_clearly(model: SemTalk) -> None:
    audio = np.zeros(16000, np.float32)
    with pytest.raises(TypeError, match="bare string"):
        model.generate(audio, 16000, ["we", "never"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match=r"word 0 'we': times must be finite"):
        model.generate(audio, 16000, [("we", float("nan"), 0.4)])
    with pytest.raises(ValueError, match=r"word 1 'never': ends \(0.45 s\) before"):
        model.generate(audio, 16000, [("we", 0.2, 0.4), ("never", 0.9, 0.45)])
    with pytest.raises(DataError, match="sample rate must be an int, got str '16000'"):
        model.generate(audio, "16000")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"word 0 'late': negative start"):
        model.generate_features(_features(model, 60, words=[("late", -1.0, 0.5)]))  # type: ignore[list-item]


def test_silence_is_valid_input(model: SemTalk) -> None:
    result = model.generate(np.zeros(16000 * 3, np.float32), 16000, [])
    assert result.num_frames == 90 and result.words == []
    assert np.isfinite(result.motion.poses).all()


def test_generation_is_deterministic_and_stitched_once(model: SemTalk) -> None:
    features = _features(model, 200)
    a = model.generate_features(features)
    b = model.generate_features(features)
    np.testing.assert_array_equal(a.motion.poses, b.motion.poses)
    np.testing.assert_array_equal(a.token_psi, b.token_psi)


def test_fusion_takes_sparse_codes_where_psi_exceeds_beta() -> None:
    base = {part: torch.full((5, 2), 1) for part in BodyPart}
    sparse = {part: torch.full((5, 2), 2) for part in BodyPart if part != BodyPart.FACE}
    psi = torch.tensor([0.1, 0.6, 0.5, 0.9, 0.0])
    fused = fuse_codes(base, sparse, psi, 0.5)
    assert fused[BodyPart.FACE].eq(1).all()  # the face always comes from the base model
    for part in (BodyPart.UPPER, BodyPart.HANDS, BodyPart.LOWER):
        assert fused[part][:, 0].tolist() == [1, 2, 1, 2, 1]


def test_beta_decides_how_many_tokens_are_sparse(tiny_release: Path) -> None:
    features = None
    counts = []
    for beta in (0.0, 0.5, 1.0):
        model = SemTalk.from_pretrained(tiny_release, beta=beta)
        features = features or _features(model, 130, seed=4)
        result = model.generate_features(features)
        counts.append(int(result.sparse_tokens.sum()))
        assert (result.sparse_tokens == (result.token_psi > beta)).all()
    assert counts[0] == 33 and counts[2] == 0 and counts[0] >= counts[1] >= counts[2]


def test_emphasis_raises_and_suppression_lowers_psi_on_the_words(model: SemTalk) -> None:
    features = _features(model, 120)
    plain = model.generate_features(features)
    emphasis = Emphasis(emphasize=("dream job",), suppress=("never",))
    edited = model.generate_features(features, emphasis=emphasis)
    # dream job: 2.20-3.00 s = frames 66-90 = tokens 16..22; never: 0.45-0.90 s = tokens 3..6
    np.testing.assert_allclose(edited.token_psi_model, plain.token_psi_model, atol=1e-6)
    assert (edited.token_psi[16:23] >= 0.9).all() and edited.sparse_tokens[16:23].all()
    assert (edited.token_psi[3:7] <= 0.1).all() and not edited.sparse_tokens[3:7].any()
    untouched = np.r_[0:3, 7:16, 23:30]
    np.testing.assert_allclose(edited.token_psi[untouched], plain.token_psi[untouched],
                               atol=1e-6)
    record = edited.emphasis
    assert record["active"] and record["emphasize"][0]["tokens"] == [16, 23]
    assert record["suppress"][0]["text"] == "never" and record["unmatched"] == []
    assert record["emphasize"][0]["psi_after"] >= 0.9


def test_emphasis_scale_zero_turns_the_sparse_model_off(model: SemTalk) -> None:
    features = _features(model, 100)
    off = model.generate_features(features, emphasis=Emphasis(scale=0.0))
    assert not off.sparse_tokens.any() and (off.token_psi == 0).all()
    full = model.generate_features(features, emphasis=Emphasis(scale=1e6))
    assert full.sparse_tokens.all()
    assert not np.allclose(off.motion.poses, full.motion.poses)


def test_unmatched_emphasis_is_recorded_not_fatal(model: SemTalk) -> None:
    result = model.generate_features(_features(model, 40),
                                     emphasis=Emphasis.parse("zebra, never", None, 1.0))
    assert result.emphasis["unmatched"] == ["zebra"]
    with pytest.raises(ValueError, match="scale"):
        Emphasis(scale=-1.0)
    with pytest.raises(ValueError, match="holds no word"):
        Emphasis(emphasize=("  ?! ",))


def test_phrase_matching_and_token_spans() -> None:
    assert [m[2] for m in phrase_matches(WORDS, "Dream JOB!")] == ["dream job"]
    assert phrase_matches(WORDS, "job dream") == []
    edit = psi_edit(Emphasis(emphasize=("never",), suppress=("never",)), WORDS, 30)
    assert (edit.ceiling[3:7] == 0.1).all() and (edit.floor[3:7] <= 0.1).all()
    psi = torch.full((1, 30), 0.5)
    assert torch.allclose(edit.apply(psi, 0)[0, 3:7], torch.tensor(0.1))


def test_seed_frames_feed_each_window(model: SemTalk, monkeypatch: pytest.MonkeyPatch) -> None:
    """Window 0 sees the user's seed, later windows the previous window's decoded end; only
    the 4 seed frames are visible."""
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    encoder = model.release.base.seed_encoder
    original = encoder.forward

    def spy(motion, mask):  # type: ignore[no-untyped-def]
        seen.append((motion.clone(), mask.clone()))
        return original(motion, mask)

    monkeypatch.setattr(encoder, "forward", spy)
    poses = np.zeros((6, 165), np.float32)
    poses[:, 16 * 3 + 2] = -1.2  # shoulders down
    poses[:, 17 * 3 + 2] = 1.2
    poses[:, 23 * 3:25 * 3] = [0.1, -0.2, 0.0, 0.1, -0.2, 0.0]  # eyes: not generated
    seed = Motion(poses, np.zeros((6, 100), np.float32),
                  np.tile([[0.5, 1.0, -0.25]], (6, 1)).astype(np.float32))
    result = model.generate_features(_features(model, 130), seed=seed)
    assert len(seen) == 3
    torch.testing.assert_close(seen[0][0][0, :4], model.codec.first_seed(seed))
    for motion, mask in seen:
        assert not mask[0, :4].any() and mask[0, 4:].all()
        assert motion[0, 4:].eq(0).all() and torch.isfinite(motion).all()
    assert not torch.allclose(seen[1][0][0, :4], seen[0][0][0, :4])
    np.testing.assert_allclose(result.motion.trans[0, [0, 2]], [0.5, -0.25], atol=1e-5)
    # the seed's eyes stay where it put them: in the motion and in every later window's seed
    np.testing.assert_allclose(result.motion.poses[:, 69:75], np.tile(poses[0, 69:75],
                                                                      (130, 1)), atol=1e-6)
    for motion, _ in seen:
        torch.testing.assert_close(motion[0, :4, 23 * 6:25 * 6], seen[0][0][0, :4, 138:150])


def test_next_seed_is_the_training_seed_of_the_same_motion(beat2_sample: Path) -> None:
    """A window join's seed rows equal what training feeds for the same motion: 6D without an
    axis-angle round trip, every frame its own root velocity, 0/1 contacts, the seed's eyes."""
    from semtalk.body.representation import motion_to_seed_features, motion_to_tokenizer_parts
    from semtalk.body.skeleton import BuiltinSkeleton, foot_contacts
    from semtalk.generation.codec import PaperCodec

    data = np.load(beat2_sample / "2_scott_0_1_1.npz")
    poses = torch.from_numpy(data["poses"][:300].astype(np.float32))
    poses[:, 69:75] = poses[0, 69:75]  # eyes are not generated: the seed's throughout
    trans = torch.from_numpy(data["trans"][:300].astype(np.float32))
    expressions = torch.from_numpy(data["expressions"][:300].astype(np.float32))
    contacts = foot_contacts(BuiltinSkeleton().joints(poses, trans))
    parts = motion_to_tokenizer_parts(poses, expressions, trans, contacts)  # a perfect decode
    codec = PaperCodec(MotionTokenizer.from_config(load_preset("tokenizer", "tiny")))
    seed = Motion(poses[:4].numpy(), expressions[:4].numpy(), trans[:4].numpy())
    for start in (0, 60, 120):
        window = {part: x[start:start + 64] for part, x in parts.items()}
        nxt = slice(start + 60, start + 124)
        training = motion_to_seed_features(poses[nxt], trans[nxt], contacts[nxt])[:4]
        torch.testing.assert_close(codec.next_seed(window, seed), training, atol=1e-6, rtol=0)


def test_neutral_seed_is_the_training_mean_pose() -> None:
    tokenizer = MotionTokenizer.from_config(load_preset("tokenizer", "tiny"))
    assert np.abs(neutral_seed(tokenizer).poses).max() == 0  # untrained: zero mean, T-pose
    upper = tokenizer[BodyPart.UPPER]
    mean = upper.feature_mean.clone()
    rotation = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # 90° about z
    from semtalk.body.rotation import matrix_to_rot6d

    mean[:6] = matrix_to_rot6d(rotation)
    upper.set_normalization(mean, torch.ones_like(mean))
    pose = neutral_seed(tokenizer).poses[0]
    from semtalk.body.parts import BodyPart as Part

    joint = Part.UPPER.joints[0]
    np.testing.assert_allclose(pose[joint * 3:joint * 3 + 3], [0, 0, np.pi / 2], atol=1e-5)


def test_unknown_speaker_is_refused(model: SemTalk) -> None:
    with pytest.raises(DataError, match=r"unknown speaker id 7.*trained on speaker"):
        model.generate_features(_features(model, 16), speaker=7)
    assert model.generate_features(_features(model, 16), speaker=2).speaker_class == 1


def test_features_need_window_rows_at_window_starts(model: SemTalk) -> None:
    with pytest.raises(ValueError, match="hop 7 does not divide 60"):
        model.generate_features(_features(model, 80, hop=7))


def _copy(release: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(release, tmp_path / "release"))


def test_release_of_another_format_is_refused(tiny_release: Path, tmp_path: Path) -> None:
    folder = _copy(tiny_release, tmp_path)
    manifest = json.loads((folder / MANIFEST).read_text())
    (folder / MANIFEST).write_text(json.dumps(dict(manifest, format=99)))
    with pytest.raises(DataError, match=r"semtalk\.json.*format 99"):
        Release.load(folder)


def test_release_stage_of_another_model_version_is_refused(tiny_release: Path,
                                                           tmp_path: Path) -> None:
    folder = _copy(tiny_release, tmp_path)
    config = json.loads((folder / "sparse" / "config.json").read_text())
    config["format_version"] = 0
    (folder / "sparse" / "config.json").write_text(json.dumps(config))
    write_checksums(folder / "sparse")  # re-recorded: the version check itself must refuse
    with pytest.raises(DataError, match=r"sparse.*format_version"):
        Release.load(folder)


def test_release_with_a_missing_stage_is_refused(tiny_release: Path, tmp_path: Path) -> None:
    folder = _copy(tiny_release, tmp_path)
    shutil.rmtree(folder / "base")
    with pytest.raises(DataError, match=r"lacks \['base'\]"):
        Release.load(folder)
    with pytest.raises(DataError, match="not a release folder"):
        Release.load(tmp_path / "nowhere")


def test_features_made_differently_are_refused(tiny_release: Path, tmp_path: Path) -> None:
    folder = _copy(tiny_release, tmp_path)
    for stage in ("base", "sparse"):
        path = folder / stage / "features.json"
        features = json.loads(path.read_text())
        features["audio_features"]["spectral"]["config"]["n_mels"] = 64
        path.write_text(json.dumps(features))
        write_checksums(path.parent)
    model = SemTalk.from_pretrained(folder)
    with pytest.raises(DataError, match=r"spectral\.config\.n_mels: release has 64"):
        model.generate(np.zeros(16000, np.float32), 16000)


def test_release_trained_on_local_models_needs_their_folders(tiny_release: Path,
                                                             tmp_path: Path) -> None:
    folder = _copy(tiny_release, tmp_path)
    path = folder / "sparse" / "features.json"
    features = json.loads(path.read_text())
    features["window_features"]["sentence"]["config"]["encoder"] = "clip"
    path.write_text(json.dumps(features))
    write_checksums(path.parent)
    with pytest.raises(DataError, match=r"--sentence-model DIR"):
        SemTalk.from_pretrained(folder)


def test_engine_without_featurizer_generates_from_features_only(tiny_release: Path) -> None:
    """A release trained on local models' features evaluates from a cache without them."""
    model = SemTalk(Release.load(tiny_release), None)
    assert model.generate_features(_features(model, 70)).num_frames == 70
    with pytest.raises(DataError, match="precomputed features only"):
        model.generate(np.zeros(16000, np.float32), 16000)


def test_emphasis_tokens_cover_the_frames_the_report_gives_the_word() -> None:
    """A word ending at 124/30 s (4.133333333333334 * 30 = 124.00000000000001) ends at frame 124,
    as the JSON report says, so its emphasis stops at token 31 instead of reaching token 31's
    successor through float rounding."""
    from semtalk.data.textgrid import frame_span

    word = Word("up", 4.0, 124 / 30)
    assert frame_span(word.start, word.end, 30, 200) == (120, 124)
    edit = psi_edit(Emphasis(emphasize=("up",)), [word], 50)
    assert edit.record["emphasize"][0]["tokens"] == [30, 31]
    assert (edit.floor[30:31] == 0.9).all() and (edit.floor[31:] == 0).all()


def test_auto_device_resolves_to_one_that_exists(tiny_release: Path) -> None:
    model = SemTalk.from_pretrained(tiny_release, "auto")
    assert model.device.type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_progress_reports_every_window(model: SemTalk) -> None:
    calls: list[tuple[int, int]] = []
    result = model.generate_features(_features(model, 200), progress=lambda *a: calls.append(a))
    windows = len(window_starts(200, model.window))
    assert windows > 1 and calls == [(k, windows) for k in range(1, windows + 1)]
    assert result.num_frames == 200


def test_non_finite_decoder_output_is_refused_naming_the_stage(model: SemTalk,
                                                               monkeypatch) -> None:
    real = model.codec.decode

    def decode_nan(*args, **kwargs):  # type: ignore[no-untyped-def]
        motion = real(*args, **kwargs)
        motion.expressions[:3] = np.nan
        return motion

    monkeypatch.setattr(model.codec, "decode", decode_nan)
    with pytest.raises(DataError, match=r"tokenizer: the tokenizer's decoder produced NaN in "
                                        r"300 values \(expressions 300\); the release's "
                                        r"tokenizer weights may be corrupt"):
        model.generate_features(_features(model, 100))


def test_non_finite_psi_is_refused_naming_the_sparse_stage(model: SemTalk, monkeypatch) -> None:
    real = model._window

    def window_nan(*args, **kwargs):  # type: ignore[no-untyped-def]
        codes, psi, raw, seed_rows = real(*args, **kwargs)
        return codes, psi, np.full_like(raw, np.nan), seed_rows

    monkeypatch.setattr(model, "_window", window_nan)
    with pytest.raises(DataError, match=r"sparse: the sparse generator's semantic score ψ "
                                        r"produced NaN"):
        model.generate_features(_features(model, 100))
