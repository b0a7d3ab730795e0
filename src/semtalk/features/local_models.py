"""Model folders on local disk: Hugging Face cache look-ups and weight files (their digests:
:func:`semtalk.fileio.file_sha256`).

Shared by the feature extractors that run pretrained models (:mod:`.hubert`,
:mod:`.sentence`, :mod:`.emotion`). Nothing here touches the network.

Nothing is downloaded at run time unless the user opts in: a model option (``--hubert``,
``--sentence-model``, ``--emotion-model``, ``--whisper-model``) must name an existing local
folder (:func:`check_model_option`); a hub id is accepted, and may then be fetched, only with
the environment variable ``SEMTALK_ALLOW_HUB=1`` (:func:`hub_allowed`).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path

from semtalk.config import ConfigError
from semtalk.errors import DataError

ALLOW_HUB_ENV = "SEMTALK_ALLOW_HUB"
"""Set to ``1`` to let model options name Hugging Face hub ids (which may be downloaded)."""
MODEL_OPTIONS: dict[str, tuple[str, str]] = {
    "--hubert": ("transformers", "hubert"),
    "--sentence-model": ("transformers", "text"),
    "--emotion-model": ("funasr", "emotion2vec"),
    "--whisper-model": ("faster_whisper", "asr"),
}
"""Each model option: ``(the module it runs on, the semtalk extra that installs it)``."""

WEIGHT_PATTERNS: tuple[str, ...] = ("model*.safetensors", "pytorch_model*.bin")
"""Weight files of a Hugging Face checkpoint, preferred first (safetensors over pickles)."""


def weight_files(folder: Path, patterns: Sequence[str] = WEIGHT_PATTERNS) -> list[Path]:
    """The files in ``folder`` matching the first of ``patterns`` that matches any, sorted."""
    for pattern in patterns:
        found = sorted(folder.glob(pattern))
        if found:
            return found
    return []


def looks_like_hub_id(name: str) -> bool:
    """Whether ``name`` reads as a Hugging Face hub id (``"owner/model"``, ``"model"``) rather
    than a path (one starting with ``.``, ``/`` or ``~``, or with two slashes or more)."""
    return name.count("/") <= 1 and not name.startswith((".", "/", "~"))


def cached_hub_snapshot(repo_id: str) -> Path | None:
    """The local Hugging Face cache's snapshot folder of hub id ``repo_id``, looked up offline;
    ``None`` when it is not cached, is not a hub id, or ``huggingface_hub`` is missing."""
    if not looks_like_hub_id(repo_id):
        return None
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, local_files_only=True))
    except (ImportError, OSError, ValueError):  # not cached, or not a valid hub id
        return None


def hub_allowed() -> bool:
    """Whether the user opted in to hub ids (and downloads): ``SEMTALK_ALLOW_HUB=1``."""
    return os.environ.get(ALLOW_HUB_ENV, "").strip() == "1"


def check_model_option(option: str, value: str | Path | None) -> None:
    """Refuse a model option that would need the network or a missing extra, before any work.

    ``value`` must be an existing local folder; a hub id (``owner/model``) passes only with
    ``SEMTALK_ALLOW_HUB=1``. ``option`` is a key of :data:`MODEL_OPTIONS`.

    Raises:
        ConfigError: the extra the option needs is not installed (names the extra).
        DataError: (naming the value) not an existing folder and no opt-in to the hub.
    """
    if value is None:
        return
    module, extra = MODEL_OPTIONS[option]
    if importlib.util.find_spec(module) is None:
        raise ConfigError(f"{option} needs {module}, which is not installed: "
                          f"pip install 'semtalk[{extra}]'")
    text = str(value)
    path = Path(text).expanduser()
    try:
        if path.is_dir():
            return
        exists = path.exists()
    except (OSError, ValueError):
        exists = False
    if hub_allowed() and not exists and looks_like_hub_id(text):
        return
    what = "is not a folder" if exists else "no such folder"
    raise DataError(path, f"{option}: {what}; semtalk downloads nothing at run time, so a model "
                          f"option takes a local model folder. Download it on a machine with "
                          f"network access (e.g. `hf download OWNER/MODEL --local-dir DIR`) and "
                          f"pass DIR, or set {ALLOW_HUB_ENV}=1 to allow hub ids (fetched from "
                          f"the Hugging Face hub when not cached)")
