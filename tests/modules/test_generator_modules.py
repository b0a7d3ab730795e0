"""Generator building blocks: positional encoding, fusion, seed encoder, gate, C2F, code heads."""

from __future__ import annotations

import math

import pytest
import torch

from semtalk.body.parts import BodyPart
from semtalk.modules.attention import PeriodicPositionalEncoding
from semtalk.modules.audio_encoder import RhythmAudioEncoder
from semtalk.modules.coarse2fine import CoarseToFine
from semtalk.modules.code_heads import ResidualCodeHeads
from semtalk.modules.fusion import ChannelFusion
from semtalk.modules.gate import SemanticGate
from semtalk.modules.motion_encoder import SeedMotionEncoder
from semtalk.modules.temporal import TemporalDownsample, frames_to_tokens, tokens_to_frames

FACE, UPPER, HANDS, LOWER = BodyPart.FACE, BodyPart.UPPER, BodyPart.HANDS, BodyPart.LOWER


def test_positional_encoding_values_and_period() -> None:
    pe = PeriodicPositionalEncoding(8, period=4, dropout=0.0)
    out = pe(torch.zeros(1, 10, 8))[0]
    assert torch.equal(out[:4], out[4:8]) and torch.equal(out[:2], out[8:10])
    assert out[1, 0].item() == pytest.approx(math.sin(1.0))
    assert out[1, 1].item() == pytest.approx(math.cos(1.0))
    assert out[2, 2].item() == pytest.approx(math.sin(2.0 / 10000 ** (2 / 8)))
    shorter = pe(torch.zeros(1, 2, 8))[0]
    assert torch.equal(shorter, out[:2])  # short inputs use the first positions
    x = torch.randn(2, 4, 8)
    torch.testing.assert_close(pe(x) - x, pe(torch.zeros(2, 4, 8)))
    with pytest.raises(ValueError, match="even dim"):
        PeriodicPositionalEncoding(7, period=4)


def test_channel_fusion_is_a_per_channel_convex_mix() -> None:
    torch.manual_seed(0)
    fusion = ChannelFusion(6)
    a, b = torch.randn(3, 5, 6), torch.randn(3, 5, 6)
    weights = fusion.weights(a, b)
    assert weights.shape == (3, 5, 6, 2)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 5, 6))
    out = fusion(a, b)
    low, high = torch.minimum(a, b), torch.maximum(a, b)
    assert ((out >= low - 1e-6) & (out <= high + 1e-6)).all()
    torch.testing.assert_close(fusion(a, a), a)
    with torch.no_grad():  # a bias that prefers the first stream selects it
        fusion.mix.weight.zero_()
        fusion.mix.bias.copy_(torch.tensor([30.0, -30.0]).repeat(6))
    torch.testing.assert_close(fusion(a, b), a)
    with pytest.raises(ValueError, match="ChannelFusion"):
        fusion(a, b[..., :5])


def test_seed_encoder_ignores_masked_entries_even_nan() -> None:
    torch.manual_seed(0)
    encoder = SeedMotionEncoder(10, 8, layers=2, init_scale=0.1).eval()
    motion = torch.randn(2, 12, 10)
    mask = torch.rand(2, 12, 10) < 0.5
    reference = encoder(motion, mask)
    assert reference.shape == (2, 12, 8)
    poisoned = motion.clone()
    poisoned[mask] = float("nan")
    assert torch.equal(encoder(poisoned, mask), reference)
    visible = (~mask).nonzero()[0].tolist()
    poisoned[tuple(visible)] += 1.0
    assert not torch.allclose(encoder(poisoned, mask), reference)


def test_rhythm_audio_encoder_and_temporal_helpers() -> None:
    torch.manual_seed(0)
    encoder = RhythmAudioEncoder(speech_dim=12, beat_dim=4, hidden_dim=16, out_dim=8).eval()
    speech, fused = encoder(torch.randn(2, 16, 12), torch.randn(2, 16, 4))
    assert speech.shape == fused.shape == (2, 16, 8)
    x = torch.arange(8.0).reshape(1, 8, 1)
    assert frames_to_tokens(x, 4).flatten().tolist() == [1.5, 5.5]
    assert tokens_to_frames(torch.tensor([[1.0, 2.0]]), 2).tolist() == [[1.0, 1.0, 2.0, 2.0]]
    assert TemporalDownsample(3)(torch.randn(2, 8, 3)).shape == (2, 4, 3)
    with pytest.raises(ValueError, match="even length"):
        TemporalDownsample(3)(torch.randn(2, 7, 3))
    with pytest.raises(ValueError, match="groups of 4"):
        frames_to_tokens(torch.randn(1, 6, 2), 4)


def test_semantic_gate_modes() -> None:
    torch.manual_seed(0)
    fusion = torch.randn(2, 16, 8, requires_grad=True)
    learned = SemanticGate(8, 4, "learned")
    logits, psi = learned(fusion)
    assert logits is not None and logits.shape == (2, 4, 2) and psi.shape == (2, 4)
    torch.testing.assert_close(psi, logits.softmax(-1)[..., 1])
    assert torch.equal(psi > 0.5, logits.argmax(-1) == 1)
    psi.sum().backward()
    assert fusion.grad is not None

    random_gate = SemanticGate(8, 4, "random")
    assert not list(random_gate.parameters())
    torch.manual_seed(3)
    logits, first = random_gate(fusion)
    torch.manual_seed(3)
    _, again = random_gate(fusion)
    _, other = random_gate(fusion)
    assert logits is None and not first.requires_grad
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert ((first >= 0) & (first <= 1)).all()

    logits, ones = SemanticGate(8, 4, "none")(fusion)
    assert logits is None and torch.equal(ones, torch.ones(2, 4))
    with pytest.raises(ValueError, match="gate mode"):
        SemanticGate(8, 4, "soft")


def test_gate_context_reads_exactly_its_neighbour_tokens() -> None:
    torch.manual_seed(0)
    gate = SemanticGate(8, 4, "learned", context=(3, 1)).eval()
    assert gate.context_conv is not None and gate.context_conv.kernel_size == (5,)
    fusion = torch.randn(1, 40, 8)  # 10 tokens
    logits, _ = gate(fusion)
    for changed, affected in ((5, range(4, 9)), (0, range(0, 4)), (9, range(8, 10))):
        other = fusion.clone()
        other[:, changed * 4:(changed + 1) * 4] += 1.0
        moved = (gate(other)[0] - logits).abs().amax(dim=-1)[0] > 0  # type: ignore[operator]
        # token t reads tokens t-3 .. t+1: a change at token c reaches c-1 .. c+3
        assert moved.nonzero().flatten().tolist() == list(affected), changed
    assert SemanticGate(8, 4, "learned").context_conv is None  # the paper's gate
    assert SemanticGate(8, 4, "random", context=(3, 1)).context_conv is None
    with pytest.raises(ValueError, match="gate context"):
        SemanticGate(8, 4, "learned", context=(-1, 0))


def test_coarse_to_fine_follows_its_schedule() -> None:
    torch.manual_seed(0)
    schedule = ((HANDS, ((FACE, False),)), (UPPER, ((HANDS, True),)))
    c2f = CoarseToFine(schedule, dim=8, heads=2, feedforward=16, layers=1, dropout=0.0).eval()
    features = {part: torch.randn(2, 4, 8) for part in BodyPart}
    refined = c2f(features)
    assert torch.equal(refined[FACE], features[FACE])  # not a target: unchanged
    assert torch.equal(refined[LOWER], features[LOWER])
    assert not torch.allclose(refined[HANDS], features[HANDS])
    expected_hands = c2f.decoders["hands"](features[HANDS], features[FACE])
    torch.testing.assert_close(refined[HANDS], expected_hands)
    torch.testing.assert_close(refined[UPPER],
                               c2f.decoders["upper"](features[UPPER], expected_hands))
    with pytest.raises(ValueError, match="before they are refined"):
        CoarseToFine(((UPPER, ((HANDS, True),)),), 8, 2, 16, 1, 0.0)
    with pytest.raises(ValueError, match="refined once"):
        CoarseToFine(((UPPER, ((HANDS, False),)), (UPPER, ((LOWER, False),))), 8, 2, 16, 1, 0.0)


def test_residual_code_heads_shapes_and_layer_zero() -> None:
    torch.manual_seed(0)
    heads = ResidualCodeHeads(dim=8, hidden_dim=16, codebook_size=10, num_quantizers=4,
                              layers=1, heads=2, feedforward=16, dropout=0.0).eval()
    x, cond = torch.randn(2, 4, 8), torch.randn(2, 16, 8)
    logits, latents = heads(x, cond)
    assert logits.shape == (2, 4, 4, 10) and latents.shape == (2, 4, 4, 8)
    assert torch.equal(latents[:, 0], x)  # z_0 is the part feature itself
    torch.testing.assert_close(logits[:, :, 0], heads.first_logits(x))
    assert len(heads.mixers) == 2 and len(heads.decoders) == 3
    other_logits, other_latents = heads(x, torch.randn(2, 16, 8))  # residual layers read cond
    assert torch.equal(other_logits[:, :, 0], logits[:, :, 0])
    assert not torch.allclose(other_latents[:, 1:], latents[:, 1:])
    single = ResidualCodeHeads(8, 16, 10, 1, 1, 2, 16, 0.0)
    assert single(x, cond)[0].shape == (2, 4, 1, 10)
