"""The ``semtalk`` entry point: environmental errors as one line, ``--debug``, SIGTERM."""

from __future__ import annotations

import contextlib
import errno
import io
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from semtalk.cli import generate, main


def run(*argv: str) -> tuple[int, str]:
    """``semtalk ARGV`` in-process: exit code and stderr."""
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, err.getvalue()


def test_an_os_error_is_one_line_and_debug_shows_the_traceback(monkeypatch) -> None:
    def denied(args):  # type: ignore[no-untyped-def]
        raise PermissionError(errno.EACCES, "Permission denied", "/data/out/clip.npz")

    monkeypatch.setattr(generate, "run", denied)
    code, stderr = run("generate", "a.wav", "--model", "release")
    assert code == 2
    assert stderr == ("semtalk generate: error: /data/out/clip.npz: permission denied (no "
                      "permission: check the folder's permissions or write elsewhere)\n")
    with pytest.raises(PermissionError):
        run("--debug", "generate", "a.wav", "--model", "release")


SIGTERM_SCRIPT = textwrap.dedent("""
    import os, signal, sys, time
    from pathlib import Path
    from semtalk.cli import generate, main

    def work(args):
        marker = Path(sys.argv[1])
        try:
            marker.write_text("working")
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(30)
        finally:
            marker.unlink()  # the cleanup of an interrupt runs
        return 0

    generate.run = work
    sys.exit(main(["generate", "a.wav", "--model", "release"]))
""")


def test_sigterm_exits_143_after_the_cleanup(tmp_path: Path) -> None:
    marker = tmp_path / "half-written"
    src = Path(__file__).resolve().parents[2] / "src"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(src), *filter(None, [os.environ.get("PYTHONPATH")])])}
    proc = subprocess.run([sys.executable, "-c", SIGTERM_SCRIPT, str(marker)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, proc.stderr
    assert proc.stderr.strip() == "semtalk generate: terminated (SIGTERM)"
    assert not marker.exists()


def _no_work(*args, **kwargs):  # type: ignore[no-untyped-def]
    raise AssertionError("the work started before the output folder was checked")


def test_align_and_evaluate_check_their_output_folder_before_any_work(tmp_path,
                                                                      monkeypatch) -> None:
    from semtalk.data import audio
    from semtalk.evaluation import evaluate

    monkeypatch.setattr(audio, "load_audio", _no_work)
    monkeypatch.setattr(evaluate, "evaluate_release", _no_work)
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    code, stderr = run("align", str(tmp_path / "a.wav"), "-o", str(afile / "a.TextGrid"))
    assert code == 2 and stderr == (f"semtalk align: error: {afile}: is a file, not a "
                                    "folder: give a folder for the outputs\n")
    code, stderr = run("evaluate", "--model", "release", "--data", "cache", "--out", str(afile))
    assert code == 2 and stderr == (f"semtalk evaluate: error: {afile}: is a file, not a "
                                    "folder: give a folder for the outputs\n")
