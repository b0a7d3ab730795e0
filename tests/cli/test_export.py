"""``semtalk export``, the export dispatcher, ``Generation.export`` and ``generate --export``."""

from __future__ import annotations

import contextlib
import dataclasses
import io
from pathlib import Path

import numpy as np
import pytest

from semtalk.body.motion import Motion, read_motion_npz
from semtalk.body.parts import JOINT_NAMES
from semtalk.cli import main
from semtalk.data.textgrid import Word
from semtalk.export import FORMATS, check_export, export_format, export_motion, read_bvh
from semtalk.generation.outputs import Generation, output_paths, save_outputs

pygltflib = pytest.importorskip("pygltflib")


def run(*argv: str | Path) -> tuple[int, str, str]:
    """``semtalk ARGV`` in-process: exit code, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exc:  # argparse errors
            code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


def make_motion(num_frames: int = 8) -> Motion:
    rng = np.random.default_rng(1)
    return Motion(0.3 * rng.standard_normal((num_frames, 165)),
                  rng.standard_normal((num_frames, 100)),
                  0.05 * rng.standard_normal((num_frames, 3)))


@pytest.fixture()
def motion_npz(tmp_path: Path) -> Path:
    return make_motion().save_npz(tmp_path / "clip.npz")


def make_generation(num_frames: int = 8) -> Generation:
    tokens = -(-num_frames // 4)
    psi = np.full(num_frames, 0.3, np.float32)
    return Generation(
        motion=make_motion(num_frames), psi=psi, psi_model=psi,
        token_psi=np.full(tokens, 0.3, np.float32), token_psi_model=np.full(tokens, 0.3),
        sparse_tokens=np.zeros(tokens, bool), words=[Word("hello", 0.0, 0.2)], emphasis={},
        beta=0.5, speaker=2, speaker_class=1, release="/releases/tiny")


# --- the command ---------------------------------------------------------------------------------
def test_export_writes_a_glb_next_to_the_npz_by_default(motion_npz) -> None:
    code, stdout, stderr = run("export", motion_npz)
    assert code == 0, stderr
    path = motion_npz.with_suffix(".glb")
    gltf = pygltflib.GLTF2.load_binary(path)
    assert [n.name for n in gltf.nodes] == [*JOINT_NAMES, "SMPLX_stick"]
    assert [m.name for m in gltf.meshes] == ["SMPLX_stick"]  # what mesh-only viewers draw
    assert "8 frames" in stdout and "clip.glb" in stdout and "skeleton + stick figure" in stdout


def test_export_no_stick_leaves_the_stick_figure_out(motion_npz, tmp_path) -> None:
    out = tmp_path / "bare.glb"
    code, stdout, stderr = run("export", motion_npz, "--no-stick", "--out", out)
    assert code == 0, stderr
    gltf = pygltflib.GLTF2.load_binary(out)
    assert [n.name for n in gltf.nodes] == list(JOINT_NAMES) and not gltf.meshes
    assert len(gltf.skins) == 1 and "skeleton," in stdout and "stick figure" not in stdout


def test_export_bvh_round_trips_the_poses(motion_npz, tmp_path) -> None:
    out = tmp_path / "sub" / "clip.bvh"
    code, _, stderr = run("export", motion_npz, "--format", "bvh", "--out", out)
    assert code == 0, stderr
    motion, _ = read_motion_npz(motion_npz)
    back = read_bvh(out)
    from scipy.spatial.transform import Rotation

    a = Rotation.from_rotvec(back.smplx_poses().reshape(-1, 3))
    b = Rotation.from_rotvec(motion.poses.reshape(-1, 3).astype(np.float64))
    assert (a.inv() * b).magnitude().max() < 1e-5
    np.testing.assert_allclose(back.trans, motion.trans, atol=1e-6)


def test_export_with_a_body_model_writes_the_mesh(motion_npz, tiny_smplx, tmp_path) -> None:
    out = tmp_path / "mesh.glb"
    code, stdout, stderr = run("export", motion_npz, "--body-model", tiny_smplx, "--out", out,
                               "--up", "z")
    assert code == 0, stderr
    gltf = pygltflib.GLTF2.load_binary(out)
    assert len(gltf.meshes) == 1 and len(gltf.meshes[0].primitives[0].targets) == 100
    assert gltf.extras["up"] == "z" and "skinned SMPL-X mesh" in stdout


@pytest.mark.parametrize(("case", "code", "says"), [
    ("not an npz", 2, "clip.npz: not a readable .npz"),
    ("missing npz", 2, "nowhere.npz: motion file (BEAT2 .npz) not found"),
    ("missing body model", 2, "no_model.npz: cannot use this SMPL-X body model"),
    ("unknown format", 2, "invalid choice: 'obj'"),
    ("suffix of another format", 2, "the suffix .bvh is a bvh file, not glb"),
    ("no suffix", 2, "cannot tell the export format"),
    ("up z for bvh", 2, "bvh export has no up-axis option"),
    ("existing output", 2, "clip.glb: already exists; pass --overwrite"),
])
def test_bad_input_fails_naming_the_problem_and_writes_nothing(case, code, says, motion_npz,
                                                               tmp_path) -> None:
    npz = motion_npz
    args: list[str | Path] = []
    if case == "not an npz":
        npz.write_bytes(b"not a zip file")
    elif case == "missing npz":
        npz = tmp_path / "nowhere.npz"
    elif case == "missing body model":
        args = ["--body-model", tmp_path / "no_model.npz"]
    elif case == "unknown format":
        args = ["--format", "obj"]
    elif case == "suffix of another format":
        args = ["--format", "glb", "--out", tmp_path / "x.bvh"]
    elif case == "no suffix":
        args = ["--out", tmp_path / "x"]
    elif case == "up z for bvh":
        args = ["--format", "bvh", "--up", "z"]
    elif case == "existing output":
        npz.with_suffix(".glb").write_bytes(b"old")
    before = sorted(p.name for p in tmp_path.iterdir())
    result, _, stderr = run("export", npz, *args)
    assert (result, says in stderr) == (code, True), stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_overwrite_replaces_an_existing_file(motion_npz) -> None:
    motion_npz.with_suffix(".glb").write_bytes(b"old")
    code, _, stderr = run("export", motion_npz, "--overwrite")
    assert code == 0, stderr
    assert motion_npz.with_suffix(".glb").read_bytes()[:4] == b"glTF"


# --- the dispatcher ------------------------------------------------------------------------------
def test_formats_are_chosen_by_name_or_suffix() -> None:
    assert export_format("a.GLB").name == "glb"
    assert {export_format(f"a{s}").name for s in (".usd", ".usda", ".usdc")} == {"usd"}
    assert export_format("a.fbx").name == "fbx"
    assert export_format("a.bin", "bvh").name == "bvh"
    with pytest.raises(ValueError, match="unknown export format 'obj'"):
        export_format("a.glb", "obj")
    with pytest.raises(ValueError, match="cannot tell"):
        export_format("a.txt")


def test_a_missing_optional_package_names_the_extra(monkeypatch, tmp_path) -> None:
    for name, extra in (("usd", "usd"), ("fbx", "fbx"), ("glb", "export")):
        spec = dataclasses.replace(FORMATS[name], package="semtalk_no_such_package")
        monkeypatch.setitem(FORMATS, name, spec)
        with pytest.raises(ImportError, match=rf"pip install 'semtalk\[{extra}\]'"):
            export_motion(make_motion(), tmp_path / f"x{spec.suffix}")
        with pytest.raises(ImportError, match=rf"semtalk\[{extra}\]"):
            check_export(name)
    assert list(tmp_path.iterdir()) == []


def test_generation_export_and_save_outputs_with_exports(tmp_path) -> None:
    gen = make_generation()
    path = gen.export(tmp_path / "one.glb")
    assert pygltflib.GLTF2.load_binary(path).animations[0].name == "one"
    paths = save_outputs(gen, tmp_path / "out", "clip", video=False, exports=("glb", "bvh"))
    assert {k: p.name for k, p in paths.items()} == {
        "npz": "clip.npz", "json": "clip.json", "plot": "clip_psi.png", "glb": "clip.glb",
        "bvh": "clip.bvh"}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        p.name for p in paths.values())
    assert output_paths(tmp_path, "clip") == {
        "npz": tmp_path / "clip.npz", "json": tmp_path / "clip.json",
        "plot": tmp_path / "clip_psi.png", "video": tmp_path / "clip.mp4"}


def test_a_failing_export_leaves_no_output(monkeypatch, tmp_path) -> None:
    gen = make_generation()
    with pytest.raises(ValueError, match="bvh export has no up-axis option"):
        save_outputs(gen, tmp_path / "out", "clip", video=False, exports=("glb", "bvh"), up="z")
    from semtalk.export import glb

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(glb, "write_glb", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        save_outputs(gen, tmp_path / "out", "clip", video=False, exports=("glb",))
    assert list(tmp_path.iterdir()) == []


# --- semtalk generate --export -------------------------------------------------------------------
def test_generate_export_flag_is_parsed_and_checked() -> None:
    code, _, stderr = run("generate", "a.wav", "--model", "r", "--export", "glb,obj")
    assert code == 2 and "unknown export format(s) obj" in stderr


def test_generate_exports_next_to_the_npz(tiny_release, tmp_path) -> None:
    pytest.importorskip("pocketsphinx")
    from semtalk.data.audio import write_wav

    rng = np.random.default_rng(0)
    audio = write_wav(tmp_path / "speech.wav", 0.01 * rng.standard_normal(16_000))
    out = tmp_path / "out"
    code, stdout, stderr = run("generate", audio, "--model", tiny_release, "--out", out,
                               "--transcript", "hello", "--no-video", "--export", "glb,bvh")
    assert code == 0, stderr
    assert "speech.glb" in stdout and "speech.bvh" in stdout
    assert sorted(p.name for p in out.iterdir()) == [
        "speech.bvh", "speech.glb", "speech.json", "speech.npz", "speech_psi.png"]
    motion, _ = read_motion_npz(out / "speech.npz")
    gltf = pygltflib.GLTF2.load_binary(out / "speech.glb")
    assert gltf.extras["frames"] == motion.num_frames
    other = tmp_path / "other"
    other.mkdir()
    (other / "speech.glb").write_bytes(b"old")  # an export in the way stops the run
    code, _, stderr = run("generate", audio, "--model", tiny_release, "--out", other,
                          "--transcript", "hello", "--no-video", "--export", "glb")
    assert code == 2 and "speech.glb: already exists" in stderr
    assert [p.name for p in other.iterdir()] == ["speech.glb"]
