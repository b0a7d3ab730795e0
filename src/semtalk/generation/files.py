"""Generation for files: one audio file or a folder of them (batch mode), each to its BEAT2
motion (STEM.npz), semantic-score report (STEM.json), ψ plot (STEM_psi.png), preview video
(STEM.mp4) and the exports asked for (STEM.glb ...), written all together or not at all;
everything is checked before any work, and in batch mode one failing file is reported while the
others go on. ``semtalk generate`` parses its arguments into :class:`GenerateOptions` and calls
:func:`generate_files`.
"""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from semtalk.body.motion import Motion
from semtalk.body.skeleton import BodyModel
from semtalk.config import ConfigError
from semtalk.constants import MOTION_FPS
from semtalk.data.transcript import transcript_path
from semtalk.devices import resolve_device
from semtalk.errors import DataError, require_file
from semtalk.features.local_models import check_model_option
from semtalk.fileio import (
    WRITTEN_MEANWHILE,
    OutputExistsError,
    check_output_folder,
    describe_os_error,
)
from semtalk.generation.emphasis import Emphasis
from semtalk.generation.engine import SemTalk
from semtalk.generation.inputs import load_utterance
from semtalk.generation.outputs import Generation, output_paths, preview_kind, save_outputs

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".opus")
"""Files batch mode picks up (case-insensitive)."""


@dataclass(frozen=True)
class GenerateOptions:
    """What ``semtalk generate`` was asked for (see its ``--help`` for each option)."""

    audio: Path | None
    model: Path
    out: Path
    transcript: str | None = None
    textgrid: Path | None = None
    seed_pose: Path | None = None
    speaker: int | None = None
    emphasize: str | None = None
    suppress: str | None = None
    emphasis_scale: float = 1.0
    no_video: bool = False
    body_model: Path | None = None
    preview: str = "auto"
    precision: str = "fp32"
    hubert: Path | None = None
    sentence_model: Path | None = None
    emotion_model: Path | None = None
    no_recognition_fallback: bool = False
    whisper_model: Path | None = None
    device: str = "cpu"
    overwrite: bool = False
    features: Path | None = None
    length: str = "full"
    clip_fp16: bool = False
    hubert_bf16: bool = False
    export: tuple[str, ...] = ()
    """Formats to export the motion to as well (``glb``, ``usd``, ``fbx``, ``bvh``)."""


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
        named = None if value is None else transcript_path(str(value))
        if value is not None and (named is None or not named.is_dir()):
            kind = "STEM.txt" if flag == "--transcript" else "STEM.TextGrid"
            shown = str(value) if len(str(value)) <= 80 else f"{str(value)[:77]}..."
            raise ConfigError(f"{flag}: with a folder of audio, {flag} names a folder of "
                              f"per-file {kind} files, not {shown!r}")
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
    named = transcript_path(transcript) if transcript is not None else None
    if named is not None and named.is_dir():
        raise DataError(named, "is a directory, expected a transcript (text or a "
                                          "text file); folders are for batch mode")
    if textgrid is not None and textgrid.is_dir():
        raise DataError(textgrid, "is a directory, expected a TextGrid file; folders are for "
                                  "batch mode")
    return Job(audio, audio.stem, transcript, textgrid)


# --- checks before any work ----------------------------------------------------------------------
def parse_emphasis(options: GenerateOptions) -> Emphasis:
    try:
        return Emphasis.parse(options.emphasize, options.suppress, options.emphasis_scale)
    except ValueError as exc:
        raise ConfigError(f"--emphasize/--suppress/--emphasis-scale: {exc}") from exc


def check_device(name: str) -> None:
    """The ``--device`` (``auto`` included) names a device that exists here."""
    try:
        resolve_device(name)
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


def needs_body(options: GenerateOptions) -> bool:
    """The ``--body-model`` is used: for the video or the exports."""
    return not options.no_video or bool(options.export)


def check_exports(formats: tuple[str, ...]) -> None:
    """Every ``--export`` format can be written here (ImportError naming the extra if not)."""
    from semtalk.export import check_export

    for fmt in formats:
        try:
            check_export(fmt)
        except ValueError as exc:
            raise ConfigError(f"--export: {exc}") from exc


OVERWRITE_HINT = "pass --overwrite to replace it, or --out elsewhere"
NPZ_BYTES_PER_FRAME = 4 * 165 + 8 * 100 + 8 * 3
JSON_BYTES_PER_FRAME = 80
"""ψ and ψ_model per frame plus a quarter of a token line, generously."""
VIDEO_BYTES_PER_SECOND = 2 * 150_000
"""H.264 preview and its AAC sound, twice (the silent video and the muxed one coexist)."""
FIXED_BYTES = 2_000_000
"""The ψ plot, the JSON's header and the npz's betas, generously."""


def estimated_output_bytes(seconds: float, video: bool) -> int:
    """About how many bytes the outputs of ``seconds`` of speech take on disk (an upper
    estimate: enough room for them while they are written)."""
    frames = seconds * MOTION_FPS
    total = FIXED_BYTES + frames * (NPZ_BYTES_PER_FRAME + JSON_BYTES_PER_FRAME)
    if video:
        total += seconds * VIDEO_BYTES_PER_SECOND
    return int(total)


def job_seconds(job: Job) -> float:
    """The job's audio duration from its header (0 when it cannot be read: the audio's own
    check reports that later, naming the file)."""
    from semtalk.data.audio import audio_duration

    try:
        return audio_duration(job.audio)
    except (DataError, OSError):
        return 0.0


def check_out_folder(jobs: list[Job], options: GenerateOptions) -> None:
    """``--out`` can take the outputs of ``jobs``: it is (or can be made as) a writable folder
    with room for them (DataError naming it otherwise); checked before any work."""
    seconds = sum(job_seconds(job) for job in jobs if job.audio.is_file())
    check_output_folder(options.out, estimated_output_bytes(seconds, not options.no_video))


def check_outputs_free(job: Job, options: GenerateOptions) -> None:
    """None of the job's output files exists (unless ``--overwrite``) or is a folder."""
    for path in output_paths(options.out, job.stem, video=not options.no_video,
                             exports=options.export).values():
        if path.is_dir():
            raise DataError(path, "is a folder, not a file; it is not replaced even with "
                                  "--overwrite: move it away or --out elsewhere")
        if not options.overwrite and path.exists():
            raise DataError(path, f"already exists; {OVERWRITE_HINT}")


def save(gen: Generation, options: GenerateOptions, stem: str, **kwargs: Any) -> dict[str, Path]:
    """:func:`save_outputs` into ``--out`` (all files or none), with what can go wrong there
    (another run wrote the files meanwhile, an OS error such as a full disk, ffmpeg failing)
    as one DataError naming the file."""
    from semtalk.render.ffmpeg import FFmpegError

    try:
        return save_outputs(gen, options.out, stem, video=not options.no_video,
                            exports=options.export, overwrite=options.overwrite, **kwargs)
    except OutputExistsError as exc:  # they were free before the work (check_outputs_free)
        raise DataError(exc.path, f"{WRITTEN_MEANWHILE}; {OVERWRITE_HINT}") from exc
    except OSError as exc:
        where = Path(exc.filename) if exc.filename else options.out
        raise DataError(where, f"could not write the outputs of {stem}, so none was "
                               f"written: {describe_os_error(exc)}") from exc
    except FFmpegError as exc:
        raise DataError(options.out / f"{stem}.mp4", f"could not write the video, so no "
                                                     f"output was written: {exc}") from exc


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


def generate_one(job: Job, model: SemTalk, options: GenerateOptions, setup: Setup,
                 show: Callable[[str], None]) -> tuple[dict[str, Path], str]:
    """Generate and save one file (all its outputs or none); the paths and a summary line."""
    from tqdm import tqdm


    check_outputs_free(job, options)
    check_out_folder([job], options)
    if job.note:
        show(f"semtalk generate: warning: {job.note}")
    with printed_warnings(job.audio, show):
        with hint(job.audio, _audio_advice):
            utterance = load_utterance(
                job.audio, transcript=job.transcript, textgrid=job.textgrid,
                allow_recognition=not options.no_recognition_fallback or job.transcript is None,
                whisper_model=options.whisper_model)
        try:
            with tqdm(desc=f"motion {job.stem}", unit="window", leave=False, file=sys.stderr,
                      disable=None) as windows:
                gen = model.generate(utterance.audio, utterance.sample_rate, utterance.words,
                                     speaker=setup.speaker, seed=setup.seed,
                                     emphasis=setup.emphasis, length=options.length,
                                     progress=_bar_progress(windows))
        except DataError:
            raise
        except ValueError as exc:  # the engine's checks of the audio and the seed
            raise DataError(job.audio, f"cannot generate motion: {exc}") from exc
    inputs = {"audio": str(job.audio), "words_source": utterance.words_source,
              "words_method": utterance.words_method, "transcript": job.transcript,
              "textgrid": None if job.textgrid is None else str(job.textgrid),
              "seed_pose": None if options.seed_pose is None else str(options.seed_pose),
              "speaker_id": options.speaker}
    with tqdm(total=gen.num_frames, desc=f"video {job.stem}", unit="frame", leave=False,
              file=sys.stderr, disable=True if options.no_video else None) as bar:
        paths = save(gen, options, job.stem, body_model=setup.body, preview=setup.preview,
                     extra={"input": inputs}, progress=_bar_progress(bar))
    fused = int(gen.sparse_tokens.sum())
    video = "" if options.no_video else f" ({setup.preview} preview)"
    summary = (f"{job.audio.name}: {gen.num_frames} frames ({gen.num_frames / gen.fps:.2f} s), "
               f"{len(gen.words)} words ({utterance.words_source}), ψ > β on {fused} of "
               f"{len(gen.sparse_tokens)} tokens -> {', '.join(p.name for p in paths.values())}"
               f"{video}")
    return paths, summary


def _bar_progress(bar: Any) -> Callable[[int, int], None]:
    """A ``progress(done, total)`` callback that moves the tqdm ``bar``."""
    def progress(done: int, total: int) -> None:
        if bar.total != total:
            bar.total = total
            bar.refresh()
        bar.update(done - bar.n)
    return progress


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


def generate_files(options: GenerateOptions) -> int:
    emphasis = parse_emphasis(options)
    check_device(options.device)
    check_exports(options.export)
    for option, value in (("--hubert", options.hubert),
                          ("--sentence-model", options.sentence_model),
                          ("--emotion-model", options.emotion_model),
                          ("--whisper-model", options.whisper_model)):
        check_model_option(option, value)
    if options.features is not None:
        return generate_from_features(options, emphasis)
    if options.audio is None:
        raise DataError(Path("."), "give the speech audio (or --features NPZ)")
    batch = options.audio.is_dir()
    jobs = (batch_jobs(options.audio, options.transcript, options.textgrid) if batch
            else [single_job(options.audio, options.transcript, options.textgrid)])
    if not batch:
        check_outputs_free(jobs[0], options)
    check_out_folder(jobs, options)
    seed = load_seed(options.seed_pose)
    body = load_body(options.body_model) if needs_body(options) else None
    preview = "stick" if options.no_video else choose_preview(options.preview, body)
    model = _load_model(options)
    with hint(model.release.folder, "pass one of them to --speaker, or leave it out"):
        model.speaker_class(options.speaker)  # an unknown id fails here, before any audio is read
    setup = Setup(emphasis, seed, body, options.speaker, preview)
    if batch:
        return run_batch(jobs, model, options, setup)
    _, summary = generate_one(jobs[0], model, options, setup, lambda m: print(m, file=sys.stderr))
    print(summary)
    print(f"output folder: {options.out}")
    return 0


def _load_model(options: GenerateOptions) -> SemTalk:
    return SemTalk.from_pretrained(options.model, options.device, hubert_model=options.hubert,
                                   sentence_model=options.sentence_model,
                                   emotion_model=options.emotion_model,
                                   precision=options.precision, clip_fp16=options.clip_fp16,
                                   hubert_bf16=options.hubert_bf16)


def generate_from_features(options: GenerateOptions, emphasis: Emphasis) -> int:
    """``semtalk generate --features NPZ``: one official-family features file to motion."""
    from semtalk.data.audio import load_audio
    from semtalk.generation.official import official_inputs_to_features
    from semtalk.official.inputs import OfficialInputs

    path = options.features
    assert path is not None
    inputs = OfficialInputs.load(path)
    job = Job(audio=options.audio or path, stem=path.stem)
    check_outputs_free(job, options)
    seconds = inputs.num_frames / MOTION_FPS
    check_output_folder(options.out, estimated_output_bytes(seconds, not options.no_video))
    model = _load_model(options)
    release = model.release
    if release.family != "official":
        raise DataError(path, f"this file holds official-family features (HuBERT-large, the "
                              f"official vocabulary, CLIP); {release.folder} is a "
                              f"{release.family}-family release, whose features differ: give "
                              f"it the audio instead, or use a release made by `semtalk "
                              f"convert official`")
    features, seed, contacts, speaker_cls = official_inputs_to_features(inputs)
    speaker = options.speaker
    if speaker is None:
        known = release.speakers or {}
        if speaker_cls not in known:
            raise DataError(path, f"speaker class {speaker_cls} (tar_id) is not one this "
                                  f"release was converted for ({sorted(known)}); pass "
                                  f"--speaker ID")
        speaker = known[speaker_cls]
    user_seed = load_seed(options.seed_pose)
    audio = None
    if options.audio is not None:
        with hint(options.audio, _audio_advice):
            audio = load_audio(options.audio)
    from tqdm import tqdm

    try:
        with tqdm(desc=f"motion {job.stem}", unit="window", leave=False, file=sys.stderr,
                  disable=None) as windows:
            gen = model.generate_features(
                features, speaker=speaker, seed=user_seed or seed, emphasis=emphasis,
                audio=audio, length=options.length, seed_contacts=None if user_seed else contacts,
                progress=_bar_progress(windows))
    except DataError:
        raise
    except ValueError as exc:
        raise DataError(path, f"cannot generate motion: {exc}") from exc
    body = load_body(options.body_model) if needs_body(options) else None
    preview = "stick" if options.no_video else choose_preview(options.preview, body)
    paths = save(gen, options, job.stem, body_model=body, preview=preview,
                 extra={"input": {"features": str(path), "length": options.length,
                                  "audio": None if options.audio is None
                                  else str(options.audio)}})
    print(f"{path.name}: {gen.num_frames} frames, ψ > β on {int(gen.sparse_tokens.sum())} of "
          f"{len(gen.sparse_tokens)} tokens -> {', '.join(p.name for p in paths.values())}")
    print(f"output folder: {options.out}")
    return 0


def run_batch(jobs: list[Job], model: SemTalk, options: GenerateOptions, setup: Setup) -> int:
    """Every job in turn with a progress bar; a failing file is reported and skipped."""
    from tqdm import tqdm

    failed: list[str] = []
    bar = tqdm(jobs, desc="generating", unit="file", file=sys.stderr, disable=None)

    def warn(message: str) -> None:
        bar.write(message, file=sys.stderr)

    for job in bar:
        try:
            _, summary = generate_one(job, model, options, setup, warn)
        except Exception as exc:  # one bad file must not stop the batch
            what = (str(exc) if isinstance(exc, DataError | ConfigError)
                    else f"{job.audio}: {type(exc).__name__}: {exc}")
            warn(f"semtalk generate: error: {what}")
            failed.append(job.audio.name)
        else:
            bar.write(summary, file=sys.stdout)
    bar.close()
    print(f"output folder: {options.out} ({len(jobs) - len(failed)} of {len(jobs)} file(s) "
          "generated)")
    if failed:
        print(f"semtalk generate: {len(failed)} of {len(jobs)} file(s) failed: "
              f"{', '.join(failed)}", file=sys.stderr)
        return 2
    return 0
