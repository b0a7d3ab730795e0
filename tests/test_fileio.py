"""File writing: temporary names that name their process, clearing those of dead processes,
committing several files as one unit, and the output-folder check before any work."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from semtalk import fileio
from semtalk.errors import DataError
from semtalk.fileio import (
    OutputExistsError,
    atomic_path,
    check_output_folder,
    clear_stale_temp,
    commit_files,
    describe_os_error,
    temp_folder,
    temp_owner,
)


def dead_pid() -> int:
    """The id of a process that has finished."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_temporary_names_carry_the_process_id(tmp_path) -> None:
    with atomic_path(tmp_path / "clip.npz") as tmp:
        assert tmp.suffix == ".npz"
        assert temp_owner(tmp.name) == os.getpid()
        tmp.write_bytes(b"x")
    folder = temp_folder(tmp_path, "render")
    assert temp_owner(folder.name) == os.getpid()
    assert temp_owner("clip.npz") is None and temp_owner(".hidden") is None


def test_stale_temporary_files_of_dead_processes_are_cleared(tmp_path) -> None:
    dead, alive = dead_pid(), os.getpid()
    stale_file = tmp_path / f".clip.tmp-{dead}-abcd_123.npz"
    stale_folder = tmp_path / f".semtalk-render-{dead}-x1y2z3w4"
    live_file = tmp_path / f".clip.tmp-{alive}-abcd_123.json"
    own = [tmp_path / "clip.npz", tmp_path / ".hidden", tmp_path / f"notes.tmp-{dead}-abcdefgh"]
    for path in (stale_file, live_file, *own):
        path.write_text("x")
    stale_folder.mkdir()
    (stale_folder / "video.mp4").write_bytes(b"half a video")
    removed = clear_stale_temp(tmp_path)
    assert sorted(removed) == sorted([stale_file, stale_folder])
    assert sorted(tmp_path.iterdir()) == sorted([live_file, *own])


def _staged(tmp_path: Path, names: list[str]) -> tuple[Path, Path, dict[Path, Path]]:
    out, staging = tmp_path / "out", tmp_path / "out" / ".staging"
    staging.mkdir(parents=True)
    moves = {}
    for name in names:
        (staging / name).write_text(f"new {name}")
        moves[staging / name] = out / name
    return out, staging, moves


def test_commit_undoes_the_renames_made_when_a_later_one_fails(tmp_path, monkeypatch) -> None:
    out, staging, moves = _staged(tmp_path, ["a.npz", "a.json", "a.mp4"])
    (out / "a.npz").write_text("old a.npz")
    (out / "a.mp4").write_text("old a.mp4")
    real = os.replace

    def replace(src, dst):  # type: ignore[no-untyped-def]
        if Path(src) == staging / "a.mp4":  # the last rename into place
            raise OSError(errno.ENOSPC, "No space left on device", str(dst))
        return real(src, dst)

    monkeypatch.setattr(fileio.os, "replace", replace)
    with pytest.raises(OSError, match="No space"):
        commit_files(moves, overwrite=True, scratch=staging)
    monkeypatch.undo()
    assert (out / "a.npz").read_text() == "old a.npz"
    assert (out / "a.mp4").read_text() == "old a.mp4"
    assert not (out / "a.json").exists()


def test_commit_without_overwrite_loses_to_a_file_that_appeared(tmp_path) -> None:
    out, staging, moves = _staged(tmp_path, ["a.npz", "a.json"])
    (out / "a.json").write_text("the other run's")
    with pytest.raises(OutputExistsError, match="another run"):
        commit_files(moves, overwrite=False, scratch=staging)
    assert sorted(p.name for p in out.iterdir()) == [".staging", "a.json"]
    assert (out / "a.json").read_text() == "the other run's"


def test_commit_never_replaces_a_folder(tmp_path) -> None:
    out, staging, moves = _staged(tmp_path, ["a.json", "a.npz"])
    (out / "a.npz").mkdir()
    with pytest.raises(IsADirectoryError):
        commit_files(moves, overwrite=True, scratch=staging)
    assert (out / "a.npz").is_dir() and not (out / "a.json").exists()


def test_output_folder_problems_are_found_before_any_work(tmp_path, monkeypatch) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(DataError, match="is a file, not a folder"):
        check_output_folder(afile)
    with pytest.raises(DataError, match="afile is a file"):
        check_output_folder(afile / "sub" / "out")
    check_output_folder(tmp_path / "new" / "out", need_bytes=1000)
    assert sorted(tmp_path.iterdir()) == [afile]  # the folders made for the check are gone

    def refuse(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "ro"))

    with monkeypatch.context() as patch:
        patch.setattr(fileio.tempfile, "mkstemp", refuse)
        with pytest.raises(DataError, match=r"cannot write the outputs here: .*permission"):
            check_output_folder(tmp_path / "ro")
    usage = shutil.disk_usage(tmp_path)
    with pytest.raises(DataError, match="free and the outputs need about"):
        check_output_folder(tmp_path, need_bytes=usage.free * 2)


def test_os_errors_are_described_in_one_line_with_advice() -> None:
    text = describe_os_error(OSError(errno.ENOSPC, "No space left on device", "/x/a.npz"))
    assert text == "/x/a.npz: no space left on device (the disk is full: free some space or " \
                   "write elsewhere)"


def test_atomic_write_without_overwrite_keeps_a_file_written_meanwhile(tmp_path) -> None:
    target = tmp_path / "words.TextGrid"
    with (pytest.raises(OutputExistsError, match="another run"),
          atomic_path(target, overwrite=False) as tmp):
        tmp.write_text("mine")
        target.write_text("the other run's")
    assert [p.name for p in tmp_path.iterdir()] == ["words.TextGrid"]
    assert target.read_text() == "the other run's"
    with atomic_path(tmp_path / "new.txt", overwrite=False) as tmp:
        tmp.write_text("mine")
    assert (tmp_path / "new.txt").read_text() == "mine"


def test_files_written_together_appear_together_or_not_at_all(tmp_path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.json").write_text("old")

    def broken(path: Path) -> None:
        path.write_text("half")
        raise RuntimeError("writer failed")

    with pytest.raises(RuntimeError, match="writer failed"):
        fileio.write_together({out / "a.json": lambda p: p.write_text("new"),
                               out / "a.md": broken})
    assert [p.name for p in out.iterdir()] == ["a.json"]
    assert (out / "a.json").read_text() == "old"
    fileio.write_together({out / "a.json": lambda p: p.write_text("new"),
                           out / "a.md": lambda p: p.write_text("new md")})
    assert sorted(p.read_text() for p in out.iterdir()) == ["new", "new md"]
    with pytest.raises(ValueError, match="one folder"):
        fileio.write_together({out / "a": print, tmp_path / "b": print})
