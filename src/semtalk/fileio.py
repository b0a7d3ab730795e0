"""Atomic file writing (outputs appear whole or not at all), temporary names that say which
process made them (so a later run can clear what a killed one left), file locks and file
digests.

Every temporary file or folder made here has the writing process's id in its name:
``.NAME.tmp-PID-XXXXXXXX.SUFFIX`` for a file (:func:`atomic_path`) and
``.semtalk-KIND-PID-XXXXXXXX`` for a folder (:func:`temp_folder`). :func:`clear_stale_temp`
removes those of processes that are no longer running.

:func:`commit_files` puts several staged files in place as one unit, and
:func:`check_output_folder` finds, before any work, the folder problems that would otherwise
surface only when the outputs are written.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from semtalk.errors import DataError

TEMP_FILE = re.compile(r"^\..+\.tmp-(?P<pid>\d+)-[A-Za-z0-9_]{8}(\.[^.]*)?$")
"""Names of the temporary files :func:`atomic_path` makes."""
TEMP_FOLDER = re.compile(r"^\.semtalk-[a-z]+-(?P<pid>\d+)-[A-Za-z0-9_]{8}$")
"""Names of the temporary folders :func:`temp_folder` makes."""


@contextlib.contextmanager
def atomic_path(path: str | Path, *, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it over ``path`` on success.

    The temporary file keeps ``path``'s suffix (some writers choose the format from it) and
    names this process (``.STEM.tmp-PID-XXXXXXXX.SUFFIX``). On any exception the temporary file
    is removed and ``path`` is left untouched. ``overwrite=False``: an existing ``path``, even
    one another process wrote while this one worked, is an :class:`OutputExistsError` at the
    rename (:func:`place_new`) and is left as it is.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.stem}.tmp-{os.getpid()}-",
                                    suffix=target.suffix, dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # after the writer: it may have replaced the 0600 file mkstemp made by one of its own
        usual_permissions(tmp)
        if overwrite:
            os.replace(tmp, target)
        else:
            place_new(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def temp_folder(parent: str | Path, kind: str) -> Path:
    """A new empty folder ``parent/.semtalk-KIND-PID-XXXXXXXX`` (``kind``: lowercase letters);
    the caller removes it. ``parent`` must exist."""
    if not re.fullmatch(r"[a-z]+", kind):
        raise ValueError(f"kind must be lowercase letters, got {kind!r}")
    folder = Path(tempfile.mkdtemp(prefix=f".semtalk-{kind}-{os.getpid()}-", dir=parent))
    usual_permissions(folder, directory=True)
    return folder


def process_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine (one of another user counts)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return True  # cannot tell: keep its files
    return True


def temp_owner(name: str) -> int | None:
    """The process id in a temporary name made here, or None for any other name."""
    match = TEMP_FILE.match(name) or TEMP_FOLDER.match(name)
    return int(match["pid"]) if match else None


def clear_stale_temp(folder: str | Path) -> list[Path]:
    """Remove the temporary files and folders in ``folder`` left by processes that are no
    longer running (e.g. killed with SIGKILL); those of running processes are kept.

    Returns:
        What was removed. A missing or unreadable folder, or an entry that cannot be removed,
        is skipped silently (this is housekeeping; the next write reports real problems).
    """
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        pid = temp_owner(entry.name)
        if pid is None or pid == os.getpid() or process_alive(pid):
            continue
        path = Path(entry.path)
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(path)
            else:
                path.unlink()
        except OSError:
            continue
        removed.append(path)
    return removed


class OutputExistsError(DataError):
    """An output file exists and may not be replaced (e.g. another run wrote it meanwhile)."""


WRITTEN_MEANWHILE = "already exists (written by another run while this one was working)"
"""What :func:`place_new` says when the name it was to take appeared meanwhile."""
NO_HARD_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK,
                 errno.ENOSYS}
"""Errors of :func:`os.link` on file systems without hard links."""


def place_new(staged: Path, target: Path) -> None:
    """Rename ``staged`` to ``target`` only if ``target`` does not exist, atomically.

    A hard link claims the name (it fails when the name exists, whoever made it in the
    meantime); on file systems without hard links, an exclusive create claims it instead.

    Raises:
        OutputExistsError: ``target`` exists.
    """
    try:
        os.link(staged, target)
    except FileExistsError:
        raise OutputExistsError(target, WRITTEN_MEANWHILE) from None
    except OSError as exc:
        if exc.errno not in NO_HARD_LINKS:
            raise
        try:
            os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        except FileExistsError:
            raise OutputExistsError(target, WRITTEN_MEANWHILE) from None
        try:
            os.replace(staged, target)
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        return
    with contextlib.suppress(OSError):  # the staging folder goes anyway
        staged.unlink()


def commit_files(moves: Mapping[Path, Path], *, overwrite: bool, scratch: Path) -> None:
    """Rename each staged file onto its target (``{staged: target}``), all or none.

    Each staged file must be on the same file system as its target (stage them in a folder
    inside the target folder, e.g. :func:`temp_folder`). With ``overwrite`` an existing target
    is first moved into ``scratch`` (same file system), else an existing one, even one that
    appeared only now, is an :class:`OutputExistsError` (:func:`place_new`). When any step
    fails (an interrupt included), the targets already placed are removed and the files they
    replaced are moved back, then the error is raised. A target that is a folder is never
    replaced (IsADirectoryError).
    """
    placed: list[Path] = []
    backups: list[tuple[Path, Path]] = []
    try:
        for n, (staged, target) in enumerate(moves.items()):
            if not overwrite:
                place_new(staged, target)
                placed.append(target)
                continue
            if target.is_dir() and not target.is_symlink():
                raise IsADirectoryError(errno.EISDIR, "is a folder; an output file does not "
                                                      "replace it", str(target))
            if target.exists() or target.is_symlink():
                backup = scratch / f".replaced-{n}-{target.name}"
                os.replace(target, backup)
                backups.append((backup, target))
            os.replace(staged, target)
            placed.append(target)
    except BaseException:
        for target in reversed(placed):
            with contextlib.suppress(OSError):
                target.unlink()
        for backup, target in reversed(backups):
            with contextlib.suppress(OSError):
                os.replace(backup, target)
        raise


def write_together(writers: Mapping[Path, Callable[[Path], object]], *,
                   overwrite: bool = True) -> None:
    """Write several files of one folder as one unit: ``{target: write}``, each
    ``write(path)`` writing its file at the path it is given.

    All are written into a temporary folder inside the targets' folder (created if needed;
    temporary files of dead processes there are cleared first, :func:`clear_stale_temp`), then
    put in place by :func:`commit_files` (``overwrite`` as there). On any failure nothing of
    this call is left: no temporary file, no new target, and the replaced files are back.

    Raises:
        ValueError: the targets are not all in one folder.
    """
    folders = {Path(target).parent for target in writers}
    if len(folders) != 1:
        raise ValueError(f"files written together must share one folder, got {sorted(folders)}")
    folder = folders.pop()
    folder.mkdir(parents=True, exist_ok=True)
    clear_stale_temp(folder)
    staging = temp_folder(folder, "staging")
    try:
        staged = {Path(target): staging / Path(target).name for target in writers}
        for target, write in writers.items():
            write(staged[Path(target)])
        commit_files({path: target for target, path in staged.items()}, overwrite=overwrite,
                     scratch=staging)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def describe_os_error(exc: OSError) -> str:
    """One line for an environmental error: the file, what went wrong, what to do."""
    reason = (exc.strerror or str(exc)).rstrip(".")
    advice = {errno.ENOSPC: "the disk is full: free some space or write elsewhere",
              errno.EDQUOT: "the disk quota is used up: free some space or write elsewhere",
              errno.EACCES: "no permission: check the folder's permissions or write elsewhere",
              errno.EPERM: "not permitted: check the folder's permissions or write elsewhere",
              errno.EROFS: "read-only file system: write elsewhere"}.get(exc.errno or 0)
    where = f"{exc.filename}: " if exc.filename else ""
    text = f"{where}{reason[:1].lower()}{reason[1:]}"
    return f"{text} ({advice})" if advice else text


def check_output_folder(folder: str | Path, need_bytes: int = 0) -> None:
    """Fail now, naming the folder, if the outputs could not be written into ``folder``.

    Checks that ``folder`` is not a file (nor inside one), that it can be created and written
    (by writing and removing a probe file, which tests what permission bits cannot: ACLs,
    read-only mounts, quotas) and that its disk has at least ``need_bytes`` free. Folders made
    for the check are removed again, so nothing is left behind.

    Raises:
        DataError: what is wrong and what to do.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise DataError(folder, "is a file, not a folder: give a folder for the outputs")
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise DataError(folder, f"cannot be created: {existing} is a file, not a folder")
    created = [d for d in (folder, *folder.parents) if not d.exists()]
    try:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(prefix=f".semtalk-probe.tmp-{os.getpid()}-",
                                         dir=folder)
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(b"semtalk write test\n")
            finally:
                Path(probe).unlink(missing_ok=True)
            free = shutil.disk_usage(folder).free
        except OSError as exc:
            raise DataError(folder, f"cannot write the outputs here: "
                                    f"{describe_os_error(exc)}") from exc
        if free < need_bytes:
            raise DataError(folder, f"its disk has {_size(free)} free and the outputs need "
                                    f"about {_size(need_bytes)}: free some space or write "
                                    f"elsewhere")
    finally:
        for made in created:  # the deepest first
            with contextlib.suppress(OSError):
                made.rmdir()


def _size(num_bytes: int) -> str:
    """``"3.2 MB"``, ``"1.5 GB"``."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if num_bytes >= scale:
            return f"{num_bytes / scale:.1f} {unit}"
    return f"{num_bytes} bytes"


def write_text_atomic(path: str | Path, text: str, *, overwrite: bool = True) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (``overwrite`` as in :func:`atomic_path`).
    """
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_text(text, encoding="utf-8")


def file_sha256(path: str | Path, block: int = 1 << 22) -> str:
    """Hex SHA-256 of a file's bytes, read in ``block``-byte pieces."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while chunk := handle.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def usual_permissions(path: str | Path, *, directory: bool = False) -> None:
    """Give ``path`` the mode a plain ``open``/``mkdir`` would: 0666 (0777) less the umask.

    ``mkstemp``/``mkdtemp`` create 0600/0700 entries and some writers (safetensors) replace the
    file they are handed by one of their own; outputs should not stay private by accident.
    """
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


def _umask() -> int:
    """The process umask, read without changing it where Linux allows (``os.umask`` can only
    be read by setting it, which briefly affects files other threads create)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


class LockBusyError(OSError):
    """The lock is held by another process (:attr:`holder` says which, when it wrote it)."""

    def __init__(self, path: Path, holder: str) -> None:
        self.path = path
        self.holder = holder
        super().__init__(f"{path}: held by {holder or 'another process'}")


class FileLock:
    """An advisory ``flock`` on ``path`` (created if needed), released by :meth:`release`.

    The lock lives as long as this object's open file; the kernel drops it when the process
    dies, so a crashed holder never leaves the lock taken. An exclusive holder writes
    ``PID <pid>`` into the file (emptied on release) so that others can say who holds it. The
    file itself stays: deleting a lock file while others may have it open breaks the lock.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        self.exclusive = False

    @staticmethod
    def holder_of(path: str | Path) -> str:
        """What the exclusive holder of the lock file ``path`` wrote (``"PID 1234"``), or ``""``."""
        try:
            return Path(path).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            return ""

    def holder(self) -> str:
        """What the current exclusive holder wrote (``"PID 1234"``), or ``""``."""
        return self.holder_of(self.path)

    def acquire(self, *, exclusive: bool, wait: bool) -> None:
        """Take (or convert to) a shared or exclusive lock.

        Raises :class:`LockBusyError` when ``wait`` is false and another process holds a
        conflicting lock.
        """
        import fcntl

        assert self._fd is not None, "lock already released"
        flags = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | (0 if wait else fcntl.LOCK_NB)
        try:
            fcntl.flock(self._fd, flags)
        except BlockingIOError:
            raise LockBusyError(self.path, self.holder()) from None
        if exclusive:
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, f"PID {os.getpid()}\n".encode(), 0)
        elif self.exclusive:
            os.ftruncate(self._fd, 0)
        self.exclusive = exclusive

    def release(self) -> None:
        """Drop the lock (emptying the holder note if it was exclusive) and close the file."""
        if self._fd is None:
            return
        if self.exclusive:
            os.ftruncate(self._fd, 0)
        os.close(self._fd)  # closing the last descriptor releases the flock
        self._fd = None

    def __enter__(self) -> FileLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
