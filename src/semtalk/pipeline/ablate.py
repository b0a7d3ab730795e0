"""``semtalk ablate``: train and evaluate the paper's ablation variants (Tables 2 and 3).

Table 2's switches are the paper's (DESIGN §1): W_f scales f_t by ψ
(``sparse_model.feature_weighting``), W_l supervises ψ with L_cls^G
(``sparse.gate_supervision``); "w/o W" has neither, so its ψ learns only through the motion
losses (the Eq. 5 blend). The per-token code-loss weighting (``sparse.loss_weighting``) stays
at its default in every row.

Table 3's rows are combinations of four components, each a switch: RC (the base model's
rhythmic projection heads and loss, ``base.use_rhythmic_projection``), SE (the sparse stage;
without it, base-only generation at β = 1), C2F (``use_coarse2fine`` of both models) and RVQ
(without it, single-layer VQ tokenizers). A row is named by the components it keeps
(:func:`component_name`: ``rc+rvq``, ``none``; ``full`` with all four, the same model as Table
2's ``full``); any of the 16 can be run (``--components RC,RVQ``), the paper's eight
(:data:`TABLE3`) by default. The earlier leave-one-out names still work (:data:`ALIASES`:
``no_rc``, ``no_se``, ``no_c2f``, ``vq``).

Every variant is a full pipeline (tokenizer -> base -> sparse -> release, the stages of
:data:`semtalk.pipeline.stages.PIPELINE`) with some switches flipped (DESIGN §1), then
evaluated with :mod:`semtalk.evaluation`. Stage keys are derived from the switches, so stages
that two variants would train identically are trained once and shared:

==============  ==========  ===============  ==================================================
variant         tokenizer   base             sparse stage
==============  ==========  ===============  ==================================================
full            rvq         full             full (sem-gate, W_f and W_l)
no_gate         rvq         full             gate ``none`` (ψ = 1; no L_cls^G)       Table 2
random_psi      rvq         full             gate ``random`` (ψ ~ U(0, 1))           Table 2
no_weighting    rvq         full             learned gate, no W_f, no W_l            Table 2
wf_only         rvq         full             learned gate, W_f only                  Table 2
wl_only         rvq         full             learned gate, W_l only                  Table 2
none            vq          vq_no_rc_no_c2f  none: base-only generation (β = 1)      Table 3
rvq             rvq         no_rc_no_c2f     none                                    Table 3
rc+rvq          rvq         no_c2f           none                                    Table 3
rc+se+rvq       rvq         no_c2f           no_c2f (the full sparse stage on it)    Table 3
c2f+rvq         rvq         no_rc            none                                    Table 3
rc+se           vq          vq_no_c2f        vq_no_c2f                               Table 3
rc+c2f+rvq      rvq         full             none                                    Table 3
...             tokenizer ``vq`` without RVQ; base ``[vq_][no_rc_][no_c2f]`` from the
                switches (``full`` with all on); sparse stage = the base key with SE
==============  ==========  ===============  ==================================================

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
import itertools
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from semtalk.body.parts import BodyPart
from semtalk.config import to_dict
from semtalk.errors import DataError
from semtalk.evaluation.evaluate import evaluate_release
from semtalk.evaluation.report import (
    COMPONENTS,
    ablation_markdown,
    write_json,
    write_markdown,
)
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
        name: folder name and ``--variants`` key (a Table 3 row: :func:`component_name`).
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
    components: dict[str, bool] = field(default_factory=lambda: dict.fromkeys(COMPONENTS,
                                                                              True))

    @property
    def base_only(self) -> bool:
        return self.sparse is None


TOKENIZER_STAGES: dict[str, tuple[str, ...]] = {
    "rvq": (),
    "vq": ("model.quantizer.num_quantizers=1", "model.quantizer.quantize_dropout=0.0"),
}
"""Tokenizer stage key -> config overrides."""


def _all_combinations() -> list[dict[str, bool]]:
    return [dict(zip(COMPONENTS, switches, strict=True))
            for switches in itertools.product((True, False), repeat=len(COMPONENTS))]


def base_stage_key(components: Mapping[str, bool]) -> str:
    """The base stage a Table 3 row trains on, named by what it turns off (RVQ, RC, C2F; SE
    is the sparse stage): ``full``, ``no_rc``, ``vq_no_c2f``, ..."""
    off = [("vq" if c == "RVQ" else f"no_{c.lower()}") for c in ("RVQ", "RC", "C2F")
           if not components[c]]
    return "_".join(off) or "full"


def _generator_switches(components: Mapping[str, bool]) -> tuple[str, ...]:
    """The generator config overrides of a Table 3 row's RC and C2F switches."""
    overrides: list[str] = []
    if not components["RC"]:  # the projection heads and the rhythmic consistency loss
        overrides.append("base.use_rhythmic_projection=false")
    if not components["C2F"]:  # in both models
        overrides += ["base.use_coarse2fine=false", "sparse_model.use_coarse2fine=false"]
    return tuple(overrides)


BASE_STAGES: dict[str, tuple[str, tuple[str, ...]]] = {
    base_stage_key(c): ("rvq" if c["RVQ"] else "vq", _generator_switches(c))
    for c in _all_combinations() if c["SE"]}
"""Base stage key -> (tokenizer stage, generator config overrides): one per combination of
RC, C2F and RVQ."""

SPARSE_STAGES: dict[str, tuple[str, tuple[str, ...]]] = {
    "full": ("full", ()),
    "no_gate": ("full", ("sparse_model.gate=none",)),
    "random_psi": ("full", ("sparse_model.gate=random",)),
    "no_weighting": ("full", ("sparse_model.feature_weighting=false",
                              "sparse.gate_supervision=false")),
    "wf_only": ("full", ("sparse.gate_supervision=false",)),
    "wl_only": ("full", ("sparse_model.feature_weighting=false",)),
    **{key: (key, ()) for key in BASE_STAGES},
}
"""Sparse stage key -> (base stage, overrides added to the base stage's). The Table 3 rows
with SE train the full sparse stage on their base stage, under the base stage's key."""


def component_name(components: Mapping[str, bool]) -> str:
    """A Table 3 row's name: its enabled components, ``rc+se+rvq``; ``none``; ``full`` when
    all four are on (the Table 2 row ``full`` is the same model)."""
    on = [c.lower() for c in COMPONENTS if components[c]]
    return "full" if len(on) == len(COMPONENTS) else "+".join(on) or "none"


def parse_components(text: str) -> dict[str, bool]:
    """``"RC,SE,C2F"`` / ``"rc+rvq"`` / ``"none"`` -> ``{"RC": True, "SE": True, ...}``."""
    names = [n.strip().upper() for n in text.replace(",", "+").split("+") if n.strip()]
    if names == ["NONE"]:
        names = []
    unknown = [n for n in names if n not in COMPONENTS]
    if unknown or not text.strip():
        raise ValueError(f"unknown component(s) {unknown or [text]} in {text!r}: name some of "
                         f"{list(COMPONENTS)} joined by ',' or '+', or 'none'")
    return {c: c in names for c in COMPONENTS}


def _component_variant(components: dict[str, bool]) -> Variant:
    on = [c for c in COMPONENTS if components[c]]
    off = [c for c in COMPONENTS if not components[c]]
    if not off:
        label = "Sem-gate (ours)"
    elif len(off) == 1:
        label = f"w/o {off[0]}"
    else:
        label = " + ".join(on) if on else "none of " + ", ".join(COMPONENTS)
    key = base_stage_key(components)
    return Variant(component_name(components), label, "rvq" if components["RVQ"] else "vq",
                   key, key if components["SE"] else None, components)


VARIANTS: dict[str, Variant] = {v.name: v for v in (
    _component_variant(dict.fromkeys(COMPONENTS, True)),  # full
    Variant("no_gate", "w/o Sem-gate", "rvq", "full", "no_gate"),
    Variant("random_psi", "Sem-gate (Random ψ)", "rvq", "full", "random_psi"),
    Variant("no_weighting", "Sem-gate (w/o W)", "rvq", "full", "no_weighting"),
    Variant("wf_only", "Sem-gate (w/ W_f)", "rvq", "full", "wf_only"),
    Variant("wl_only", "Sem-gate (w/ W_l)", "rvq", "full", "wl_only"),
    *(_component_variant(c) for c in _all_combinations() if not all(c.values())),
)}
"""Every variant, by name: Table 2's rows and every combination of Table 3's components."""

ALIASES: dict[str, str] = {
    "no_rc": "se+c2f+rvq", "no_se": "rc+c2f+rvq", "no_c2f": "rc+se+rvq", "vq": "rc+se+c2f"}
"""Earlier names of the leave-one-out Table 3 rows."""

TABLE2: tuple[str, ...] = ("no_gate", "random_psi", "no_weighting", "wf_only", "wl_only", "full")
"""Table 2 (sem-gate) rows in the paper's order."""
TABLE3: tuple[str, ...] = ("none", "rvq", "rc+rvq", "rc+se+rvq", "c2f+rvq", "rc+se",
                           "rc+c2f+rvq", "full")
"""Table 3 (components) rows in the paper's order: its eight combinations of RC, SE, C2F and
RVQ. (The paper's text extraction lost some check marks; rows 3, 4, 6 and 7 are read with its
text: "combined with RVQ and RC, C2F achieves the best MSE and LVD" is row 7.)"""
DEFAULT_VARIANTS: tuple[str, ...] = tuple(dict.fromkeys((*TABLE2, *TABLE3)))
"""What ``semtalk ablate`` runs by default: Tables 2 and 3."""


def resolve_variant(name: str) -> str:
    """The variant a ``--variants`` / ``--components`` entry names: a variant name, an
    earlier name (``no_rc``), or a combination of components (``RC,RVQ``, ``rc+se``)."""
    if name in VARIANTS:
        return name
    if name in ALIASES:
        return ALIASES[name]
    try:
        return component_name(parse_components(name))
    except ValueError:
        raise ValueError(f"unknown variant {name!r}; choose from {list(VARIANTS)}, "
                         f"{list(ALIASES)} or a combination of {list(COMPONENTS)} such as "
                         f"'RC,RVQ'") from None


@dataclass(frozen=True)
class AblationConfig:
    """What ``semtalk ablate`` trains and how it evaluates.

    Attributes:
        preset: packaged preset of every stage (``tiny`` or ``paper``).
        variants: what to run (default: Tables 2 and 3): variant names, earlier names or
            component combinations (:func:`resolve_variant`), kept as variant names.
        steps_scale: multiplies every stage's ``max_steps`` (and its validation, checkpoint
            and learning-rate-decay steps), e.g. 0.25 for a quick run.
        tokenizer_overrides, generator_overrides, fgd_overrides: ``key=value`` overrides of
            the stage configs (applied before the variant's own switches).
        tokenizer: an already trained RVQ tokenizer release to use as the ``rvq`` stage.
        seeds: training seeds (``solver.seed``) of the generator stages; each variant's base
            and sparse stages are trained and evaluated once per seed (the tokenizers are
            shared) and its row is the mean ± standard deviation. Empty: one run with the
            preset's seed (the layout without ``seed-S`` folders).
        scoring: split and evaluation assets; without an FGD encoder one is trained on the
            cache (``OUT/fgd``) so FGD is computed.
        progress: progress bars.
    """

    preset: str = "tiny"
    variants: tuple[str, ...] = DEFAULT_VARIANTS
    steps_scale: float = 1.0
    tokenizer_overrides: tuple[str, ...] = ()
    generator_overrides: tuple[str, ...] = ()
    fgd_overrides: tuple[str, ...] = ()
    tokenizer: str | Path | None = None
    seeds: tuple[int, ...] = ()
    scoring: ScoringOptions = field(default_factory=ScoringOptions)
    progress: bool = True

    def __post_init__(self) -> None:
        if not self.variants:
            raise ValueError(f"no variants; choose from {list(VARIANTS)}")
        if len(set(self.seeds)) != len(self.seeds) or any(s < 0 for s in self.seeds):
            raise ValueError(f"seeds must be distinct integers >= 0, got {list(self.seeds)}")
        names = tuple(dict.fromkeys(resolve_variant(v) for v in self.variants))
        object.__setattr__(self, "variants", names)  # frozen: the resolved names
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
        self.seed: int | None = None
        """The generator stages' seed of the variant being run (None: the preset's)."""
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
        seed = [] if self.seed is None else [f"solver.seed={self.seed}"]
        return _scaled(load_generator_config(
            self.config.preset, overrides=[*self.config.generator_overrides, *overrides,
                                           *seed]),
            self.config.steps_scale)

    @property
    def _seeded(self) -> str:
        """The suffix of the generator stages' names for the current seed."""
        return "" if self.seed is None else f"-seed{self.seed}"

    def base_stage(self, key: str) -> Path:
        """The base release of stage ``key`` (training its tokenizer first)."""
        tokenizer_key, overrides = BASE_STAGES[key]
        tokenizer = self.tokenizer_stage(tokenizer_key)
        config = self._generator_config(overrides)
        settings = {"config": to_dict(config), "tokenizer": str(tokenizer)}
        name = f"base-{key}{self._seeded}"
        return self._stage(name, "base", settings,
                           self._workspace(name, tokenizer=tokenizer, base_config=config))

    def sparse_stage(self, key: str) -> tuple[Path, Path, Path]:
        """``(tokenizer, base, sparse)`` releases of sparse stage ``key``."""
        base_key, extra = SPARSE_STAGES[key]
        tokenizer_key, base_overrides = BASE_STAGES[base_key]
        tokenizer, base = self.tokenizer_stage(tokenizer_key), self.base_stage(base_key)
        config = self._generator_config([*base_overrides, *extra])
        settings = {"config": to_dict(config), "tokenizer": str(tokenizer), "base": str(base)}
        name = f"sparse-{key}{self._seeded}"
        sparse = self._stage(name, "sparse", settings,
                             self._workspace(name, tokenizer=tokenizer, base=base,
                                             sparse_config=config))
        return tokenizer, base, sparse

    def placeholder_sparse(self, tokenizer: Path, base: Path, base_key: str) -> Path:
        """An untrained (seeded) sparse model to complete a base-only release."""
        folder = self.out / "stages" / f"{PLACEHOLDER_SPARSE}-{base_key}{self._seeded}"
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
                  "base": f"base-{base_key}{self._seeded}"}
        if variant.sparse is not None:
            stages["sparse"] = f"sparse-{variant.sparse}{self._seeded}"
        return stages

    def run_variant(self, variant: Variant, scorer: Scorer,
                    scoring_identity: dict[str, Any]) -> dict[str, Any]:
        """Train what ``variant`` needs, assemble its release, evaluate it; cached in
        ``variants/<name>/result.json`` (``variants/<name>/seed-S/`` per seed)."""
        folder = self.out / "variants" / variant.name
        if self.seed is not None:
            folder = folder / f"seed-{self.seed}"
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

    def table3(self) -> list[str]:
        """Table 3's rows: the paper's, then the other component combinations run."""
        gate_only = set(TABLE2) - {"full"}
        return [n for n in dict.fromkeys((*TABLE3, *self.config.variants)) if n not in gate_only]

    def run(self) -> dict[str, Any]:
        """Run every chosen variant and write ``ablation.json`` / ``ablation.md``."""
        started = time.perf_counter()
        scoring = self.fgd_encoder()
        scorer = Scorer(self.cache, scoring)
        identity = {k: v for k, v in scorer.describe().items() if k != "not_computed"}
        results = {}
        for name in self.config.variants:
            if not self.config.seeds:
                results[name] = self.run_variant(VARIANTS[name], scorer, identity)
                continue
            runs = {}
            for seed in self.config.seeds:
                self.seed = seed
                runs[seed] = self.run_variant(VARIANTS[name], scorer, identity)
            self.seed = None
            results[name] = over_seeds(runs)
        truth = scorer.ground_truth()
        report = {
            "data": str(self.data), "preset": self.config.preset,
            "steps_scale": self.config.steps_scale, "seeds": list(self.config.seeds),
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
        write_markdown(self.out / ABLATION_MD, ablation_markdown(report, TABLE2, self.table3()))
        return report


def over_seeds(runs: Mapping[int, dict[str, Any]]) -> dict[str, Any]:
    """One variant's result over several seeds: the mean of every metric (``values``), its
    standard deviation (``std``, with n - 1; None for a metric some seed lacks), the per-seed
    results (``seeds``), the stages of every seed and the summed evaluation time."""
    first = next(iter(runs.values()))

    def stats(values: list[float | None]) -> tuple[float | None, float | None]:
        if any(v is None for v in values):
            return None, None
        array = np.asarray(values, dtype=np.float64)
        return float(array.mean()), float(array.std(ddof=1)) if len(array) > 1 else 0.0

    results = list(runs.values())
    means: dict[str, float | None] = {}
    spread: dict[str, float | None] = {}
    for key in first["values"]:
        means[key], spread[key] = stats([r["values"].get(key) for r in results])
    return {
        "variant": first["variant"], "label": first["label"], "components": first["components"],
        "values": means, "std": spread,
        "bc_shuffled": stats([r["bc_shuffled"] for r in results])[0],
        "sparse_token_share": stats([r["sparse_token_share"] for r in results])[0],
        "stages": {f"{role} (seed {seed})": stage for seed, r in runs.items()
                   for role, stage in r["stages"].items()},
        "eval_seconds": round(sum(r["eval_seconds"] for r in runs.values()), 2),
        "seeds": {str(seed): r for seed, r in runs.items()},
    }


def run_ablation(data: str | Path, out: str | Path,
                 config: AblationConfig | None = None) -> dict[str, Any]:
    """Train and evaluate the ablation variants; returns the ``ablation.json`` content."""
    return Ablation(data, out, config or AblationConfig()).run()
