"""The browser page (gradio): speech in, preview video, ψ plot, 3D view and downloads out.

gradio is imported inside the functions (the ``app`` extra). The page is offline (analytics off)
and serves nothing outside its work folder: uploads and gradio's cache live in
``WORK/uploads``, each request writes into its own ``WORK/outputs/request-*`` folder, and the
work folder is the only allowed path. Requests run one at a time (the others wait in the queue).
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from semtalk.app.session import ModelCache, Request, Result, run_request
from semtalk.config import ConfigError
from semtalk.errors import DataError

if TYPE_CHECKING:
    import gradio as gr

INSTALL_HINT = "the browser app needs gradio: pip install 'semtalk[app]'"
MAX_FILE_SIZE = "50mb"
"""Largest upload accepted (about 25 minutes of 16 kHz 16-bit WAV)."""
API_NAME = "generate"
"""The endpoint of the generate button (``gradio_client``: ``api_name="/generate"``)."""
DOWNLOADS = ("npz", "json", "bvh", "glb", "usd", "plot", "video")
"""Result files offered for download, in this order."""


def import_gradio() -> Any:
    """gradio, with analytics off; ImportError saying how to install it when it is missing."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    try:
        import gradio
    except ImportError as exc:
        raise ImportError(INSTALL_HINT) from exc
    return gradio


@dataclass(frozen=True)
class AppConfig:
    """What the page offers and where it works.

    Attributes:
        releases: release folders listed in the picker (the first is preselected); any other
            folder can be typed in.
        work_dir: the only folder served; uploads and outputs go under it.
        hubert / sentence_model: feature model folders passed to
            :meth:`~semtalk.generation.engine.SemTalk.from_pretrained` (an official release).
        device: torch device for generation.
        max_file_size: largest upload (gradio size string or bytes).
    """

    releases: tuple[Path, ...]
    work_dir: Path
    hubert: Path | None = None
    sentence_model: Path | None = None
    device: str = "cpu"
    max_file_size: str | int = MAX_FILE_SIZE


def _escape(text: str) -> str:
    """``text`` shown as it is in Markdown (file names keep their underscores)."""
    return re.sub(r"([\\`*_{}\[\]<>#|~])", r"\\\1", text)


def _markdown(result: Result) -> str:
    lines = [f"**{_escape(result.summary)}**", ""]
    lines += [f"- note: {_escape(note)}" for note in result.notes]
    return "\n".join(lines)


def build_app(config: AppConfig) -> gr.Blocks:
    """The page as a ``gr.Blocks`` (queue set up; launch it with :func:`launch_options`)."""
    work = config.work_dir.resolve()
    (work / "uploads").mkdir(parents=True, exist_ok=True)
    os.environ["GRADIO_TEMP_DIR"] = str(work / "uploads")  # uploads and gradio's cache
    gr = import_gradio()
    models = ModelCache()
    releases = [str(path) for path in config.releases]

    def generate(audio: str | None, transcript: str, textgrid: str | None, emphasize: str,
                 suppress: str, scale: float, release: str,
                 progress: Any = gr.Progress(track_tqdm=True)  # noqa: B008
                 ) -> tuple[Any, ...]:
        request = Request(audio=None if audio is None else Path(audio), release=release or "",
                          transcript=transcript, textgrid=None if not textgrid else Path(textgrid),
                          emphasize=emphasize, suppress=suppress, emphasis_scale=scale)
        try:
            result = run_request(request, work, models, hubert=config.hubert,
                                 sentence_model=config.sentence_model, device=config.device,
                                 progress=lambda fraction, what: progress(fraction, desc=what))
        except (DataError, ConfigError, ImportError) as exc:
            raise gr.Error(str(exc)) from exc
        files = result.files
        glb = files.get("glb")
        downloads = [str(files[kind]) for kind in DOWNLOADS if kind in files]
        return (str(files["video"]), str(files["plot"]),
                gr.Model3D(value=None if glb is None else str(glb), visible=glb is not None),
                downloads, _markdown(result))

    with gr.Blocks(title="semtalk", analytics_enabled=False) as demo:
        gr.Markdown("# semtalk: co-speech motion\nUpload or record speech, optionally give its "
                    "words and what to emphasise, and press **Generate**.")
        with gr.Row():
            with gr.Column():
                audio = gr.Audio(sources=["upload", "microphone"], type="filepath",
                                 label="Speech (WAV, FLAC, MP3 or OGG)", elem_id="speech")
                transcript = gr.Textbox(label="Transcript (optional: else the words are "
                                              "recognised)", lines=2, elem_id="transcript")
                textgrid = gr.File(label="Word timings as a TextGrid (optional)",
                                   file_types=[".TextGrid"], type="filepath", elem_id="textgrid")
                with gr.Row():
                    emphasize = gr.Textbox(label="Emphasise (words, comma-separated)",
                                           placeholder="dream job, never", elem_id="emphasize")
                    suppress = gr.Textbox(label="Keep calm on", placeholder="um",
                                          elem_id="suppress")
                scale = gr.Slider(0.0, 3.0, value=1.0, step=0.05, label="Emphasis scale (ψ ×)",
                                  elem_id="scale")
                release = gr.Dropdown(choices=releases, value=releases[0] if releases else None,
                                      allow_custom_value=True, elem_id="release",
                                      label="Release folder (pick or type a path)")
                button = gr.Button("Generate", variant="primary", elem_id="generate")
            with gr.Column():
                video = gr.Video(label="Preview", elem_id="video", interactive=False)
                plot = gr.Image(label="Semantic score ψ with the words", type="filepath",
                                elem_id="psi", interactive=False)
                view = gr.Model3D(label="3D view (animated GLB)", elem_id="view")
                downloads = gr.File(label="Downloads", file_count="multiple", elem_id="downloads",
                                    interactive=False)
                summary = gr.Markdown(elem_id="summary")
        button.click(generate, [audio, transcript, textgrid, emphasize, suppress, scale, release],
                     [video, plot, view, downloads, summary], api_name=API_NAME)
    demo.queue(default_concurrency_limit=1)
    return demo


def launch_options(config: AppConfig) -> dict[str, Any]:
    """Keyword arguments of ``Blocks.launch`` that keep the page to its work folder."""
    return {"allowed_paths": [str(config.work_dir.resolve())],
            "max_file_size": config.max_file_size, "share": False, "show_error": True}


def serve(releases: Sequence[str | Path] = (), *, host: str = "127.0.0.1", port: int = 7860,
          work_dir: str | Path | None = None, hubert: str | Path | None = None,
          sentence_model: str | Path | None = None, device: str = "cpu",
          block: bool = True) -> gr.Blocks:
    """Build the page and serve it at ``http://HOST:PORT`` (until interrupted when ``block``).

    Args:
        releases: release folders for the picker (the first preselected).
        host, port: where to listen.
        work_dir: the served folder (default: a new temporary folder).
        hubert, sentence_model: feature model folders (an official-family release).
        device: torch device.
        block: wait until the server stops; else return the running app (``.close()`` it).
    """
    work = Path(work_dir) if work_dir is not None else Path(tempfile.mkdtemp(prefix="semtalk-app-"))
    config = AppConfig(tuple(Path(r) for r in releases), work,
                       None if hubert is None else Path(hubert),
                       None if sentence_model is None else Path(sentence_model), device)
    demo = build_app(config)
    demo.launch(server_name=host, server_port=port, prevent_thread_lock=not block,
                **launch_options(config))
    return demo
