"""`semtalk train tokenizer` on the synthetic speaker, resume, and the MotionTokenizer release."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from semtalk.body.motion import Motion
from semtalk.body.parts import BodyPart
from semtalk.cli import main
from semtalk.config import ConfigError
from semtalk.errors import DataError
from semtalk.features.cache import FeatureCache
from semtalk.losses.reconstruction import rotation_error_degrees
from semtalk.models.rvqvae import RVQVAE, RVQVAEConfig
from semtalk.models.tokenizer import MotionTokenizer
from semtalk.modules.quantizer import QuantizerConfig
from semtalk.training.metric_log import read_log
from semtalk.training.presets import load_preset
from semtalk.training.tokenizer import (
    TokenizerSolver,
    load_tokenizer_config,
    with_solver,
)
from semtalk.training.windows import cut_windows, training_segments, window_starts


def test_windows_and_segments(synth_cache: Path) -> None:
    assert window_starts(100, 64, 20) == [0, 20]
    assert window_starts(63, 64, 20) == []
    cache = FeatureCache(synth_cache)
    train, val = training_segments(cache)
    assert {s.clip_id for s in train} == set(cache.ids("train"))
    assert {s.clip_id for s in val} == set(cache.ids("val"))
    windows = cut_windows(train, 64, 20)
    assert all(w.stop <= cache.load(w.clip_id).num_frames for w in windows)


def test_holdout_when_no_val_clips(synth_cache: Path, tmp_path: Path) -> None:
    copy = tmp_path / "cache"
    shutil.copytree(synth_cache, copy, symlinks=True)
    manifest = json.loads((copy / "manifest.json").read_text())
    for clip in manifest["clips"]:
        clip["split"] = "train" if clip["split"] == "val" else clip["split"]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    train, val = training_segments(FeatureCache(copy), holdout_fraction=0.2)
    assert len(train) == len(val)
    for t, v in zip(train, val, strict=True):
        assert t.clip_id == v.clip_id and t.stop == v.start and v.num_frames >= 64


def _tiny(steps: int, **solver: object):
    config = with_solver(load_tokenizer_config("tiny"), max_steps=steps, batch_size=8,
                         validate_every=steps, checkpoint_every=steps, log_every=1,
                         tensorboard=False, **solver)
    return replace(config, stride=32)


def test_cli_trains_a_part_and_loss_falls(synth_cache: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train", "tokenizer", "--part", "upper", "--data", str(synth_cache),
                 "--out", str(tmp_path), "--quiet", "solver.max_steps=40",
                 "solver.batch_size=8", "solver.validate_every=20", "solver.log_every=1",
                 "solver.tensorboard=false", "stride=32"])
    assert code == 0
    assert "upper tokenizer:" in capsys.readouterr().out
    model = RVQVAE.from_pretrained(tmp_path / "tokenizer" / "upper")
    assert model.config.input_dim == BodyPart.UPPER.dim
    log = read_log(tmp_path / "upper")
    train = [r["loss"] for r in log if r["split"] == "train"]
    assert np.mean(train[-5:]) < 0.9 * np.mean(train[:5])
    val = [r for r in log if r["split"] == "val"]
    assert [r["step"] for r in val] == [20, 40]
    assert {"angle_deg", "joint_mm", "perplexity", "usage"} <= set(val[0])


def test_part_steps_train_one_part_for_a_fraction_of_the_steps(synth_cache: Path,
                                                                tmp_path: Path) -> None:
    code = main(["train", "tokenizer", "--part", "lower", "--data", str(synth_cache),
                 "--out", str(tmp_path), "--quiet", "solver.max_steps=6", "part_steps.lower=0.5",
                 "solver.batch_size=4", "solver.validate_every=2", "solver.log_every=1",
                 "solver.tensorboard=false", "stride=32"])
    assert code == 0
    steps = [r["step"] for r in read_log(tmp_path / "lower") if r["split"] == "train"]
    assert steps == [1, 2, 3]
    config = load_tokenizer_config("demo", overrides=["solver.max_steps=7"])
    assert config.part_steps == {"lower": 0.5}  # the demo's
    assert [config.solver_for(part).max_steps for part in BodyPart] == [7, 7, 7, 4]
    with pytest.raises(ConfigError, match=r"part_steps\.legs: not a body part"):
        load_tokenizer_config("tiny", overrides=["part_steps.legs=0.5"])
    with pytest.raises(ConfigError, match=r"part_steps\.face must be in \(0, 1\]"):
        load_tokenizer_config("tiny", overrides=["part_steps.face=2"])


def test_cli_rejects_unknown_override_and_preset(synth_cache: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    args = ["train", "tokenizer", "--part", "face", "--data", str(synth_cache), "--out",
            str(tmp_path)]
    assert main([*args, "solver.max_stepz=3"]) == 2
    assert "max_stepz" in capsys.readouterr().err
    assert main([*args, "--preset", "huge"]) == 2
    assert "unknown preset" in capsys.readouterr().err


def test_lower_tokenizer_resume_gives_identical_next_loss(synth_cache: Path,
                                                          tmp_path: Path) -> None:
    # Lower: EMA codebooks, dead-code resets, quantizer dropout and the root terms all in play.
    config = _tiny(6)
    TokenizerSolver(config, BodyPart.LOWER, synth_cache, tmp_path / "a").fit(progress=False)
    short = with_solver(config, max_steps=3, checkpoint_every=3)
    TokenizerSolver(short, BodyPart.LOWER, synth_cache, tmp_path / "b").fit(progress=False)
    TokenizerSolver(config, BodyPart.LOWER, synth_cache, tmp_path / "b").fit(progress=False)

    def losses(folder: Path) -> dict[int, float]:
        return {r["step"]: r["loss"] for r in read_log(folder) if r["split"] == "train"}

    assert losses(tmp_path / "a") == losses(tmp_path / "b")
    a = RVQVAE.from_pretrained(tmp_path / "a" / "best")
    b = RVQVAE.from_pretrained(tmp_path / "b" / "best")
    for name, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[name]), name


def _motion(frames: int, seed: int = 0) -> Motion:
    rng = np.random.default_rng(seed)
    t = np.arange(frames)[:, None] / 30.0
    poses = 0.2 * np.sin(2 * np.pi * 0.5 * t + rng.uniform(0, 6, (1, 165)))
    trans = np.concatenate([0.1 * t, np.full_like(t, 0.9), 0.05 * t], axis=1)
    return Motion(poses, 0.3 * np.sin(t + rng.uniform(0, 6, (1, 100))), trans)


def test_tokenize_detokenize_lengths_start_and_eyes() -> None:
    tokenizer = MotionTokenizer.from_config(load_preset("tokenizer", "tiny")).eval()
    motion = _motion(37)
    codes = tokenizer.tokenize(motion)
    assert set(codes) == set(BodyPart)
    assert all(c.shape == (10, 3) and c.dtype == torch.long for c in codes.values())
    eyes = np.full(6, 0.1, np.float32)
    out = tokenizer.detokenize(codes, num_frames=37, start_xz=np.array([1.0, -2.0]),
                               eye_pose=eyes, betas=np.ones(300, np.float32))
    assert out.num_frames == 37 and out.poses.shape == (37, 165)
    assert out.trans[0, 0] == pytest.approx(1.0) and out.trans[0, 2] == pytest.approx(-2.0)
    np.testing.assert_allclose(out.poses[:, 69:75], np.tile(eyes, (37, 1)), atol=1e-6)
    assert out.betas[0] == 1.0
    # Decoding is a function of the codes alone: the same codes give the same motion.
    again = tokenizer.detokenize(codes, num_frames=37, start_xz=np.array([1.0, -2.0]),
                                 eye_pose=eyes)
    np.testing.assert_array_equal(out.poses, again.poses)
    with pytest.raises(ValueError, match="missing"):
        tokenizer.detokenize({BodyPart.FACE: codes[BodyPart.FACE]})


def test_trained_tokenizer_round_trip_beats_mean_pose(synth_cache: Path, tmp_path: Path) -> None:
    """A briefly trained upper tokenizer reconstructs its data far better than the clip's mean
    pose (held-out generalisation is measured by benchmarks/tokenizer_real_clip.py)."""
    config = replace(with_solver(_tiny(100), batch_size=32), stride=16)
    best = TokenizerSolver(config, BodyPart.UPPER, synth_cache, tmp_path).fit(progress=False)
    model = RVQVAE.from_pretrained(best)
    cache = FeatureCache(synth_cache)
    clip = cache.load(cache.ids("train")[0])
    from semtalk.body.representation import motion_to_tokenizer_parts

    def tensor(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.array(a[:256], dtype=np.float32))

    x = motion_to_tokenizer_parts(tensor(clip.poses), tensor(clip.expressions),
                                  tensor(clip.trans), tensor(clip.contacts))[BodyPart.UPPER]
    with torch.no_grad():
        rec = model.decode(model.encode(x[None]))[0]
    # 6D outputs are compared as rotations (the losses are blind to the 6D vectors' scale).
    tokenizer_error = rotation_error_degrees(rec, x, BodyPart.UPPER)
    mean_error = rotation_error_degrees(x.mean(0, keepdim=True).expand_as(x), x, BodyPart.UPPER)
    assert tokenizer_error < 0.7 * mean_error


def _face_std_ratio(best: Path, cache: FeatureCache) -> float:
    """RMS over the 100 expressions of the reconstruction's std over time / the data's, on
    the cache's training clips."""
    from semtalk.body.representation import motion_to_tokenizer_parts

    model = RVQVAE.from_pretrained(best)
    reconstructed, data = [], []
    for clip_id in cache.ids("train"):
        clip = cache.load(clip_id)
        frames = clip.num_frames // 4 * 4

        def tensor(a: np.ndarray, n: int = frames) -> torch.Tensor:
            return torch.from_numpy(np.array(a[:n], dtype=np.float32))

        x = motion_to_tokenizer_parts(tensor(clip.poses), tensor(clip.expressions),
                                      tensor(clip.trans), tensor(clip.contacts))[BodyPart.FACE]
        with torch.no_grad():
            reconstructed.append(model.decode(model.encode(x[None]))[0, :, 6:].std(0))
        data.append(x[:, 6:].std(0))
    return float(torch.stack(reconstructed).square().mean().sqrt()
                 / torch.stack(data).square().mean().sqrt())


def test_face_tokenizer_trains_with_its_own_commitment_weight(synth_cache: Path,
                                                             tmp_path: Path) -> None:
    """The face's reconstruction terms are an order of magnitude smaller than the other
    parts', so the face quantizer has its own commitment weight (0.1; the others keep 1): the
    saved face tokenizer carries it, and a short run reconstructs a face that moves like the
    synthetic speaker's."""
    config = replace(with_solver(_tiny(60), batch_size=16), stride=16)
    cache = FeatureCache(synth_cache)
    assert config.face_commitment_weight == 0.1
    assert config.model_for(BodyPart.FACE).quantizer.commitment_weight == 0.1
    assert config.model_for(BodyPart.UPPER).quantizer.commitment_weight == 1.0
    release = TokenizerSolver(config, BodyPart.FACE, synth_cache, tmp_path / "face").fit(
        progress=False)
    assert RVQVAE.from_pretrained(release).config.quantizer.commitment_weight == 0.1
    moving = _face_std_ratio(release, cache)
    print(f"reconstructed / data expression std: {moving:.3f}")
    assert moving > 0.5


def test_release_save_load_identical_and_strict(tmp_path: Path) -> None:
    tokenizer = MotionTokenizer.from_config(load_preset("tokenizer", "tiny")).eval()
    folder = tokenizer.save_pretrained(tmp_path / "tok")
    loaded = MotionTokenizer.from_pretrained(folder)
    motion = _motion(64, seed=1)
    codes = tokenizer.tokenize(motion)
    loaded_codes = loaded.tokenize(motion)
    for part in BodyPart:
        assert torch.equal(codes[part], loaded_codes[part])
    a = tokenizer.detokenize(codes)
    b = loaded.detokenize(codes)
    np.testing.assert_array_equal(a.poses, b.poses)
    np.testing.assert_array_equal(a.trans, b.trans)
    shutil.rmtree(folder / "hands")
    with pytest.raises(DataError, match=r"lacks the part folder\(s\) \['hands'\]"):
        MotionTokenizer.from_pretrained(folder)
    # A part trained with a different code layout is refused.
    tiny = load_preset("tokenizer", "tiny", input_dim=BodyPart.HANDS.dim)
    other = RVQVAE(replace(tiny, quantizer=replace(tiny.quantizer, codebook_size=32)))
    other.save_pretrained(folder / "hands")
    with pytest.raises(DataError, match="disagree on the code layout"):
        MotionTokenizer.from_pretrained(folder)
    with pytest.raises(DataError, match="not found"):
        MotionTokenizer.from_pretrained(tmp_path / "nowhere")


def test_packaged_presets_load() -> None:
    tiny = load_tokenizer_config("tiny")
    paper = load_tokenizer_config("paper")
    assert tiny.model.input_dim is None and paper.model.input_dim is None
    assert tiny.model == load_preset("tokenizer", "tiny")
    assert tiny.model.for_part(BodyPart.HANDS) == RVQVAEConfig(
        input_dim=180, width=32, code_dim=32, depth=2, dropout=0.0,
        quantizer=QuantizerConfig(num_quantizers=3, codebook_size=64, codebook_dim=32))
    # The paper preset is the paper's sizes, which are the config's defaults.
    assert paper.model.for_part(BodyPart.FACE) == RVQVAEConfig(input_dim=106)
    with pytest.raises(ConfigError, match=r"model\.input_dim is the body part.s channels"):
        load_tokenizer_config("tiny", overrides=["model.input_dim=180"])
    assert paper.solver.lr == pytest.approx(1.5e-4) and paper.solver.betas == (0.5, 0.999)
