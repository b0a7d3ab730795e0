"""``semtalk demo [--out DIR]``: the whole pipeline on the embedded synthetic speaker.

Builds a synthetic speaker dataset, prepares its features, trains the tokenizer, base and
sparse generators, assembles DIR/release and generates motion (npz, JSON, ψ plot, mp4) for a
held-out clip into DIR/output. Offline; a few minutes on two CPU cores. Rerunning reuses
what is complete and continues what was interrupted.
"""

from __future__ import annotations

import argparse


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from semtalk.pipeline.demo import DemoConfig

    default = DemoConfig()
    parser = subparsers.add_parser(
        "demo", help="train and run the tiny model on the synthetic speaker (offline)",
        description=__doc__.split("\n\n")[1] if __doc__ else None)
    parser.add_argument("--out", default=default.out, metavar="DIR",
                        help=f"demo folder (default {default.out}/)")
    parser.add_argument("--minutes", type=float, default=default.minutes,
                        help=f"length of the synthetic dataset (default {default.minutes:g})")
    parser.add_argument("--seed", type=int, default=default.seed,
                        help=f"dataset seed (default {default.seed})")
    parser.add_argument("--preset", default=None, metavar="NAME",
                        help="training preset for every stage (default demo; tiny trains "
                             "about 2.5 times as long)")
    for stage, what in (("tokenizer", "each tokenizer part"), ("base", "the base generator"),
                        ("sparse", "the sparse generator")):
        parser.add_argument(f"--{stage}-steps", type=_positive_int, default=None, metavar="N",
                            help=f"training steps of {what} (default: the preset's)")
    parser.add_argument("--workers", type=_positive_int, default=None, metavar="N",
                        help="processes training tokenizer parts at once, and threads of the "
                             "base and sparse stages (default: CPU cores, at most 2)")
    parser.add_argument("--no-video", action="store_true", help="skip the preview video")
    parser.add_argument("--fresh", action="store_true",
                        help="remove what an earlier demo built in DIR first")
    parser.add_argument("--quiet", action="store_true", help="print only the final summary")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from semtalk.pipeline.demo import DemoConfig, run_demo

    presets = {} if args.preset is None else {"tokenizer_preset": args.preset,
                                              "generator_preset": args.preset}
    config = DemoConfig(out=args.out, minutes=args.minutes, seed=args.seed,
                        tokenizer_steps=args.tokenizer_steps, base_steps=args.base_steps,
                        sparse_steps=args.sparse_steps, workers=args.workers,
                        video=not args.no_video, **presets)
    result = run_demo(config, progress=not args.quiet, fresh=args.fresh)
    if args.quiet:
        print(f"demo release: {result.release}; outputs in {result.folder / 'output'}")
    return 0
