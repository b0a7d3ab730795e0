"""One request of the browser app, without gradio: speech, words and emphasis in, the files of
``semtalk generate`` (npz, JSON, ψ plot, video) plus exports (BVH; GLB/USD when the exporters
are installed) out, in a fresh folder under the app's work folder.

The work goes through :mod:`semtalk.generation.files` (the same checks, words, emphasis and
outputs as ``semtalk generate``), so every problem is the CLI's :class:`DataError` /
:class:`ConfigError` with the same text. Loaded releases are kept (:class:`ModelCache`).
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from semtalk.config import ConfigError
from semtalk.generation.engine import SemTalk
from semtalk.generation.files import (
    GenerateOptions,
    Setup,
    generate_one,
    parse_emphasis,
    single_job,
)

ProgressFn = Callable[[float, str], None]
"""``progress(fraction done in [0, 1], what is happening)``."""

EXPORT_FORMATS = ("glb", "usd")
"""Formats asked of :func:`semtalk.export.export_motion` (when it exists) beside BVH."""


@dataclass(frozen=True)
class ModelChoice:
    """Which model to load: a release folder and the feature models it may need."""

    release: Path
    hubert: Path | None = None
    """HuBERT folder (an official-family release: HuBERT-large)."""
    sentence_model: Path | None = None
    """Sentence/CLIP encoder folder (an official-family release: CLIP ViT-B/32)."""
    device: str = "cpu"


class ModelCache:
    """Releases loaded once and kept (one lock: a release is never loaded twice at once)."""

    def __init__(self) -> None:
        self._models: dict[ModelChoice, SemTalk] = {}
        self._lock = threading.Lock()

    def get(self, choice: ModelChoice) -> SemTalk:
        """The :class:`SemTalk` of ``choice`` (loading it the first time; DataError if it is
        not a usable release)."""
        with self._lock:
            if choice not in self._models:
                self._models[choice] = SemTalk.from_pretrained(
                    choice.release, choice.device, hubert_model=choice.hubert,
                    sentence_model=choice.sentence_model)
            return self._models[choice]


@dataclass(frozen=True)
class Request:
    """What the page sends: the speech, its words (optional) and the emphasis controls."""

    audio: Path | None
    release: str
    transcript: str | None = None
    """The words spoken, as text (never read as a file name)."""
    textgrid: Path | None = None
    emphasize: str | None = None
    """Comma-separated words or phrases to gesture on."""
    suppress: str | None = None
    emphasis_scale: float = 1.0


@dataclass(frozen=True)
class Result:
    """What one request made: ``files`` by kind (npz, json, plot, video, bvh, glb, usd)."""

    folder: Path
    files: dict[str, Path]
    summary: str
    notes: list[str] = field(default_factory=list)
    """Warnings and what could not be made (e.g. no GLB exporter)."""


def _blank(text: str | None) -> str | None:
    return text.strip() if text and text.strip() else None


def check_request(request: Request) -> None:
    """ConfigError for a request that cannot start (no speech, no release, two word sources)."""
    if request.audio is None:
        raise ConfigError("upload or record the speech first")
    if not request.release.strip():
        raise ConfigError("choose a release folder (tokenizer/, base/, sparse/)")
    if _blank(request.transcript) and request.textgrid is not None:
        raise ConfigError("give either a transcript or a TextGrid, not both")


def run_request(request: Request, work_dir: Path, models: ModelCache, *,
                hubert: Path | None = None, sentence_model: Path | None = None,
                device: str = "cpu", progress: ProgressFn | None = None) -> Result:
    """Generate for ``request`` into a new folder under ``work_dir / "outputs"``.

    Raises:
        ConfigError, DataError: the same problems, with the same text, as ``semtalk generate``.
    """
    report = progress or (lambda fraction, what: None)
    check_request(request)
    assert request.audio is not None
    outputs = work_dir / "outputs"
    outputs.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="request-", dir=outputs))
    transcript = _blank(request.transcript)
    transcript_file = None
    if transcript is not None:  # a file of the text, so that a typed path is never read
        transcript_file = folder / "transcript.txt"
        transcript_file.write_text(transcript + "\n", encoding="utf-8")
    options = GenerateOptions(
        audio=request.audio, model=Path(request.release.strip()), out=folder / "result",
        transcript=None if transcript_file is None else str(transcript_file),
        textgrid=request.textgrid, emphasize=_blank(request.emphasize),
        suppress=_blank(request.suppress), emphasis_scale=float(request.emphasis_scale),
        hubert=hubert, sentence_model=sentence_model, device=device)
    emphasis = parse_emphasis(options)
    job = single_job(request.audio, options.transcript, options.textgrid)
    report(0.05, "loading the release")
    model = models.get(ModelChoice(options.model, hubert, sentence_model, device))
    report(0.2, "reading the speech and generating motion")
    notes: list[str] = []
    setup = Setup(emphasis, seed=None, body=None, speaker=None, preview="stick")
    paths, summary = generate_one(job, model, options, setup,
                                  lambda message: notes.append(_plain(message)))
    report(0.9, "exporting BVH, GLB and USD")
    files = dict(paths)
    files.update(export_files(paths["npz"], folder / "result", job.stem, notes))
    report(1.0, "done")
    return Result(folder / "result", files, summary, notes)


def _plain(message: str) -> str:
    """A CLI warning line without its ``semtalk generate: warning:`` prefix."""
    return message.removeprefix("semtalk generate: ").removeprefix("warning: ")


def export_files(npz: Path, folder: Path, stem: str, notes: list[str]) -> dict[str, Path]:
    """BVH of the motion in ``npz``, and GLB/USD through :func:`semtalk.export.export_motion`
    when it is there; what cannot be written is a line in ``notes``, never an error."""
    from semtalk.body.motion import read_motion_npz
    from semtalk.export.bvh import write_bvh

    motion, _ = read_motion_npz(npz)
    files = {"bvh": write_bvh(motion.poses, motion.trans, folder / f"{stem}.bvh")}
    try:
        from semtalk.export import export_motion  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        notes.append("no GLB/USD export, so no 3D view: this semtalk has no "
                     "semtalk.export.export_motion")
        return files
    for fmt in EXPORT_FORMATS:
        path = folder / f"{stem}.{fmt}"
        try:
            files[fmt] = Path(export_motion(motion, path, fmt))
        except (ImportError, ValueError, OSError, NotImplementedError) as exc:
            path.unlink(missing_ok=True)
            what = " (3D view off)" if fmt == "glb" else ""
            notes.append(f"no {fmt.upper()} export{what}: {exc}")
    return files
