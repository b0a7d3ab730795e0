"""A generated utterance (:class:`Generation`) and the files it is saved as: BEAT2 motion,
ψ report, ψ plot and preview video.

================  ==================================================================
``STEM.npz``      BEAT2 motion (poses 165, expressions 100, trans 3, betas 300, model,
                  gender, mocap_frame_rate 30): read by BEAT2 loaders and by the SMPL-X
                  Blender add-on's animation import
``STEM.json``     the semantic-score report (:func:`generation_json`)
``STEM_psi.png``  ψ over time with the words
``STEM.mp4``      preview: front view of the body, current word, ψ, with the audio; the
                  SMPL-X mesh when a model file and the ``render`` extra are there, else
                  a stick figure (built-in skeleton or SMPL-X joints)
``STEM.glb`` ...  on request (``exports``): the motion for Blender, Unity, Unreal
                  (``.glb``, ``.usd``, ``.fbx``, ``.bvh``; :mod:`semtalk.export`)
================  ==================================================================

:func:`save_outputs` writes them all or none: every file is written into a temporary folder
inside the output folder (the same disk), then all are renamed into place as one unit
(:func:`semtalk.fileio.commit_files`): when one rename fails, those already made are undone and
the files they replaced come back. Motion or ψ that is not finite is refused before anything is
written (:func:`check_finite`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch

from semtalk.body.motion import Motion
from semtalk.constants import AUDIO_SAMPLE_RATE, MOTION_FPS, __version__
from semtalk.data.textgrid import Word, frame_span
from semtalk.errors import DataError
from semtalk.fileio import OutputExistsError, write_text_atomic, write_together
from semtalk.models.generator_common import FRAMES_PER_TOKEN

if TYPE_CHECKING:
    from semtalk.body.skeleton import BodyModel
    from semtalk.render.mesh import MeshBodyModel
    from semtalk.render.preview import BodyView

logger = logging.getLogger(__name__)

JSON_FORMAT = "semtalk-generation"
JSON_FORMAT_VERSION = 1
DIGITS = 6
"""Decimals kept for ψ values in the JSON."""

ProgressFn = Callable[[int, int], None]
PREVIEWS = ("auto", "stick", "mesh")
"""How the video draws the body: ``mesh`` (the SMPL-X surface; needs a model file and the
``render`` extra), ``stick`` (joints as bones), ``auto`` (the mesh when both are there)."""


@dataclass
class Generation:
    """One generated utterance.

    Attributes:
        motion: exactly ``T`` frames (one per 1/30 s of audio), BEAT2 layout.
        psi / psi_model: ``[T]`` per-frame ψ used for fusion (after emphasis) / as predicted.
        token_psi / token_psi_model: ``[N]`` the same per token (``N = ceil(T / 4)``).
        sparse_tokens: ``[N]`` bool: the token's body parts took the sparse codes (ψ > β).
        words: the timed words the motion was generated from.
        emphasis: what emphasis asked for and changed (JSON-ready).
        beta: the fusion threshold β.
        speaker: the BEAT2 speaker id; speaker_class: its embedding row.
        release: the release folder.
        audio: mono 16 kHz audio (for the preview video), when generated from audio.
        precision: the generators' float format (``"fp32"`` or ``"bf16"``).
        codes: ``{part name: [N, Q]}`` the fused codes the motion was decoded from (one token
            per 4 frames, stitched over the windows).
    """

    motion: Motion
    psi: np.ndarray
    psi_model: np.ndarray
    token_psi: np.ndarray
    token_psi_model: np.ndarray
    sparse_tokens: np.ndarray
    words: list[Word]
    emphasis: dict[str, Any]
    beta: float
    speaker: int
    speaker_class: int
    release: str
    audio: np.ndarray | None = None
    precision: str = "fp32"
    sample_rate: int = AUDIO_SAMPLE_RATE
    fps: int = MOTION_FPS
    timings: dict[str, float] = field(default_factory=dict)
    codes: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return self.motion.num_frames

    def save_npz(self, path: str | Path) -> Path:
        """The motion as a BEAT2 ``.npz``."""

        return write_npz(self, path)

    def to_json(self) -> dict[str, Any]:
        """Per-frame ψ, per-token fusion choice, words and emphasis as a JSON-ready dict."""

        return generation_json(self)

    def save_json(self, path: str | Path) -> Path:

        return write_json(self, path)

    def plot_psi(self, path: str | Path) -> Path:
        """ψ over time with the words (PNG)."""

        return write_psi_plot(self, path)

    def render(self, path: str | Path, **kwargs: Any) -> Path:
        """Preview video (mp4, audio muxed in when known)."""

        return write_video(self, path, **kwargs)

    def export(self, path: str | Path, fmt: str | None = None, *,
               body_model: BodyModel | str | Path | None = None, up: str = "y") -> Path:
        """The motion as a BVH, GLB, USD or FBX file (:func:`semtalk.export.export_motion`;
        ``body_model`` may also be the path of an SMPL-X model file)."""
        from semtalk.export import export_motion

        body = None if body_model is None else _body(body_model)
        return export_motion(self.motion, path, fmt, body_model=body, up=up)

    def save(self, out_dir: str | Path, stem: str, **kwargs: Any) -> dict[str, Path]:
        """npz + JSON + ψ plot + video into ``out_dir`` (all or nothing)."""

        return save_outputs(self, out_dir, stem, **kwargs)


def output_paths(out_dir: str | Path, stem: str, *, video: bool = True,
                 plot: bool = True, exports: Sequence[str] = ()) -> dict[str, Path]:
    """``{kind: path}`` of the files :func:`save_outputs` writes for ``stem`` in ``out_dir``.

    ``exports`` adds one file per export format, keyed by the format (``"glb"``: ``STEM.glb``).
    """
    from semtalk.export import FORMATS

    out = Path(out_dir)
    paths = {"npz": out / f"{stem}.npz", "json": out / f"{stem}.json"}
    if plot:
        paths["plot"] = out / f"{stem}_psi.png"
    if video:
        paths["video"] = out / f"{stem}.mp4"
    for fmt in exports:
        if fmt not in FORMATS:
            raise ValueError(f"unknown export format {fmt!r}; choose among "
                             f"{', '.join(FORMATS)}")
        paths[fmt] = out / f"{stem}{FORMATS[fmt].suffix}"
    return paths


# --- the motion ----------------------------------------------------------------------------------
def write_npz(gen: Generation, path: str | Path) -> Path:
    """The generated motion as a BEAT2 ``.npz`` (atomic)."""
    return gen.motion.save_npz(path)


# --- the ψ report --------------------------------------------------------------------------------
def _jsonable(value: Any) -> Any:
    """Numpy scalars/arrays, tuples and paths as plain JSON values."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating | float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    return value


def _scores(values: np.ndarray) -> list[float]:
    return [round(float(v), DIGITS) for v in np.asarray(values, dtype=np.float64).reshape(-1)]


def _check_shapes(gen: Generation) -> tuple[int, int]:
    num_frames = gen.motion.num_frames
    num_tokens = -(-num_frames // FRAMES_PER_TOKEN)
    expected = {"psi": num_frames, "psi_model": num_frames, "token_psi": num_tokens,
                "token_psi_model": num_tokens, "sparse_tokens": num_tokens}
    for name, length in expected.items():
        shape = np.shape(getattr(gen, name))
        if shape != (length,):
            raise ValueError(f"Generation.{name} must have shape ({length},) for "
                             f"{num_frames} frames, got {shape}")
    return num_frames, num_tokens


def non_finite_counts(arrays: Mapping[str, np.ndarray]) -> dict[str, int]:
    """``{name: count}`` of the NaN or infinite values in each array that has any."""
    counts = {name: int(np.size(a) - np.isfinite(a).sum()) for name, a in arrays.items()}
    return {name: n for name, n in counts.items() if n}


def describe_non_finite(arrays: Mapping[str, np.ndarray]) -> str | None:
    """``"NaN in 23,400 values (poses 16,500, expressions 6,900)"`` (``"NaN or infinite"``
    when some are infinite), or None when every value of ``arrays`` is finite."""
    counts = non_finite_counts(arrays)
    if not counts:
        return None
    nan = sum(int(np.isnan(np.asarray(arrays[name], np.float64)).sum()) for name in counts)
    what = "NaN" if nan == sum(counts.values()) else "NaN or infinite"
    parts = ", ".join(f"{name} {n:,}" for name, n in counts.items())
    return f"{what} in {sum(counts.values()):,} values ({parts})"


def motion_arrays(motion: Motion) -> dict[str, np.ndarray]:
    """The float arrays of a motion, by their npz key."""
    return {"poses": motion.poses, "expressions": motion.expressions, "trans": motion.trans,
            "betas": motion.betas}


def check_finite(gen: Generation, path: str | Path) -> None:
    """Refuse (DataError naming ``path``, the file about to be written) a generation whose
    motion or ψ holds NaN or infinite values: such files load but animate nothing sensible."""
    arrays = {**motion_arrays(gen.motion), "psi": np.asarray(gen.psi, np.float64),
              "psi_model": np.asarray(gen.psi_model, np.float64)}
    problem = describe_non_finite(arrays)
    if problem is not None:
        raise DataError(path, f"the generation holds {problem}; nothing was written (the "
                              f"release's weights may be corrupt)")


def generation_json(gen: Generation) -> dict[str, Any]:
    """The semantic-score report of a generation, as a JSON-ready dict.

    Keys: ``format``/``format_version``, ``semtalk_version``, ``release``, ``speaker`` (BEAT2
    id), ``speaker_class`` (its embedding row), ``beta`` (the fusion threshold β),
    ``precision`` (the generators' float format), ``fps``,
    ``num_frames``, ``duration`` (s), ``frames_per_token``, ``num_tokens``, ``summary``
    (mean/max ψ, fused token count and fraction), ``words`` (``text``, ``start``, ``end`` in
    seconds, ``frames`` = ``[first, stop)``), ``emphasis`` (what was asked and what changed),
    ``psi`` and ``psi_model`` (``[T]`` per frame, after / before emphasis) and ``tokens``
    (``[N]`` entries with ``frames`` = ``[first, stop)``, ``psi``, ``psi_model`` and
    ``choice``: ``"fused"`` where the token took the sparse model's codes for upper body,
    hands and lower body (ψ > β), ``"base"`` where it kept the base model's).
    """
    num_frames, num_tokens = _check_shapes(gen)
    fps = int(gen.fps)
    sparse = np.asarray(gen.sparse_tokens, dtype=bool)
    psi = np.asarray(gen.psi, dtype=np.float64)
    tokens = [
        {"frames": [k * FRAMES_PER_TOKEN, min((k + 1) * FRAMES_PER_TOKEN, num_frames)],
         "psi": p, "psi_model": m, "choice": "fused" if s else "base"}
        for k, (p, m, s) in enumerate(zip(_scores(gen.token_psi), _scores(gen.token_psi_model),
                                          sparse, strict=True))]
    words = [{"text": w.text, "start": round(float(w.start), 4), "end": round(float(w.end), 4),
              "frames": list(frame_span(w.start, w.end, fps, num_frames))} for w in gen.words]
    return {
        "format": JSON_FORMAT,
        "format_version": JSON_FORMAT_VERSION,
        "semtalk_version": __version__,
        "release": str(gen.release),
        "speaker": int(gen.speaker),
        "speaker_class": int(gen.speaker_class),
        "beta": float(gen.beta),
        "precision": gen.precision,
        "fps": fps,
        "num_frames": num_frames,
        "duration": round(num_frames / fps, 6),
        "frames_per_token": FRAMES_PER_TOKEN,
        "num_tokens": num_tokens,
        "summary": {"mean_psi": round(float(psi.mean()), DIGITS),
                    "max_psi": round(float(psi.max()), DIGITS),
                    "fused_tokens": int(sparse.sum()),
                    "fused_fraction": round(float(sparse.mean()), DIGITS)},
        "words": words,
        "emphasis": _jsonable(gen.emphasis or {}),
        "psi": _scores(gen.psi),
        "psi_model": _scores(gen.psi_model),
        "tokens": tokens,
    }


def _flat(value: Any) -> bool:
    """A scalar, or a list/dict holding only scalars and lists of scalars (one JSON line)."""
    def scalar(v: Any) -> bool:
        return not isinstance(v, list | dict)
    if scalar(value):
        return True
    children = value.values() if isinstance(value, dict) else value
    return all(scalar(c) or (isinstance(c, list) and all(map(scalar, c))) for c in children)


def format_json(value: Any, level: int = 0) -> str:
    """JSON text with one line per flat item (a word, a token, the ψ array), indented by 1."""
    if _flat(value):
        return json.dumps(value, ensure_ascii=False)
    pad, end = " " * (level + 1), " " * level
    if isinstance(value, dict):
        items = [f"{pad}{json.dumps(str(k), ensure_ascii=False)}: {format_json(v, level + 1)}"
                 for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{end}}}"
    items = [pad + format_json(v, level + 1) for v in value]
    return "[\n" + ",\n".join(items) + f"\n{end}]"


def write_json(gen: Generation, path: str | Path, *,
               extra: dict[str, Any] | None = None) -> Path:
    """Write :func:`generation_json` (plus ``extra`` top-level keys, e.g. the input files)."""
    doc = generation_json(gen)
    clash = sorted(set(extra or {}) & set(doc))
    if clash:
        raise ValueError(f"extra JSON keys {clash} would replace the generation's own")
    doc.update(_jsonable(extra or {}))
    path = Path(path)
    write_text_atomic(path, format_json(doc) + "\n")
    return path


# --- the plot and the video ----------------------------------------------------------------------
def _caption(gen: Generation) -> str:
    return f"{Path(str(gen.release)).name} · speaker {int(gen.speaker)} · β = {gen.beta:g}"


def write_psi_plot(gen: Generation, path: str | Path, *,
                   size: tuple[int, int] = (1600, 360)) -> Path:
    """ψ over time (after emphasis) with the spoken words and the fusion threshold β (PNG)."""
    from semtalk.render.plots import plot_semantic_score

    return plot_semantic_score(gen.psi, gen.fps, gen.words, path, threshold=float(gen.beta),
                               title=f"semantic score ψ — {_caption(gen)}", size=size)


def _body(body_model: BodyModel | str | Path | None) -> BodyModel:
    """``body_model`` itself if it is a model, else the one its path names (or built-in)."""
    from semtalk.body.skeleton import load_body_model

    if body_model is None or isinstance(body_model, str | Path):
        return load_body_model(body_model)
    return body_model


def motion_joints(gen: Generation, body_model: BodyModel | str | Path | None = None
                  ) -> np.ndarray:
    """``[T, 55, 3]`` joint positions (metres) of the generated motion.

    Args:
        gen: the generation.
        body_model: a :class:`~semtalk.body.skeleton.BodyModel`, the path of an SMPL-X model file
            or folder (exact joints, honouring betas and expressions; needs the ``smplx``
            extra), or ``None`` for the built-in skeleton.
    """
    body = _body(body_model)
    motion = gen.motion
    with torch.no_grad():
        joints = body.joints(torch.from_numpy(motion.poses).double(),
                             torch.from_numpy(motion.trans).double(),
                             torch.from_numpy(motion.betas).double(),
                             torch.from_numpy(motion.expressions).double())
    return joints.detach().cpu().numpy().astype(np.float64)


def preview_kind(preview: str, body_model: object) -> str:
    """``"mesh"`` or ``"stick"``: how the video of ``preview`` draws the body.

    Args:
        preview: one of :data:`PREVIEWS`.
        body_model: a loaded body model or ``None`` (a mesh needs an SMPL-X model).

    Raises:
        ValueError: ``mesh`` without a body model that has a mesh.
        ImportError: ``mesh`` without the ``render`` extra; MeshRenderError: ``mesh`` where
            no OpenGL context can be created (each says what is missing).
    """
    from semtalk.render.mesh import has_mesh, mesh_support_error

    if preview not in PREVIEWS:
        raise ValueError(f"preview must be one of {', '.join(PREVIEWS)}, got {preview!r}")
    if preview == "stick":
        return "stick"
    mesh = body_model is not None and has_mesh(body_model)
    if preview == "mesh" and not mesh:
        raise ValueError("the mesh preview needs an SMPL-X body model file (body_model=..., "
                         "the CLI's --body-model); the built-in skeleton has no surface")
    if not mesh:
        return "stick"
    problem = mesh_support_error()
    if problem is None:
        return "mesh"
    if preview == "mesh":
        raise type(problem)(str(problem))
    warnings.warn(f"drawing a stick figure instead of the SMPL-X mesh: {problem}",
                  stacklevel=2)
    return "stick"


def write_video(gen: Generation, path: str | Path, *,
                body_model: BodyModel | str | Path | None = None, preview: str = "auto",
                size: tuple[int, int] = (1280, 720), progress: ProgressFn | None = None) -> Path:
    """The preview video (H.264 mp4): front view of the body, current word, ψ, and the audio.

    Headless and CPU only (matplotlib Agg, pyrender through EGL for the mesh, the bundled
    ffmpeg). ``preview`` (see :func:`preview_kind`) picks the drawing: the SMPL-X mesh of
    ``body_model`` (poses, translation, betas and expressions) or a stick figure of the 55
    joints ``body_model`` computes (see :func:`motion_joints`). ``auto`` draws the mesh when
    ``body_model`` is an SMPL-X model and the ``render`` extra works here, and warns when it
    falls back to the stick figure for want of the extra; the choice is logged (INFO).
    """
    from semtalk.render.preview import render_preview

    body = _body(body_model)
    kind = preview_kind(preview, body)
    logger.info("preview video %s: %s of the %s body model", path, kind,
                getattr(body, "name", type(body).__name__))
    audio = gen.audio if gen.audio is not None and np.size(gen.audio) else None
    return render_preview(_view(gen, body, kind), path, fps=gen.fps, audio=audio,
                          sample_rate=gen.sample_rate, words=gen.words,
                          psi=np.asarray(gen.psi), size=size, title=_caption(gen),
                          progress=progress)


def _view(gen: Generation, body: BodyModel, kind: str) -> BodyView:
    if kind == "mesh":
        from semtalk.render.mesh import MeshView

        motion = gen.motion
        # preview_kind gives "mesh" only for a body model with a mesh (render.mesh.has_mesh)
        mesh_body = cast("MeshBodyModel", body)
        return MeshView.from_motion(mesh_body, motion.poses, motion.trans, motion.betas,
                                    motion.expressions)
    from semtalk.render.stick import StickView, check_joints

    joints = motion_joints(gen, body)
    check_joints(joints)
    return StickView(joints)


def preview_record(kind: str, body_model: object, size: tuple[int, int]) -> dict[str, Any]:
    """What the JSON says about the video: ``{"kind", "body_model", "size"}``."""
    return {"kind": kind, "body_model": getattr(body_model, "name", None),
            "size": [int(size[0]), int(size[1])]}


def _exporter(gen: Generation, fmt: str, body_model: BodyModel, up: str
              ) -> Callable[[Path], Path]:
    """A writer of ``gen``'s motion in format ``fmt`` (for :func:`save_outputs`)."""
    from semtalk.export import export_motion

    return lambda path: export_motion(gen.motion, path, fmt, body_model=body_model, up=up)


# --- everything at once --------------------------------------------------------------------------
def check_targets(paths: Mapping[str, Path], overwrite: bool) -> None:
    """Each output path is free (or, with ``overwrite``, a file that may be replaced).

    Raises:
        DataError: a path is a folder (never replaced); OutputExistsError: a path exists and
            ``overwrite`` is False.
    """
    for path in paths.values():
        if path.is_dir():
            raise DataError(path, "is a folder, not a file; it is not replaced: move it away "
                                  "or write the outputs elsewhere")
        if not overwrite and (path.exists() or path.is_symlink()):
            raise OutputExistsError(path, "already exists")


def save_outputs(gen: Generation, out_dir: str | Path, stem: str, *, video: bool = True,
                 plot: bool = True, body_model: BodyModel | str | Path | None = None,
                 preview: str = "auto", size: tuple[int, int] = (1280, 720),
                 extra: dict[str, Any] | None = None,
                 progress: ProgressFn | None = None, exports: Sequence[str] = (),
                 up: str = "y", overwrite: bool = True) -> dict[str, Path]:
    """Write the npz, JSON, ψ plot, video and exports of ``gen`` into ``out_dir``, all or none.

    Every file is first written into a temporary folder inside ``out_dir``, then all are
    renamed into place as one unit (:func:`semtalk.fileio.write_together`). On any failure,
    the rename of the last file included, nothing of this call is left behind: files already
    renamed go, the files they replaced come back, the temporary folder goes, and ``out_dir`` is
    removed again if this call created it and it is still empty (and so are the parents it
    created). Temporary files of killed earlier runs in ``out_dir`` are cleared first
    (:func:`semtalk.fileio.clear_stale_temp`).

    Args:
        gen: the generation; refused (DataError) when its motion or ψ is not finite.
        out_dir: the output folder (created if needed).
        stem: file name stem (``STEM.npz``, ``STEM.json``, ``STEM_psi.png``, ``STEM.mp4``).
        video, plot: write the preview video / the ψ plot.
        body_model: for the video, see :func:`write_video`; for the exports, their skeleton
            (and, with an SMPL-X model, their mesh).
        preview: ``auto``, ``stick`` or ``mesh``, see :func:`preview_kind`; the JSON's
            ``preview`` key records what the video shows (kind, body model, size).
        size: video frame size ``(width, height)``, even.
        extra: more top-level JSON keys (e.g. the input files and how the words were found).
        progress: video progress callback ``progress(frames_done, T)``.
        exports: formats to export the motion to as well (``"glb"``, ``"usd"``, ``"fbx"``,
            ``"bvh"``: ``STEM.glb`` ..., see :func:`semtalk.export.export_motion`).
        up: the exports' up axis (``"y"`` or ``"z"``; GLB and USD only).
        overwrite: replace existing files of the same names (default). False: an existing
            one is an :class:`~semtalk.fileio.OutputExistsError`, checked before the work and
            again, atomically, when each file is put in place (another run may have written it
            meanwhile).

    Returns:
        ``{kind: path}`` for kinds among ``npz``, ``json``, ``plot``, ``video`` and the export
        formats.

    Raises:
        DataError: non-finite motion or ψ, or an output path that is a folder.
        OutputExistsError: see ``overwrite``.
    """
    out = Path(out_dir)
    paths = output_paths(out, stem, video=video, plot=plot, exports=exports)
    check_finite(gen, paths["npz"])
    check_targets(paths, overwrite)
    if video or exports:  # decide (and load the body model) once, before any file is written
        body_model = _body(body_model)
    if exports:
        from semtalk.export import check_export

        for fmt in exports:
            check_export(fmt, up=up)
    if video:
        preview = preview_kind(preview, body_model)
        extra = {"preview": preview_record(preview, body_model, size), **(extra or {})}
    missing = [d for d in (out, *out.parents) if not d.exists()]  # folders this call creates
    writers: dict[str, Callable[[Path], Path]] = {
        "npz": lambda p: write_npz(gen, p),
        "json": lambda p: write_json(gen, p, extra=extra),
        "plot": lambda p: write_psi_plot(gen, p),
        "video": lambda p: write_video(gen, p, body_model=body_model, preview=preview,
                                       size=size, progress=progress),
    }
    for fmt in exports:
        writers[fmt] = _exporter(gen, fmt, cast("BodyModel", body_model), up)
    try:
        write_together({path: writers[kind] for kind, path in paths.items()},
                       overwrite=overwrite)
    except BaseException:
        for folder in missing:
            with contextlib.suppress(OSError):  # not empty (someone else wrote there): keep
                folder.rmdir()
        raise
    return paths
