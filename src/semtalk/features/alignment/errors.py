"""The errors and warnings of alignment."""

from __future__ import annotations

from semtalk.errors import DataError


class AlignmentError(DataError):
    """A transcript could not be aligned to its audio; the message names the audio and why."""


class AlignmentFallbackWarning(UserWarning):
    """Alignment failed and recognised words are returned instead."""


class UnalignedWordsWarning(UserWarning):
    """The transcript's last few words are not in the audio: the rest is aligned, they are
    left out (the message lists them)."""
