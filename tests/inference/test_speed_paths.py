"""Speed paths change no output: generators prepared for inference against the plain ones, the
sparse model's score/predict split, stacked code heads, and generation's window graph skipping
the sparse body branch when no token uses it."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from semtalk.body.parts import FULL_DIM, BodyPart
from semtalk.data.textgrid import Word
from semtalk.generation.emphasis import Emphasis, psi_edit
from semtalk.generation.engine import (
    SemTalk,
    _padded_inputs,
    fuse_codes,
    window_starts,
)
from semtalk.generation.speech import SpeechFeatures
from semtalk.inference import prepare_for_inference
from semtalk.inference.heads import StackedCodeHeads
from semtalk.inference.lanes import Lanes
from semtalk.models.base_generator import BaseMotionGenerator
from semtalk.models.generator_common import GeneratorInputs, GeneratorOutput
from semtalk.models.sparse_generator import SparseGeneratorConfig, SparseMotionGenerator
from semtalk.modules.code_heads import CodeHeads, ResidualCodeHeads
from semtalk.training.presets import load_preset

SPEECH, VOCAB, SENTENCE, EMOTION = 20, 30, 12, 6
TOLERANCE = dict(rtol=1e-5, atol=1e-5)
SIZES = dataclasses.replace(load_preset("base_generator", "tiny").sizes,
                            face_layers=2, word_layers=2, residual_layers=2,
                            coarse2fine_layers=2, semantic_layers=2)
"""Tiny, but with stacks of two layers, so fused multi-layer weights are exercised."""


def _inputs(batch: int = 2, frames: int = 32) -> GeneratorInputs:
    gen = torch.Generator().manual_seed(0)
    mask = torch.ones(batch, frames, FULL_DIM, dtype=torch.bool)
    mask[:, :4] = False
    return GeneratorInputs(
        speech=torch.randn(batch, frames, SPEECH, generator=gen),
        beat=torch.rand(batch, frames, 4, generator=gen),
        motion=torch.randn(batch, frames, FULL_DIM, generator=gen), mask=mask,
        speaker=torch.randint(25, (batch,), generator=gen),
        word_ids=torch.randint(VOCAB, (batch, frames), generator=gen),
        sentence=torch.randn(batch, SENTENCE, generator=gen),
        emotion=torch.randn(batch, EMOTION, generator=gen))


def _sparse_config(**fields: object) -> SparseGeneratorConfig:
    return load_preset("sparse_generator", "tiny", speech_dim=SPEECH, vocab_size=VOCAB,
                       sentence_dim=SENTENCE, emotion_dim=EMOTION, **fields)


def _models(memory_position: bool = False
            ) -> tuple[BaseMotionGenerator, SparseMotionGenerator]:
    torch.manual_seed(0)
    base = BaseMotionGenerator(load_preset("base_generator", "tiny", speech_dim=SPEECH, beat_dim=4,
                                           sizes=SIZES, memory_position=memory_position))
    sparse = SparseMotionGenerator(_sparse_config(sizes=SIZES, memory_position=memory_position))
    return base, sparse


def _run(base: BaseMotionGenerator, sparse: SparseMotionGenerator,
         inputs: GeneratorInputs) -> tuple[GeneratorOutput, GeneratorOutput]:
    torch.manual_seed(5)  # the same dropout draws in training mode
    out = base(inputs)
    return out, sparse(inputs, base_features=out.features)


def _assert_outputs(a: GeneratorOutput, b: GeneratorOutput, exact: bool) -> None:
    tolerance = dict(rtol=0, atol=0) if exact else TOLERANCE
    for part in a.logits:
        torch.testing.assert_close(a.logits[part], b.logits[part], **tolerance)
        torch.testing.assert_close(a.latents[part], b.latents[part], **tolerance)
        torch.testing.assert_close(a.features[part], b.features[part], **tolerance)
        assert torch.equal(a.codes()[part], b.codes()[part])
    if a.psi is not None:
        torch.testing.assert_close(a.psi, b.psi, **tolerance)


@pytest.mark.parametrize("memory_position", [False, True])
def test_prepared_generators_match_the_plain_ones(memory_position: bool) -> None:
    base, sparse = _models(memory_position)
    base.eval(), sparse.eval()
    fast_base = prepare_for_inference(copy.deepcopy(base))
    fast_sparse = prepare_for_inference(copy.deepcopy(sparse))
    assert isinstance(fast_base.code_heads, StackedCodeHeads)
    inputs = _inputs()
    with torch.inference_mode():
        fast = _run(fast_base, fast_sparse, inputs)
        plain = _run(base, sparse, inputs)
    for a, b in zip(fast, plain, strict=True):
        _assert_outputs(a, b, exact=False)
    for part in fast[0].rhythm:
        torch.testing.assert_close(fast[0].rhythm[part][0], plain[0].rhythm[part][0],
                                   **TOLERANCE)


def test_preparing_a_copy_leaves_the_plain_model_as_it_was() -> None:
    """The plain model keeps its modules, state dict and training; the prepared copy refuses
    to train."""
    base, sparse = _models()
    state = {k: v.clone() for k, v in sparse.state_dict().items()}
    kinds = [type(m) for m in sparse.modules()]
    prepared = prepare_for_inference(copy.deepcopy(sparse))
    assert [type(m) for m in sparse.modules()] == kinds
    assert sparse.state_dict().keys() == state.keys()
    assert all(torch.equal(v, state[k]) for k, v in sparse.state_dict().items())
    assert type(sparse.code_heads) is CodeHeads and sparse.training
    inputs = _inputs()
    out = sparse(inputs, base_features=base(inputs).features)
    out.logits[BodyPart.HANDS].sum().backward()
    assert sparse.semantic.word_embedding.weight.grad is not None
    with pytest.raises(RuntimeError, match="prepared for inference"):
        prepared.train()


@pytest.mark.parametrize("gate", ["learned", "random"])
def test_sparse_score_then_predict_is_forward(gate: str) -> None:
    torch.manual_seed(0)
    sparse = SparseMotionGenerator(_sparse_config(gate=gate))
    inputs = _inputs()
    features = {p: torch.randn(2, 8, 32) for p in sparse.parts}
    for train in (True, False):
        sparse.train(train)
        torch.manual_seed(1)
        whole = sparse(inputs, base_features=features, psi_edit=lambda psi: psi.clamp(0.2, 0.8))
        torch.manual_seed(1)
        score = sparse.score(inputs, psi_edit=lambda psi: psi.clamp(0.2, 0.8))
        split = sparse.predict(inputs, score, base_features=features)
        _assert_outputs(whole, split, exact=True)
        assert (whole.gate_logits is None) == (gate == "random")


WORDS = [Word("we", 0.2, 0.4), Word("never", 0.45, 0.9), Word("give", 1.0, 1.3),
         Word("up", 1.3, 1.6), Word("dream", 2.2, 2.6)]


def _features(model: SemTalk, frames: int) -> SpeechFeatures:
    rng = np.random.default_rng(3)
    config = model.release.sparse.config
    rows = -(-frames // 4)
    return SpeechFeatures(
        speech=rng.standard_normal((frames, config.speech_dim)).astype(np.float32),
        beat=rng.random((frames, model.release.base.config.beat_dim)).astype(np.float32),
        word_ids=rng.integers(3, config.vocab_size, frames).astype(np.int32),
        sentence=rng.standard_normal((rows, config.sentence_dim)).astype(np.float32),
        emotion=rng.standard_normal((rows, config.emotion_dim)).astype(np.float32), hop=4,
        words=WORDS)


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("scale", [1.0, 0.0, 1e6])
def test_window_runs_only_the_heads_fusion_reads(
        tiny_release: Path, monkeypatch: pytest.MonkeyPatch, scale: float,
        parallel: bool) -> None:
    """The sparse body branch and heads run only when a token takes the sparse codes, the base
    body heads only when a token keeps them; the fused codes are those of both models in full,
    on one lane or two."""
    model = SemTalk.from_pretrained(tiny_release)
    sparse, base = model.release.sparse, model.release.base
    features = _features(model, 100)
    starts = window_starts(features.num_frames, model.window)
    padded = starts[-1] + model.window
    inputs = _padded_inputs(features, padded, starts, model.device)
    edit = psi_edit(Emphasis(scale=scale), features.words, padded // 4)
    seed = model.codec.first_seed(model._neutral)
    speaker = torch.tensor([1])
    sparse_encoded: list[int] = []
    heads: dict[str, list[BodyPart]] = {"base": [], "sparse": []}
    encode = sparse.encode_trunk
    base_codes, sparse_codes = base.predict_codes, sparse.predict_codes
    monkeypatch.setattr(sparse, "encode_trunk", lambda *args, **kwargs: (
        sparse_encoded.append(1), encode(*args, **kwargs))[1])
    monkeypatch.setattr(base, "predict_codes", lambda encoding, parts=None: (
        heads["base"].extend(parts), base_codes(encoding, parts))[1])
    monkeypatch.setattr(sparse, "predict_codes", lambda features, sc, parts=None: (
        heads["sparse"].extend(parts), sparse_codes(features, sc, parts))[1])
    with torch.inference_mode(), Lanes(parallel) as lanes:
        seedless = list(model._seedless(inputs, starts, speaker, edit))[1]  # window at 60
        fused, psi, raw, next_seed = model._window(seedless, seed, lanes, model._neutral,
                                                       next_seed=True)
    monkeypatch.undo()
    with torch.inference_mode():  # the reference: both models in full, then E(q^b, q^s; ψ)
        batch = seedless.inputs
        assert torch.equal(batch.motion[0, :4], seed) and not batch.motion[0, 4:].any()
        base_out = base(batch)
        full = sparse(batch, base_features=base_out.features,
                      psi_edit=lambda p: edit.apply(p, 15))
        expected = fuse_codes({p: c[0] for p, c in base_out.codes().items()},
                              {p: c[0] for p, c in full.codes().items()}, full.psi[0],
                              model.beta)
        decoded = model.release.tokenizer.decode_parts({p: c[None] for p, c in expected.items()})
    assert fused.keys() == expected.keys()
    for part in fused:
        assert torch.equal(fused[part], expected[part])
    torch.testing.assert_close(next_seed, model.codec.next_seed(
        {p: x[0] for p, x in decoded.items()}, model._neutral))
    np.testing.assert_allclose(psi, full.psi[0].numpy(), atol=1e-6)  # ψ of 16 windows at once
    np.testing.assert_allclose(psi, np.clip(scale * raw, 0, 1), rtol=1e-6)  # ψ' from ψ
    chosen = full.psi[0] > model.beta
    assert bool(chosen.any()) == (scale != 0.0)  # random weights: some token above β
    assert len(sparse_encoded) == int(bool(chosen.any()))
    assert sorted(heads["sparse"]) == (sorted(sparse.parts) if chosen.any() else [])
    body_kept = not bool(chosen.all())
    assert sorted(heads["base"]) == sorted(base.parts if body_kept else [BodyPart.FACE])
    assert body_kept == (scale != 1e6)


def test_fusion_without_base_body_codes_needs_every_token_sparse() -> None:
    codes = {part: torch.full((3, 2), k) for k, part in enumerate(BodyPart)}
    sparse = {part: codes[part] + 10 for part in (BodyPart.UPPER, BodyPart.HANDS,
                                                  BodyPart.LOWER)}
    face_only = {BodyPart.FACE: codes[BodyPart.FACE]}
    fused = fuse_codes(face_only, sparse, torch.tensor([0.9, 0.8, 0.7]))
    assert torch.equal(fused[BodyPart.FACE], codes[BodyPart.FACE])
    assert all(torch.equal(fused[p], sparse[p]) for p in sparse)
    with pytest.raises(ValueError, match="a token keeps them"):
        fuse_codes(face_only, sparse, torch.tensor([0.9, 0.2, 0.7]))
    with pytest.raises(ValueError, match="none given"):
        fuse_codes({BodyPart.UPPER: codes[BodyPart.UPPER]}, {}, torch.tensor([0.9, 0.2, 0.7]))


def test_two_lanes_give_the_same_motion(tiny_release: Path) -> None:
    model = SemTalk.from_pretrained(tiny_release)
    features = _features(model, 190)
    threads = torch.get_num_threads()
    for scale in (1.0, 1e6):
        model.parallel = False
        one = model.generate_features(features, emphasis=Emphasis(scale=scale))
        model.parallel = True
        two = model.generate_features(features, emphasis=Emphasis(scale=scale))
        assert torch.get_num_threads() == threads
        np.testing.assert_array_equal(one.token_psi, two.token_psi)
        np.testing.assert_array_equal(one.sparse_tokens, two.sparse_tokens)
        np.testing.assert_array_equal(one.motion.poses, two.motion.poses)
        np.testing.assert_array_equal(one.motion.trans, two.motion.trans)


def test_generation_fast_path_gives_the_plain_motion(tiny_release: Path) -> None:
    model = SemTalk.from_pretrained(tiny_release)
    reference = SemTalk.from_pretrained(tiny_release, fast=False)
    assert isinstance(model.release.base.code_heads, StackedCodeHeads)
    assert type(reference.release.base.code_heads) is CodeHeads
    features = _features(model, 190)
    fast = model.generate_features(features)
    plain = reference.generate_features(features)
    np.testing.assert_allclose(fast.token_psi, plain.token_psi, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(fast.sparse_tokens, plain.sparse_tokens)
    np.testing.assert_allclose(fast.motion.poses, plain.motion.poses, rtol=1e-4, atol=1e-5)
    off = model.generate_features(features, emphasis=Emphasis(scale=0.0))
    assert not off.sparse_tokens.any()


def test_stacked_code_heads_are_the_per_part_heads() -> None:
    from semtalk.inference.heads import can_stack, run_stacked, stack_weights

    torch.manual_seed(0)
    heads = [ResidualCodeHeads(16, 24, 10, 4, 2, 4, 32, 0.1).eval() for _ in range(3)]
    x, cond = torch.randn(3, 2, 5, 16), torch.randn(3, 2, 12, 16)
    assert can_stack(heads)
    assert not can_stack(heads[:1])
    assert not can_stack([*heads, ResidualCodeHeads(16, 24, 10, 3, 2, 4, 32, 0.1)])
    with torch.inference_mode():
        logits, latents = run_stacked(stack_weights(heads), x, cond)
        expected = [head(x[k], cond[k]) for k, head in enumerate(heads)]
    assert logits.shape == (3, 2, 5, 4, 10) and latents.shape == (3, 2, 4, 5, 16)
    for k, (want_logits, want_latents) in enumerate(expected):
        torch.testing.assert_close(logits[k], want_logits, **TOLERANCE)
        torch.testing.assert_close(latents[k], want_latents, **TOLERANCE)
        assert torch.equal(logits[k].argmax(-1), want_logits.argmax(-1))


def test_heads_that_do_not_stack_are_prepared_one_by_one() -> None:
    """Code heads of different layouts stay a :class:`CodeHeads` of prepared heads, with the
    plain heads' results."""
    from semtalk.inference.attention import FastDecoder

    torch.manual_seed(0)
    parts = (BodyPart.UPPER, BodyPart.HANDS)
    plain = CodeHeads({BodyPart.UPPER.value: ResidualCodeHeads(16, 24, 10, 4, 2, 4, 32, 0.1),
                       BodyPart.HANDS.value: ResidualCodeHeads(16, 24, 10, 3, 2, 4, 32, 0.1)})
    prepared = prepare_for_inference(copy.deepcopy(plain))
    assert type(prepared) is CodeHeads
    assert isinstance(prepared[BodyPart.HANDS.value].decoders[0], FastDecoder)
    features = {part: torch.randn(2, 5, 16) for part in parts}
    conditions = {part: torch.randn(2, 12, 16) for part in parts}
    with torch.inference_mode():
        got, _ = prepared(features, conditions, parts)
        want, _ = plain.eval()(features, conditions, parts)
    for part in parts:
        torch.testing.assert_close(got[part], want[part], **TOLERANCE)


@pytest.mark.parametrize("packed", [False, True], ids=["batched", "packed"])
def test_stacked_heads_of_some_parts_are_taken_from_one_stack(
        packed: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Any subset of a model's heads runs from the one cached stack of all of them: a view
    for neighbours, a copy otherwise, with the same results as those heads alone; the same
    with per-head packed products (the packed weights shared, never copied)."""
    from semtalk.inference import packed as packed_module
    from semtalk.inference.heads import run_stacked, stack_weights, take_heads

    if packed and not packed_module.packing_supported():
        pytest.skip("this PyTorch has no oneDNN packed linear")
    monkeypatch.setattr(packed_module, "MIN_PACKED_WEIGHTS", 0 if packed else 1 << 62)
    torch.manual_seed(1)
    heads = [ResidualCodeHeads(16, 24, 10, 3, 1, 4, 32, 0.1).eval() for _ in range(4)]
    x, cond = torch.randn(4, 1, 5, 16), torch.randn(4, 1, 12, 16)
    every = stack_weights(heads)
    with torch.inference_mode():
        for index in ([1, 2, 3], [3, 0], [2]):
            taken = take_heads(every, index)
            shares = taken.memory.bias.data_ptr() == every.memory.bias[index[0]].data_ptr()
            assert shares == (index == list(range(index[0], index[0] + len(index))))
            if packed:
                assert taken.memory.weight is None
                assert all(p is every.memory.products[k]
                           for p, k in zip(taken.memory.products, index, strict=True))
            else:
                assert taken.memory.products is None
                assert (taken.memory.weight.data_ptr()
                        == every.memory.weight[index[0]].data_ptr()) == shares
            logits, _ = run_stacked(taken, x[index], cond[index])
            alone, _ = run_stacked(stack_weights([heads[k] for k in index]), x[index],
                                   cond[index])
            torch.testing.assert_close(logits, alone, **TOLERANCE)
        with pytest.raises(ValueError, match="at least one"):
            take_heads(every, [])


def test_prepared_generator_runs_any_parts_from_its_stacked_heads() -> None:
    """Every subset of parts (one part too) runs from the stacked heads, with the plain heads'
    codes; the stacked heads hold no per-part heads."""
    base, _ = _models()
    base.eval()
    prepared = prepare_for_inference(copy.deepcopy(base))
    assert isinstance(prepared.code_heads, StackedCodeHeads)
    assert not list(prepared.code_heads.children())
    inputs = _inputs()
    with torch.inference_mode():
        encoding = base.encode(inputs)
        for parts in ((BodyPart.FACE,), (BodyPart.HANDS, BodyPart.LOWER),
                      (BodyPart.LOWER, BodyPart.FACE), base.parts):
            got, _ = prepared.predict_codes(encoding, parts)
            want, _ = base.predict_codes(encoding, parts)
            assert got.keys() == want.keys() == set(parts)
            for part in parts:
                torch.testing.assert_close(got[part], want[part], **TOLERANCE)
                assert torch.equal(got[part].argmax(-1), want[part].argmax(-1))


def test_bf16_precision_is_opt_in_and_close(tiny_release: Path) -> None:
    """bf16 changes the output (it is not a speed path): the default stays float32, and bf16
    runs every window and stays close to it."""
    exact = SemTalk.from_pretrained(tiny_release)
    assert exact.precision == "fp32"
    assert next(exact.release.base.parameters()).dtype == torch.float32
    fast = SemTalk.from_pretrained(tiny_release, precision="bf16")
    assert next(fast.release.sparse.parameters()).dtype == torch.bfloat16
    assert next(fast.release.tokenizer.parameters()).dtype == torch.float32
    from semtalk.inference.packed import PackedLinear

    assert not any(isinstance(m, PackedLinear) for m in fast.release.base.modules())  # fp32 only
    assert any(isinstance(m, PackedLinear) for m in exact.release.base.modules()) == (
        any(isinstance(m, PackedLinear) for m in exact.release.sparse.modules()))
    with pytest.raises(ValueError, match="another precision"):
        SemTalk(fast.release, None, precision="fp32")
    features = _features(exact, 190)
    a = exact.generate_features(features)
    b = fast.generate_features(features)
    assert b.num_frames == a.num_frames == 190 and b.psi.dtype == np.float32
    assert np.isfinite(b.motion.poses).all()
    np.testing.assert_allclose(b.token_psi_model, a.token_psi_model, atol=0.03)
    assert not np.array_equal(b.motion.poses, a.motion.poses)  # it really ran in bf16
    with pytest.raises(ValueError, match="precision must be one of"):
        SemTalk.from_pretrained(tiny_release, precision="fp8")


def test_seed_independent_work_in_any_batch_size_gives_the_same_motion(
        tiny_release: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ψ, f_t and the base audio latents are computed ahead for several windows at once; the
    batch size (here 2 and 16 over 5 windows) changes nothing but float rounding."""
    import semtalk.generation.engine as engine

    model = SemTalk.from_pretrained(tiny_release)
    features = _features(model, 250)
    assert len(window_starts(features.num_frames, model.window)) == 5
    whole = model.generate_features(features)
    monkeypatch.setattr(engine, "SEEDLESS_BATCH", 2)
    batches: list[int] = []
    score = model.release.sparse.score
    monkeypatch.setattr(model.release.sparse, "score", lambda batch, psi_edit=None: (
        batches.append(batch.speech.shape[0]), score(batch, psi_edit=psi_edit))[1])
    pairs = model.generate_features(features)
    assert batches == [2, 2, 1]
    np.testing.assert_allclose(pairs.token_psi, whole.token_psi, atol=1e-6)
    np.testing.assert_array_equal(pairs.sparse_tokens, whole.sparse_tokens)
    np.testing.assert_allclose(pairs.motion.poses, whole.motion.poses, atol=1e-4)


def test_head_groups_cover_each_models_parts_in_neighbouring_stacks() -> None:
    """Every part a window needs gets its heads from exactly the models fusion reads, each
    group a run of neighbouring parts (a view of the cached stack)."""
    from semtalk.inference.window import head_groups

    face, upper, hands, lower = BodyPart.FACE, BodyPart.UPPER, BodyPart.HANDS, BodyPart.LOWER
    body = (upper, hands, lower)
    cases = {"both": (body, body), "sparse only": ((), body), "base only": (body, ())}
    orders = {"base": (face, *body), "sparse": body}
    for name, (base_body, sparse_parts) in cases.items():
        groups = head_groups(base_body, sparse_parts)
        covered: dict[str, list[BodyPart]] = {"base": [], "sparse": []}
        for model, parts in groups.values():
            order = orders[model]
            first = order.index(parts[0])
            assert parts == order[first:first + len(parts)], name  # neighbours
            covered[model] += parts
        assert sorted(covered["base"]) == sorted((face, *base_body)), name
        assert sorted(covered["sparse"]) == sorted(sparse_parts), name
        assert len(groups) == (2 if base_body and sparse_parts else 3 if sparse_parts else 2)


def test_face_branch_keeps_its_first_layer_per_speaker() -> None:
    """The face decoder's target (speaker + positions) is the same in every window: the
    prepared face branch computes its first layer's self-attention and query once per speakers
    and length, exactly the per-window values, equal to the plain branch's output."""
    from semtalk.inference.prepare import FastFaceBranch

    base, _ = _models()
    plain = base.face.eval()
    face = prepare_for_inference(copy.deepcopy(plain))
    assert isinstance(face, FastFaceBranch)
    torch.manual_seed(5)
    seed, audio = torch.randn(1, 16, 32), torch.randn(1, 16, 32)
    layer = face.decoder.layers[0]
    calls: list[int] = []
    layer.norm1.register_forward_hook(lambda *_: calls.append(1))  # closes the self-attention
    with torch.inference_mode():
        outputs = {spk: face(seed, audio, torch.tensor([spk])) for spk in (0, 1, 0)}
        assert len(calls) == 2  # once per speaker
        memory = torch.cat([audio, face.seed(seed)], dim=-1)
        fresh = face.out(face.decoder.decode(face.query(torch.tensor([0]), 16),
                                             face.decoder.keys_values(memory)))
        assert torch.equal(outputs[0], fresh)  # the kept first layer is the computed one
        assert not torch.allclose(outputs[0], outputs[1])
        for spk in (0, 1):
            torch.testing.assert_close(outputs[spk], plain(seed, audio, torch.tensor([spk])),
                                       **TOLERANCE)
