"""One generation window as a task graph for the two CPU lanes (:mod:`semtalk.inference.lanes`).

ψ (computed ahead for several windows) decides what runs: the sparse body branch and heads only
when a token takes their codes (ψ > β), the base body heads only when a token keeps them
(ψ <= β); the base face always. Tasks: the seed encoders and body-branch trunks, the base face
branch, each body part's step (:meth:`~semtalk.models.body_branch.BodyBranch.part`),
Coarse2Fine (and the Eq. 5 blend), the code heads in stacked groups (:func:`head_groups`), each
part's fused codes (``"codes <part>"``) and, with ``next_seed``, each part's decoded features
(``"decode <part>"``) as soon as its codes are known. The tasks call the models' own named steps,
so the codes are those of the full models followed by E(q^b, q^s; ψ) (tests compare both).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from semtalk.body.parts import BodyPart
from semtalk.inference.lanes import Lanes, Task
from semtalk.models.base_generator import BaseAudio, BaseMotionGenerator
from semtalk.models.body_branch import BODY_PARTS
from semtalk.models.fusion import fuse_codes
from semtalk.models.generator_common import GeneratorInputs
from semtalk.models.sparse_generator import SemanticScore, SparseMotionGenerator
from semtalk.models.tokenizer import MotionTokenizer

Codes = dict[BodyPart, torch.Tensor]
Results = Mapping[str, Any]
"""What a task reads: the results of the tasks so far (``{name: value}``)."""


@dataclass(frozen=True)
class WindowModels:
    """The models a window runs: both generators and the tokenizer (for the next seed)."""

    base: BaseMotionGenerator
    sparse: SparseMotionGenerator
    tokenizer: MotionTokenizer


@dataclass(frozen=True)
class WindowInputs:
    """One window (batch of one) whose seed is in place, and what was computed ahead of it.

    Attributes:
        inputs: the generators' inputs, the seed rows written into ``inputs.motion``.
        score: the sparse model's :meth:`~SparseMotionGenerator.score` (ψ after emphasis).
        audio: the base model's :meth:`~BaseMotionGenerator.encode_audio`.
    """

    inputs: GeneratorInputs
    score: SemanticScore
    audio: BaseAudio


def head_groups(base_body: tuple[BodyPart, ...], sparse_parts: tuple[BodyPart, ...]
                ) -> dict[str, tuple[str, tuple[BodyPart, ...]]]:
    """The code-head tasks of a window: ``{name: ("base" | "sparse", parts)}``, each a
    stacked pass over neighbouring parts, sized so that two lanes finish them together.

    Both models' body heads: the four base heads beside the three sparse ones. One model's
    body heads only: its heads and the base face head in two groups of two.
    """
    face = (BodyPart.FACE,)
    if base_body and sparse_parts:
        return {"base heads": ("base", face + base_body), "sparse heads": ("sparse", sparse_parts)}
    if sparse_parts:
        return {"sparse heads": ("sparse", sparse_parts[:2]), "face head": ("base", face),
                "sparse heads 2": ("sparse", sparse_parts[2:])}
    every = face + base_body
    return {"base heads": ("base", every[:2]), "base heads 2": ("base", every[2:])}


def _sparse_features(sparse_model: SparseMotionGenerator, done: Mapping[str, Any],
                     score: SemanticScore) -> dict[BodyPart, torch.Tensor]:
    """The sparse model's refined body features, blended with the base ones (Eq. 5)."""
    features = sparse_model.refine({part: done[f"sparse {part.value}"]
                                    for part in sparse_model.parts})
    if sparse_model.blend is None:
        return features
    return sparse_model.blend_base(features, done["base refine"].features, score.psi)


def _fused_part(part: BodyPart, done: Mapping[str, Any], sources: Mapping[str, str],
                psi: torch.Tensor, beta: float) -> torch.Tensor:
    """E(q^b, q^s; ψ) of one part from the logits of the heads that ran for it
    (``sources``: ``{"base" | "sparse": task name}``)."""
    codes = {model: {part: done[name][part][0].argmax(dim=-1)}
             for model, name in sources.items()}
    return fuse_codes(codes.get("base", {}), codes.get("sparse", {}), psi, beta,
                      parts=(part,))[part]


def window_tasks(models: WindowModels, window: WindowInputs, beta: float,
                 next_seed: bool) -> dict[str, Task]:
    """The task graph of one window (see the module docstring), longest path first."""
    base_model, sparse_model = models.base, models.sparse
    batch, score, audio = window.inputs, window.score, window.audio
    psi = score.psi[0]
    chosen = psi > beta
    sparse_parts = tuple(sparse_model.parts) if bool(chosen.any()) else ()
    base_body = tuple(p for p in BODY_PARTS
                      if p not in sparse_parts or not bool(chosen.all()))
    # the longest path first: a free lane takes the first ready task (the caller the base
    # seed encoder, the worker, a moment later, the sparse trunk)
    tasks = {"base seed": Task(lambda r: base_model.seed_encoder(batch.motion, batch.mask))}
    if sparse_parts:
        tasks["sparse trunk"] = Task(lambda r: sparse_model.encode_trunk(batch, score))
    tasks["base trunk"] = Task(
        lambda r: base_model.body.trunk(r["base seed"], batch.speaker, audio.body),
        ("base seed",))
    tasks["base face"] = Task(
        lambda r: base_model.face(r["base seed"], audio.face, batch.speaker), ("base seed",))
    for part in BODY_PARTS:
        def base_part(r: Results, part: BodyPart = part) -> torch.Tensor:
            return base_model.body.part(r["base trunk"], part)

        tasks[f"base {part.value}"] = Task(base_part, ("base trunk",))
    tasks["base refine"] = Task(
        lambda r: base_model.refine({part: r[f"base {part.value}"] for part in
                                     base_model.parts}, audio, rhythm=False),
        tuple(f"base {part.value}" for part in base_model.parts))
    heads = head_groups(base_body, sparse_parts)
    for name, (model, parts) in heads.items():
        if model == "base":
            def base_heads(r: Results, parts: tuple[BodyPart, ...] = parts
                           ) -> dict[BodyPart, torch.Tensor]:
                return base_model.predict_codes(r["base refine"], parts)[0]

            tasks[name] = Task(base_heads, ("base refine",))
    if sparse_parts:
        for part in sparse_parts:
            def sparse_part(r: Results, part: BodyPart = part) -> torch.Tensor:
                return sparse_model.body.part(r["sparse trunk"], part)

            tasks[f"sparse {part.value}"] = Task(sparse_part, ("sparse trunk",))
        tasks["sparse refine"] = Task(lambda r: _sparse_features(sparse_model, r, score),
                                      (*(f"sparse {p.value}" for p in sparse_parts),
                                       "base refine"))
        for name, (model, parts) in heads.items():
            if model == "sparse":
                def sparse_heads(r: Results, parts: tuple[BodyPart, ...] = parts
                                 ) -> dict[BodyPart, torch.Tensor]:
                    return sparse_model.predict_codes(r["sparse refine"], score, parts)[0]

                tasks[name] = Task(sparse_heads, ("sparse refine",))
    for part in BodyPart:
        sources = {model: name for name, (model, parts) in heads.items() if part in parts}

        def fused_codes(r: Results, part: BodyPart = part,
                        sources: dict[str, str] = sources) -> torch.Tensor:
            return _fused_part(part, r, sources, psi, beta)

        tasks[f"codes {part.value}"] = Task(fused_codes, tuple(sources.values()))
    if next_seed:
        tokenizer = models.tokenizer
        for part in BodyPart:
            def decoded(r: Results, part: BodyPart = part) -> torch.Tensor:
                codes = {part: r[f"codes {part.value}"][None]}
                return tokenizer.decode_parts(codes)[part][0].float()

            tasks[f"decode {part.value}"] = Task(decoded, (f"codes {part.value}",))
    return tasks


def run_window(lanes: Lanes, models: WindowModels, window: WindowInputs, beta: float,
               next_seed: bool) -> tuple[Codes, dict[BodyPart, torch.Tensor] | None]:
    """Fused codes ``{part: [N, Q]}`` of one window and, with ``next_seed``, each part's
    decoded features ``{part: [T, D]}`` (None without), the graph run on ``lanes``."""
    done = lanes.run_graph(window_tasks(models, window, beta, next_seed))
    codes = {part: done[f"codes {part.value}"] for part in BodyPart}
    decoded = ({part: done[f"decode {part.value}"] for part in BodyPart} if next_seed
               else None)
    return codes, decoded
