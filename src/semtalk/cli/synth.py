"""``semtalk synth OUT``: write a synthetic-speaker dataset in the BEAT2 layout."""

from __future__ import annotations

import argparse
import time


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "synth", help="generate a synthetic-speaker dataset (BEAT2 layout)",
        description="Synthetic speech (espeak-ng) with exact word timings, rhythm-driven motion "
                    "and keyword-triggered semantic gestures annotated in sem/*.txt. "
                    "Deterministic per seed; rerunning completes an interrupted run.")
    parser.add_argument("out", help="output folder (created; must be empty or a previous run)")
    parser.add_argument("--minutes", type=float, default=5.0, help="total length (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--clip-seconds", type=float, default=30.0,
                        help="length of each clip in seconds (default 30)")
    parser.add_argument("--speaker-id", type=int, default=2,
                        help="speaker id in the clip names (default 2, SemTalk's protocol)")
    parser.add_argument("--workers", type=int, default=None,
                        help="processes (default: 1, more for long datasets)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a dataset made with different settings")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from semtalk.data.synthetic.dataset import SynthConfig, generate_dataset

    config = SynthConfig(minutes=args.minutes, seed=args.seed, clip_seconds=args.clip_seconds,
                         speaker_id=args.speaker_id)
    start = time.perf_counter()
    manifest = generate_dataset(args.out, config, workers=args.workers, overwrite=args.overwrite)
    clips = manifest["clips"]
    seconds = sum(c["frames"] for c in clips) / 30
    gestures = sum(c["semantic_gestures"] for c in clips)
    print(f"wrote {len(clips)} clips, {seconds / 60:.1f} min, {gestures} semantic gestures "
          f"to {args.out} in {time.perf_counter() - start:.1f} s")
    print(f"next: semtalk inspect {args.out}")
    return 0
