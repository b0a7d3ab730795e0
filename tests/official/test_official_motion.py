"""Official rotation conversions, motion vectors and test-loop arithmetic.

The generation case is teacher-forced: the golden code arrays of the official run are decoded
with the converted tokenizers and pushed through the loop's arithmetic, so no generator is
needed.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from semtalk.body import rotation as ours
from semtalk.body.parts import BodyPart
from semtalk.models.global_motion import GlobalMotionNet
from semtalk.models.rvqvae import RVQVAE
from semtalk.official import motion as om
from semtalk.official import rotation as orc
from semtalk.official import tokenizers as ot

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
FIXTURE = SHARED / "official-fixture"
MAKE = FIXTURE / "make_checkpoints.py"
GOLDEN = FIXTURE / "golden"
VQ_DIR = "weights/pretrained_vq"
FILES = [*ot.OFFICIAL_RVQ_FILES.values(), ot.OFFICIAL_GLOBAL_MOTION_FILE]
ATOL = 1e-5
POSE_ATOL = 2e-3
BODY = (BodyPart.UPPER, BodyPart.HANDS, BodyPart.LOWER)


# ------------------------------------------------------------------------------------------
# Rotations


def _random_axis_angle(count: int, max_angle: float = 3.0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    axis = torch.nn.functional.normalize(torch.randn(count, 3, generator=generator), dim=-1)
    return axis * torch.rand(count, 1, generator=generator) * max_angle


def test_official_rotations_agree_with_semtalk_rotations() -> None:
    aa = _random_axis_angle(500)
    matrix = orc.axis_angle_to_matrix(aa)
    np.testing.assert_allclose(matrix.numpy(), ours.axis_angle_to_matrix(aa).numpy(), atol=1e-5)
    assert matrix.dtype == torch.float32
    eye = torch.eye(3).expand(500, 3, 3)
    np.testing.assert_allclose((matrix @ matrix.transpose(-1, -2)).numpy(), eye.numpy(),
                               atol=1e-5)
    # The official quaternion formula loses precision near zero components: about sqrt(eps).
    np.testing.assert_allclose(orc.matrix_to_axis_angle(matrix).numpy(), aa.numpy(), atol=2e-3)
    six = orc.matrix_to_rot6d(matrix)
    np.testing.assert_allclose(six.numpy(), matrix[:, :2, :].reshape(500, 6).numpy())
    np.testing.assert_allclose(orc.rot6d_to_matrix(six).numpy(), matrix.numpy(), atol=1e-6)
    np.testing.assert_allclose(orc.rot6d_to_axis_angle(orc.axis_angle_to_rot6d(aa)).numpy(),
                               aa.numpy(), atol=2e-3)


def test_official_rotation_quirks() -> None:
    # Quaternion real part is never negative; signs come from the off-diagonals.
    q = orc.matrix_to_quaternion(orc.axis_angle_to_matrix(_random_axis_angle(200)))
    assert bool((q[:, 0] >= 0).all())
    # The identity maps to exactly zero; tiny angles use the series branch (no NaN).
    assert torch.equal(orc.matrix_to_axis_angle(torch.eye(3)), torch.zeros(3))
    tiny = torch.tensor([[1e-9, 0.0, 0.0], [0.0, 0.0, 0.0]])
    assert torch.isfinite(orc.axis_angle_to_matrix(tiny)).all()
    np.testing.assert_allclose(orc.quaternion_to_axis_angle(torch.tensor([1.0, 1e-9, 0, 0])),
                               [2e-9, 0, 0], rtol=1e-6)
    # 6D -> matrix orthonormalises rows: Gram-Schmidt on row 1, then the cross product.
    skewed = torch.tensor([2.0, 0.0, 0.0, 1.0, 3.0, 0.0])
    np.testing.assert_allclose(orc.rot6d_to_matrix(skewed).numpy(), np.eye(3), atol=1e-7)
    # A half turn about x: the sqrt formula gives x = 1, w = 0.
    half_turn = torch.diag(torch.tensor([1.0, -1.0, -1.0]))
    np.testing.assert_allclose(orc.matrix_to_axis_angle(half_turn).numpy(), [math.pi, 0, 0],
                               atol=1e-6)
    with pytest.raises(ValueError, match=r"\[\.\.\., 3, 3\]"):
        orc.matrix_to_quaternion(torch.zeros(4, 3))
    with pytest.raises(ValueError, match=r"\[\.\.\., 6\]"):
        orc.rot6d_to_matrix(torch.zeros(5))


# ------------------------------------------------------------------------------------------
# Loop arithmetic on hand-made inputs


def test_integrate_translation_follows_velocity2position() -> None:
    root = torch.tensor([[3.0, 1.0, -6.0], [6.0, 2.0, 0.0], [9.0, 3.0, 30.0]])
    trans = om.integrate_translation(root, torch.tensor([1.0, 50.0, 2.0]))
    # x_0 = start, x_t = x_{t-1} + v_{t-1} / 30; the last velocity is unused; y direct.
    np.testing.assert_allclose(trans.numpy(), [[1.0, 1.0, 2.0], [1.1, 2.0, 1.8],
                                               [1.3, 3.0, 1.8]], rtol=1e-6)
    lower = torch.zeros(3, 61)
    lower[:, 54:57] = root
    assert torch.equal(om.integrate_translation(lower, torch.tensor([1.0, 50.0, 2.0])), trans)
    with pytest.raises(ValueError, match="first_trans"):
        om.integrate_translation(root, torch.zeros(2))


def test_global_motion_input_and_inverse_layouts() -> None:
    generator = torch.Generator().manual_seed(1)
    lower = torch.randn(8, 61, generator=generator)
    inp = om.global_motion_input(lower)
    assert torch.equal(inp[:, 54:57], torch.zeros(8, 3))
    assert torch.equal(inp[:, 57:61], lower[:, 57:61])
    rows = orc.rot6d_to_matrix(lower[:, :54].reshape(8, 9, 6))
    np.testing.assert_allclose(inp[:, :54].reshape(8, 9, 6).numpy(),
                               rows[..., :2, :].reshape(8, 9, 6).numpy())
    upper, hands = torch.randn(8, 78, generator=generator), torch.randn(8, 180, generator=generator)
    face = torch.randn(8, 106, generator=generator)
    poses = om.parts_to_axis_angle(upper, hands, lower).reshape(8, 55, 3)
    assert torch.equal(poses[:, 22:25], torch.zeros(8, 3, 3))  # jaw and eyes 0 in the loop
    for part, decoded in zip(BODY, (upper, hands, lower), strict=True):
        width = 6 * len(part.joints)
        expected = orc.rot6d_to_axis_angle(decoded[:, :width].reshape(8, -1, 6))
        assert torch.equal(poses[:, list(part.joints)], expected)
    with_face = om.parts_to_axis_angle(upper, hands, lower, face=face).reshape(8, 55, 3)
    assert torch.equal(with_face[:, 22], orc.rot6d_to_axis_angle(face[:, :6]))
    assert torch.equal(with_face[:, 23:25], torch.zeros(8, 2, 3))
    seed = om.seed_from_window_decode(upper, hands, lower, torch.tensor([0.5, 1.0, -0.5]))
    assert seed.shape == (8, 337)
    assert torch.equal(seed[:, 333:337], lower[:, 57:61])  # raw contacts
    np.testing.assert_allclose(seed[:, 22 * 6:25 * 6].numpy(),
                               np.tile([1.0, 0, 0, 0, 1, 0], (8, 3)), atol=1e-7)
    with pytest.raises(ValueError, match="decoded upper"):
        om.parts_to_axis_angle(hands, hands, lower)


# ------------------------------------------------------------------------------------------
# The official generation, teacher-forced from the golden codes


def _require_fixture() -> None:
    if not (MAKE.is_file() and GOLDEN.is_dir()):
        pytest.skip(f"official fixture not found at {FIXTURE} (it lives in ../shared beside the "
                    "repository)")


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory,
              ) -> tuple[dict[BodyPart, RVQVAE], GlobalMotionNet]:
    """The four tokenizers and the global-motion net converted from the synthetic files."""
    _require_fixture()
    out = tmp_path_factory.mktemp("official")
    subprocess.run([sys.executable, str(MAKE), str(out), "--only", *FILES], check=True,
                   capture_output=True)
    digests = json.loads((out / "TENSOR_DIGESTS.json").read_text())
    golden = json.loads((GOLDEN / "checkpoints.TENSOR_DIGESTS.json").read_text())
    for name in FILES:
        key = f"{VQ_DIR}/{name}"
        if digests[key]["tensor_sha256"] != golden[key]["tensor_sha256"]:
            pytest.skip(f"{name}: regenerated tensors differ from those golden/ was computed "
                        "from (numpy or torch version); the golden arrays do not apply")

    def state(name: str) -> dict[str, torch.Tensor]:
        return torch.load(out / VQ_DIR / name, map_location="cpu",
                          weights_only=True)["model_state"]

    tokenizers = {part: ot.rvq_from_official(state(name), part)
                  for part, name in ot.OFFICIAL_RVQ_FILES.items()}
    return tokenizers, ot.global_motion_from_official(state(ot.OFFICIAL_GLOBAL_MOTION_FILE))


@pytest.fixture(scope="module")
def generation() -> dict[str, np.ndarray]:
    _require_fixture()
    arrays = {}
    for name in ("generation.npz", "generation_inputs.npz"):
        with np.load(GOLDEN / name) as data:
            arrays.update({key: data[key] for key in data.files})
    return arrays


def _t(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(array)


def _assert_same_rotations(aa: torch.Tensor, golden_aa: np.ndarray) -> None:
    """Axis-angle poses compared as rotation matrices (README §4)."""
    shape = (*aa.shape[:-1], -1, 3)
    np.testing.assert_allclose(orc.axis_angle_to_matrix(aa.reshape(shape)).numpy(),
                               orc.axis_angle_to_matrix(_t(golden_aa).reshape(shape)).numpy(),
                               rtol=0, atol=POSE_ATOL)


def test_first_window_motion_is_latent_all(generation: dict[str, np.ndarray]) -> None:
    g = generation
    motion = om.latent_all(_t(g["tar_pose"][:64]), _t(g["tar_trans"][:64]),
                           _t(g["tar_contact"][:64]))
    np.testing.assert_allclose(motion.numpy(), g["window_in_motion"][0], rtol=0, atol=ATOL)


def test_window_decodes_and_seed_rebuild(
        converted: tuple[dict[BodyPart, RVQVAE], GlobalMotionNet],
        generation: dict[str, np.ndarray]) -> None:
    tokenizers, _ = converted
    g = generation
    first_trans = _t(g["tar_trans"][0])
    windows = g["window_in_motion"].shape[0]
    for window in range(windows):
        decoded = {}
        with torch.no_grad():
            for part in BODY:
                codes = _t(g[f"fused_indices_{part.value}"][window])[None]  # batch 1, as official
                decoded[part] = tokenizers[part].decode(codes)[0]
                np.testing.assert_allclose(decoded[part].numpy(),
                                           g[f"window_decoded_{part.value}"][window],
                                           rtol=ATOL, atol=ATOL, err_msg=f"{part} {window}")
        if window + 1 < windows:
            seed = om.seed_from_window_decode(decoded[BodyPart.UPPER], decoded[BodyPart.HANDS],
                                              decoded[BodyPart.LOWER], first_trans)[-4:]
            np.testing.assert_allclose(seed.numpy(), g["window_in_motion"][window + 1, :4],
                                       rtol=0, atol=POSE_ATOL, err_msg=f"seed {window + 1}")


def test_final_decode_translation_and_poses(
        converted: tuple[dict[BodyPart, RVQVAE], GlobalMotionNet],
        generation: dict[str, np.ndarray]) -> None:
    tokenizers, global_net = converted
    g = generation
    with torch.no_grad():
        decoded = {part: tokenizers[part].decode(_t(g[f"tokens_{part.value}"])[None])[0]
                   for part in BodyPart}
    for part in BodyPart:
        np.testing.assert_allclose(decoded[part].numpy(), g[f"decoded_{part.value}"],
                                   rtol=ATOL, atol=ATOL, err_msg=part.value)
    global_in = om.global_motion_input(decoded[BodyPart.LOWER])
    np.testing.assert_allclose(global_in.numpy(), g["global_in"], rtol=ATOL, atol=ATOL)
    with torch.no_grad():
        global_out = global_net(global_in[None])[0]
    np.testing.assert_allclose(global_out.numpy(), g["global_out"], rtol=ATOL, atol=ATOL)
    trans = om.integrate_translation(global_out, _t(g["tar_trans"][0]))
    np.testing.assert_allclose(trans.numpy(), g["trans"], rtol=ATOL, atol=ATOL)
    expressions = om.decoded_expressions(decoded[BodyPart.FACE])
    np.testing.assert_allclose(expressions.numpy(), g["expressions"], rtol=ATOL, atol=ATOL)
    pose_6d = om.pose_6d_from_decoded(decoded)
    np.testing.assert_allclose(pose_6d.numpy(), g["rec_pose_6d"], rtol=0, atol=POSE_ATOL)
    poses = om.official_pose_output(pose_6d)
    np.testing.assert_allclose(poses.numpy(), g["poses"], rtol=0, atol=POSE_ATOL)
    _assert_same_rotations(poses, g["poses"])
    assert torch.equal(poses.reshape(-1, 55, 3)[:, 23:25], torch.zeros(244, 2, 3))
    # From the golden 6D pose the saved-pose conversion is the official one to the last bit.
    np.testing.assert_allclose(om.official_pose_output(_t(g["rec_pose_6d"])).numpy(), g["poses"],
                               rtol=0, atol=ATOL)
