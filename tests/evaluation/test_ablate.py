"""``semtalk ablate``: variant definitions, shared stages, a fast two-variant run, resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from semtalk.cli import main
from semtalk.models.tokenizer import MotionTokenizer
from semtalk.pipeline import ablate, stages
from semtalk.pipeline.ablate import (
    ABLATION_JSON,
    ABLATION_MD,
    BASE_STAGES,
    DEFAULT_VARIANTS,
    SPARSE_STAGES,
    TABLE2,
    TABLE3,
    TOKENIZER_STAGES,
    VARIANTS,
    AblationConfig,
    component_name,
    over_seeds,
    parse_components,
    resolve_variant,
    scale_solver,
)
from semtalk.training.generator import load_generator_config
from semtalk.training.presets import load_preset
from semtalk.training.solver import SolverConfig
from semtalk.training.tokenizer import load_tokenizer_config


def test_stages_are_shared_where_variants_agree() -> None:
    for name in TABLE2:  # every sem-gate variant sits on the same tokenizer and base
        assert (VARIANTS[name].tokenizer, VARIANTS[name].base) == ("rvq", "full")
    for variant in VARIANTS.values():
        assert BASE_STAGES[variant.base][0] == variant.tokenizer
        if variant.sparse is not None:
            assert SPARSE_STAGES[variant.sparse][0] == variant.base
        assert variant.base_only == (not variant.components["SE"])
    # every combination of the four components is a variant, named by what it keeps
    assert len([n for n in VARIANTS if n not in TABLE2]) == 15 and "full" in VARIANTS
    assert VARIANTS["rc+rvq"].components == {"RC": True, "SE": False, "C2F": False,
                                             "RVQ": True}
    # stage keys come from the switches: rows that agree on a stage share it
    assert VARIANTS["rc+rvq"].base == VARIANTS["rc+se+rvq"].base == "no_c2f"
    assert VARIANTS["rc+c2f+rvq"].base == VARIANTS["full"].base == "full"
    assert (VARIANTS["none"].tokenizer, VARIANTS["none"].base) == ("vq", "vq_no_rc_no_c2f")
    assert len(BASE_STAGES) == 8  # RC x C2F x RVQ


def test_table3_rows_and_names() -> None:
    paper = [  # the paper's Table 3, row by row: RC, SE, C2F, RVQ
        (0, 0, 0, 0), (0, 0, 0, 1), (1, 0, 0, 1), (1, 1, 0, 1),
        (0, 0, 1, 1), (1, 1, 0, 0), (1, 0, 1, 1), (1, 1, 1, 1)]
    rows = [tuple(int(VARIANTS[n].components[c]) for c in ("RC", "SE", "C2F", "RVQ"))
            for n in TABLE3]
    assert rows == paper and set(TABLE3) <= set(DEFAULT_VARIANTS)
    assert component_name(parse_components("RC,RVQ")) == "rc+rvq"
    assert component_name(parse_components("rvq+rc")) == "rc+rvq"
    assert component_name(parse_components("none")) == "none"
    assert component_name(parse_components("RC,SE,C2F,RVQ")) == "full"
    # earlier leave-one-out names and spelled-out combinations resolve to the same rows
    assert [resolve_variant(n) for n in ("no_rc", "no_se", "no_c2f", "vq", "SE,RC,RVQ")] == [
        "se+c2f+rvq", "rc+c2f+rvq", "rc+se+rvq", "rc+se+c2f", "rc+se+rvq"]
    assert AblationConfig(variants=("no_se", "RC,C2F,RVQ", "full")).variants == (
        "rc+c2f+rvq", "full")
    assert VARIANTS["se+c2f+rvq"].label == "w/o RC" and VARIANTS["rc+rvq"].label == "RC + RVQ"
    with pytest.raises(ValueError, match="unknown"):
        AblationConfig(variants=("full", "sag"))
    with pytest.raises(ValueError, match=r"unknown component\(s\) \['XX'\]"):
        parse_components("RC,XX")


def test_variant_switches_reach_the_configs() -> None:
    def sparse(key: str):  # the generator config a sparse stage trains with
        base_key, extra = SPARSE_STAGES[key]
        return load_generator_config("tiny", overrides=[*BASE_STAGES[base_key][1], *extra])

    assert sparse("no_gate").sparse_model.gate == "none"
    assert sparse("random_psi").sparse_model.gate == "random"
    weighting = {k: (sparse(k).sparse_model.feature_weighting, sparse(k).sparse.gate_supervision)
                 for k in ("full", "no_weighting", "wf_only", "wl_only")}
    assert weighting == {"full": (True, True), "no_weighting": (False, False),
                         "wf_only": (True, False), "wl_only": (False, True)}
    # the code-loss weighting is not Table 2's W_l: the same in every row
    assert {sparse(k).sparse.loss_weighting for k in SPARSE_STAGES} == {"psi"}
    assert not sparse("no_rc").base.use_rhythmic_projection
    assert sparse("full").base.use_rhythmic_projection
    c2f = sparse("no_c2f")
    assert not c2f.base.use_coarse2fine and not c2f.sparse_model.use_coarse2fine
    vq = load_tokenizer_config("tiny", overrides=list(TOKENIZER_STAGES["vq"]))
    assert vq.model.quantizer.num_quantizers == 1


def test_steps_scale() -> None:
    solver = SolverConfig(max_steps=300, validate_every=100, checkpoint_every=100,
                          lr_decay_steps=(240,), warmup_steps=10)
    half = scale_solver(solver, 0.5)
    assert (half.max_steps, half.validate_every, half.checkpoint_every) == (150, 50, 50)
    assert half.lr_decay_steps == (120,) and half.warmup_steps == 5
    tiny = scale_solver(solver, 0.001)
    assert tiny.max_steps == 1 and tiny.checkpoint_every == 1
    assert scale_solver(solver, 1.0) is solver


def test_two_variants_share_stages_and_resume(synth_cache: Path, fgd_encoder_dir: Path,
                                             tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    tokenizer = MotionTokenizer.from_config(load_preset("tokenizer", "tiny")).save_pretrained(
        tmp_path / "tokenizer")
    out = tmp_path / "ablate"
    argv = ["ablate", "--data", str(synth_cache), "--out", str(out), "--variants", "full",
            "--components", "RC,C2F,RVQ", "--tokenizer", str(tokenizer), "--fgd-encoder",
            str(fgd_encoder_dir),
            "--generator-set", "solver.max_steps=2", "solver.batch_size=4",
            "solver.validate_every=2", "solver.checkpoint_every=2", "--quiet"]
    assert main(argv) == 0
    report = json.loads((out / ABLATION_JSON).read_text())
    assert list(report["variants"]) == ["full", "rc+c2f+rvq"]  # w/o SE
    assert set(report["stage_seconds"]) == {"tokenizer-rvq", "base-full", "sparse-full"}
    full, no_se = report["variants"]["full"], report["variants"]["rc+c2f+rvq"]
    assert no_se["stages"] == {"tokenizer": "tokenizer-rvq", "base": "base-full"}
    assert no_se["sparse_token_share"] == 0.0 and no_se["values"]["sem_accuracy"] is None
    assert full["values"]["sem_accuracy"] is not None and full["values"]["fgd"] is not None
    markdown = (out / ABLATION_MD).read_text()
    assert "## Table 2: sem-gate" in markdown and "## Table 3: components" in markdown
    assert "| ✓ | – | ✓ | ✓ |" in markdown  # w/o SE row
    assert "## Run times" in markdown

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a finished stage or variant ran again")

    for name in ("train_base", "train_sparse"):
        monkeypatch.setattr(stages, name, refuse)
    monkeypatch.setattr(ablate, "evaluate_release", refuse)
    assert main(argv) == 0
    again = json.loads((out / ABLATION_JSON).read_text())
    assert again["variants"] == report["variants"]


def test_over_seeds_is_mean_and_sample_std() -> None:
    def run(seed: int, acc: float, fgd: float | None) -> dict:
        return {"variant": "full", "label": "Sem-gate (ours)", "components": {},
                "values": {"sem_balanced_accuracy": acc, "fgd": fgd}, "bc_shuffled": 0.1 * seed,
                "sparse_token_share": 0.2, "eval_seconds": 1.5,
                "stages": {"base": f"base-full-seed{seed}"}}

    result = over_seeds({0: run(0, 0.8, 1.0), 1: run(1, 0.9, None), 2: run(2, 1.0, 2.0)})
    assert result["values"]["sem_balanced_accuracy"] == pytest.approx(0.9)
    assert result["std"]["sem_balanced_accuracy"] == pytest.approx(0.1)  # n - 1
    assert result["values"]["fgd"] is None and result["std"]["fgd"] is None  # a seed lacks it
    assert result["bc_shuffled"] == pytest.approx(0.1) and result["eval_seconds"] == 4.5
    assert set(result["seeds"]) == {"0", "1", "2"}
    assert result["stages"]["base (seed 2)"] == "base-full-seed2"
    with pytest.raises(ValueError, match="distinct"):
        AblationConfig(seeds=(1, 1))


def test_seeds_train_the_generator_stages_per_seed(synth_cache: Path, fgd_encoder_dir: Path,
                                                   tmp_path: Path) -> None:
    tokenizer = MotionTokenizer.from_config(load_preset("tokenizer", "tiny")).save_pretrained(
        tmp_path / "tokenizer")
    out = tmp_path / "ablate"
    assert main(["ablate", "--data", str(synth_cache), "--out", str(out), "--variants",
                 "wl_only", "--seeds", "3", "4", "--tokenizer", str(tokenizer),
                 "--fgd-encoder", str(fgd_encoder_dir), "--generator-set",
                 "solver.max_steps=2", "solver.batch_size=4", "solver.validate_every=2",
                 "solver.checkpoint_every=2", "--quiet"]) == 0
    report = json.loads((out / ABLATION_JSON).read_text())
    assert report["seeds"] == [3, 4]
    assert set(report["stage_seconds"]) == {"tokenizer-rvq", "base-full-seed3",
                                            "base-full-seed4", "sparse-wl_only-seed3",
                                            "sparse-wl_only-seed4"}
    row = report["variants"]["wl_only"]
    per_seed = [row["seeds"][s]["values"]["sem_balanced_accuracy"] for s in ("3", "4")]
    assert row["values"]["sem_balanced_accuracy"] == pytest.approx(sum(per_seed) / 2)
    assert row["std"]["sem_balanced_accuracy"] == pytest.approx(abs(per_seed[0] - per_seed[1])
                                                               / 2 ** 0.5)
    for seed in (3, 4):
        stage = json.loads((out / "stages" / f"sparse-wl_only-seed{seed}" / "stage.json")
                           .read_text())
        assert stage["settings"]["config"]["solver"]["seed"] == seed
        assert (out / "variants" / "wl_only" / f"seed-{seed}" / "result.json").is_file()
    # the two seeds trained different weights
    weights = [(out / "stages" / f"sparse-wl_only-seed{s}" / "sparse" / "model.safetensors")
               .read_bytes() for s in (3, 4)]
    assert weights[0] != weights[1]
    markdown = (out / ABLATION_MD).read_text()
    assert "mean ± standard deviation over 2 training seeds (3, 4)" in markdown
    assert " ± " in markdown.split("## Table 2: sem-gate")[1].split("##")[0]


def test_unknown_variant_is_a_clean_error(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ablate", "--data", str(tmp_path), "--out", str(tmp_path / "o"),
                 "--variants", "sag"]) == 2
    assert "unknown variant" in capsys.readouterr().err
    assert main(["ablate", "--data", str(tmp_path), "--out", str(tmp_path / "o"),
                 "--components", "RC,SAG"]) == 2
    assert "unknown component(s) ['SAG']" in capsys.readouterr().err


@pytest.mark.slow
def test_full_tables_on_the_synthetic_speaker(synth_cache: Path, tmp_path: Path) -> None:
    """Every variant of Tables 2 and 3, tiny preset at a tenth of its steps (minutes)."""
    report = ablate.run_ablation(synth_cache, tmp_path, AblationConfig(steps_scale=0.1,
                                                                       progress=False))
    assert set(report["variants"]) == set(DEFAULT_VARIANTS)
    for name, result in report["variants"].items():
        values = result["values"]
        assert values["fgd"] is not None and values["div"] is not None, name
        assert (values["sem_accuracy"] is None) == VARIANTS[name].base_only, name
    markdown = (tmp_path / ABLATION_MD).read_text()
    for name in DEFAULT_VARIANTS:
        assert VARIANTS[name].label in markdown
