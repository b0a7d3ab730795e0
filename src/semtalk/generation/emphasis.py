"""Emphasis control: the user raises or lowers the semantic score ψ on chosen words.

ψ decides, per token, whether the sparse (semantic) codes replace the base (rhythmic) codes of
the body parts, and it weighs the sparse model's semantic features (W_f) and its blend with the
base features (Eq. 5). Editing ψ inside the sparse model, before all three, is therefore how a
user asks for "a gesture on *never*" or "no big gesture on *um*":

1. ``scale``: ψ' = clip(scale · ψ, 0, 1) everywhere;
2. ``emphasize``: tokens overlapping the words get ψ' = max(ψ', raise_to) (0.9 > β = 0.5);
3. ``suppress``: tokens overlapping the words get ψ' = min(ψ', lower_to) (0.1), last, so a
   token both emphasized and suppressed ends suppressed.

Words and phrases match case-insensitively and ignore edge punctuation; a phrase matches
consecutive spoken words.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from semtalk.constants import MOTION_FPS
from semtalk.data.textgrid import Word, frame_span
from semtalk.features.text import normalize_word


@dataclass(frozen=True)
class Emphasis:
    """What to change in ψ (see the module docstring).

    Attributes:
        emphasize / suppress: words or phrases ("dream job").
        scale: global factor on ψ (1 = unchanged).
        raise_to / lower_to: the ψ emphasized tokens are raised to / suppressed ones lowered to.
    """

    emphasize: tuple[str, ...] = ()
    suppress: tuple[str, ...] = ()
    scale: float = 1.0
    raise_to: float = 0.9
    lower_to: float = 0.1

    def __post_init__(self) -> None:
        object.__setattr__(self, "emphasize", tuple(self.emphasize))
        object.__setattr__(self, "suppress", tuple(self.suppress))
        if not (math.isfinite(self.scale) and self.scale >= 0):
            raise ValueError(f"emphasis scale must be a finite number >= 0, got {self.scale}")
        for name in ("raise_to", "lower_to"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        for phrase in (*self.emphasize, *self.suppress):
            if not _tokens(phrase):
                raise ValueError(f"emphasis phrase {phrase!r} holds no word")

    @classmethod
    def parse(cls, emphasize: str | None = None, suppress: str | None = None,
              scale: float = 1.0) -> Emphasis:
        """From comma-separated lists, as the command line takes them."""
        def split(text: str | None) -> tuple[str, ...]:
            return tuple(p.strip() for p in (text or "").split(",") if p.strip())
        return cls(split(emphasize), split(suppress), scale)

    @property
    def active(self) -> bool:
        """Whether anything changes ψ."""
        return bool(self.emphasize or self.suppress) or self.scale != 1.0


def _tokens(phrase: str) -> list[str]:
    return [w for w in (normalize_word(t) for t in phrase.split()) if w]


def phrase_matches(words: list[Word], phrase: str) -> list[tuple[float, float, str]]:
    """``(start, end, spoken text)`` of every occurrence of ``phrase`` in consecutive ``words``."""
    wanted = _tokens(phrase)
    spoken = [normalize_word(w.text) for w in words]
    matches = []
    for i in range(len(words) - len(wanted) + 1):
        if spoken[i:i + len(wanted)] == wanted:
            run = words[i:i + len(wanted)]
            matches.append((run[0].start, run[-1].end, " ".join(w.text for w in run)))
    return matches


def _token_span(start: float, end: float, frames_per_token: int, fps: int,
                num_tokens: int) -> tuple[int, int]:
    first, stop = frame_span(start, end, fps, num_tokens * frames_per_token)
    first //= frames_per_token
    return first, min(num_tokens, max(-(-stop // frames_per_token), first + 1))


@dataclass
class PsiEdit:
    """Per-token bounds that turn the model's ψ into the emphasised ψ.

    Attributes:
        scale: global factor.
        floor, ceiling: ``[N]`` per-token lower and upper bounds applied after scaling.
        record: what was asked and matched (JSON-ready; filled in further by generation).
    """

    scale: float
    floor: np.ndarray
    ceiling: np.ndarray
    record: dict[str, Any] = field(default_factory=dict)

    def apply(self, psi: torch.Tensor, first_token: int) -> torch.Tensor:
        """``psi [B, n]`` for tokens ``first_token .. first_token + n`` -> edited ψ."""
        n = psi.shape[-1]
        floor = torch.as_tensor(self.floor[first_token:first_token + n], dtype=psi.dtype,
                                device=psi.device)
        ceiling = torch.as_tensor(self.ceiling[first_token:first_token + n], dtype=psi.dtype,
                                  device=psi.device)
        if floor.shape[-1] != n:
            raise ValueError(f"ψ edit covers {len(self.floor)} tokens; asked for tokens "
                             f"{first_token}..{first_token + n}")
        return torch.minimum(torch.maximum((psi * self.scale).clamp(0, 1), floor), ceiling)


def psi_edit(emphasis: Emphasis, words: list[Word], num_tokens: int,
             frames_per_token: int = 4, fps: int = MOTION_FPS) -> PsiEdit:
    """The :class:`PsiEdit` of ``emphasis`` for an utterance of ``num_tokens`` tokens."""
    floor = np.zeros(num_tokens, np.float32)
    ceiling = np.ones(num_tokens, np.float32)
    record: dict[str, Any] = {"scale": emphasis.scale, "raise_to": emphasis.raise_to,
                              "lower_to": emphasis.lower_to, "emphasize": [], "suppress": [],
                              "unmatched": []}
    for action, phrases in (("emphasize", emphasis.emphasize), ("suppress", emphasis.suppress)):
        for phrase in phrases:
            matches = phrase_matches(words, phrase)
            if not matches:
                record["unmatched"].append(phrase)
            for start, end, text in matches:
                first, last = _token_span(start, end, frames_per_token, fps, num_tokens)
                if first >= last:
                    continue
                if action == "emphasize":
                    floor[first:last] = emphasis.raise_to
                else:
                    ceiling[first:last] = emphasis.lower_to
                record[action].append({
                    "phrase": phrase, "text": text, "start": round(start, 4),
                    "end": round(end, 4), "tokens": [first, last],
                    "frames": [first * frames_per_token, last * frames_per_token]})
    floor = np.minimum(floor, ceiling)  # suppression wins
    return PsiEdit(emphasis.scale, floor, ceiling, record)
