"""``semtalk convert official SRC --out RELEASE``: the official SemTalk weights as a release."""

from __future__ import annotations

import argparse
import time

from semtalk.errors import DataError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "convert", help="convert published weights into a semtalk release",
        description="Convert weights published elsewhere into a semtalk release folder.")
    kinds = parser.add_subparsers(dest="kind", required=True, metavar="KIND")
    official = kinds.add_parser(
        "official", help="the official SemTalk weights (the authors' zips or a folder)",
        description="Convert the official SemTalk weights: weights_semtalk_no_smplx.zip "
                    "(speaker 2) or SemTalk_all_speakers_weights_25spk.zip (25 speakers), or "
                    "a folder holding rvq_{face_600,upper_500,hands_500,lower_600}.bin, "
                    "last_1700_foot.bin, best_semtalk_base.bin, best_semtalk_sparse.bin and "
                    "vocab.pkl. The result is a release of the 'official' family for "
                    "`semtalk generate --model RELEASE`.")
    official.add_argument("src", help="the zip, or a folder with the files (any depth)")
    official.add_argument("--out", required=True, help="release folder to write")
    official.add_argument("--speakers", default=None,
                          help="'all' or BEAT2 ids like '2' (default: all for the 25-speaker "
                               "zip, speaker 2 otherwise)")
    official.add_argument("--work-dir", default=None,
                          help="where to unpack a zip's files temporarily (default: the "
                               "system temp folder; needs about 1.7 GB)")
    official.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from semtalk.official.convert import LICENCE_NOTE, convert_official

    print(f"note: {LICENCE_NOTE}")
    started = time.perf_counter()
    try:
        report = convert_official(args.src, args.out, speakers=args.speakers,
                                  work_dir=args.work_dir,
                                  progress=lambda step: print(f"  {step} ...", flush=True))
    except ValueError as exc:
        raise DataError(args.src, str(exc)) from exc
    speakers = ", ".join(str(i) for i in report.speakers.values())
    checked = ("checked against SHA256SUMS" if report.provenance["sha256sums_checked"]
               else "no SHA256SUMS to check")
    print(f"wrote {report.release} (official family, BEAT2 speaker(s) {speakers}; files "
          f"{checked}) in {time.perf_counter() - started:.0f} s")
    print(f"generate with: semtalk generate SPEECH.wav --model {report.release} "
          f"--hubert HUBERT_DIR --sentence-model CLIP_DIR")
    return 0
