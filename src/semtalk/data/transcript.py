"""Transcripts given on the command line or in files.

A transcript option takes either the text itself or the path of a text file holding it. The
rule that tells them apart, :func:`transcript_path`, never lets the filesystem raise: a value
with a line break or a NUL, or longer than a path can be (:data:`MAX_PATH_BYTES`), is text;
otherwise it is a path when something exists at it, and text when not.
"""

from __future__ import annotations

from pathlib import Path

from semtalk.errors import DataError

MAX_PATH_BYTES = 4096
"""Longest value (UTF-8 bytes) treated as a possible path: Linux's PATH_MAX."""
MAX_NAME_BYTES = 255
"""Longest single path component (UTF-8 bytes) on common filesystems: NAME_MAX."""


def transcript_path(value: str | Path) -> Path | None:
    """The existing file or folder ``value`` names, or None when ``value`` is text.

    Never raises: values that cannot be paths (line breaks, NUL, over :data:`MAX_PATH_BYTES`
    or with a component over :data:`MAX_NAME_BYTES`) are text without asking the filesystem,
    and any ``OSError``/``ValueError`` from the existence check means text too.
    """
    value = str(value)
    if not _could_be_path(value):
        return None
    path = Path(value)
    try:
        return path if path.exists() else None
    except (OSError, ValueError):
        return None


def _could_be_path(value: str) -> bool:
    """Whether ``value`` is short enough and free of line breaks/NUL to be a path at all."""
    if any(c in value for c in "\n\r\0"):
        return False
    if len(value.encode("utf-8", "replace")) > MAX_PATH_BYTES:
        return False
    return all(len(part.encode("utf-8", "replace")) <= MAX_NAME_BYTES
               for part in Path(value).parts)


def read_transcript(value: str | Path) -> str:
    """The transcript text: the file's contents when ``value`` names a file, else ``value``.

    See :func:`transcript_path` for the rule. A value that looks like a file name (one token
    ending in ``.txt``) but is missing is an error rather than a one-word transcript; a folder
    is an error.
    """
    value = str(value)
    path = transcript_path(value)
    if path is not None:
        if path.is_dir():
            raise DataError(path, "is a directory, expected a transcript (the text, or a "
                                  "text file holding it)")
        try:
            return path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(path, f"cannot read transcript: {exc}") from exc
    stripped = value.strip()
    if stripped.lower().endswith(".txt") and " " not in stripped and _could_be_path(stripped):
        raise DataError(Path(stripped), "transcript file not found")
    return value
