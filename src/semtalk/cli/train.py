"""``semtalk train STAGE``: train one stage of the pipeline from a feature cache.

Every stage takes ``--data CACHE --out RUN``, a packaged ``--preset`` (``tiny`` or ``paper``)
or a ``--config`` YAML, and trailing ``key.sub=value`` overrides (e.g.
``solver.max_steps=2000 solver.batch_size=32``). Rerunning the same command resumes from the
run's checkpoint; a run folder trained with other settings is refused. Each command runs one
stage of :data:`semtalk.pipeline.stages.PIPELINE`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from semtalk.body.parts import BodyPart

PART_CHOICES = [p.value for p in BodyPart] + ["all"]


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="feature cache made by `semtalk prepare`")
    parser.add_argument("--out", required=True, help="run folder (created; reruns resume)")
    parser.add_argument("--preset", default="tiny", help="packaged preset: tiny or paper")
    parser.add_argument("--config", default=None, help="YAML config instead of a preset")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="config overrides, e.g. solver.max_steps=2000")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train", help="train a pipeline stage (tokenizer, fgd-encoder, ...)",
        description=__doc__.split("\n\n")[0] if __doc__ else None)
    stages = parser.add_subparsers(dest="stage", required=True, metavar="STAGE")
    tokenizer = stages.add_parser(
        "tokenizer", help="RVQ-VAE tokenizer of one body part (or all four)",
        description="Trains the RVQ-VAE of --part on 64-frame windows of the cache's training "
                    "clips, selects the best model on validation windows and writes it to "
                    "RUN/tokenizer/<part>/ (config.json + model.safetensors).")
    tokenizer.add_argument("--part", required=True, choices=PART_CHOICES)
    _common(tokenizer)
    tokenizer.set_defaults(run=run_tokenizer)
    base = stages.add_parser(
        "base", help="base motion generator (rhythm-aligned codes, all parts)",
        description="Trains the base generator on the codes of a frozen tokenizer release; "
                    "the selected model goes to RUN/base/. The model's architecture is the "
                    "config's base section (e.g. base.use_coarse2fine=false, "
                    "base.use_rhythmic_projection=false: no rhythmic consistency).")
    base.add_argument("--tokenizer", default=None,
                      help="tokenizer release (default RUN/tokenizer)")
    _common(base)
    base.set_defaults(run=run_base)
    sparse = stages.add_parser(
        "sparse", help="sparse motion generator with the sem-gate (body parts)",
        description="Trains the sparse generator and its sem-gate on top of a frozen base "
                    "model; the selected model goes to RUN/sparse/. The model's architecture "
                    "is the config's sparse_model section (e.g. sparse_model.gate=random), "
                    "training switches are under sparse (e.g. sparse.gate_supervision=false).")
    sparse.add_argument("--tokenizer", default=None,
                        help="tokenizer release (default RUN/tokenizer)")
    sparse.add_argument("--base", default=None, help="base release (default RUN/base)")
    sparse.add_argument("--word-vectors", default=None, metavar="FILE",
                        help="initialise the word embedding from a text word-vector file "
                             "(fastText .vec such as cc.en.300.vec, as the paper; its "
                             "dimension must equal sparse_model.word_dim: 300 in the paper "
                             "preset)")
    _common(sparse)
    sparse.set_defaults(run=run_sparse)
    fgd_encoder = stages.add_parser(
        "fgd-encoder", help="motion autoencoder whose latents FGD compares",
        description="Trains the FGD autoencoder (the official evaluator's architecture) on "
                    "64-frame windows of the cache's training clips as 55 joints x 6D, selects "
                    "the best model on validation windows and writes it to RUN/fgd_encoder/ "
                    "(config.json + model.safetensors).")
    _common(fgd_encoder)
    fgd_encoder.set_defaults(run=run_fgd_encoder)


def run_tokenizer(args: argparse.Namespace) -> int:
    from semtalk.pipeline import Workspace, train
    from semtalk.training.tokenizer import load_tokenizer_config

    config = load_tokenizer_config(args.preset, args.config, args.overrides)
    parts = tuple(BodyPart) if args.part == "all" else (BodyPart(args.part),)
    release_root = train(Workspace(args.data, args.out, tokenizer_config=config, parts=parts,
                                   progress=not args.quiet), "tokenizer")
    for part in parts:
        print(f"{part.value} tokenizer: {release_root / part.value}")
    have = [p.value for p in BodyPart if (release_root / p.value).is_dir()]
    if len(have) == len(BodyPart):
        print(f"tokenizer release complete: {release_root}")
    else:
        print(f"tokenizer release has {have}; train the others with --part")
    return 0


def run_fgd_encoder(args: argparse.Namespace) -> int:
    from semtalk.pipeline import Workspace, train
    from semtalk.training.fgd_encoder import load_fgd_config

    config = load_fgd_config(args.preset, args.config, args.overrides)
    release = train(Workspace(args.data, args.out, fgd_config=config, progress=not args.quiet),
                    "fgd-encoder")
    print(f"fgd encoder: {release}")
    return 0


def run_base(args: argparse.Namespace) -> int:
    from semtalk.pipeline import Workspace, train
    from semtalk.training.generator import load_generator_config

    config = load_generator_config(args.preset, args.config, args.overrides)
    release = train(Workspace(args.data, args.out, tokenizer=args.tokenizer, base_config=config,
                              progress=not args.quiet), "base")
    print(f"base generator: {release}")
    return 0


def run_sparse(args: argparse.Namespace) -> int:
    from semtalk.pipeline import Workspace, train
    from semtalk.training.generator import load_generator_config

    overrides = list(args.overrides)
    if args.word_vectors is not None:
        overrides.append(f"sparse.word_vectors={Path(args.word_vectors).resolve()}")
    config = load_generator_config(args.preset, args.config, overrides)
    release = train(Workspace(args.data, args.out, tokenizer=args.tokenizer, base=args.base,
                              sparse_config=config, progress=not args.quiet), "sparse")
    print(f"sparse generator: {release}")
    return 0
