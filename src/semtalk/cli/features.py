"""``semtalk features AUDIO --model RELEASE --out FEATS.npz``: official-family features.

Computes what an ``official``-family release (``semtalk convert official``) reads for one
speech file (HuBERT-large through the official pipeline, the official beat features, word ids
through the official vocabulary, CLIP text per window, the seed and speaker) and writes them
in the official fixture's ``generation_inputs.npz`` layout, for ``semtalk generate --features``
on this or another machine, or for comparisons with the official code.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "features", help="compute an official-family release's features for one speech file",
        description=__doc__.split("\n\n")[1] if __doc__ else None)
    parser.add_argument("audio", type=Path, help="speech audio (any rate and channel count)")
    parser.add_argument("--model", "-m", type=Path, required=True, metavar="RELEASE",
                        help="an official-family release (its vocabulary and speakers)")
    parser.add_argument("--out", "-o", type=Path, required=True, metavar="NPZ",
                        help="features file to write")
    words = parser.add_mutually_exclusive_group()
    words.add_argument("--transcript", "-t", default=None, metavar="TEXT_OR_FILE",
                       help="what is said (force-aligned): the text, or a text file; a value "
                            "with a line break or too long to be a path is the text, else an "
                            "existing file is read")
    words.add_argument("--textgrid", type=Path, default=None, metavar="FILE",
                       help="word timings as a TextGrid (read as the official test-set "
                            "builder reads BEAT2's)")
    parser.add_argument("--hubert", type=Path, required=True, metavar="DIR",
                        help="local facebook/hubert-large-ls960-ft folder (transformers format)")
    parser.add_argument("--sentence-model", type=Path, required=True, metavar="DIR",
                        help="local CLIP ViT-B/32 folder (transformers format)")
    parser.add_argument("--clip-fp16", action="store_true",
                        help="run CLIP in float16 as the official code did (default float32)")
    parser.add_argument("--hubert-bf16", action="store_true",
                        help="run HuBERT in bfloat16 (about 2x faster; slightly different from "
                             "the official float32)")
    parser.add_argument("--seed-pose", type=Path, default=None, metavar="NPZ",
                        help="BEAT2 .npz whose first 4 frames seed the motion (default: rest "
                             "pose)")
    parser.add_argument("--speaker", type=int, default=None, metavar="ID",
                        help="BEAT2 speaker id (default: the release's first)")
    parser.add_argument("--no-recognition-fallback", action="store_true",
                        help="fail instead of recognising speech when the transcript does not "
                             "align")
    parser.add_argument("--whisper-model", type=Path, default=None, metavar="DIR",
                        help="local faster-whisper model folder for recognition")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from semtalk.generation.official_files import write_features

    _, summary = write_features(
        args.audio, args.model, args.out, hubert=args.hubert,
        sentence_model=args.sentence_model, transcript=args.transcript, textgrid=args.textgrid,
        seed_pose=args.seed_pose, speaker=args.speaker, clip_fp16=args.clip_fp16,
        hubert_bf16=args.hubert_bf16,
        allow_recognition=not args.no_recognition_fallback, whisper_model=args.whisper_model,
        device=args.device)
    print(summary)
    return 0
