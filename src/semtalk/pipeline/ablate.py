"""``semtalk ablate``: train and evaluate the paper's ablation variants (Tables 2 and 3).

Table 2's switches are the paper's (DESIGN §1): W_f scales f_t by ψ
(``sparse_model.feature_weighting``), W_l supervises ψ with L_cls^G
(``sparse.gate_supervision``);
"w/o W" has neither, so its ψ learns only through the motion losses (the Eq. 5 blend). The
per-token code-loss weighting (``sparse.loss_weighting``) stays at its default in every row.

Every variant is a full pipeline (tokenizer -> base -> sparse -> release, the stages of
:data:`semtalk.pipeline.stages.PIPELINE`) with some switches flipped (DESIGN §1), then
evaluated with :mod:`semtalk.evaluation`. Stages that two variants would train identically are
trained once and shared:

==============  ==========  ========  ========================================================
variant         tokenizer   base      sparse stage
==============  ==========  ========  ========================================================
full            rvq         full      full (sem-gate, W_f and W_l)
no_gate         rvq         full      gate ``none`` (ψ = 1; no L_cls^G)         Table 2
random_psi      rvq         full      gate ``random`` (ψ ~ U(0, 1))             Table 2
no_weighting    rvq         full      learned gate, no W_f, no W_l              Table 2
wf_only         rvq         full      learned gate, W_f only                    Table 2
wl_only         rvq         full      learned gate, W_l only                    Table 2
no_rc           rvq         no_rc     full, on the base trained without RC      Table 3
no_se           rvq         full      none: base-only generation (β = 1)        Table 3
no_c2f          rvq         no_c2f    full without Coarse2Fine (both stages)    Table 3
vq              vq          vq        full, on single-layer VQ tokenizers       Table 3
==============  ==========  ========  ========================================================

Layout of ``OUT``::

    stages/tokenizer-<key>/    training runs and releases (tokenizer/, base/, sparse/), each
    stages/base-<key>/         with stage.json once finished (its config and training time)
    stages/sparse-<key>/
    fgd/                       the FGD encoder trained on the cache (unless one is given)
    variants/<name>/release/   the assembled release of the variant
    variants/<name>/eval/      its evaluation (generated clips, metrics.json, metrics.md)
    variants/<name>/result.json  written last: the variant is finished
    ablation.json, ablation.md   Tables 2 and 3 (raw and paper units), run times

Rerunning resumes: finished stages and variants are skipped (when their settings are
unchanged), an interrupted training resumes from its checkpoint, an interrupted evaluation
reuses its generated clips.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from semtalk.body.parts import BodyPart
from semtalk.config import to_dict
from semtalk.errors import DataError
from semtalk.evaluation.evaluate import evaluate_release
from semtalk.evaluation.report import ablation_markdown, write_json, write_markdown
from semtalk.evaluation.scoring import Scorer, ScoringOptions
from semtalk.features.cache import FeatureCache
from semtalk.fileio import write_text_atomic
from semtalk.pipeline.stages import PIPELINE, Workspace, train
from semtalk.release import SPARSE
from semtalk.training.fgd_encoder import load_fgd_config
from semtalk.training.generator import SparseSolver, load_generator_config
from semtalk.training.solver import SolverConfig
from semtalk.training.tokenizer import load_tokenizer_config

STAGE_FILE = "stage.json"
RESULT_FILE = "result.json"
ABLATION_JSON = "ablation.json"
ABLATION_MD = "ablation.md"
PLACEHOLDER_SPARSE = "sparse-placeholder"
"""An untrained sparse stage that completes the release of base-only variants (unused at
β = 1)."""


@dataclass(frozen=True)
class Variant:
    """One row of an ablation table.

    Attributes:
        name: folder name and ``--variants`` key.
        label: the row's name in the paper's wording.
        tokenizer: tokenizer stage key (:data:`TOKENIZER_STAGES`).
        base: base stage key (:data:`BASE_STAGES`).
        sparse: sparse stage key (:data:`SPARSE_STAGES`); ``None`` generates with the base
            model alone (the paper's "w/o SE").
        components: Table 3's switches ``{"RC", "SE", "C2F", "RVQ"}`` -> on/off.
    """

    name: str
    label: str
    tokenizer: str
    base: str
    sparse: str | None
    components: dict[str, bool] = field(default_factory=lambda: dict.fromkeys(
        ("RC", "SE", "C2F", "RVQ"), True))

    @property
    def base_only(self) -> bool:
        return self.sparse is None


TOKENIZER_STAGES: dict[str, tuple[str, ...]] = {
    "rvq": (),
    "vq": ("model.quantizer.num_quantizers=1", "model.quantizer.quantize_dropout=0.0"),
}
"""Tokenizer stage key -> config overrides."""

BASE_STAGES: dict[str, tuple[str, tuple[str, ...]]] = {
    "full": ("rvq", ()),
    "no_rc": ("rvq", ("base.use_rhythmic_projection=false",)),
    "no_c2f": ("rvq", ("base.use_coarse2fine=false", "sparse_model.use_coarse2fine=false")),
    "vq": ("vq", ()),
}
"""Base stage key -> (tokenizer stage, generator config overrides)."""

SPARSE_STAGES: dict[str, tuple[str, tuple[str, ...]]] = {
    "full": ("full", ()),
    "no_gate": ("full", ("sparse_model.gate=none",)),
    "random_psi": ("full", ("sparse_model.gate=random",)),
    "no_weighting": ("full", ("sparse_model.feature_weighting=false",
                              "sparse.gate_supervision=false")),
    "wf_only": ("full", ("sparse.gate_supervision=false",)),
    "wl_only": ("full", ("sparse_model.feature_weighting=false",)),
    "no_rc": ("no_rc", ()),
    "no_c2f": ("no_c2f", ()),
    "vq": ("vq", ()),
}
"""Sparse stage key -> (base stage, overrides added to the base stage's)."""


def _components(**off: bool) -> dict[str, bool]:
    return {k: not off.get(k, False) for k in ("RC", "SE", "C2F", "RVQ")}


VARIANTS: dict[str, Variant] = {v.name: v for v in (
    Variant("full", "Sem-gate (ours)", "rvq", "full", "full"),
    Variant("no_gate", "w/o Sem-gate", "rvq", "full", "no_gate"),
    Variant("random_psi", "Sem-gate (Random ψ)", "rvq", "full", "random_psi"),
    Variant("no_weighting", "Sem-gate (w/o W)", "rvq", "full", "no_weighting"),
    Variant("wf_only", "Sem-gate (w/ W_f)", "rvq", "full", "wf_only"),
    Variant("wl_only", "Sem-gate (w/ W_l)", "rvq", "full", "wl_only"),
    Variant("no_rc", "w/o RC", "rvq", "no_rc", "no_rc", _components(RC=True)),
    Variant("no_se", "w/o SE", "rvq", "full", None, _components(SE=True)),
    Variant("no_c2f", "w/o C2F", "rvq", "no_c2f", "no_c2f", _components(C2F=True)),
    Variant("vq", "VQ instead of RVQ", "vq", "vq", "vq", _components(RVQ=True)),
)}
"""Every variant, by name."""

TABLE2: tuple[str, ...] = ("no_gate", "random_psi", "no_weighting", "wf_only", "wl_only", "full")
"""Table 2 (sem-gate) rows in the paper's order."""
TABLE3: tuple[str, ...] = ("no_rc", "no_se", "no_c2f", "vq", "full")
"""Table 3 (components) rows: one component off each, then the full model."""


@dataclass(frozen=True)
class AblationConfig:
    """What ``semtalk ablate`` trains and how it evaluates.

    Attributes:
        preset: packaged preset of every stage (``tiny`` or ``paper``).
        variants: names to run (default: all of Tables 2 and 3).
        steps_scale: multiplies every stage's ``max_steps`` (and its validation, checkpoint
            and learning-rate-decay steps), e.g. 0.25 for a quick run.
        tokenizer_overrides, generator_overrides, fgd_overrides: ``key=value`` overrides of
            the stage configs (applied before the variant's own switches).
        tokenizer: an already trained RVQ tokenizer release to use as the ``rvq`` stage.
        scoring: split and evaluation assets; without an FGD encoder one is trained on the
            cache (``OUT/fgd``) so FGD is computed.
        progress: progress bars.
    """

    preset: str = "tiny"
    variants: tuple[str, ...] = tuple(VARIANTS)
    steps_scale: float = 1.0
    tokenizer_overrides: tuple[str, ...] = ()
    generator_overrides: tuple[str, ...] = ()
    fgd_overrides: tuple[str, ...] = ()
    tokenizer: str | Path | None = None
    scoring: ScoringOptions = field(default_factory=ScoringOptions)
    progress: bool = True

    def __post_init__(self) -> None:
        unknown = [v for v in self.variants if v not in VARIANTS]
        if unknown or not self.variants:
            raise ValueError(f"unknown or no variants {unknown}; choose from {list(VARIANTS)}")
        if self.steps_scale <= 0:
            raise ValueError(f"steps_scale must be > 0, got {self.steps_scale}")


def scale_solver(solver: SolverConfig, scale: float) -> SolverConfig:
    """``solver`` with its step counts multiplied by ``scale`` (each at least 1)."""
    if scale == 1.0:
        return solver

    def steps(value: int) -> int:
        return max(1, round(value * scale))

    return dataclasses.replace(
        solver, max_steps=steps(solver.max_steps),
        validate_every=steps(solver.validate_every) if solver.validate_every else 0,
        checkpoint_every=steps(solver.checkpoint_every),
        warmup_steps=round(solver.warmup_steps * scale),
        lr_decay_steps=tuple(steps(s) for s in solver.lr_decay_steps))


def _scaled(config: Any, scale: float) -> Any:
    return dataclasses.replace(config, solver=scale_solver(config.solver, scale))


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


class Ablation:
    """Trains the stages the chosen variants need (each once) and evaluates the variants.

    Args:
        data: the feature cache.
        out: the ablation folder (see the module docstring).
        config: what to run.
    """

    def __init__(self, data: str | Path, out: str | Path, config: AblationConfig) -> None:
        self.data = Path(data)
        self.cache = FeatureCache(data)
        self.out = Path(out)
        self.config = config
        self.stage_seconds: dict[str, float] = {}
        self.ready_made: dict[str, str] = {}
        self.log: Callable[[str], None] = print if config.progress else (lambda _: None)

    # ------------------------------------------------------------------ stages
    def _workspace(self, name: str, **settings: Any) -> Workspace:
        return Workspace(self.data, self.out / "stages" / name, progress=self.config.progress,
                         **settings)

    def _stage(self, name: str, kind: str, settings: Any, ws: Workspace) -> Path:
        """Train ``ws``'s pipeline stage ``kind`` as ablation stage ``name``, unless its
        ``stage.json`` says it finished with ``settings``; returns the stage's release."""
        marker = ws.runs / STAGE_FILE
        release = {"tokenizer": ws.tokenizer_release, "base": ws.base_release,
                   "sparse": ws.sparse_release, "fgd-encoder": ws.fgd_release}[kind]
        identity = json.loads(json.dumps(settings, default=str))
        if marker.is_file():
            record = json.loads(marker.read_text())
            if record.get("settings") == identity and release.is_dir():
                self.stage_seconds[name] = float(record["seconds"])
                return release
        self.log(f"[ablate] training {name}")
        started = time.perf_counter()
        release = train(ws, kind)
        seconds = time.perf_counter() - started
        self.stage_seconds[name] = seconds
        write_text_atomic(marker, json.dumps({"settings": identity, "seconds": round(seconds, 2)},
                                             indent=1) + "\n")
        return release

    def tokenizer_stage(self, key: str) -> Path:
        """The tokenizer release of stage ``key`` (``rvq`` may be given ready-made)."""
        if key == "rvq" and self.config.tokenizer is not None:
            folder = Path(self.config.tokenizer)
            missing = [p.value for p in BodyPart if not (folder / p.value).is_dir()]
            if missing:
                raise DataError(folder, f"--tokenizer lacks the part releases {missing}")
            self.stage_seconds.setdefault("tokenizer-rvq", 0.0)
            self.ready_made["tokenizer-rvq"] = str(folder.resolve())
            return folder
        config = _scaled(load_tokenizer_config(
            self.config.preset, overrides=[*self.config.tokenizer_overrides,
                                           *TOKENIZER_STAGES[key]]), self.config.steps_scale)

        name = f"tokenizer-{key}"
        return self._stage(name, "tokenizer", to_dict(config),
                           self._workspace(name, tokenizer_config=config))

    def _generator_config(self, overrides: Sequence[str]) -> Any:
        return _scaled(load_generator_config(
            self.config.preset, overrides=[*self.config.generator_overrides, *overrides]),
            self.config.steps_scale)

    def base_stage(self, key: str) -> Path:
        """The base release of stage ``key`` (training its tokenizer first)."""
        tokenizer_key, overrides = BASE_STAGES[key]
        tokenizer = self.tokenizer_stage(tokenizer_key)
        config = self._generator_config(overrides)
        settings = {"config": to_dict(config), "tokenizer": str(tokenizer)}
        name = f"base-{key}"
        return self._stage(name, "base", settings,
                           self._workspace(name, tokenizer=tokenizer, base_config=config))

    def sparse_stage(self, key: str) -> tuple[Path, Path, Path]:
        """``(tokenizer, base, sparse)`` releases of sparse stage ``key``."""
        base_key, extra = SPARSE_STAGES[key]
        tokenizer_key, base_overrides = BASE_STAGES[base_key]
        tokenizer, base = self.tokenizer_stage(tokenizer_key), self.base_stage(base_key)
        config = self._generator_config([*base_overrides, *extra])
        settings = {"config": to_dict(config), "tokenizer": str(tokenizer), "base": str(base)}
        name = f"sparse-{key}"
        sparse = self._stage(name, "sparse", settings,
                             self._workspace(name, tokenizer=tokenizer, base=base,
                                             sparse_config=config))
        return tokenizer, base, sparse

    def placeholder_sparse(self, tokenizer: Path, base: Path, base_key: str) -> Path:
        """An untrained (seeded) sparse model to complete a base-only release."""
        folder = self.out / "stages" / f"{PLACEHOLDER_SPARSE}-{base_key}"
        release = folder / SPARSE
        if not release.is_dir():
            config = self._generator_config(BASE_STAGES[base_key][1])
            solver = SparseSolver(config, self.data, tokenizer, base, folder / "unused_run")
            torch.manual_seed(0)
            solver.save_release(solver.build_model().eval(), release)
        return release

    def fgd_encoder(self) -> ScoringOptions:
        """The scoring options, with an FGD encoder trained on the cache when none is given."""
        scoring = self.config.scoring
        if scoring.fgd_encoder is not None or scoring.fgd_official is not None:
            return scoring
        config = _scaled(load_fgd_config(self.config.preset,
                                         overrides=list(self.config.fgd_overrides)),
                         self.config.steps_scale)
        encoder = self._stage("fgd", "fgd-encoder", to_dict(config),
                              self._workspace("fgd", fgd_config=config))
        return dataclasses.replace(scoring, fgd_encoder=encoder)

    # ------------------------------------------------------------------ variants
    def variant_stages(self, variant: Variant) -> dict[str, str]:
        """Names of the stages a variant uses (for the run-time table)."""
        base_key = variant.base
        stages = {"tokenizer": f"tokenizer-{BASE_STAGES[base_key][0]}",
                  "base": f"base-{base_key}"}
        if variant.sparse is not None:
            stages["sparse"] = f"sparse-{variant.sparse}"
        return stages

    def run_variant(self, variant: Variant, scorer: Scorer,
                    scoring_identity: dict[str, Any]) -> dict[str, Any]:
        """Train what ``variant`` needs, assemble its release, evaluate it; cached in
        ``variants/<name>/result.json``."""
        folder = self.out / "variants" / variant.name
        if variant.sparse is None:
            tokenizer = self.tokenizer_stage(BASE_STAGES[variant.base][0])
            base = self.base_stage(variant.base)
            sparse = self.placeholder_sparse(tokenizer, base, variant.base)
        else:
            tokenizer, base, sparse = self.sparse_stage(variant.sparse)
        stages = self.variant_stages(variant)
        key = _digest({"stages": {k: self._stage_settings(v) for k, v in stages.items()},
                       "scoring": scoring_identity, "base_only": variant.base_only})
        result_path = folder / RESULT_FILE
        if result_path.is_file():
            result = json.loads(result_path.read_text())
            if result.get("key") == key:
                return result
        self.log(f"[ablate] evaluating {variant.name}")
        release = folder / "release"
        PIPELINE.run_stage(Workspace(self.data, folder, release=release, tokenizer=tokenizer,
                                     base=base, sparse=sparse), "release", track=False)
        started = time.perf_counter()
        evaluation = evaluate_release(release, self.data, folder / "eval", scorer=scorer,
                                      base_only=variant.base_only, label=variant.label,
                                      progress=self.config.progress)
        rows = {r["name"]: r for r in evaluation.report["rows"]}
        result = {
            "key": key, "variant": variant.name, "label": variant.label,
            "components": variant.components, "stages": stages,
            "values": rows["generated"]["values"],
            "bc_shuffled": rows["generated_shuffled_audio"]["values"]["bc"],
            "sparse_token_share": evaluation.report["generation"]["sparse_token_share"],
            "evaluation": str(evaluation.json_path),
            "eval_seconds": round(time.perf_counter() - started, 2),
        }
        write_json(result_path, result)
        return result

    def _stage_settings(self, name: str) -> Any:
        if name in self.ready_made:  # --tokenizer
            return {"release": self.ready_made[name]}
        return json.loads((self.out / "stages" / name / STAGE_FILE).read_text())["settings"]

    def run(self) -> dict[str, Any]:
        """Run every chosen variant and write ``ablation.json`` / ``ablation.md``."""
        started = time.perf_counter()
        scoring = self.fgd_encoder()
        scorer = Scorer(self.cache, scoring)
        identity = {k: v for k, v in scorer.describe().items() if k != "not_computed"}
        results = {}
        for name in self.config.variants:
            results[name] = self.run_variant(VARIANTS[name], scorer, identity)
        truth = scorer.ground_truth()
        report = {
            "data": str(self.data), "preset": self.config.preset,
            "steps_scale": self.config.steps_scale,
            "scoring": scorer.describe(),
            "ground_truth": truth["values"],
            "ground_truth_bc_shuffled": truth["bc_shuffled"],
            "variants": results,
            "stage_seconds": {k: round(v, 2) for k, v in sorted(self.stage_seconds.items())},
            "compute_seconds": round(sum(self.stage_seconds.values())
                                     + sum(r["eval_seconds"] for r in results.values()), 2),
            "wall_seconds": round(time.perf_counter() - started, 2),
        }
        write_json(self.out / ABLATION_JSON, report)
        write_markdown(self.out / ABLATION_MD, ablation_markdown(report, TABLE2, TABLE3))
        return report


def run_ablation(data: str | Path, out: str | Path,
                 config: AblationConfig | None = None) -> dict[str, Any]:
    """Train and evaluate the ablation variants; returns the ``ablation.json`` content."""
    return Ablation(data, out, config or AblationConfig()).run()
