"""``semtalk generate AUDIO --model RELEASE``: co-speech motion for speech audio.

For each audio file: BEAT2 motion (STEM.npz), the semantic-score report (STEM.json), a plot of
the semantic score over time (STEM_psi.png) and a preview video with the audio (STEM.mp4),
written into --out all together or not at all. AUDIO may be a folder: every audio file in it
is generated (batch mode); one that fails is reported and the others go on.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from semtalk.config import ConfigError
from semtalk.errors import DataError, require_file

if TYPE_CHECKING:
    import torch

    from semtalk.body.motion import Motion
    from semtalk.body.skeleton import BodyModel
    from semtalk.generation.emphasis import Emphasis
    from semtalk.generation.engine import SemTalk

PREVIEWS = ("auto", "stick", "mesh")
"""--preview choices (semtalk.generation.outputs.PREVIEWS, without importing torch here)."""
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg")
"""Files batch mode picks up (case-insensitive)."""
DEFAULT_OUT = Path("semtalk-output")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "generate", help="generate co-speech motion (BEAT2 .npz, ψ report, plot, video)",
        description=__doc__.split("\n\n")[1] if __doc__ else None)
    parser.add_argument("audio", type=Path,
                        help="speech audio (WAV/FLAC/MP3/OGG, any rate and channel count), or a "
                             "folder of them (batch mode; per-file STEM.TextGrid or STEM.txt "
                             "next to the audio are used)")
    parser.add_argument("--model", "-m", type=Path, required=True, metavar="RELEASE",
                        help="release folder (tokenizer/, base/, sparse/)")
    parser.add_argument("--out", "-o", type=Path, default=DEFAULT_OUT, metavar="DIR",
                        help=f"output folder (default {DEFAULT_OUT}/)")
    words = parser.add_mutually_exclusive_group()
    words.add_argument("--transcript", "-t", default=None, metavar="TEXT_OR_FILE",
                       help="what is said: the text, or a text file (force-aligned); in batch "
                            "mode a folder of STEM.txt files")
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
    parser.add_argument("--body-model", type=Path, default=None, metavar="SMPLX_FILE",
                        help="SMPLX_NEUTRAL_2020.npz (or its folder) for the video: its mesh, "
                             "or exact joints for the stick figure (needs the smplx extra; "
                             "default: built-in skeleton)")
    parser.add_argument("--preview", choices=PREVIEWS, default="auto",
                        help="how the video draws the body: 'mesh' (the SMPL-X surface; needs "
                             "--body-model and pip install 'semtalk[render]'), 'stick' (a stick "
                             "figure), 'auto' (default: mesh when both are there, else stick)")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                        help="generator precision: fp32 (default, the models as trained) or "
                             "bf16 (about 1.5x faster on CPUs with AVX-512 BF16 or AMX; "
                             "slightly different motion)")
    parser.add_argument("--hubert", type=Path, default=None, metavar="DIR",
                        help="local HuBERT model folder (releases trained on HuBERT features)")
    parser.add_argument("--sentence-model", type=Path, default=None, metavar="DIR",
                        help="local sentence/CLIP text model folder (releases trained on one)")
    parser.add_argument("--emotion-model", type=Path, default=None, metavar="DIR",
                        help="local emotion2vec model folder (releases trained on one)")
    parser.add_argument("--no-recognition-fallback", action="store_true",
                        help="fail instead of recognising speech when the transcript does not "
                             "align")
    parser.add_argument("--whisper-model", type=Path, default=None, metavar="DIR",
                        help="local faster-whisper model folder for recognition")
    parser.add_argument("--device", default="cpu", help="torch device or auto (default cpu)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace existing output files")
    parser.set_defaults(run=run)


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


# --- what to generate ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Job:
    """One audio file, where its words come from and the stem of its outputs."""

    audio: Path
    stem: str
    transcript: str | None = None
    textgrid: Path | None = None
    note: str | None = None
    """A warning to print when the job runs (e.g. its word file is missing)."""


def _sidecar(folder: Path, stem: str, suffix: str) -> Path | None:
    path = folder / f"{stem}{suffix}"
    return path if path.is_file() else None


def batch_jobs(folder: Path, transcript: str | None, textgrid: Path | None) -> list[Job]:
    """The jobs of batch mode: every audio file in ``folder``, with per-stem word files.

    Word files are looked up as ``STEM.TextGrid`` (else ``STEM.txt``) in the ``--textgrid`` /
    ``--transcript`` folder when one is given, else next to the audio. Files whose stems clash
    (``a.wav`` and ``a.mp3``) get outputs named after the whole file name (``a_wav``).
    """
    for flag, value in (("--transcript", transcript), ("--textgrid", textgrid)):
        if value is not None and not Path(value).is_dir():
            kind = "STEM.txt" if flag == "--transcript" else "STEM.TextGrid"
            raise ConfigError(f"{flag}: with a folder of audio, {flag} names a folder of "
                              f"per-file {kind} files, not {value}")
    files = sorted(p for p in folder.iterdir()
                   if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
    if not files:
        raise DataError(folder, f"holds no audio files ({', '.join(AUDIO_SUFFIXES)})")
    counts = Counter(p.stem for p in files)
    return [_batch_job(path, counts[path.stem] > 1, folder, transcript, textgrid)
            for path in files]


def _batch_job(path: Path, clash: bool, folder: Path, transcript: str | None,
               textgrid: Path | None) -> Job:
    stem = f"{path.stem}_{path.suffix[1:].lower()}" if clash else path.stem
    if textgrid is not None:
        grid = _sidecar(Path(textgrid), path.stem, ".TextGrid")
        note = None if grid else f"no {path.stem}.TextGrid in {textgrid}: recognising the words"
        return Job(path, stem, textgrid=grid, note=note)
    if transcript is not None:
        text = _sidecar(Path(transcript), path.stem, ".txt")
        note = None if text else f"no {path.stem}.txt in {transcript}: recognising the words"
        return Job(path, stem, transcript=None if text is None else str(text), note=note)
    grid = _sidecar(folder, path.stem, ".TextGrid")
    text = None if grid is not None else _sidecar(folder, path.stem, ".txt")
    return Job(path, stem, None if text is None else str(text), grid)


def single_job(audio: Path, transcript: str | None, textgrid: Path | None) -> Job:
    require_file(audio, "audio file")
    if transcript is not None and Path(transcript).is_dir():
        raise DataError(Path(transcript), "is a directory, expected a transcript (text or a "
                                          "text file); folders are for batch mode")
    if textgrid is not None and textgrid.is_dir():
        raise DataError(textgrid, "is a directory, expected a TextGrid file; folders are for "
                                  "batch mode")
    return Job(audio, audio.stem, transcript, textgrid)


# --- checks before any work ----------------------------------------------------------------------
def parse_emphasis(args: argparse.Namespace) -> Emphasis:
    from semtalk.generation.emphasis import Emphasis

    try:
        return Emphasis.parse(args.emphasize, args.suppress, args.emphasis_scale)
    except ValueError as exc:
        raise ConfigError(f"--emphasize/--suppress/--emphasis-scale: {exc}") from exc


def check_device(name: str) -> torch.device:
    """The ``--device`` (``auto`` included) as a device that exists here."""
    from semtalk.devices import resolve_device

    try:
        return resolve_device(name)
    except ValueError as exc:
        raise ConfigError(f"--device {name}: {exc}; use --device cpu") from exc


def load_seed(path: Path | None) -> Motion | None:
    """The ``--seed-pose`` motion (warnings about missing optional keys are printed)."""
    if path is None:
        return None
    from semtalk.body.motion import read_motion_npz

    motion, issues = read_motion_npz(path)
    for issue in issues:
        print(f"semtalk generate: warning: {issue}", file=sys.stderr)
    return motion


def load_body(path: Path | None) -> BodyModel | None:
    """The ``--body-model`` SMPL-X model, with its problems as a DataError naming the file."""
    if path is None:
        return None
    from semtalk.body.skeleton import load_body_model

    try:
        return load_body_model(path)
    except (FileNotFoundError, ValueError, OSError) as exc:
        raise DataError(path, f"cannot use this SMPL-X body model: {exc}") from exc


def choose_preview(preview: str, body: BodyModel | None) -> str:
    """``mesh`` or ``stick`` for ``--preview``; ConfigError when ``mesh`` cannot be drawn."""
    from semtalk.generation.outputs import preview_kind
    from semtalk.render.mesh import MeshRenderError

    if preview == "mesh" and body is None:
        raise ConfigError("--preview mesh needs --body-model SMPLX_FILE: the mesh is the SMPL-X "
                          "model's surface (the built-in skeleton has none)")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            kind = preview_kind(preview, body)
        except (ImportError, MeshRenderError, ValueError) as exc:
            raise ConfigError(f"--preview {preview}: {exc}") from exc
    for warning in caught:
        print(f"semtalk generate: warning: {warning.message}", file=sys.stderr)
    return kind


def check_outputs_free(job: Job, args: argparse.Namespace) -> None:
    from semtalk.generation.outputs import output_paths

    if args.overwrite:
        return
    for path in output_paths(args.out, job.stem, video=not args.no_video).values():
        if path.exists():
            raise DataError(path, "already exists; pass --overwrite to replace it, or --out "
                                  "elsewhere")


# --- one file ------------------------------------------------------------------------------------
AUDIO_HINT = "pass a speech recording (WAV, FLAC, MP3 or OGG)"
ALIGNMENT_HINT = ("check that the transcript belongs to this audio, or leave out "
                  "--no-recognition-fallback to recognise the words instead")


@contextlib.contextmanager
def hint(path: Path, advice: str | Callable[[DataError], str]) -> Iterator[None]:
    """Add what to do (``advice``, or ``advice(error)``) to a DataError about ``path``."""
    try:
        yield
    except DataError as exc:
        text = advice(exc) if callable(advice) else advice
        if exc.path != path or text in exc.problem:
            raise
        raise type(exc)(exc.path, f"{exc.problem}; {text}") from exc


def _audio_advice(error: DataError) -> str:
    from semtalk.features.alignment import AlignmentError

    return ALIGNMENT_HINT if isinstance(error, AlignmentError) else AUDIO_HINT


@contextlib.contextmanager
def printed_warnings(where: Path, show: Callable[[str], None]) -> Iterator[None]:
    """Collect the warnings raised inside and print them, naming ``where``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        finally:
            for warning in caught:
                message = str(warning.message)
                prefix = "" if message.startswith(str(where)) else f"{where}: "
                show(f"semtalk generate: warning: {prefix}{message}")


def generate_one(job: Job, model: SemTalk, args: argparse.Namespace, setup: Setup,
                 show: Callable[[str], None]) -> tuple[dict[str, Path], str]:
    """Generate and save one file (all its outputs or none); the paths and a summary line."""
    from tqdm import tqdm

    from semtalk.generation.inputs import load_utterance
    from semtalk.generation.outputs import save_outputs

    check_outputs_free(job, args)
    if job.note:
        show(f"semtalk generate: warning: {job.note}")
    with printed_warnings(job.audio, show):
        with hint(job.audio, _audio_advice):
            utterance = load_utterance(
                job.audio, transcript=job.transcript, textgrid=job.textgrid,
                allow_recognition=not args.no_recognition_fallback or job.transcript is None,
                whisper_model=args.whisper_model)
        try:
            gen = model.generate(utterance.audio, utterance.sample_rate, utterance.words,
                                 speaker=setup.speaker, seed=setup.seed,
                                 emphasis=setup.emphasis)
        except DataError:
            raise
        except ValueError as exc:  # the engine's checks of the audio and the seed
            raise DataError(job.audio, f"cannot generate motion: {exc}") from exc
    inputs = {"audio": str(job.audio), "words_source": utterance.words_source,
              "words_method": utterance.words_method, "transcript": job.transcript,
              "textgrid": None if job.textgrid is None else str(job.textgrid),
              "seed_pose": None if args.seed_pose is None else str(args.seed_pose),
              "speaker_id": args.speaker}
    with tqdm(total=gen.num_frames, desc=f"video {job.stem}", unit="frame", leave=False,
              file=sys.stderr, disable=True if args.no_video else None) as bar:
        paths = save_outputs(gen, args.out, job.stem, video=not args.no_video,
                             body_model=setup.body, preview=setup.preview,
                             extra={"input": inputs},
                             progress=lambda done, total: bar.update(done - bar.n))
    fused = int(gen.sparse_tokens.sum())
    video = "" if args.no_video else f" ({setup.preview} preview)"
    summary = (f"{job.audio.name}: {gen.num_frames} frames ({gen.num_frames / gen.fps:.2f} s), "
               f"{len(gen.words)} words ({utterance.words_source}), ψ > β on {fused} of "
               f"{len(gen.sparse_tokens)} tokens -> {', '.join(p.name for p in paths.values())}"
               f"{video}")
    return paths, summary


@dataclass(frozen=True)
class Setup:
    """What every file of a run shares, checked before any generation."""

    emphasis: Emphasis
    seed: Motion | None
    body: BodyModel | None
    speaker: int | None
    """BEAT2 speaker id (None: the release's first)."""
    preview: str = "stick"
    """How the video draws the body: ``mesh`` or ``stick`` (already checked)."""


def run(args: argparse.Namespace) -> int:
    from semtalk.generation.engine import SemTalk

    emphasis = parse_emphasis(args)
    device = check_device(args.device)
    batch = args.audio.is_dir()
    jobs = (batch_jobs(args.audio, args.transcript, args.textgrid) if batch
            else [single_job(args.audio, args.transcript, args.textgrid)])
    if not batch:
        check_outputs_free(jobs[0], args)
    seed = load_seed(args.seed_pose)
    body = None if args.no_video else load_body(args.body_model)
    preview = "stick" if args.no_video else choose_preview(args.preview, body)
    model = SemTalk.from_pretrained(args.model, device, hubert_model=args.hubert,
                                    sentence_model=args.sentence_model,
                                    emotion_model=args.emotion_model,
                                    precision=args.precision)
    with hint(model.release.folder, "pass one of them to --speaker, or leave it out"):
        model.speaker_class(args.speaker)  # an unknown id fails here, before any audio is read
    setup = Setup(emphasis, seed, body, args.speaker, preview)
    if batch:
        return run_batch(jobs, model, args, setup)
    _, summary = generate_one(jobs[0], model, args, setup, lambda m: print(m, file=sys.stderr))
    print(summary)
    print(f"output folder: {args.out}")
    return 0


def run_batch(jobs: list[Job], model: SemTalk, args: argparse.Namespace, setup: Setup) -> int:
    """Every job in turn with a progress bar; a failing file is reported and skipped."""
    from tqdm import tqdm

    failed: list[str] = []
    bar = tqdm(jobs, desc="generating", unit="file", file=sys.stderr, disable=None)

    def warn(message: str) -> None:
        bar.write(message, file=sys.stderr)

    for job in bar:
        try:
            _, summary = generate_one(job, model, args, setup, warn)
        except Exception as exc:  # one bad file must not stop the batch
            what = (str(exc) if isinstance(exc, DataError | ConfigError)
                    else f"{job.audio}: {type(exc).__name__}: {exc}")
            warn(f"semtalk generate: error: {what}")
            failed.append(job.audio.name)
        else:
            bar.write(summary, file=sys.stdout)
    bar.close()
    print(f"output folder: {args.out} ({len(jobs) - len(failed)} of {len(jobs)} file(s) "
          "generated)")
    if failed:
        print(f"semtalk generate: {len(failed)} of {len(jobs)} file(s) failed: "
              f"{', '.join(failed)}", file=sys.stderr)
        return 2
    return 0
