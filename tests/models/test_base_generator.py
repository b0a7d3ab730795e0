"""BaseMotionGenerator: shapes, masking, speaker, C2F switch, gradients, training, save/load."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from semtalk.body.parts import FULL_DIM, BodyPart
from semtalk.config import from_dict, to_dict
from semtalk.losses.generator import (
    code_classification_loss,
    latent_regression_loss,
    rhythmic_consistency_loss,
)
from semtalk.models.base_generator import BaseGeneratorConfig, BaseMotionGenerator
from semtalk.models.generator_common import (
    CodeSpec,
    GeneratorInputs,
    GeneratorOutput,
    parameter_counts,
)
from semtalk.training.presets import load_preset

SPEECH = 20
FACE, HANDS = BodyPart.FACE, BodyPart.HANDS


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread() -> Iterator[None]:
    """Tiny models gain nothing from intra-op threads, and on a busy 2-core machine two
    spinning threads make them 10-50x slower; restore the setting afterwards."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def make_inputs(batch: int = 2, frames: int = 32, seed: int = 0,
                seed_frames: int = 4) -> GeneratorInputs:
    """Random features; the first ``seed_frames`` frames are visible, the rest masked."""
    gen = torch.Generator().manual_seed(seed)
    mask = torch.ones(batch, frames, FULL_DIM, dtype=torch.bool)
    mask[:, :seed_frames] = False
    return GeneratorInputs(
        speech=torch.randn(batch, frames, SPEECH, generator=gen),
        beat=torch.rand(batch, frames, 4, generator=gen),
        motion=torch.randn(batch, frames, FULL_DIM, generator=gen),
        mask=mask,
        speaker=torch.randint(25, (batch,), generator=gen),
    )


def tiny_model(**overrides: object) -> BaseMotionGenerator:
    torch.manual_seed(0)
    return BaseMotionGenerator(load_preset("base_generator", "tiny", speech_dim=SPEECH, beat_dim=4,
                                           **overrides))


def total_loss(out: GeneratorOutput, targets: dict[BodyPart, torch.Tensor],
               vectors: dict[BodyPart, torch.Tensor]) -> torch.Tensor:
    loss = sum(rhythmic_consistency_loss(*pair)["total"] for pair in out.rhythm.values())
    for part, logits in out.logits.items():
        loss = loss + code_classification_loss(logits, targets[part])
        loss = loss + latent_regression_loss(out.latents[part], vectors[part])
    return loss


def random_targets(out: GeneratorOutput, seed: int = 5) -> tuple[dict, dict]:
    gen = torch.Generator().manual_seed(seed)
    codes = {p: torch.randint(logits.shape[-1], logits.shape[:3], generator=gen)
             for p, logits in out.logits.items()}
    vectors = {p: torch.randn(z.shape, generator=gen) for p, z in out.latents.items()}
    return codes, vectors


def test_output_shapes_dtypes_and_codes() -> None:
    model = tiny_model().eval()
    out = model(make_inputs(batch=3, frames=32))
    assert set(out.logits) == set(out.latents) == set(out.features) == set(BodyPart)
    for part in BodyPart:
        assert out.logits[part].shape == (3, 8, 3, 64)
        assert out.latents[part].shape == (3, 3, 8, 32)
        assert out.features[part].shape == (3, 8, 32)
        assert out.logits[part].dtype == torch.float32
        codes = out.codes()[part]
        assert codes.shape == (3, 8, 3) and codes.dtype == torch.long
        assert torch.equal(out.latents[part][:, 0], out.features[part])  # z_0 = features
    assert set(out.rhythm) == {"face", "hands"}
    for motion, audio in out.rhythm.values():
        assert motion.shape == audio.shape == (3, 8, 32)
    assert out.gate_logits is None and out.psi is None


def test_masked_entries_never_matter_and_visible_ones_do() -> None:
    model = tiny_model().eval()
    inputs = make_inputs()
    reference = model(inputs)
    poisoned = dataclasses.replace(inputs, motion=inputs.motion.clone())
    poisoned.motion[inputs.mask] = torch.randn(int(inputs.mask.sum())) * 100
    out = model(poisoned)
    for part in BodyPart:
        assert torch.equal(out.logits[part], reference.logits[part])
        assert torch.equal(out.latents[part], reference.latents[part])
    poisoned.motion[:, 2, 10] += 1.0  # a visible seed entry
    changed = model(poisoned)
    assert not torch.allclose(changed.logits[BodyPart.UPPER], reference.logits[BodyPart.UPPER])


def test_speaker_and_word_pass_change_the_output() -> None:
    model = tiny_model().eval()
    inputs = make_inputs()
    reference = model(inputs)
    other = dataclasses.replace(inputs, speaker=(inputs.speaker + 1) % 25)
    assert not torch.allclose(model(other).logits[FACE], reference.logits[FACE])
    assert not torch.allclose(model(other).logits[HANDS], reference.logits[HANDS])
    no_word = model(inputs, use_word=False)
    # the face branch does not read the body's word hints; the body branch does
    assert torch.equal(no_word.rhythm["face"][0], reference.rhythm["face"][0])
    assert not torch.allclose(no_word.rhythm["hands"][0], reference.rhythm["hands"][0])


def test_coarse2fine_switch() -> None:
    with_c2f = tiny_model(use_rhythmic_projection=False).eval()
    without = tiny_model(use_coarse2fine=False, use_rhythmic_projection=False).eval()
    assert without.coarse2fine is None
    assert (parameter_counts(with_c2f)["total"] - parameter_counts(without)["total"]
            == parameter_counts(with_c2f)["coarse2fine"] > 0)
    missing, unexpected = without.load_state_dict(with_c2f.state_dict(), strict=False)
    assert not missing and all(k.startswith("coarse2fine.") for k in unexpected)
    inputs = make_inputs()
    refined, plain = with_c2f(inputs), without(inputs)
    # identity projection: rhythm pairs hold the pre-C2F latents, identical in both models
    assert torch.equal(refined.rhythm["face"][0], plain.rhythm["face"][0])
    assert torch.equal(plain.features[FACE], plain.rhythm["face"][0])
    assert torch.equal(plain.features[HANDS], plain.rhythm["hands"][0])
    assert not torch.allclose(refined.features[FACE], plain.features[FACE])
    assert not torch.allclose(refined.logits[HANDS], plain.logits[HANDS])


def test_gradients_reach_every_parameter() -> None:
    model = tiny_model().train()
    inputs = make_inputs(batch=2, seed_frames=16)
    out = model(inputs)
    total_loss(out, *random_targets(out)).backward()
    dead = [name for name, p in model.named_parameters()
            if p.grad is None or p.grad.abs().sum() == 0]
    assert dead == []
    # the "self" pass (use_word False) leaves exactly the word-hints decoder without gradient
    model.zero_grad(set_to_none=True)
    out = model(inputs, use_word=False)
    total_loss(out, *random_targets(out)).backward()
    unused = {name.split(".")[1] for name, p in model.named_parameters() if p.grad is None}
    assert unused == {"word_memory", "word_hints"}


def test_a_few_adam_steps_fit_a_fixed_batch() -> None:
    model = tiny_model().train()
    inputs = make_inputs(batch=2, seed_frames=8)
    codes, _ = random_targets(model(inputs))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)

    def losses() -> tuple[torch.Tensor, torch.Tensor]:
        out = model(inputs)
        classification = sum(code_classification_loss(out.logits[p], codes[p])
                             for p in BodyPart)
        rhythm = sum(rhythmic_consistency_loss(*pair)["total"] for pair in out.rhythm.values())
        return classification, rhythm

    first = [v.item() for v in losses()]
    for _ in range(15):
        classification, rhythm = losses()
        optimizer.zero_grad()
        (classification + rhythm).backward()
        optimizer.step()
    last = [v.item() for v in losses()]
    assert last[0] < 0.75 * first[0]
    assert last[1] < 0.75 * first[1]


def test_save_load_gives_identical_outputs(tmp_path: Path) -> None:
    model = tiny_model(use_coarse2fine=False).train()
    model(make_inputs(batch=4))  # move BatchNorm running statistics away from the defaults
    model.eval()
    inputs = make_inputs(seed=3)
    reference = model(inputs)
    model.save_pretrained(tmp_path / "base")
    loaded = BaseMotionGenerator.from_pretrained(tmp_path / "base")
    assert loaded.config == model.config and not loaded.training
    out = loaded(inputs)
    for part in BodyPart:
        assert torch.equal(out.logits[part], reference.logits[part])
        assert torch.equal(out.latents[part], reference.latents[part])


def test_config_round_trip_and_validation() -> None:
    config = load_preset("base_generator", "tiny", speech_dim=SPEECH, beat_dim=4,
                         use_coarse2fine=False)
    assert from_dict(BaseGeneratorConfig, to_dict(config)) == config
    paper = load_preset("base_generator", "paper", speech_dim=1024, beat_dim=4)
    assert paper.codes == CodeSpec(6, 256, 256, 4) and paper.sizes.hidden == 768
    assert config.codes == CodeSpec.from_rvqvae(load_preset("tokenizer", "tiny"))
    assert config.codes == CodeSpec(3, 64, 32, 4) and config.sizes.hidden == 64
    with pytest.raises(ValueError, match=r"sizes\.latent .* must equal codes\.code_dim"):
        BaseGeneratorConfig(speech_dim=SPEECH, codes=config.codes)
    with pytest.raises(ValueError, match=r"codes\.downsample must be 4"):
        BaseGeneratorConfig(speech_dim=SPEECH, codes=CodeSpec(downsample=8))
    with pytest.raises(ValueError, match="divisible by heads"):
        dataclasses.replace(config.sizes, hidden=66)


def test_bad_inputs_are_named() -> None:
    model = tiny_model().eval()
    inputs = make_inputs()
    cases = {
        "inputs.speech must be": dataclasses.replace(inputs, speech=inputs.speech[..., :5]),
        "positive multiple of 4": make_inputs(frames=30),
        "inputs.mask must be a bool": dataclasses.replace(inputs, mask=inputs.mask.float()),
        "inputs.motion must be": dataclasses.replace(inputs, motion=inputs.motion[:, :, :100]),
        "inputs.beat must be": dataclasses.replace(inputs, beat=inputs.beat[:, :8]),
        "inputs.speaker must lie in": dataclasses.replace(inputs,
                                                          speaker=torch.tensor([0, 25])),
        "inputs.speaker must be an integer": dataclasses.replace(inputs,
                                                            speaker=inputs.speaker.float()),
    }
    for message, bad in cases.items():
        with pytest.raises(ValueError, match=message):
            model(bad)


@pytest.mark.slow
def test_tiny_forward_backward_is_fast() -> None:
    model = tiny_model().train()
    inputs = make_inputs(batch=8, frames=64)
    timings = []
    for _ in range(3):
        start = time.perf_counter()
        out = model(inputs)
        sum(logits.sum() for logits in out.logits.values()).backward()
        timings.append(time.perf_counter() - start)
    assert min(timings) < 0.5  # ~0.1 s on an idle 2-core machine


def test_paper_preset_sizes_and_one_step() -> None:
    torch.manual_seed(0)
    model = BaseMotionGenerator(load_preset("base_generator", "paper", speech_dim=1024, beat_dim=4))
    counts = parameter_counts(model)
    print("paper base parameters:", counts)
    assert 150e6 < counts["total"] < 250e6
    gen = torch.Generator().manual_seed(0)
    mask = torch.rand(2, 64, FULL_DIM, generator=gen) < 0.3
    inputs = GeneratorInputs(torch.randn(2, 64, 1024, generator=gen),
                             torch.rand(2, 64, 4, generator=gen),
                             torch.randn(2, 64, FULL_DIM, generator=gen), mask,
                             torch.tensor([0, 1]))
    out = model(inputs)
    assert out.logits[FACE].shape == (2, 16, 6, 256)
    total_loss(out, *random_targets(out)).backward()
    assert all(p.grad is not None for p in model.parameters())
