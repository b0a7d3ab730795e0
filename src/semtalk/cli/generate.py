"""``semtalk generate AUDIO --model RELEASE``: co-speech motion for speech audio.

For each audio file: BEAT2 motion (STEM.npz), the semantic-score report (STEM.json), a plot of
the semantic score over time (STEM_psi.png) and a preview video with the audio (STEM.mp4),
written into --out all together or not at all. AUDIO may be a folder: every audio file in it
is generated (batch mode); one that fails is reported and the others go on.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

PREVIEWS = ("auto", "stick", "mesh")
"""--preview choices (semtalk.generation.outputs.PREVIEWS, without importing torch here)."""
DEFAULT_OUT = Path("semtalk-output")
EXPORT_FORMATS = ("glb", "usd", "fbx", "bvh")
"""--export choices (semtalk.export.FORMATS, without importing it here)."""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "generate", help="generate co-speech motion (BEAT2 .npz, ψ report, plot, video)",
        description=__doc__.split("\n\n")[1] if __doc__ else None)
    parser.add_argument("audio", type=Path, nargs="?", default=None,
                        help="speech audio (WAV/FLAC/MP3/OGG, any rate and channel count), or a "
                             "folder of them (batch mode; per-file STEM.TextGrid or STEM.txt "
                             "next to the audio are used); optional with --features (then "
                             "only the video's sound)")
    parser.add_argument("--model", "-m", type=Path, required=True, metavar="RELEASE",
                        help="release folder (tokenizer/, base/, sparse/)")
    parser.add_argument("--out", "-o", type=Path, default=DEFAULT_OUT, metavar="DIR",
                        help=f"output folder (default {DEFAULT_OUT}/)")
    words = parser.add_mutually_exclusive_group()
    words.add_argument("--transcript", "-t", default=None, metavar="TEXT_OR_FILE",
                       help="what is said: the text, or a text file (force-aligned); a value "
                            "with a line break or too long to be a path (over 4096 bytes, or a "
                            "name part over 255) is the text, else an existing file is read "
                            "and anything else is the text; in batch mode a folder of STEM.txt "
                            "files")
    words.add_argument("--textgrid", type=Path, default=None, metavar="FILE",
                       help="word timings as a Praat TextGrid ('words' tier); in batch mode a "
                            "folder of STEM.TextGrid files")
    parser.add_argument("--seed-pose", type=Path, default=None, metavar="NPZ",
                        help="BEAT2 .npz whose first frames start the motion (default: a "
                             "neutral rest pose)")
    parser.add_argument("--speaker", type=int, default=None, metavar="ID",
                        help="BEAT2 speaker id to imitate (one the release was trained on; "
                             "default: the release's first)")
    parser.add_argument("--emphasize", default=None, metavar="WORDS",
                        help='comma-separated words or phrases to gesture on ("dream job,never")')
    parser.add_argument("--suppress", default=None, metavar="WORDS",
                        help="comma-separated words or phrases to keep calm on")
    parser.add_argument("--emphasis-scale", type=_non_negative, default=1.0, metavar="X",
                        help="multiply the semantic score ψ everywhere (default 1)")
    parser.add_argument("--no-video", action="store_true", help="skip the preview video")
    parser.add_argument("--export", type=_formats, default=(), metavar="FORMATS",
                        help="also write the motion as comma-separated formats among "
                             f"{', '.join(EXPORT_FORMATS)} (STEM.glb ... next to STEM.npz, part "
                             "of the same all-or-none outputs; skinned SMPL-X mesh with "
                             "--body-model; see `semtalk export`)")
    parser.add_argument("--body-model", type=Path, default=None, metavar="SMPLX_FILE",
                        help="SMPLX_NEUTRAL_2020.npz (or its folder) for the video: its mesh, "
                             "or exact joints for the stick figure; for --export: the shaped "
                             "skeleton and skinned mesh (needs the smplx extra; default: "
                             "built-in skeleton)")
    parser.add_argument("--preview", choices=PREVIEWS, default="auto",
                        help="how the video draws the body: 'mesh' (the SMPL-X surface; needs "
                             "--body-model and pip install 'semtalk[render]'), 'stick' (a stick "
                             "figure), 'auto' (default: mesh when both are there, else stick)")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                        help="generator precision: fp32 (default, the models as trained) or "
                             "bf16 (about 1.5x faster on CPUs with AVX-512 BF16 or AMX; "
                             "slightly different motion)")
    parser.add_argument("--hubert", type=Path, default=None, metavar="DIR",
                        help="local HuBERT model folder (releases trained on HuBERT features); "
                             "model options take local folders only: nothing is downloaded "
                             "unless SEMTALK_ALLOW_HUB=1 is set, which allows hub ids")
    parser.add_argument("--sentence-model", type=Path, default=None, metavar="DIR",
                        help="local sentence/CLIP text model folder (releases trained on one)")
    parser.add_argument("--emotion-model", type=Path, default=None, metavar="DIR",
                        help="local emotion2vec model folder (releases trained on one)")
    parser.add_argument("--no-recognition-fallback", action="store_true",
                        help="fail instead of recognising speech when the transcript does not "
                             "align")
    parser.add_argument("--whisper-model", type=Path, default=None, metavar="DIR",
                        help="local faster-whisper model folder for recognition")
    parser.add_argument("--features", type=Path, default=None, metavar="NPZ",
                        help="generate from a precomputed features file (`semtalk features`; "
                             "official-family releases) instead of computing features")
    parser.add_argument("--length", choices=("full", "official"), default="full",
                        help="full (default): one frame per 1/30 s of audio; official: the "
                             "official code's length (multiple-of-8 trim, whole 60-frame hops, "
                             "tail dropped), for comparisons")
    parser.add_argument("--clip-fp16", action="store_true",
                        help="official-family releases: run CLIP in float16 as the official "
                             "code did (default float32)")
    parser.add_argument("--hubert-bf16", action="store_true",
                        help="official-family releases: run HuBERT in bfloat16 (about 2x faster "
                             "features on CPU; slightly different from the official float32)")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace existing output files")
    parser.set_defaults(run=run)


def _formats(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(n.strip().lower() for n in text.split(",") if n.strip()))
    unknown = [n for n in names if n not in EXPORT_FORMATS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown export format(s) {', '.join(unknown)}; "
                                         f"choose among {', '.join(EXPORT_FORMATS)}"
                                         if unknown else "name at least one format")
    return names


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def run(args: argparse.Namespace) -> int:
    """Parse -> :func:`semtalk.generation.files.generate_files`."""
    from semtalk.generation.files import GenerateOptions, generate_files

    fields = {f.name for f in dataclasses.fields(GenerateOptions)}
    return generate_files(GenerateOptions(**{k: v for k, v in vars(args).items()
                                             if k in fields}))
