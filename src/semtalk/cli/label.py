"""``semtalk label ROOT --model RELEASE --out LABELS``: pseudo semantic labels (paper §4.1).

Runs the release's sem-gate over every clip of a SHOW root (or a BEAT2-layout root) and writes
one ψ in [0, 1] per 30 fps frame: LABELS/<speaker>/<video_fn>/<clip>.npy, plus LABELS/labels.json
(release, hash of its sparse model, β, word source per clip). Rerun to resume. Feed the labels
to training with `semtalk prepare ROOT --labels LABELS`.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "label", help="pseudo semantic labels from a release's sem-gate (SHOW, paper §4.1)",
        description=__doc__.split("\n\n")[1] if __doc__ else None)
    parser.add_argument("root", type=Path, help="SHOW root (<speaker>/<video_fn>/<clip>/) or "
                                                "BEAT2-layout root")
    parser.add_argument("--model", "-m", type=Path, required=True, metavar="RELEASE",
                        help="release folder whose sparse model's gate labels the clips")
    parser.add_argument("--out", "-o", type=Path, required=True, metavar="LABELS",
                        help="labels folder (resumed when it exists)")
    parser.add_argument("--beta", type=float, default=0.5,
                        help="threshold β recorded for hard labels (default 0.5)")
    parser.add_argument("--split-file", type=Path, default=None, metavar="F",
                        help="TalkSHOW's train_val_test.json (SHOW: only the clips it lists)")
    parser.add_argument("--whisper-model", type=Path, default=None, metavar="DIR",
                        help="local faster-whisper model folder for word recognition "
                             "(default: the offline recogniser)")
    parser.add_argument("--speaker", type=int, default=None,
                        help="BEAT2 speaker id conditioning the gate (default: the release's "
                             "first)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace labels made with another release or β")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from semtalk.generation.label import label_dataset

    summary = label_dataset(args.root, args.model, args.out, beta=args.beta,
                            split_file=args.split_file, whisper_model=args.whisper_model,
                            speaker=args.speaker, device=args.device, overwrite=args.overwrite)
    for warning in summary.warnings:
        print(f"warning: {warning}")
    print(f"{len(summary.labelled)} clip(s) labelled, {len(summary.skipped)} already done "
          f"({summary.kind} root) -> {Path(summary.out)}")
    return 0
