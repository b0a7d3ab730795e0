"""``semtalk generate``: outputs, emphasis flags, batch mode, and every kind of bad input."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from semtalk.body.motion import Motion, read_motion_npz
from semtalk.cli import main
from semtalk.config import ConfigError
from semtalk.data.audio import num_frames_for, resample, write_wav
from semtalk.data.textgrid import Word, words_to_intervals, write_textgrid
from semtalk.errors import DataError
from semtalk.generation.files import Job, batch_jobs, choose_preview, single_job
from semtalk.release import MANIFEST
from semtalk.render import count_frames, video_info

pytest.importorskip("pocketsphinx")

SR = 16_000
TEXT = "so i never said that my dream job was easy"


def run(*argv: str | Path) -> tuple[int, str, str]:
    """``semtalk ARGV`` in-process: exit code, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exc:  # argparse errors
            code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray, list[Word]]:
    """``speech.wav`` (16 kHz) of TEXT, its samples and its true word timings."""
    from semtalk.data.synthetic.tts import Prosody, synthesize

    utterance = synthesize(TEXT.split(), Prosody(), pause_after={4: 0.3})
    audio = resample(utterance.audio, utterance.sample_rate, SR)
    path = write_wav(tmp_path_factory.mktemp("speech") / "speech.wav", audio)
    return path, audio, [Word(w.text, w.start, w.end) for w in utterance.words]


@pytest.fixture(scope="module")
def generated(speech, tiny_release: Path, tmp_path_factory) -> tuple[Path, str, str]:
    """One run with a transcript and emphasis flags, shared by the tests that read it."""
    out = tmp_path_factory.mktemp("generated") / "out"
    code, stdout, stderr = run("generate", speech[0], "--model", tiny_release, "--out", out,
                               "--transcript", TEXT, "--emphasize", "dream job,zebra",
                               "--suppress", "never", "--speaker", "2", "--no-video")
    assert code == 0, stderr
    return out, stdout, stderr


def test_outputs_are_beat2_motion_report_and_plot(generated, speech) -> None:
    out, stdout, _ = generated
    _, audio, _ = speech
    assert sorted(p.name for p in out.iterdir()) == ["speech.json", "speech.npz",
                                                    "speech_psi.png"]
    motion, issues = read_motion_npz(out / "speech.npz", strict=True)
    frames = num_frames_for(len(audio))
    assert issues == [] and motion.num_frames == frames
    doc = json.loads((out / "speech.json").read_text())
    assert doc["num_frames"] == len(doc["psi"]) == len(doc["psi_model"]) == frames
    assert [w["text"] for w in doc["words"]] == TEXT.split()
    assert doc["input"]["words_source"] == "alignment" and doc["speaker"] == 2
    assert str(out) in stdout and "speech.npz, speech.json, speech_psi.png" in stdout


def test_emphasis_flags_raise_and_lower_psi_on_those_words(generated) -> None:
    doc = json.loads((generated[0] / "speech.json").read_text())
    record = doc["emphasis"]
    assert record["active"] and record["unmatched"] == ["zebra"]
    (raised,) = record["emphasize"]
    (lowered,) = record["suppress"]
    assert (raised["text"], lowered["text"]) == ("dream job", "never")
    first, last = raised["tokens"]
    assert all(t["psi"] >= 0.9 and t["choice"] == "fused" for t in doc["tokens"][first:last])
    first, last = lowered["tokens"]
    assert all(t["psi"] <= 0.1 and t["choice"] == "base" for t in doc["tokens"][first:last])
    psi, model = np.array(doc["psi"]), np.array(doc["psi_model"])
    assert 0 < np.count_nonzero(np.abs(psi - model) > 1e-6) < len(psi)


def test_silent_audio_gives_idle_motion_and_a_video_with_sound(tiny_release, tmp_path) -> None:
    audio = write_wav(tmp_path / "quiet.wav", np.zeros(SR, np.float32))
    out = tmp_path / "out"
    code, _, stderr = run("generate", audio, "--model", tiny_release, "--out", out)
    assert code == 0, stderr
    assert sorted(p.name for p in out.iterdir()) == ["quiet.json", "quiet.mp4", "quiet.npz",
                                                    "quiet_psi.png"]
    doc = json.loads((out / "quiet.json").read_text())
    assert doc["words"] == [] and doc["input"]["words_source"] == "none"
    motion, _ = read_motion_npz(out / "quiet.npz")
    assert motion.num_frames == 30 and np.isfinite(motion.poses).all()
    info = video_info(out / "quiet.mp4")
    assert (info.width, info.height, info.audio_codec) == (1280, 720, "aac")
    assert count_frames(out / "quiet.mp4") == 30


def test_batch_mode_goes_on_after_a_bad_file(speech, tiny_release, tmp_path) -> None:
    path, audio, words = speech
    folder = tmp_path / "clips"
    folder.mkdir()
    shutil.copy(path, folder / "a.wav")
    (folder / "a.txt").write_text(TEXT)
    stereo = resample(audio, SR, 44_100)
    sf.write(folder / "b.flac", np.stack([stereo, stereo], axis=1), 44_100)
    write_textgrid(folder / "b.TextGrid", {"words": words_to_intervals(words)}, 3.1)
    (folder / "c.wav").write_bytes(b"RIFF" + b"\x00" * 200)
    (folder / "notes.md").write_text("not audio")
    out = tmp_path / "out"
    code, stdout, stderr = run("generate", folder, "--model", tiny_release, "--out", out,
                               "--no-video")
    assert code == 2
    assert f"{folder / 'c.wav'}: cannot decode audio" in stderr
    assert "1 of 3 file(s) failed: c.wav" in stderr
    assert sorted(p.name for p in out.iterdir()) == ["a.json", "a.npz", "a_psi.png",
                                                    "b.json", "b.npz", "b_psi.png"]
    sources = {s: json.loads((out / f"{s}.json").read_text())["input"]["words_source"]
               for s in "ab"}
    assert sources == {"a": "alignment", "b": "textgrid"}
    assert "2 of 3 file(s) generated" in stdout


def test_transcript_that_does_not_match_falls_back_to_recognition(speech, tiny_release,
                                                                  tmp_path) -> None:
    out = tmp_path / "out"
    code, _, stderr = run("generate", speech[0], "--model", tiny_release, "--out", out,
                          "--transcript", "hello", "--no-video")
    assert code == 0, stderr
    assert "warning" in stderr and "does not match the audio" in stderr
    assert str(speech[0]) in stderr
    doc = json.loads((out / "speech.json").read_text())
    assert doc["input"]["words_source"] == "recognition"
    assert doc["input"]["words_method"] == "aligned+recognized-fallback"
    assert len(doc["words"]) >= 6


def _zero_samples(folder: Path) -> list[str]:
    sf.write(folder / "empty.wav", np.zeros((0, 1), np.float32), SR)
    return [str(folder / "empty.wav")]


def _corrupt(folder: Path) -> list[str]:
    (folder / "broken.mp3").write_bytes(b"ID3" + bytes(range(256)) * 4)
    return [str(folder / "broken.mp3")]


def _other_version(folder: Path, release: Path) -> Path:
    copy = folder / "old-release"
    shutil.copytree(release, copy)
    manifest = json.loads((copy / MANIFEST).read_text())
    (copy / MANIFEST).write_text(json.dumps({**manifest, "format": 0}))
    return copy


BAD_INPUTS = {
    # name: (extra arguments or the audio, the file the message must name, words it must say)
    "zero-samples": (_zero_samples, "empty.wav", "zero samples"),
    "corrupt": (_corrupt, "broken.mp3", "cannot decode audio"),
    "audio-missing": (lambda d: [str(d / "nope.wav")], "nope.wav", "not found"),
    "textgrid-is-a-dir": (lambda d: ["SPEECH", "--textgrid", str(d)], "", "is a directory"),
    "transcript-is-a-dir": (lambda d: ["SPEECH", "--transcript", str(d)], "",
                            "is a directory"),
    "seed-is-a-dir": (lambda d: ["SPEECH", "--seed-pose", str(d)], "", "is a directory"),
    "mismatch-no-fallback": (lambda d: ["SPEECH", "--transcript", "hello",
                                        "--no-recognition-fallback"],
                             "speech.wav", "does not match the audio"),
    "unknown-speaker": (lambda d: ["SPEECH", "--speaker", "99"], "RELEASE",
                        "unknown speaker id 99: this release was trained on speaker(s) [2]"),
    "other-version": (lambda d: ["SPEECH", "--model", "OLD"], MANIFEST, "release format 0"),
    "body-model-missing": (lambda d: ["SPEECH", "--body-model", str(d / "SMPLX.npz")],
                           "SMPLX.npz", "SMPL-X model file not found"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_fails_naming_the_file_and_leaves_no_output(case, speech, tiny_release,
                                                              tmp_path) -> None:
    make, names, says = BAD_INPUTS[case]
    work = tmp_path / "work"
    work.mkdir()
    args = make(work)
    model = str(tiny_release)
    if "OLD" in args:
        args[args.index("OLD")] = str(_other_version(work, tiny_release))
        model = args[-1]
    args = [str(speech[0]) if a == "SPEECH" else a for a in args]
    names = {"RELEASE": str(tiny_release), "": str(work)}.get(names, names)
    out = tmp_path / "out"
    code, _, stderr = run("generate", *args[:1], "--model", model, *args[1:], "--out", out)
    assert code == 2, stderr
    assert stderr.startswith("semtalk generate: error: ")
    assert names in stderr and says in stderr
    assert len(stderr.strip().splitlines()) == 1  # one clear message, no traceback
    assert not out.exists()


def test_existing_outputs_are_kept_unless_overwrite(speech, tiny_release, tmp_path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "speech.json").write_text("old")
    code, _, stderr = run("generate", speech[0], "--model", tiny_release, "--out", out,
                          "--textgrid", _grid(speech, tmp_path), "--no-video")
    assert code == 2 and f"{out / 'speech.json'}: already exists" in stderr
    assert [p.name for p in out.iterdir()] == ["speech.json"]
    assert (out / "speech.json").read_text() == "old"
    seed = tmp_path / "seed.npz"
    Motion(np.zeros((5, 165)), np.zeros((5, 100)), np.zeros((5, 3))).save_npz(seed)
    code, _, stderr = run("generate", speech[0], "--model", tiny_release, "--out", out,
                          "--textgrid", _grid(speech, tmp_path), "--no-video", "--overwrite",
                          "--seed-pose", seed, "--precision", "bf16")
    assert code == 0, stderr
    doc = json.loads((out / "speech.json").read_text())
    assert doc["precision"] == "bf16"
    assert doc["input"]["seed_pose"] == str(seed)
    assert doc["input"]["words_source"] == "textgrid"


def _grid(speech, folder: Path) -> Path:
    _, audio, words = speech
    return write_textgrid(folder / "words.TextGrid", {"words": words_to_intervals(words)},
                          len(audio) / SR)


@pytest.mark.parametrize(("args", "says"), [
    (["--emphasis-scale", "-1"], "must be a finite number >= 0"),
    (["--emphasize", "!!!"], "holds no word"),
    (["--device", "gpu7"], "--device"),
    (["--preview", "mesh"], "--preview mesh needs --body-model SMPLX_FILE"),
    (["--preview", "wire"], "invalid choice: 'wire'"),
    (["--precision", "fp16"], "invalid choice: 'fp16'"),
])
def test_bad_flags_are_refused_before_any_work(args, says, speech, tiny_release,
                                               tmp_path) -> None:
    code, _, stderr = run("generate", speech[0], "--model", tiny_release, "--out",
                          tmp_path / "out", *args)
    assert code == 2 and says in stderr
    assert not (tmp_path / "out").exists()


def test_preview_choices_match_the_library() -> None:
    from semtalk.cli.generate import PREVIEWS
    from semtalk.generation.outputs import PREVIEWS as LIBRARY_PREVIEWS

    assert PREVIEWS == LIBRARY_PREVIEWS


def test_body_model_gives_a_mesh_preview_by_default(tiny_release, tiny_smplx,
                                                     tmp_path) -> None:
    pytest.importorskip("pyrender")
    from semtalk.render.mesh import mesh_support_error

    if mesh_support_error() is not None:
        pytest.skip(f"no headless OpenGL context here: {mesh_support_error()}")
    audio = write_wav(tmp_path / "quiet.wav", np.zeros(SR // 2, np.float32))
    out = tmp_path / "out"
    code, stdout, stderr = run("generate", audio, "--model", tiny_release, "--out", out,
                               "--body-model", tiny_smplx)
    assert code == 0, stderr
    assert "quiet.mp4 (mesh preview)" in stdout
    doc = json.loads((out / "quiet.json").read_text())
    assert doc["preview"] == {"kind": "mesh", "body_model": "smplx", "size": [1280, 720]}
    assert count_frames(out / "quiet.mp4") == 15
    assert video_info(out / "quiet.mp4").audio_codec == "aac"


def test_mesh_preview_without_the_render_extra_fails_before_any_work(
        speech, tiny_release, tiny_smplx, tiny_smplx_model, tmp_path, monkeypatch) -> None:
    error = ImportError("the mesh preview needs pyrender, which cannot be imported (No module "
                        "named 'pyrender'); install it with: pip install 'semtalk[render]'")
    monkeypatch.setattr("semtalk.render.mesh.mesh_support_error", lambda: error)
    out = tmp_path / "out"
    code, _, stderr = run("generate", speech[0], "--model", tiny_release, "--out", out,
                          "--body-model", tiny_smplx, "--preview", "mesh")
    assert code == 2, stderr
    assert stderr.startswith("semtalk generate: error: --preview mesh: the mesh preview needs "
                             "pyrender")
    assert "pip install 'semtalk[render]'" in stderr and len(stderr.strip().splitlines()) == 1
    assert not out.exists()
    # auto falls back to the stick figure and says so
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert choose_preview("auto", tiny_smplx_model) == "stick"
    assert err.getvalue().startswith("semtalk generate: warning: drawing a stick figure "
                                     "instead of the SMPL-X mesh: the mesh preview needs")


def test_batch_jobs_pick_audio_files_and_their_word_files(tmp_path) -> None:
    clips, grids = tmp_path / "clips", tmp_path / "grids"
    clips.mkdir()
    grids.mkdir()
    for name in ("a.wav", "a.MP3", "b.flac", "c.ogg", "e.opus", "a.txt", "b.TextGrid", "b.txt",
                 "notes.md"):
        (clips / name).write_bytes(b"x")
    (clips / "d.wav").mkdir()  # a folder named like audio is not a file
    (grids / "c.TextGrid").write_bytes(b"x")
    assert batch_jobs(clips, None, None) == [
        Job(clips / "a.MP3", "a_mp3", str(clips / "a.txt")),
        Job(clips / "a.wav", "a_wav", str(clips / "a.txt")),
        Job(clips / "b.flac", "b", textgrid=clips / "b.TextGrid"),  # the TextGrid wins
        Job(clips / "c.ogg", "c"),
        Job(clips / "e.opus", "e")]  # single .opus files decode, so batch mode takes them
    jobs = batch_jobs(clips, None, grids)
    assert [j.textgrid for j in jobs] == [None, None, None, grids / "c.TextGrid", None]
    assert jobs[0].note == f"no a.TextGrid in {grids}: recognising the words"
    assert all(j.transcript is None for j in jobs)
    with pytest.raises(ConfigError, match=r"--transcript names a folder of per-file STEM\.txt"):
        batch_jobs(clips, "hello", None)
    with pytest.raises(ConfigError, match=r"--transcript names a folder of per-file STEM\.txt"):
        batch_jobs(clips, "hello " * 2000, None)  # 12 kB of text: no OSError
    with pytest.raises(DataError, match="holds no audio files"):
        batch_jobs(grids, None, None)


# --- faults of the release, the output folder and concurrent runs -------------------------------
def _nan_tokenizer(release: Path, folder: Path) -> Path:
    """A copy of ``release`` whose tokenizer weights are all NaN."""
    from safetensors.torch import load_file, save_file

    copy = folder / "nan-release"
    shutil.copytree(release, copy)
    for path in (copy / "tokenizer").rglob("*.safetensors"):
        tensors = load_file(path)
        save_file({k: v.fill_(float("nan")) if v.is_floating_point() else v
                   for k, v in tensors.items()}, path)
        (path.parent / "checksums.json").unlink(missing_ok=True)  # an older, unchecked release
    return copy


def test_nan_tokenizer_weights_fail_naming_the_stage_and_write_nothing(speech, tiny_release,
                                                                      tmp_path) -> None:
    release = _nan_tokenizer(tiny_release, tmp_path)
    out = tmp_path / "out"
    code, _, stderr = run("generate", speech[0], "--model", release, "--out", out,
                          "--textgrid", _grid(speech, tmp_path), "--no-video")
    assert code == 2, stderr
    assert f"{release / 'tokenizer'}: the tokenizer's decoder produced NaN in " in stderr
    assert "the release's tokenizer weights may be corrupt" in stderr
    assert len(stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_an_output_name_taken_by_a_folder_fails_before_work_even_with_overwrite(
        speech, tiny_release, tmp_path) -> None:
    out = tmp_path / "out"
    (out / "speech.npz").mkdir(parents=True)
    (out / "speech.json").write_text("old")
    code, _, stderr = run("generate", speech[0], "--model", tiny_release, "--out", out,
                          "--textgrid", _grid(speech, tmp_path), "--overwrite")
    assert code == 2, stderr
    assert f"{out / 'speech.npz'}: is a folder" in stderr
    assert sorted(p.name for p in out.iterdir()) == ["speech.json", "speech.npz"]
    assert (out / "speech.json").read_text() == "old"


def test_a_run_that_wrote_the_same_outputs_meanwhile_is_not_replaced(speech, tiny_release,
                                                                     tmp_path,
                                                                     monkeypatch) -> None:
    from semtalk.generation.engine import SemTalk

    out = tmp_path / "out"
    real = SemTalk.generate

    def generate_while_another_run_finishes(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        gen = real(self, *args, **kwargs)
        out.mkdir(exist_ok=True)
        (out / "speech.json").write_text("the other run's")
        return gen

    monkeypatch.setattr(SemTalk, "generate", generate_while_another_run_finishes)
    code, _, stderr = run("generate", speech[0], "--model", tiny_release, "--out", out,
                          "--textgrid", _grid(speech, tmp_path), "--no-video")
    assert code == 2, stderr
    assert f"{out / 'speech.json'}: already exists (written by another run" in stderr
    assert "--overwrite" in stderr
    assert [p.name for p in out.iterdir()] == ["speech.json"]
    assert (out / "speech.json").read_text() == "the other run's"


def _out_is_a_file(out: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    out.write_text("not a folder")
    return "is a file, not a folder"


def _out_not_writable(out: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    from semtalk import fileio

    def refuse(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise PermissionError(13, "Permission denied", str(kwargs.get("dir")))

    monkeypatch.setattr(fileio.tempfile, "mkstemp", refuse)  # as root, chmod would not stop it
    return "cannot write the outputs here"


def _disk_full(out: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    from semtalk import fileio

    monkeypatch.setattr(fileio.shutil, "disk_usage",
                        lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 5000, 5000))
    return "its disk has 5.0 kB free and the outputs need about"


@pytest.mark.parametrize("make", [_out_is_a_file, _out_not_writable, _disk_full])
def test_output_folder_problems_fail_before_any_work(make, speech, tiny_release, tmp_path,
                                                     monkeypatch) -> None:
    from semtalk.generation.engine import SemTalk

    out, grid = tmp_path / "out", _grid(speech, tmp_path)
    says = make(out, monkeypatch)

    def no_work(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("the release was loaded before the output folder was checked")

    monkeypatch.setattr(SemTalk, "from_pretrained", no_work)
    code, _, stderr = run("generate", speech[0], "--model", tiny_release, "--out", out,
                          "--textgrid", grid)
    assert code == 2, stderr
    assert stderr.startswith(f"semtalk generate: error: {out}: ") and says in stderr
    assert len(stderr.strip().splitlines()) == 1
    assert sorted(tmp_path.iterdir()) == sorted([grid, *([out] if out.is_file() else [])])


def test_a_late_os_error_is_one_message_and_leaves_nothing(speech, tiny_release, tmp_path,
                                                           monkeypatch) -> None:
    from semtalk.generation import outputs

    def disk_full(gen, path, **kwargs):  # type: ignore[no-untyped-def]
        Path(path).write_bytes(b"half a plot")
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(outputs, "write_psi_plot", disk_full)
    out = tmp_path / "deep" / "out"
    code, _, stderr = run("generate", speech[0], "--model", tiny_release, "--out", out,
                          "--textgrid", _grid(speech, tmp_path), "--no-video")
    assert code == 2, stderr
    assert "could not write the outputs of speech, so none was written" in stderr
    assert "the disk is full" in stderr
    assert len(stderr.strip().splitlines()) == 1
    assert not (tmp_path / "deep").exists()


class Terminal(io.StringIO):
    """A stderr that says it is a terminal (tqdm shows its bars there)."""

    def isatty(self) -> bool:
        return True


def test_motion_progress_is_shown_on_a_terminal(speech, tiny_release, tmp_path) -> None:
    err = Terminal()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main(["generate", str(speech[0]), "--model", str(tiny_release), "--out",
                     str(tmp_path / "out"), "--textgrid", str(_grid(speech, tmp_path)),
                     "--no-video"])
    assert code == 0, err.getvalue()
    assert "motion speech" in err.getvalue() and "window" in err.getvalue()


def test_single_job_takes_ten_kilobytes_of_inline_transcript(tmp_path) -> None:
    audio = tmp_path / "a.wav"
    audio.write_bytes(b"x")
    text = "hello world " * 900
    assert single_job(audio, text, None) == Job(audio, "a", text)
    with pytest.raises(DataError, match="is a directory, expected a transcript"):
        single_job(audio, str(tmp_path), None)


def test_hub_id_model_option_is_refused_before_any_work(speech, tiny_release, tmp_path,
                                                        monkeypatch) -> None:
    monkeypatch.delenv("SEMTALK_ALLOW_HUB", raising=False)
    path, _, _ = speech
    pytest.importorskip("transformers")  # else the missing 'hubert' extra is reported first
    code, _, err = run("generate", path, "--model", tiny_release, "--out", tmp_path / "out",
                       "--no-video", "--hubert", "facebook/hubert-large-ls960-ft")
    assert code != 0
    assert "--hubert: no such folder; semtalk downloads nothing at run time" in err
    assert not (tmp_path / "out").exists()
