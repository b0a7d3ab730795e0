"""``semtalk align AUDIO``: word timings of a speech file as a BEAT2-style TextGrid."""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

from semtalk.data.transcript import read_transcript
from semtalk.errors import DataError
from semtalk.fileio import OutputExistsError, check_output_folder


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "align", help="force-align a transcript (or recognise speech) and write a TextGrid",
        description="Write a TextGrid with a 'words' tier for AUDIO: the transcript force-aligned "
                    "with pocketsphinx, or, without a transcript, recognised words (a rough "
                    "transcript). Everything runs offline.")
    parser.add_argument("audio", type=Path, help="speech audio (WAV/FLAC/OGG, any rate)")
    parser.add_argument("--transcript", "-t", default=None, metavar="FILE_OR_TEXT",
                        help="transcript: a text file, or the text itself; a value with a line "
                             "break or too long to be a path is the text, else an existing "
                             "file is read")
    parser.add_argument("-o", "--output", type=Path, default=None,
                        help="TextGrid to write (default: AUDIO with suffix .TextGrid)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing output file")
    parser.add_argument("--no-recognition-fallback", action="store_true",
                        help="fail instead of recognising speech when the transcript does not "
                             "align")
    parser.add_argument("--phones", action="store_true",
                        help="also write a 'phones' tier (ARPAbet; a second alignment pass; "
                             "needs --transcript)")
    parser.add_argument("--whisper-model", type=Path, default=None, metavar="DIR",
                        help="local faster-whisper model folder used for recognition "
                             "(needs the faster-whisper package; nothing is downloaded)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from semtalk.data.audio import audio_duration, load_audio
    from semtalk.data.textgrid import words_to_intervals, write_textgrid
    from semtalk.features.alignment import METHOD_FALLBACK, words_and_phones_for_audio
    from semtalk.features.local_models import check_model_option

    check_model_option("--whisper-model", args.whisper_model)
    output = args.output or args.audio.with_suffix(".TextGrid")
    if output.resolve() == args.audio.resolve():
        raise DataError(output, "the output would overwrite the audio file; pass -o")
    if output.is_dir():
        raise DataError(output, "is a folder, expected a TextGrid file name; pass -o FILE")
    if output.exists() and not args.overwrite:
        raise DataError(output, "already exists; pass --overwrite to replace it or -o elsewhere")
    check_output_folder(output.parent)  # before the (long) alignment
    transcript = read_transcript(args.transcript) if args.transcript is not None else None
    start = time.perf_counter()
    audio = load_audio(args.audio)
    duration = audio_duration(args.audio)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        words, phones, method = words_and_phones_for_audio(
            audio, transcript=transcript, source=args.audio,
            allow_recognition=not args.no_recognition_fallback or transcript is None,
            whisper_model=args.whisper_model, phones=args.phones)
    tiers = {"words": words_to_intervals(words)}
    if phones is not None:
        tiers["phones"] = phones
    xmax = max(duration, max((w.end for w in words), default=0.0))
    try:
        write_textgrid(output, tiers, xmax=xmax, overwrite=args.overwrite)
    except OutputExistsError as exc:
        raise DataError(output, f"{exc.problem}; pass --overwrite to replace it or -o "
                                f"elsewhere") from exc
    for warning in caught:
        print(f"semtalk align: warning: {warning.message}", file=sys.stderr)
    note = " (the transcript did not align)" if method == METHOD_FALLBACK else ""
    print(f"wrote {output}: {len(words)} words, {method}{note}, {duration:.2f} s audio in "
          f"{time.perf_counter() - start:.1f} s")
    return 0
