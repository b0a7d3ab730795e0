"""``semtalk prepare ROOT --out CACHE``: compute every feature once, into a resumable cache.

ROOT is a BEAT2-layout root or a SHOW root (detected by its layout). A SHOW root needs
``--body-model`` (the hands) and, for the sparse stage, ``--labels`` from ``semtalk label``;
its vocabulary defaults to that of the release that made the labels.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING

from semtalk.data.beat2 import SPLITS, STANDARD_SPLITS

if TYPE_CHECKING:
    from semtalk.data.pseudo_labels import PseudoLabels
    from semtalk.features.text import Vocabulary

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
        "prepare", help="extract features of a BEAT2-layout or SHOW dataset into a cache",
        description="Motion, foot contacts, word ids, semantic scores, beat and speech "
                    "features, window sentence and emotion features, per clip, as memory-"
                    "mappable arrays. Rerun to resume; use --shard i/n to split the work "
                    "across processes. A SHOW root (<speaker>/<video_fn>/<clip>/<clip>.pkl) "
                    "needs --body-model, and --labels for semantic scores.")
    parser.add_argument("root", help="dataset root: BEAT2 layout (holds train_test_split.csv) "
                                     "or SHOW layout")
    parser.add_argument("--out", required=True, help="cache folder")
    parser.add_argument("--speakers", nargs="+", default=None,
                        help="speaker ids to include (default: all; SemTalk uses 2); on a SHOW "
                             "root names (oliver chemistry seth conan) or their ids 1-4")
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
                        help="vocabulary json to reuse (default: built from train transcripts; "
                             "SHOW: the vocab.json of the release that made --labels)")
    parser.add_argument("--smplx", metavar="PATH", default=None,
                        help="SMPLX_NEUTRAL_2020.npz for exact foot contacts")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--shard", type=_shard, default=(0, 1), metavar="I/N")
    parser.add_argument("--labels", metavar="LABELS", default=None,
                        help="pseudo semantic labels from `semtalk label`, used instead of "
                             "the sem/ files")
    parser.add_argument("--labels-mode", choices=("soft", "hard"), default="soft",
                        help="soft: ψ as the semantic score; hard: 1[ψ > β] (default soft)")
    parser.add_argument("--labels-beta", type=float, default=None, metavar="β",
                        help="β of --labels-mode hard (default: the β `semtalk label` used)")
    show = parser.add_argument_group("SHOW roots")
    show.add_argument("--body-model", metavar="SMPLX_FILE", default=None,
                      help="your SMPL-X model file (SMPLX_NEUTRAL_2020.npz): its hand PCA "
                           "components convert SHOW's hands (required for a SHOW root)")
    show.add_argument("--split-file", metavar="F", default=None,
                      help="TalkSHOW's train_val_test.json (default: every clip in train)")
    show.add_argument("--whisper-model", metavar="DIR", default=None,
                      help="the local faster-whisper folder given to `semtalk label`, so the "
                           "words are found the same way (default: the offline recogniser)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a cache prepared with other settings")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from semtalk.data.pseudo_labels import PseudoLabels
    from semtalk.data.show import is_show_root
    from semtalk.features.cache import prepare_cache
    from semtalk.features.local_models import check_model_option
    from semtalk.features.registry import ExtractorChoice, build_extractors
    from semtalk.features.sources import open_source
    from semtalk.features.text import Vocabulary

    check_model_option("--hubert", args.hubert)
    check_model_option("--sentence-model", args.sentence_model)
    check_model_option("--emotion-model", args.emotion_model)
    check_model_option("--whisper-model", args.whisper_model)
    start = time.perf_counter()
    show = is_show_root(args.root)
    speakers = _speaker_ids(args.speakers, show)
    labels = PseudoLabels(args.labels, args.labels_mode, args.labels_beta) \
        if args.labels else None
    source = open_source(args.root, speakers=speakers, splits=args.splits,
                         body_model=args.body_model, split_file=args.split_file,
                         whisper_model=args.whisper_model)
    vocab = Vocabulary.load(args.vocab) if args.vocab else None
    if show and vocab is None:
        vocab = _labels_vocabulary(labels)
    if show and labels is None:
        print("warning: no --labels: the cache has no semantic scores (enough for the "
              "tokenizer and base stages; the sparse stage needs `semtalk label` labels)")
    spec = ExtractorChoice(hubert_model=args.hubert, hubert_layer=args.hubert_layer,
                       sentence_encoder=args.sentence, sentence_model=args.sentence_model,
                       emotion_method=args.emotion, emotion_model=args.emotion_model,
                       device=args.device)
    audio, window = build_extractors(spec)
    names = ", ".join(f"{e.name}({e.dim})" for e in [*audio, *window])
    print(f"features: {names}")
    cache = prepare_cache(
        source, args.out, audio_extractors=audio, window_extractors=window,
        speakers=speakers, splits=args.splits, vocab=vocab,
        body_model_path=args.smplx, shard=args.shard, overwrite=args.overwrite,
        semantic_labels=labels)
    done, missing = len(cache.ids()), len(cache.missing())
    print(f"{done} clips prepared in {args.out} ({time.perf_counter() - start:.1f} s)"
          + (f"; {missing} left for other shards" if missing else ""))
    _print_issues(cache.issues())
    return 0


def _speaker_ids(values: list[str] | None, show: bool) -> list[int] | None:
    """``--speakers`` as ids: integers; on a SHOW root also speaker names."""
    from semtalk.config import ConfigError
    from semtalk.data.show import SHOW_SPEAKER_IDS

    if values is None:
        return None
    ids = []
    for value in values:
        if value.isdigit():
            ids.append(int(value))
        elif show and value in SHOW_SPEAKER_IDS:
            ids.append(SHOW_SPEAKER_IDS[value])
        else:
            known = f"a SHOW speaker ({', '.join(SHOW_SPEAKER_IDS)}) or " if show else ""
            raise ConfigError(f"--speakers: {value!r} is not {known}a speaker id")
    return ids


def _labels_vocabulary(labels: PseudoLabels | None) -> Vocabulary:
    """The vocabulary of the release that made ``labels`` (a SHOW root has no transcripts)."""
    from semtalk.config import ConfigError
    from semtalk.errors import DataError
    from semtalk.features.text import Vocabulary
    from semtalk.release import SPARSE, VOCAB_FILE

    hint = "pass --vocab VOCAB.json (e.g. the RELEASE/sparse/vocab.json of a BEAT2 release)"
    if labels is None:
        raise ConfigError(f"a SHOW root has no transcripts to build a vocabulary from: {hint}")
    path = Path(str(labels.record.get("release", ""))) / SPARSE / VOCAB_FILE
    if not path.is_file():
        raise DataError(path, f"the vocabulary of the release that made the labels is not "
                              f"there; {hint}")
    return Vocabulary.load(path)


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
