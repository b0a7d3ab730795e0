"""Atomic file writing (outputs appear whole or not at all), file locks and file digests."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it over ``path`` on success.

    The temporary file keeps ``path``'s suffix (some writers choose the format from it). On any
    exception the temporary file is removed and ``path`` is left untouched.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{target.stem}.", suffix=f".tmp{target.suffix}", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # after the writer: it may have replaced the 0600 file mkstemp made by one of its own
        usual_permissions(tmp)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
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
