"""Errors and issue records that name the file and the problem."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path


class Severity(str, Enum):
    """How bad a data issue is: errors stop a clip from loading, warnings do not."""

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class DataIssue:
    """One problem found in one file."""

    path: Path
    problem: str
    severity: Severity = Severity.ERROR

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"


class DataError(ValueError):
    """A file cannot be used. The message always starts with the file's path."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    @property
    def issue(self) -> DataIssue:
        """This error as a :class:`DataIssue` record."""
        return DataIssue(self.path, self.problem, Severity.ERROR)


def require_file(path: str | Path, kind: str) -> Path:
    """``path`` if it is a non-empty file, else a :class:`DataError` saying what it is instead.

    ``kind`` names what was expected (``"audio file"``, ``"motion file"`` ...).
    """
    path = Path(path)
    if path.is_dir():
        raise DataError(path, f"is a directory, expected a{'n' if kind[0] in 'aeiou' else ''} "
                              f"{kind}")
    if not path.is_file():
        raise DataError(path, f"{kind} not found")
    if path.stat().st_size == 0:
        raise DataError(path, f"{kind} is empty (0 bytes)")
    return path
