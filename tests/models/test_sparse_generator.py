"""SparseMotionGenerator: ψ, gate modes, W_f, Eq. 5 blend, masking, gradients, save/load."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from semtalk.body.parts import FULL_DIM, BodyPart
from semtalk.config import from_dict, to_dict
from semtalk.losses.generator import (
    code_classification_loss,
    gate_classification_loss,
    latent_regression_loss,
)
from semtalk.models.base_generator import BaseMotionGenerator
from semtalk.models.generator_common import GeneratorInputs, GeneratorOutput, parameter_counts
from semtalk.models.sparse_generator import SparseGeneratorConfig, SparseMotionGenerator
from semtalk.training.presets import load_preset

SPEECH, VOCAB, SENTENCE, EMOTION = 20, 30, 12, 6
PARTS = (BodyPart.UPPER, BodyPart.HANDS, BodyPart.LOWER)
UPPER, HANDS = BodyPart.UPPER, BodyPart.HANDS


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread() -> Iterator[None]:
    """Tiny models gain nothing from intra-op threads, and on a busy 2-core machine two
    spinning threads make them 10-50x slower; restore the setting afterwards."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def make_inputs(batch: int = 2, frames: int = 32, seed: int = 0) -> GeneratorInputs:
    """Random features with 4 visible seed frames."""
    gen = torch.Generator().manual_seed(seed)
    mask = torch.ones(batch, frames, FULL_DIM, dtype=torch.bool)
    mask[:, :4] = False
    return GeneratorInputs(
        speech=torch.randn(batch, frames, SPEECH, generator=gen),
        beat=torch.rand(batch, frames, 4, generator=gen),
        motion=torch.randn(batch, frames, FULL_DIM, generator=gen),
        mask=mask,
        speaker=torch.randint(25, (batch,), generator=gen),
        word_ids=torch.randint(VOCAB, (batch, frames), generator=gen),
        sentence=torch.randn(batch, SENTENCE, generator=gen),
        emotion=torch.randn(batch, EMOTION, generator=gen),
    )


def base_features(batch: int = 2, tokens: int = 8, seed: int = 1) -> dict[BodyPart, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {part: torch.randn(batch, tokens, 32, generator=gen) for part in PARTS}


def tiny_config(**overrides: object) -> SparseGeneratorConfig:
    return load_preset("sparse_generator", "tiny", speech_dim=SPEECH, vocab_size=VOCAB,
                       sentence_dim=SENTENCE, emotion_dim=EMOTION, **overrides)


def tiny_model(**overrides: object) -> SparseMotionGenerator:
    torch.manual_seed(0)
    return SparseMotionGenerator(tiny_config(**overrides))


def force_psi(model: SparseMotionGenerator, value: int) -> None:
    """Make the learned gate output ψ = value (0 or 1) exactly, whatever the input."""
    with torch.no_grad():
        classifier = model.gate.classifier
        assert classifier is not None
        classifier.weight.zero_()
        classifier.bias.copy_(torch.tensor([1e4, -1e4] if value == 0 else [-1e4, 1e4]))


def assert_same_codes_output(a: GeneratorOutput, b: GeneratorOutput) -> None:
    for part in PARTS:
        torch.testing.assert_close(a.logits[part], b.logits[part], rtol=0, atol=1e-6)
        torch.testing.assert_close(a.latents[part], b.latents[part], rtol=0, atol=1e-6)


def test_output_shapes_and_psi() -> None:
    model = tiny_model().eval()
    out = model(make_inputs(batch=3), base_features(batch=3))
    assert set(out.logits) == set(out.latents) == set(out.features) == set(PARTS)
    for part in PARTS:
        assert out.logits[part].shape == (3, 8, 3, 64)
        assert out.latents[part].shape == (3, 3, 8, 32)
        assert out.codes()[part].shape == (3, 8, 3)
    assert out.rhythm == {}
    assert out.gate_logits is not None and out.gate_logits.shape == (3, 8, 2)
    assert out.psi is not None and out.psi.shape == (3, 8)
    assert ((out.psi >= 0) & (out.psi <= 1)).all()
    torch.testing.assert_close(out.psi, out.gate_logits.softmax(-1)[..., 1])


def test_masked_entries_never_matter_and_all_semantic_inputs_do() -> None:
    model = tiny_model().eval()
    inputs, features = make_inputs(), base_features()
    reference = model(inputs, features)
    poisoned = dataclasses.replace(inputs, motion=inputs.motion.clone())
    poisoned.motion[inputs.mask] = float("nan")
    out = model(poisoned, features)
    for part in PARTS:
        assert torch.equal(out.logits[part], reference.logits[part])
    changes = {
        "motion": inputs.motion + (~inputs.mask).float(),
        "word_ids": (inputs.word_ids + 1) % VOCAB,
        "sentence": inputs.sentence + 1.0,
        "emotion": inputs.emotion + 1.0,  # φ_e is used (the official code discards it)
        "speaker": (inputs.speaker + 1) % 25,
    }
    for name, value in changes.items():
        changed = model(dataclasses.replace(inputs, **{name: value}), features)
        assert not torch.allclose(changed.logits[HANDS], reference.logits[HANDS]), name
    emotion_changed = model(dataclasses.replace(inputs, emotion=inputs.emotion + 1.0), features)
    assert not torch.allclose(emotion_changed.psi, reference.psi)


def test_eq5_with_psi_zero_uses_only_the_base_features() -> None:
    model = tiny_model().eval()
    force_psi(model, 0)
    inputs, features = make_inputs(), base_features()
    out = model(inputs, features)
    assert torch.equal(out.psi, torch.zeros(2, 8))
    for part in PARTS:  # MLP(0 * f_s + 1 * f_b)
        torch.testing.assert_close(out.features[part], model.blend[part.value](features[part]))
    other = dataclasses.replace(make_inputs(seed=7), speaker=inputs.speaker)
    assert_same_codes_output(model(other, features), out)  # words, speech, seed: no effect
    moved = {part: value + 1.0 for part, value in features.items()}
    assert not torch.allclose(model(inputs, moved).logits[UPPER], out.logits[UPPER])


def test_eq5_with_psi_one_ignores_the_base_features() -> None:
    model = tiny_model().eval()
    force_psi(model, 1)
    inputs = make_inputs()
    assert_same_codes_output(model(inputs, base_features(seed=1)),
                             model(inputs, base_features(seed=2)))


def test_feature_weighting_switch() -> None:
    # ψ = 0 with W_f zeroes f_t; without W_f (and without the blend) the words still act
    for weighting, words_matter in ((True, False), (False, True)):
        model = tiny_model(feature_weighting=weighting, blend_base=False).eval()
        force_psi(model, 0)
        inputs = make_inputs()
        reference = model(inputs)
        changed = model(dataclasses.replace(inputs, word_ids=(inputs.word_ids + 3) % VOCAB))
        assert (not torch.allclose(changed.logits[UPPER], reference.logits[UPPER])) \
            == words_matter


def test_random_gate() -> None:
    model = tiny_model(gate="random").eval()
    assert model.gate.classifier is None
    inputs, features = make_inputs(), base_features()
    torch.manual_seed(11)
    first = model(inputs, features)
    torch.manual_seed(11)
    again = model(inputs, features)
    torch.manual_seed(12)
    other = model(inputs, features)
    assert first.gate_logits is None and first.psi is not None
    assert not first.psi.requires_grad
    assert ((first.psi >= 0) & (first.psi <= 1)).all()
    assert torch.equal(first.psi, again.psi) and torch.equal(first.logits[UPPER],
                                                             again.logits[UPPER])
    assert not torch.allclose(first.psi, other.psi)
    assert not torch.allclose(first.logits[UPPER], other.logits[UPPER])


def test_no_gate_gives_psi_one_and_ignores_base_features() -> None:
    model = tiny_model(gate="none").eval()
    assert parameter_counts(model)["gate"] == 0
    inputs = make_inputs()
    out = model(inputs, base_features(seed=1))
    assert out.gate_logits is None and torch.equal(out.psi, torch.ones(2, 8))
    assert_same_codes_output(out, model(inputs, base_features(seed=2)))


def test_blend_switch_and_base_feature_checks() -> None:
    blended = tiny_model()
    with pytest.raises(ValueError, match="pass base_features"):
        blended(make_inputs())
    bad = base_features()
    bad[HANDS] = bad[HANDS][:, :4]
    with pytest.raises(ValueError, match=r"base_features\[hands\] must be"):
        blended(make_inputs(), bad)
    plain = tiny_model(blend_base=False).eval()
    assert plain.blend is None
    assert (parameter_counts(blended)["total"] - parameter_counts(plain)["total"]
            == parameter_counts(blended)["blend"] > 0)
    inputs = make_inputs()
    assert_same_codes_output(plain(inputs), plain(inputs, base_features()))


def test_coarse2fine_switch() -> None:
    with_c2f = tiny_model(blend_base=False).eval()
    without = tiny_model(blend_base=False, use_coarse2fine=False).eval()
    assert without.coarse2fine is None
    assert parameter_counts(with_c2f)["total"] > parameter_counts(without)["total"]
    without.load_state_dict(with_c2f.state_dict(), strict=False)
    inputs = make_inputs()
    assert not torch.allclose(with_c2f(inputs).logits[HANDS], without(inputs).logits[HANDS])


def loss_of(out: GeneratorOutput, with_gate: bool = True) -> torch.Tensor:
    gen = torch.Generator().manual_seed(4)
    loss = torch.zeros(())
    for part in PARTS:
        codes = torch.randint(64, out.logits[part].shape[:3], generator=gen)
        loss = loss + code_classification_loss(out.logits[part], codes)
        loss = loss + latent_regression_loss(out.latents[part],
                                             torch.randn(out.latents[part].shape, generator=gen))
    if with_gate and out.gate_logits is not None:
        labels = torch.randint(2, out.gate_logits.shape[:2], generator=gen)
        loss = loss + gate_classification_loss(out.gate_logits, labels)
    return loss


@pytest.mark.parametrize("gate", ["learned", "random", "none", "own"])
def test_gradients_reach_every_parameter(gate: str) -> None:
    model = (tiny_model(gate_encoder=True, gate_context=(2, 1)) if gate == "own"
             else tiny_model(gate=gate)).train()
    features = {part: value.requires_grad_() for part, value in base_features().items()}
    loss_of(model(make_inputs(), features)).backward()
    dead = [name for name, p in model.named_parameters()
            if p.grad is None or p.grad.abs().sum() == 0]
    assert dead == []
    assert all(value.grad is not None for value in features.values())  # Eq. 5 reads f_b


def test_motion_losses_alone_train_the_gate_through_weighting() -> None:
    model = tiny_model().train()
    loss_of(model(make_inputs(), base_features()), with_gate=False).backward()
    assert model.gate.classifier is not None
    assert model.gate.classifier.weight.grad is not None  # via W_f and Eq. 5
    unweighted = tiny_model(feature_weighting=False, blend_base=False).train()
    loss_of(unweighted(make_inputs()), with_gate=False).backward()
    assert unweighted.gate.classifier is not None
    assert unweighted.gate.classifier.weight.grad is None  # only L_cls^G trains it then


def test_a_few_adam_steps_fit_codes_and_gate_labels() -> None:
    model = tiny_model().train()
    inputs, features = make_inputs(), base_features()
    gen = torch.Generator().manual_seed(6)
    codes = {part: torch.randint(64, (2, 8, 3), generator=gen) for part in PARTS}
    labels = torch.randint(2, (2, 8), generator=gen)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)

    def losses() -> tuple[torch.Tensor, torch.Tensor]:
        out = model(inputs, features)
        classification = sum(code_classification_loss(out.logits[p], codes[p]) for p in PARTS)
        return classification, gate_classification_loss(out.gate_logits, labels)

    first = [v.item() for v in losses()]
    for _ in range(15):
        classification, gate = losses()
        optimizer.zero_grad()
        (classification + gate).backward()
        optimizer.step()
    last = [v.item() for v in losses()]
    assert last[0] < 0.75 * first[0]
    assert last[1] < 0.75 * first[1]


def test_own_gate_encoder_and_context(tmp_path: Path) -> None:
    model = tiny_model(gate_encoder=True, gate_context=(3, 1)).eval()
    assert model.gate_semantic is not None and model.gate.context_conv is not None
    inputs, features = make_inputs(seed=4), base_features()
    reference = model(inputs, features)
    with torch.no_grad():  # the shared stream no longer decides ψ, only the motion
        for p in model.semantic.parameters():
            p.add_(0.5)
    changed = model(inputs, features)
    assert torch.equal(changed.psi, reference.psi)
    assert not torch.equal(changed.logits[UPPER], reference.logits[UPPER])
    with torch.no_grad():
        for p in model.gate_semantic.parameters():
            p.add_(0.5)
    assert not torch.equal(model(inputs, features).psi, reference.psi)
    model.save_pretrained(tmp_path / "sparse")
    loaded = SparseMotionGenerator.from_pretrained(tmp_path / "sparse")
    assert loaded.config.gate_encoder and loaded.config.gate_context == (3, 1)
    assert torch.equal(loaded(inputs, features).psi, model(inputs, features).psi)
    assert tiny_model(gate="random", gate_encoder=True).gate_semantic is None
    with pytest.raises(ValueError, match="gate_context"):
        tiny_config(gate_context=(2, -1))
    # the gate encoder's word embedding starts from the same word vectors
    vectors = torch.randn(VOCAB, model.config.word_dim)
    model.init_word_embedding(vectors)
    assert torch.equal(model.gate_semantic.word_embedding.weight, vectors)


def test_save_load_gives_identical_outputs(tmp_path: Path) -> None:
    model = tiny_model(use_coarse2fine=False).eval()
    inputs, features = make_inputs(seed=3), base_features()
    reference = model(inputs, features)
    model.save_pretrained(tmp_path / "sparse")
    loaded = SparseMotionGenerator.from_pretrained(tmp_path / "sparse")
    assert loaded.config == model.config
    out = loaded(inputs, features)
    for part in PARTS:
        assert torch.equal(out.logits[part], reference.logits[part])
    assert torch.equal(out.psi, reference.psi)


def test_config_round_trip_validation_and_base_compatibility() -> None:
    config = tiny_config(gate="random")
    assert from_dict(SparseGeneratorConfig, to_dict(config)) == config
    with pytest.raises(ValueError, match="gate must be one of"):
        dataclasses.replace(config, gate="soft")
    with pytest.raises(ValueError, match="vocab_size must be >= 1"):
        dataclasses.replace(config, vocab_size=0)
    assert config.base_mismatches(load_preset("base_generator", "tiny", speech_dim=SPEECH)) == []
    problems = config.base_mismatches(load_preset("base_generator", "paper", speech_dim=SPEECH))
    assert [p.split(":")[0] for p in problems] == ["codes", "sizes.latent"]
    paper = load_preset("sparse_generator", "paper", speech_dim=1024, vocab_size=5000,
                        sentence_dim=512, emotion_dim=512)
    assert paper.word_dim == 300 and paper.sizes.hidden == 768


def test_word_vectors_and_bad_inputs() -> None:
    model = tiny_model().eval()
    vectors = torch.randn(VOCAB, 16)
    model.init_word_embedding(vectors)
    assert torch.equal(model.semantic.word_embedding.weight, vectors)
    with pytest.raises(ValueError, match="word vectors must be"):
        model.init_word_embedding(torch.randn(VOCAB, 8))
    inputs, features = make_inputs(), base_features()
    cases = {
        "inputs.word_ids must be": dataclasses.replace(inputs, word_ids=None),
        "inputs.word_ids must lie in": dataclasses.replace(inputs, word_ids=inputs.word_ids
                                                           + VOCAB),
        "inputs.sentence must be": dataclasses.replace(inputs, sentence=inputs.sentence[:, :3]),
        "inputs.emotion must be": dataclasses.replace(inputs, emotion=None),
    }
    for message, bad in cases.items():
        with pytest.raises(ValueError, match=message):
            model(bad, features)
    model(dataclasses.replace(inputs, beat=None), features)  # γ_b is not read


def test_blends_real_base_model_features() -> None:
    torch.manual_seed(0)
    base = BaseMotionGenerator(load_preset("base_generator", "tiny", speech_dim=SPEECH,
                                           beat_dim=4)).eval()
    model = tiny_model()
    assert model.config.base_mismatches(base.config) == []
    inputs = make_inputs()
    with torch.no_grad():
        frozen = base(inputs).features
    out = model(inputs, frozen)
    loss_of(out).backward()
    assert all(p.grad is None for p in base.parameters())


def test_paper_preset_sizes_and_one_step() -> None:
    torch.manual_seed(0)
    model = SparseMotionGenerator(load_preset("sparse_generator", "paper", speech_dim=1024,
                                              vocab_size=2000, sentence_dim=512,
                                              emotion_dim=512))
    counts = parameter_counts(model)
    print("paper sparse parameters:", counts)
    assert 100e6 < counts["total"] < 200e6
    gen = torch.Generator().manual_seed(0)
    inputs = GeneratorInputs(
        torch.randn(2, 64, 1024, generator=gen), torch.rand(2, 64, 4, generator=gen),
        torch.randn(2, 64, FULL_DIM, generator=gen),
        torch.rand(2, 64, FULL_DIM, generator=gen) < 0.3, torch.tensor([0, 1]),
        torch.randint(2000, (2, 64), generator=gen), torch.randn(2, 512, generator=gen),
        torch.randn(2, 512, generator=gen))
    features = {part: torch.randn(2, 16, 256, generator=gen) for part in PARTS}
    out = model(inputs, features)
    assert out.logits[UPPER].shape == (2, 16, 6, 256)
    loss_of(out).backward()
    assert all(p.grad is not None for p in model.parameters())
