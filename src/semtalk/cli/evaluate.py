"""``semtalk evaluate --model RELEASE --data CACHE``: generate a split and score it."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING

from semtalk.fileio import check_output_folder

if TYPE_CHECKING:
    from semtalk.evaluation.scoring import ScoringOptions


def add_evaluation_assets(parser: argparse.ArgumentParser) -> None:
    """The options ``evaluate`` and ``ablate`` share: split, FGD encoder, body model, audio."""
    parser.add_argument("--split", default="test", help="cache split to evaluate (default test)")
    fgd = parser.add_mutually_exclusive_group()
    fgd.add_argument("--fgd-encoder", metavar="DIR", default=None,
                     help="FGD encoder release (`semtalk train fgd-encoder`)")
    fgd.add_argument("--fgd-official", metavar="FILE", default=None,
                     help="the official AESKConv_240_100.bin (paper-comparable FGD)")
    parser.add_argument("--body-model", metavar="SMPLX_FILE", default=None,
                        help="SMPLX_NEUTRAL_2020.npz: exact joints and the face MSE/LVD "
                             "(default: built-in skeleton, no vertex metrics)")
    parser.add_argument("--dataset", metavar="ROOT", default=None,
                        help="BEAT2-layout or SHOW dataset with the clips' audio for BC "
                             "(default: the root the cache was prepared from)")
    parser.add_argument("--bc-official-quirks", action="store_true",
                        help="reproduce the official BC's threshold offset and audio trim "
                             "(for comparison with published BC)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="generate a cache split with a release and compute every metric",
        description="Generates every clip of --split from its cached speech features (seeded "
                    "with its first ground-truth frames), then computes FGD, BC, DIV, face "
                    "MSE/LVD, the vertex-free face errors and the sem-gate's semantic "
                    "accuracy, with a ground-truth row and shuffled-audio BC controls. Writes "
                    "OUT/metrics.json and OUT/metrics.md; rerunning reuses generated clips.")
    parser.add_argument("--model", required=True, metavar="RELEASE",
                        help="release folder (tokenizer/, base/, sparse/)")
    parser.add_argument("--data", required=True, metavar="CACHE",
                        help="feature cache made by `semtalk prepare`")
    parser.add_argument("--out", required=True,
                        help="evaluation folder (generated clips, metrics.json, metrics.md)")
    parser.add_argument("--base-only", action="store_true",
                        help="generate without the sparse stage (ablation w/o SE)")
    add_evaluation_assets(parser)
    parser.set_defaults(run=run)


def scoring_options(args: argparse.Namespace) -> ScoringOptions:
    """The :class:`~semtalk.evaluation.scoring.ScoringOptions` of parsed arguments."""
    from semtalk.evaluation.scoring import ScoringOptions

    return ScoringOptions(split=args.split, fgd_encoder=args.fgd_encoder,
                          fgd_official=args.fgd_official, body_model=args.body_model,
                          dataset=args.dataset, bc_official_quirks=args.bc_official_quirks,
                          device=args.device)


def run(args: argparse.Namespace) -> int:
    from semtalk.evaluation.evaluate import evaluate_release

    out = Path(args.out)
    check_output_folder(out)  # a file, not writable: said now, not after the whole evaluation
    start = time.perf_counter()
    result = evaluate_release(args.model, args.data, out, scoring_options(args),
                              base_only=args.base_only, progress=not args.quiet)
    print(result.markdown_path.read_text())
    print(f"wrote {result.json_path} and {result.markdown_path} "
          f"({time.perf_counter() - start:.1f} s)")
    return 0
