"""Generation outputs: BEAT2 npz, ψ report JSON, ψ plot, preview video, all-or-none saving."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest
import torch

from semtalk.body.motion import Motion, read_motion_npz
from semtalk.body.parts import NUM_JOINTS
from semtalk.body.skeleton import BuiltinSkeleton
from semtalk.data.audio import num_frames_for
from semtalk.data.textgrid import Word
from semtalk.errors import DataError
from semtalk.fileio import OutputExistsError
from semtalk.generation import outputs
from semtalk.generation.engine import SemTalk
from semtalk.generation.outputs import (
    Generation,
    format_json,
    generation_json,
    motion_joints,
    preview_kind,
    save_outputs,
    write_json,
    write_npz,
    write_psi_plot,
    write_video,
)
from semtalk.render import count_frames, video_info

EMPHASIS_RGB = np.array([0xD1, 0x49, 0x5B]) / 255
SIZE = (256, 144)


def make_generation(token_psi=(0.2, 0.8, 0.6), token_psi_model=(0.2, 0.3, 0.6),
                    num_frames: int = 10, beta: float = 0.5, audio: bool = False,
                    words: list[Word] | None = None) -> Generation:
    """A hand-made generation: ``num_frames`` frames, ψ constant per 4-frame token."""
    rng = np.random.default_rng(0)
    tokens = -(-num_frames // 4)
    token_psi = np.resize(np.asarray(token_psi, np.float32), tokens)
    token_model = np.resize(np.asarray(token_psi_model, np.float32), tokens)
    poses = (0.2 * rng.standard_normal((num_frames, 165))).astype(np.float32)
    motion = Motion(poses, rng.standard_normal((num_frames, 100)),
                    np.cumsum(0.01 * rng.standard_normal((num_frames, 3)), axis=0),
                    betas=np.linspace(-1, 1, 300))
    sound = (0.1 * rng.standard_normal(num_frames * 16_000 // 30)).astype(np.float32)
    return Generation(
        motion=motion, psi=np.repeat(token_psi, 4)[:num_frames],
        psi_model=np.repeat(token_model, 4)[:num_frames], token_psi=token_psi,
        token_psi_model=token_model, sparse_tokens=token_psi > beta,
        words=words if words is not None else [Word("never", 0.1, 0.2), Word("job", 0.3, 0.7)],
        emphasis={"scale": np.float32(1.0), "emphasize": [{"phrase": "job",
                                                            "tokens": np.array([2, 3])}]},
        beta=beta, speaker=2, speaker_class=1, release="/releases/tiny",
        audio=sound if audio else None)


def emphasis_pixels(image: np.ndarray) -> int:
    rgb = image[..., :3]
    solid = np.abs(rgb - EMPHASIS_RGB).max(-1) < 0.08
    shade = np.abs(rgb - (0.25 * EMPHASIS_RGB + 0.75)).max(-1) < 0.05
    return int((solid | shade).sum())


# --- JSON ----------------------------------------------------------------------------------------
def test_json_has_per_frame_and_per_token_psi_choices_words_and_emphasis() -> None:
    doc = generation_json(make_generation())
    assert (doc["fps"], doc["num_frames"], doc["num_tokens"], doc["frames_per_token"]) == \
        (30, 10, 3, 4)
    assert doc["duration"] == pytest.approx(10 / 30)
    assert (doc["speaker"], doc["speaker_class"], doc["beta"]) == (2, 1, 0.5)
    assert doc["release"] == "/releases/tiny" and doc["semtalk_version"]
    assert doc["psi"] == pytest.approx([0.2] * 4 + [0.8] * 4 + [0.6] * 2)
    assert doc["psi_model"] == pytest.approx([0.2] * 4 + [0.3] * 4 + [0.6] * 2)
    assert [t["frames"] for t in doc["tokens"]] == [[0, 4], [4, 8], [8, 10]]
    assert [t["choice"] for t in doc["tokens"]] == ["base", "fused", "fused"]
    assert [t["psi_model"] for t in doc["tokens"]] == pytest.approx([0.2, 0.3, 0.6])
    assert doc["summary"]["fused_tokens"] == 2
    assert doc["summary"]["fused_fraction"] == pytest.approx(2 / 3, abs=1e-6)
    assert doc["summary"]["mean_psi"] == pytest.approx(0.52, abs=1e-6)
    # never: 0.1-0.2 s -> frames 3..6; job: 0.3-0.7 s -> frames 9..21, cut at the clip's end
    assert doc["words"] == [{"text": "never", "start": 0.1, "end": 0.2, "frames": [3, 6]},
                            {"text": "job", "start": 0.3, "end": 0.7, "frames": [9, 10]}]
    assert doc["emphasis"] == {"scale": 1.0, "emphasize": [{"phrase": "job", "tokens": [2, 3]}]}
    assert json.loads(json.dumps(doc)) == doc  # plain JSON types only


def test_word_frames_are_exact_at_whole_frame_boundaries() -> None:
    gen = make_generation(token_psi=[0.1] * 8, token_psi_model=[0.1] * 8, num_frames=30,
                          words=[Word("a", 0.7, 0.9), Word("b", 1 / 30 * 7, 1 / 30 * 9)])
    assert [w["frames"] for w in generation_json(gen)["words"]] == [[21, 27], [7, 9]]


def test_json_file_round_trips_with_input_record_and_refuses_clashing_keys(tmp_path) -> None:
    gen = make_generation()
    path = write_json(gen, tmp_path / "clip.json",
                      extra={"input": {"audio": Path("a.wav"), "words_source": "alignment"}})
    doc = json.loads(path.read_text())
    assert doc == {**generation_json(gen), "input": {"audio": "a.wav",
                                                      "words_source": "alignment"}}
    assert len(path.read_text().splitlines()) < 40  # one line per word, token and ψ array
    with pytest.raises(ValueError, match="psi"):
        write_json(gen, tmp_path / "bad.json", extra={"psi": []})
    assert not (tmp_path / "bad.json").exists()


def test_format_json_keeps_strings_with_commas_and_brackets() -> None:
    value = {"a": ["x, [1, 2]", "y"], "b": [{"c": [1, 2]}, {"d": {"e": [[1]]}}], "f": []}
    assert json.loads(format_json(value)) == value


def test_wrong_lengths_are_refused() -> None:
    gen = make_generation()
    gen.psi = gen.psi[:-1]
    with pytest.raises(ValueError, match=r"Generation\.psi must have shape \(10,\)"):
        generation_json(gen)


# --- npz -----------------------------------------------------------------------------------------
def test_npz_is_read_by_the_beat2_reader_and_has_what_the_smplx_blender_addon_needs(
        tmp_path) -> None:
    gen = make_generation()
    path = write_npz(gen, tmp_path / "clip.npz")
    motion, issues = read_motion_npz(path, strict=True)
    assert issues == []
    np.testing.assert_array_equal(motion.poses, gen.motion.poses)
    np.testing.assert_allclose(motion.trans, gen.motion.trans)
    # the add-on's animation import: np.load without pickles, these keys, str(gender),
    # int(mocap_frame_rate), poses reshaped to 55 rotations per frame
    with np.load(path) as data:
        assert set(data.files) == {"poses", "expressions", "trans", "betas", "model", "gender",
                                   "mocap_frame_rate"}
        assert str(data["gender"]) == "neutral" and str(data["model"]) == "smplx2020"
        assert int(data["mocap_frame_rate"]) == 30
        assert data["poses"].dtype == np.float32 and data["poses"][0].reshape(-1, 3).shape == \
            (NUM_JOINTS, 3)
        assert data["expressions"].shape == (10, 100) and data["expressions"].dtype == np.float64
        assert data["trans"].shape == (10, 3) and data["betas"].shape == (300,)


# --- plot and video ------------------------------------------------------------------------------
def test_psi_plot_shades_psi_above_the_generations_beta(tmp_path) -> None:
    flat = [0.6] * 8
    low = write_psi_plot(make_generation(flat, flat, 30, beta=0.7), tmp_path / "low.png")
    high = write_psi_plot(make_generation(flat, flat, 30, beta=0.5), tmp_path / "high.png")
    low_img, high_img = mpimg.imread(low), mpimg.imread(high)
    assert low_img.shape[:2] == high_img.shape[:2] == (360, 1600)
    assert emphasis_pixels(low_img) == 0
    assert emphasis_pixels(high_img) > 5000


class RecordingBody:
    """A body model that records what it was given and draws the built-in skeleton."""

    name = "recording"

    def __init__(self) -> None:
        self.calls: list[tuple[torch.Tensor, ...]] = []

    def joints(self, poses, trans=None, betas=None, expressions=None):
        self.calls.append((poses, trans, betas, expressions))
        return BuiltinSkeleton().joints(poses, trans) + 0.5


def test_body_model_drives_the_joints_with_shape_and_expressions() -> None:
    gen = make_generation()
    body = RecordingBody()
    joints = motion_joints(gen, body)
    poses, _, betas, expressions = body.calls[0]
    np.testing.assert_allclose(betas.numpy(), gen.motion.betas, rtol=1e-6)
    np.testing.assert_allclose(expressions.numpy(), gen.motion.expressions, rtol=1e-6)
    np.testing.assert_allclose(poses.numpy(), gen.motion.poses, rtol=1e-6)
    builtin = motion_joints(gen)
    assert joints.shape == builtin.shape == (10, NUM_JOINTS, 3)
    np.testing.assert_allclose(joints, builtin + 0.5, atol=1e-9)
    with pytest.raises(FileNotFoundError, match="SMPL-X model file not found"):
        motion_joints(gen, Path("no/such/SMPLX_NEUTRAL_2020.npz"))


def test_video_has_every_frame_and_the_audio(tmp_path) -> None:
    gen = make_generation(num_frames=12, audio=True)
    calls = []
    out = write_video(gen, tmp_path / "clip.mp4", size=SIZE,
                      progress=lambda done, total: calls.append(done))
    info = video_info(out)
    assert (info.width, info.height, info.fps, info.audio_codec) == (*SIZE, 30.0, "aac")
    assert count_frames(out) == 12 and calls[-1] == 12


def _no_render_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    error = ImportError("the mesh preview needs pyrender, which cannot be imported (No module "
                        "named 'pyrender'); install it with: pip install 'semtalk[render]'")
    monkeypatch.setattr("semtalk.render.mesh.mesh_support_error", lambda: error)


def test_preview_kind_picks_the_mesh_only_when_it_can(tiny_smplx_model, monkeypatch) -> None:
    builtin = BuiltinSkeleton()
    assert preview_kind("auto", None) == preview_kind("auto", builtin) == "stick"
    assert preview_kind("stick", tiny_smplx_model) == "stick"
    with pytest.raises(ValueError, match="needs an SMPL-X body model"):
        preview_kind("mesh", builtin)
    with pytest.raises(ValueError, match="one of auto, stick, mesh"):
        preview_kind("wireframe", None)
    _no_render_extra(monkeypatch)
    with pytest.warns(UserWarning, match=r"stick figure instead .*semtalk\[render\]"):
        assert preview_kind("auto", tiny_smplx_model) == "stick"
    with pytest.raises(ImportError, match=r"pip install 'semtalk\[render\]'"):
        preview_kind("mesh", tiny_smplx_model)


def test_mesh_video_of_a_generation_records_its_kind(tiny_smplx_model, tmp_path) -> None:
    pytest.importorskip("pyrender")
    from semtalk.render.mesh import mesh_support_error

    if mesh_support_error() is not None:
        pytest.skip(f"no headless OpenGL context here: {mesh_support_error()}")
    gen = make_generation(num_frames=8, audio=True)
    paths = save_outputs(gen, tmp_path, "clip", body_model=tiny_smplx_model, size=SIZE)
    doc = json.loads(paths["json"].read_text())
    assert doc["preview"] == {"kind": "mesh", "body_model": "smplx", "size": list(SIZE)}
    info = video_info(paths["video"])
    assert (info.width, info.height, info.audio_codec) == (*SIZE, "aac")
    assert count_frames(paths["video"]) == 8
    stick = save_outputs(gen, tmp_path / "stick", "clip", body_model=tiny_smplx_model,
                         preview="stick", size=SIZE)
    assert json.loads(stick["json"].read_text())["preview"]["kind"] == "stick"
    bare = save_outputs(gen, tmp_path / "bare", "clip", video=False)
    assert "preview" not in json.loads(bare["json"].read_text())


# --- all or none ---------------------------------------------------------------------------------
def test_save_outputs_writes_every_file_and_nothing_else(tmp_path) -> None:
    paths = save_outputs(make_generation(num_frames=6, audio=True), tmp_path / "out", "clip",
                         size=SIZE)
    assert {k: p.name for k, p in paths.items()} == {
        "npz": "clip.npz", "json": "clip.json", "plot": "clip_psi.png", "video": "clip.mp4"}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        p.name for p in paths.values())
    assert count_frames(paths["video"]) == 6


def test_a_failure_leaves_no_file_and_no_new_folder(tmp_path, monkeypatch) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("encoder exploded")

    monkeypatch.setattr(outputs, "write_video", broken)
    with pytest.raises(RuntimeError, match="encoder exploded"):
        save_outputs(make_generation(), tmp_path / "new" / "out", "clip")
    assert list(tmp_path.iterdir()) == []  # the folders this call made are gone again


def test_a_failure_keeps_the_previous_files(tmp_path, monkeypatch) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "clip.npz").write_bytes(b"old motion")
    (out / "other.txt").write_text("unrelated")

    def broken(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(outputs, "write_psi_plot", broken)
    with pytest.raises(KeyboardInterrupt):
        save_outputs(make_generation(), out, "clip", video=False)
    assert sorted(p.name for p in out.iterdir()) == ["clip.npz", "other.txt"]
    assert (out / "clip.npz").read_bytes() == b"old motion"


# --- a real generation ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def generated(tiny_release: Path) -> Generation:
    rng = np.random.default_rng(1)
    audio = (0.05 * rng.standard_normal(24_000)).astype(np.float32)  # 1.5 s, no words
    return SemTalk.from_pretrained(tiny_release).generate(audio, 16_000, [])


def test_generation_methods_write_the_outputs(generated: Generation, tmp_path) -> None:
    frames = num_frames_for(24_000)
    paths = generated.save(tmp_path, "clip", video=False)
    assert sorted(paths) == ["json", "npz", "plot"]
    motion, _ = read_motion_npz(paths["npz"])
    assert motion.num_frames == frames == generated.num_frames
    doc = json.loads(paths["json"].read_text())
    assert doc == generated.to_json()
    assert doc["words"] == [] and len(doc["psi"]) == frames
    assert len(doc["tokens"]) == -(-frames // 4)
    assert all((t["choice"] == "fused") == (t["psi"] > doc["beta"]) for t in doc["tokens"])
    assert doc["emphasis"]["active"] is False and doc["emphasis"]["tokens_changed"] == 0
    assert generated.plot_psi(tmp_path / "p.png").stat().st_size > 1000


def test_non_finite_motion_or_psi_is_refused_before_any_file(tmp_path) -> None:
    gen = make_generation()
    gen.motion.poses[2:4, :10] = np.nan
    with pytest.raises(DataError, match=r"clip\.npz: the generation holds NaN in 20 values "
                                        r"\(poses 20\); nothing was written"):
        save_outputs(gen, tmp_path / "out", "clip", video=False)
    gen = make_generation()
    gen.psi[0] = np.inf
    with pytest.raises(DataError, match="NaN or infinite in 1 values"):
        save_outputs(gen, tmp_path / "out", "clip", video=False)
    assert list(tmp_path.iterdir()) == []


def test_a_failing_last_rename_undoes_the_others_and_restores_old_files(tmp_path,
                                                                        monkeypatch) -> None:
    out = tmp_path / "out"
    out.mkdir()
    for name in ("clip.npz", "clip.json", "clip_psi.png"):
        (out / name).write_text(f"old {name}")
    real, renamed = os.replace, []

    def replace(src, dst):  # type: ignore[no-untyped-def]
        if Path(dst).parent == out and Path(dst).name.startswith("clip"):
            renamed.append(Path(dst).name)
            if len(renamed) == 3:  # the third output to be put in place
                raise OSError(errno.EIO, "Input/output error", str(dst))
        return real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError, match="Input/output"):
        save_outputs(make_generation(), out, "clip", video=False)
    monkeypatch.undo()
    assert sorted(p.name for p in out.iterdir()) == ["clip.json", "clip.npz", "clip_psi.png"]
    for path in out.iterdir():
        assert path.read_text() == f"old {path.name}"


def test_without_overwrite_a_file_written_meanwhile_wins(tmp_path, monkeypatch) -> None:
    out = tmp_path / "out"
    real_plot = outputs.write_psi_plot

    def plot_while_another_run_finishes(gen, path, **kwargs):  # type: ignore[no-untyped-def]
        (out / "clip.json").write_text("the other run's")
        return real_plot(gen, path, **kwargs)

    monkeypatch.setattr(outputs, "write_psi_plot", plot_while_another_run_finishes)
    with pytest.raises(OutputExistsError, match=r"clip\.json: already exists \(written by "
                                                r"another run"):
        save_outputs(make_generation(), out, "clip", video=False, overwrite=False)
    assert [p.name for p in out.iterdir()] == ["clip.json"]
    assert (out / "clip.json").read_text() == "the other run's"
    with pytest.raises(OutputExistsError, match="already exists"):  # and before any work
        save_outputs(make_generation(), out, "clip", video=False, overwrite=False)


def test_stale_temporary_files_are_cleared_and_the_video_works_inside_the_out_folder(
        tmp_path, monkeypatch) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    out, system_tmp = tmp_path / "out", tmp_path / "system_tmp"
    out.mkdir()
    system_tmp.mkdir()
    stale = [out / f".clip.tmp-{proc.pid}-abcdefgh.npz",
             out / f".semtalk-render-{proc.pid}-a1b2c3d4"]
    stale[0].write_bytes(b"killed while writing")
    stale[1].mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(system_tmp))
    seen: list[str] = []

    def progress(done: int, total: int) -> None:
        seen.extend(str(p.relative_to(out)) for p in out.rglob(".semtalk-render-*"))
        seen.extend(str(p) for p in system_tmp.iterdir())

    paths = save_outputs(make_generation(num_frames=6, audio=True), out, "clip", size=SIZE,
                         progress=progress)
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in paths.values())
    assert seen and all(name.startswith(".semtalk-staging-") for name in seen)
    assert f"-{os.getpid()}-" in seen[0]
