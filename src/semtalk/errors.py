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
