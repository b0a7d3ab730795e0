"""``semtalk prepare ROOT --out CACHE``: compute every feature once, into a resumable cache."""

from __future__ import annotations

import argparse
import time

from semtalk.data.beat2 import SPLITS, STANDARD_SPLITS

SHOWN_ISSUES = 5
"""Warnings listed at the end of a run (the rest are counted)."""


def _shard(text: str) -> tuple[int, int]:
    try:
        index, count = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard must look like i/n, got {text!r}") from None
    if not 0 <= index < count:
        raise argparse.ArgumentTypeError(f"--shard needs 0 <= i < n, got {text!r}")
    return index, count


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "prepare", help="extract features of a BEAT2-layout dataset into a cache",
        description="Motion, foot contacts, word ids, semantic scores, beat and speech "
                    "features, window sentence and emotion features, per clip, as memory-"
                    "mappable arrays. Rerun to resume; use --shard i/n to split the work "
                    "across processes.")
    parser.add_argument("root", help="dataset root (holds train_test_split.csv)")
    parser.add_argument("--out", required=True, help="cache folder")
    parser.add_argument("--speakers", type=int, nargs="+", default=None,
                        help="speaker ids to include (default: all; SemTalk uses 2)")
    parser.add_argument("--splits", nargs="+", choices=SPLITS, default=list(STANDARD_SPLITS))
    parser.add_argument("--hubert", metavar="MODEL", default=None,
                        help="HuBERT checkpoint folder (e.g. a local copy of "
                             "facebook/hubert-large-ls960-ft); a hub id only with "
                             "SEMTALK_ALLOW_HUB=1; default: spectral features")
    parser.add_argument("--hubert-layer", type=int, default=None)
    parser.add_argument("--sentence", choices=("auto", "minilm", "clip", "pooled"),
                        default="auto", help="sentence encoder for φ_g (default: auto)")
    parser.add_argument("--sentence-model", metavar="DIR", default=None,
                        help="local model folder for --sentence clip (or minilm)")
    parser.add_argument("--emotion", choices=("prosody", "emotion2vec"), default="prosody")
    parser.add_argument("--emotion-model", metavar="DIR", default=None,
                        help="local emotion2vec folder for --emotion emotion2vec")
    parser.add_argument("--vocab", default=None,
                        help="vocabulary json to reuse (default: built from train transcripts)")
    parser.add_argument("--smplx", metavar="PATH", default=None,
                        help="SMPLX_NEUTRAL_2020.npz for exact foot contacts")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--shard", type=_shard, default=(0, 1), metavar="I/N")
    parser.add_argument("--labels", metavar="LABELS", default=None,
                        help="pseudo semantic labels from `semtalk label`, used instead of "
                             "the sem/ files")
    parser.add_argument("--labels-mode", choices=("soft", "hard"), default="soft",
                        help="soft: ψ as the semantic score; hard: 1[ψ > β] (default soft)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a cache prepared with other settings")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from semtalk.data.pseudo_labels import PseudoLabels
    from semtalk.features.cache import prepare_cache
    from semtalk.features.local_models import check_model_option
    from semtalk.features.registry import ExtractorChoice, build_extractors
    from semtalk.features.text import Vocabulary

    check_model_option("--hubert", args.hubert)
    check_model_option("--sentence-model", args.sentence_model)
    check_model_option("--emotion-model", args.emotion_model)
    spec = ExtractorChoice(hubert_model=args.hubert, hubert_layer=args.hubert_layer,
                       sentence_encoder=args.sentence, sentence_model=args.sentence_model,
                       emotion_method=args.emotion, emotion_model=args.emotion_model,
                       device=args.device)
    audio, window = build_extractors(spec)
    names = ", ".join(f"{e.name}({e.dim})" for e in [*audio, *window])
    print(f"features: {names}")
    start = time.perf_counter()
    cache = prepare_cache(
        args.root, args.out, audio_extractors=audio, window_extractors=window,
        speakers=args.speakers, splits=args.splits,
        vocab=Vocabulary.load(args.vocab) if args.vocab else None,
        body_model_path=args.smplx, shard=args.shard, overwrite=args.overwrite,
        semantic_labels=PseudoLabels(args.labels, args.labels_mode) if args.labels else None)
    done, missing = len(cache.ids()), len(cache.missing())
    print(f"{done} clips prepared in {args.out} ({time.perf_counter() - start:.1f} s)"
          + (f"; {missing} left for other shards" if missing else ""))
    _print_issues(cache.issues())
    return 0


def _print_issues(issues: dict[str, list[str]], shown: int = SHOWN_ISSUES) -> None:
    """Summarize the warnings recorded in the clips' ``clip.json`` (count, then the first few)."""
    if not issues:
        return
    total = sum(len(found) for found in issues.values())
    print(f"{total} warning{'s' * (total != 1)} in {len(issues)} clip"
          f"{'s' * (len(issues) != 1)} (each clip's clips/<id>/clip.json lists its own):")
    lines = [f"  {clip_id}: {issue}" for clip_id, found in issues.items() for issue in found]
    print("\n".join(lines[:shown]))
    if len(lines) > shown:
        print(f"  ... and {len(lines) - shown} more")
