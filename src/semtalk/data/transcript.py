"""Transcripts given on the command line or in files."""

from __future__ import annotations

from pathlib import Path

from semtalk.errors import DataError


def read_transcript(value: str) -> str:
    """The transcript text: the file's contents when ``value`` names a file, else ``value``.

    A value that looks like a file name (one token ending in ``.txt``) but is missing is an
    error rather than a one-word transcript.
    """
    path = Path(value)
    if path.is_file():
        try:
            return path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(path, f"cannot read transcript: {exc}") from exc
    if path.suffix.lower() == ".txt" and " " not in value.strip():
        raise DataError(path, "transcript file not found")
    return value
