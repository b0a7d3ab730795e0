"""``semtalk ablate --data CACHE --out DIR``: train and evaluate the paper's ablation variants."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from semtalk.cli.evaluate import add_evaluation_assets, scoring_options


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "ablate", help="train and evaluate the ablation variants (paper Tables 2 and 3)",
        description="Trains every stage the chosen variants need (each shared stage once), "
                    "evaluates each variant on --split and writes OUT/ablation.json and "
                    "OUT/ablation.md (Tables 2 and 3 in the paper's layout, raw values, "
                    "controls, run times). Rerunning skips finished stages and variants. "
                    "Table 2 variants: no_gate, random_psi, no_weighting, wf_only, wl_only, "
                    "full. Table 3 rows are combinations of the components RC, SE, C2F and "
                    "RVQ, named by the ones kept (rc+rvq, none, full = all four); the "
                    "default is the paper's eight: none, rvq, rc+rvq, rc+se+rvq, c2f+rvq, "
                    "rc+se, rc+c2f+rvq, full.")
    parser.add_argument("--data", required=True, metavar="CACHE",
                        help="feature cache made by `semtalk prepare`")
    parser.add_argument("--out", required=True, metavar="DIR", help="ablation folder")
    parser.add_argument("--preset", default="tiny", help="stage preset: tiny or paper")
    parser.add_argument("--variants", nargs="+", default=None, metavar="NAME",
                        help="run only these variants (default: Tables 2 and 3; also "
                             "no_rc, no_se, no_c2f, vq: the leave-one-out rows)")
    parser.add_argument("--components", nargs="+", default=None, metavar="RC,SE,C2F,RVQ",
                        help="run these Table 3 rows, each the components it keeps joined "
                             "by ',' or '+' (e.g. RC,RVQ  RC,SE,C2F  none); added to "
                             "--variants")
    parser.add_argument("--steps-scale", type=float, default=1.0,
                        help="multiply every stage's training steps (e.g. 0.25)")
    parser.add_argument("--seeds", type=int, nargs="+", default=(), metavar="S",
                        help="train the generator stages (base, sparse) once per seed and "
                             "report mean ± std per row (e.g. --seeds 0 1 2; the tokenizers "
                             "are shared)")
    parser.add_argument("--tokenizer", default=None, metavar="RUN/tokenizer",
                        help="an already trained RVQ tokenizer release to share")
    parser.add_argument("--tokenizer-set", nargs="+", default=[], metavar="KEY=VALUE",
                        help="tokenizer config overrides")
    parser.add_argument("--generator-set", nargs="+", default=[], metavar="KEY=VALUE",
                        help="base/sparse config overrides (e.g. solver.max_steps=200)")
    parser.add_argument("--fgd-set", nargs="+", default=[], metavar="KEY=VALUE",
                        help="FGD-encoder config overrides")
    add_evaluation_assets(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from semtalk.pipeline.ablate import (
        ABLATION_MD,
        DEFAULT_VARIANTS,
        AblationConfig,
        component_name,
        parse_components,
        resolve_variant,
        run_ablation,
    )

    try:
        chosen = [*(resolve_variant(v) for v in args.variants or ()),
                  *(component_name(parse_components(c)) for c in args.components or ())]
        variants = tuple(chosen) or DEFAULT_VARIANTS
    except ValueError as error:
        print(f"semtalk ablate: error: {error}", file=sys.stderr)
        return 2
    try:
        config = AblationConfig(
            preset=args.preset, variants=variants, seeds=tuple(args.seeds),
            steps_scale=args.steps_scale, tokenizer_overrides=tuple(args.tokenizer_set),
            generator_overrides=tuple(args.generator_set), fgd_overrides=tuple(args.fgd_set),
            tokenizer=args.tokenizer, scoring=scoring_options(args), progress=not args.quiet)
    except ValueError as error:
        print(f"semtalk ablate: error: {error}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    run_ablation(args.data, args.out, config)
    print((Path(args.out) / ABLATION_MD).read_text())
    print(f"ablation finished in {time.perf_counter() - start:.0f} s")
    return 0
