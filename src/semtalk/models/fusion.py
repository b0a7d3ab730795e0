"""The fusion of the two generators' codes, E(q^b, q^s; ψ) (paper §3.5)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from semtalk.body.parts import BodyPart

DEFAULT_BETA = 0.5
"""The fusion threshold β: a token takes the sparse codes where ψ > β."""


def fuse_codes(base: dict[BodyPart, torch.Tensor], sparse: dict[BodyPart, torch.Tensor],
               psi: torch.Tensor, beta: float = DEFAULT_BETA,
               parts: Sequence[BodyPart] = tuple(BodyPart)) -> dict[BodyPart, torch.Tensor]:
    """E(q^b, q^s; ψ): per token, the sparse codes where ψ > β, else the base codes.

    Args:
        base: ``{part: [N, Q]}`` codes of all four parts; a body part may be missing when
            every token takes the sparse codes (generation then skips its base heads).
        sparse: ``{part: [N, Q]}`` codes of the parts the sparse model predicts (the body);
            parts it lacks (the face) always come from ``base``.
        psi: ``[N]`` semantic score.
        parts: the parts to fuse (default all four).
    """
    chosen = psi > beta
    fused = {}
    for part in parts:
        if part in base and part in sparse:
            fused[part] = torch.where(chosen[:, None], sparse[part], base[part])
        elif part in base:
            fused[part] = base[part]
        elif part in sparse and bool(chosen.all()):  # every token takes the sparse codes
            fused[part] = sparse[part]
        else:
            raise ValueError(f"fusion needs the base codes of {part.value}: "
                             f"{'a token keeps them' if part in sparse else 'none given'}")
    return fused
