"""``memory_position``: the face decoder and the word-hints decoder can tell the audio frames
apart only when their memory carries positions (cross-attention is blind to the memory's order).
"""

from __future__ import annotations

import torch

from semtalk.models.base_generator import FaceBranch
from semtalk.models.body_branch import BodyBranch
from semtalk.modules.temporal import frames_to_tokens
from semtalk.official.generators import official_base_config, official_sparse_config
from semtalk.training.presets import load_preset

SIZES = load_preset("base_generator", "tiny").sizes
LATENT = SIZES.latent


def test_without_positions_the_memories_order_is_invisible() -> None:
    """The official memories: shuffling the audio frames (and the seed's with them) changes
    neither the face branch's nor the word hints' output, so no frame can be aligned."""
    torch.manual_seed(0)
    face = FaceBranch(SIZES, 4, 64, dropout=0.0).eval()
    body = BodyBranch(SIZES, 4, 64, dropout=0.0).eval()
    seed, audio = torch.randn(2, 32, LATENT), torch.randn(2, 32, LATENT)
    speaker = torch.tensor([0, 3])
    order = torch.randperm(32)
    with torch.no_grad():
        torch.testing.assert_close(face(seed, audio, speaker),
                                   face(seed[:, order], audio[:, order], speaker))
        plain, shuffled = body(seed, speaker, audio), body(seed, speaker, audio[:, order])
    for part, feature in plain.items():
        torch.testing.assert_close(feature, shuffled[part], msg=part.value)


def _alignment_error(memory_position: bool, steps: int = 150) -> float:
    """Trains a face branch to output, per token, the mean of its own 4 audio frames (what a
    jaw following the speech needs); returns the held-out error / the target's variance."""
    torch.manual_seed(0)
    face = FaceBranch(SIZES, 1, 16, dropout=0.0, memory_position=memory_position)
    optimiser = torch.optim.Adam(face.parameters(), lr=3e-3)
    speaker = torch.zeros(16, dtype=torch.long)

    def batch() -> tuple[torch.Tensor, torch.Tensor]:
        audio = torch.randn(16, 16, LATENT)
        return audio, frames_to_tokens(audio[..., :1], 4)

    seed = torch.zeros(16, 16, LATENT)
    for _ in range(steps):
        audio, target = batch()
        loss = (face(seed, audio, speaker)[..., :1] - target).pow(2).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    audio, target = batch()
    with torch.no_grad():
        error = (face(seed, audio, speaker)[..., :1] - target).pow(2).mean()
    return float(error / target.var())


def test_with_positions_the_face_can_follow_its_own_audio_frames() -> None:
    aligned, blind = _alignment_error(True), _alignment_error(False)
    assert blind > 0.6  # without positions: not much better than the mean
    assert aligned < 0.7 * blind


def test_memory_position_adds_no_parameters_and_is_off_in_the_official_family() -> None:
    """A switch of the computation only: the same state dict either way, so official weights
    load into the official configs, which keep the official (position-free) memories."""
    assert not official_base_config().memory_position
    assert not official_sparse_config().memory_position
    assert load_preset("base_generator", "demo").memory_position
    keys = {flag: set(FaceBranch(SIZES, 4, 64, 0.0, flag).state_dict())
            | set(BodyBranch(SIZES, 4, 64, 0.0, memory_position=flag).state_dict())
            for flag in (False, True)}
    assert keys[False] == keys[True]
