"""SMPL-X mesh previews: what is drawn where, the clip's inputs honoured, video, failures."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
import torch
from matplotlib.colors import to_rgb

from semtalk.body.parts import HEAD, NUM_JOINTS, BodyPart
from semtalk.body.skeleton import BuiltinSkeleton
from semtalk.render import count_frames, render_preview, video_info
from semtalk.render import mesh as mesh_module
from semtalk.render.mesh import (
    RENDER_EXTRA,
    MeshRenderError,
    MeshView,
    joint_parts,
    mesh_support_error,
    vertex_colours,
)
from semtalk.render.preview import PreviewFrames
from semtalk.render.style import BACKGROUND, PART_COLOURS

pytest.importorskip("smplx")
pytest.importorskip("pyrender", reason=f"the mesh preview needs pyrender: {RENDER_EXTRA}")

SIZE = (320, 240)
LEFT_SHOULDER, SPINE2, LEFT_ELBOW, LEFT_WRIST = 16, 6, 18, 20
BACKGROUND_RGB = np.round(np.array(to_rgb(BACKGROUND)) * 255).astype(int)


@pytest.fixture(scope="module", autouse=True)
def egl() -> None:
    """Skip (saying why) only where no OpenGL context can be made at all."""
    problem = mesh_support_error()
    if problem is not None:
        pytest.skip(f"no headless OpenGL context here: {problem}")


def arm_poses(num_frames: int) -> np.ndarray:
    """``[T, 165]``: the left arm swings from hanging down (frame 0) to horizontal (last)."""
    poses = np.zeros((num_frames, NUM_JOINTS, 3), np.float32)
    poses[:, LEFT_SHOULDER, 2] = np.linspace(-1.3, 0.0, num_frames)
    poses[:, LEFT_SHOULDER + 1, 2] = 1.3  # right arm hangs still
    return poses.reshape(num_frames, -1)


def frames_of(view: MeshView, frames: list[int]) -> tuple[list[np.ndarray], PreviewFrames]:
    """The ``[H, W, 3]`` layout images of ``frames`` (no encoding), and the layout."""
    layout = PreviewFrames(view, view.num_frames, 30, SIZE, [], None, None)
    try:
        images = [np.asarray(layout.render(t))[..., :3].astype(int).copy() for t in frames]
    finally:
        view.close()
    return images, layout


def pixel(layout: PreviewFrames, xy: np.ndarray) -> tuple[int, int]:
    """``(row, column)`` of the frame pixel showing the front-view point ``xy`` (metres)."""
    x, y = layout.fig.axes[0].transData.transform(np.asarray(xy[:2], float))
    return int(SIZE[1] - y), int(x)


def is_background(rgb: np.ndarray) -> np.ndarray:
    return (np.abs(rgb - BACKGROUND_RGB) <= 2).all(axis=-1)


def test_surface_colours_follow_the_stick_figure_palette(tiny_smplx_model) -> None:
    parts = joint_parts()
    assert parts[LEFT_WRIST] is BodyPart.HANDS and parts[HEAD] is BodyPart.FACE
    assert parts[LEFT_ELBOW] is BodyPart.UPPER and parts[4] is BodyPart.LOWER
    colours = vertex_colours(tiny_smplx_model.skinning_weights)
    hand = np.nonzero(tiny_smplx_model.skinning_weights[:, 30] > 0.5)[0]  # a finger joint
    lighten = mesh_module.SURFACE_LIGHTEN
    expected = (1 - lighten) * np.array(to_rgb(PART_COLOURS[BodyPart.HANDS])) + lighten
    np.testing.assert_allclose(colours[hand], np.broadcast_to(expected, (len(hand), 3)))


def test_body_is_drawn_where_it_stands_and_background_elsewhere(tiny_smplx_model) -> None:
    poses = arm_poses(2)
    view = MeshView.from_motion(tiny_smplx_model, poses)
    (image,), layout = frames_of(view, [0])
    joints = BuiltinSkeleton().joints(torch.from_numpy(poses[:1]))[0].numpy()
    chest, head = image[pixel(layout, joints[SPINE2])], image[pixel(layout, joints[HEAD])]
    assert not is_background(chest) and chest[2] > chest[0] + 40  # upper body: blue
    assert not is_background(head) and head[0] > head[1] + 40  # face: pink
    beside = joints[SPINE2] + [0.45, 0.0, 0.0]  # beyond the hanging left hand
    assert is_background(image[pixel(layout, beside)])
    body = image[int(0.1 * SIZE[1]):int(0.74 * SIZE[1])]  # between the clock and the word
    share = (~is_background(body)).mean()
    assert 0.03 < share < 0.4, share  # a figure, not an empty or flooded frame
    assert (body[~is_background(body)].std(axis=0) > 10).all()  # shaded and coloured


def test_raised_arm_changes_pixels_on_its_side_only(tiny_smplx_model) -> None:
    poses = arm_poses(3)
    view = MeshView.from_motion(tiny_smplx_model, poses)
    (down, up), layout = frames_of(view, [0, 2])
    changed = (np.abs(down - up) > 40).any(axis=-1)
    assert changed.sum() > 150
    cols = np.nonzero(changed)[1]
    midline = pixel(layout, np.zeros(2))[1]
    assert (cols > midline).mean() > 0.97  # the subject's left arm is on the viewer's right
    joints = BuiltinSkeleton().joints(torch.from_numpy(poses))
    raised_elbow = pixel(layout, joints[2, LEFT_ELBOW].numpy())
    assert is_background(down[raised_elbow]) and not is_background(up[raised_elbow])
    hanging_elbow = pixel(layout, joints[0, LEFT_ELBOW].numpy())
    assert not is_background(down[hanging_elbow]) and is_background(up[hanging_elbow])


def test_trans_betas_and_expressions_are_honoured(tiny_smplx_model) -> None:
    rng = np.random.default_rng(0)
    poses = (0.2 * rng.standard_normal((5, 165))).astype(np.float32)
    trans = np.cumsum(0.05 * rng.standard_normal((5, 3)), axis=0)
    betas = np.zeros(300)
    betas[0] = 1.0  # +10 % body size
    expressions = np.zeros((5, 100))
    expressions[:, 0] = 1.0  # face 5 cm forward
    view = MeshView.from_motion(tiny_smplx_model, poses, trans, betas, expressions,
                                chunk_frames=2)
    expected = tiny_smplx_model.vertices(torch.from_numpy(poses), torch.from_numpy(trans),
                                         torch.from_numpy(betas), torch.from_numpy(expressions))
    plain = tiny_smplx_model.vertices(torch.from_numpy(poses))
    for t in range(5):
        np.testing.assert_allclose(view.clip.frame(t), expected[t].numpy(), atol=1e-5)
        assert np.abs(view.clip.frame(t) - plain[t].numpy()).max() > 0.05
    xmin, xmax, _, ymax = view.extent()
    verts = expected.numpy()
    assert (xmin, xmax, ymax) == pytest.approx(
        (verts[..., 0].min(), verts[..., 0].max(), verts[..., 1].max()), abs=1e-5)


def test_uncached_vertices_draw_the_same(tiny_smplx_model) -> None:
    poses = arm_poses(4)
    (cached,), _ = frames_of(MeshView.from_motion(tiny_smplx_model, poses), [2])
    view = MeshView.from_motion(tiny_smplx_model, poses, chunk_frames=1, cache_bytes=0)
    (computed,), _ = frames_of(view, [2])
    assert view.clip._chunks.keys() == {2}  # one chunk held at a time
    assert np.abs(cached - computed).max() <= 2


def test_video_has_every_frame_and_the_audio(tiny_smplx_model, tmp_path) -> None:
    poses = arm_poses(12)
    audio = (0.1 * np.random.default_rng(0).standard_normal(16_000 * 12 // 30)).astype(
        np.float32)
    calls = []
    out = render_preview(MeshView.from_motion(tiny_smplx_model, poses), tmp_path / "mesh.mp4",
                         audio=audio, psi=np.linspace(0, 1, 12), words=[("hi", 0.0, 0.2)],
                         size=SIZE, title="mesh", progress=lambda d, t: calls.append(d))
    info = video_info(out)
    assert (info.width, info.height, info.fps, info.audio_codec) == (*SIZE, 30.0, "aac")
    assert count_frames(out) == 12 and calls == list(range(1, 13))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mesh.mp4"]


def test_missing_pyrender_says_what_to_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "pyrender", None)  # import fails
    mesh_support_error.cache_clear()
    try:
        problem = mesh_support_error()
    finally:
        mesh_support_error.cache_clear()
    assert isinstance(problem, ImportError)
    assert "pyrender" in str(problem) and "pip install 'semtalk[render]'" in str(problem)


def test_egl_is_the_default_platform_and_a_users_choice_stays(monkeypatch) -> None:
    monkeypatch.delenv("PYOPENGL_PLATFORM", raising=False)
    mesh_module.import_pyrender()
    assert os.environ["PYOPENGL_PLATFORM"] == "egl"
    monkeypatch.setenv("PYOPENGL_PLATFORM", "osmesa")
    mesh_module.import_pyrender()
    assert os.environ["PYOPENGL_PLATFORM"] == "osmesa"


def test_failing_opengl_context_names_the_platform(monkeypatch) -> None:
    import pyrender

    def broken(*args, **kwargs):
        raise RuntimeError("eglInitialize failed\n(simulated)")

    monkeypatch.setattr(pyrender, "OffscreenRenderer", broken)
    monkeypatch.setenv("PYOPENGL_PLATFORM", "egl")
    with pytest.raises(MeshRenderError, match=r"PYOPENGL_PLATFORM=egl .*eglInitialize failed "
                                              r"\(simulated\).*semtalk\[render\]"):
        mesh_module.open_renderer(8, 8)


def test_bad_meshes_are_refused() -> None:
    colours = np.ones((4, 3))

    def verts(start: int, stop: int) -> np.ndarray:
        return np.zeros((stop - start, 4, 3))

    with pytest.raises(ValueError, match="face indices"):
        MeshView(verts, 2, np.array([[0, 1, 4]]), colours)
    with pytest.raises(ValueError, match=r"vertices\(0, 2\) must be \[2, 5, 3\]"):
        MeshView(verts, 2, np.array([[0, 1, 2]]), np.ones((5, 3)))
    with pytest.raises(ValueError, match="NaN"):
        MeshView(lambda a, b: np.full((b - a, 4, 3), np.nan), 2, np.array([[0, 1, 2]]),
                 colours)
