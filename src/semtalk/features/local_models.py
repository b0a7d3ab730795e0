"""Model folders on local disk: Hugging Face cache look-ups and weight files (their digests:
:func:`semtalk.fileio.file_sha256`).

Shared by the feature extractors that run pretrained models (:mod:`.hubert`,
:mod:`.sentence`, :mod:`.emotion`). Nothing here touches the network.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

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
