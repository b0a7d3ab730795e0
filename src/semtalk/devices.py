"""Device names to :class:`torch.device`: ``"auto"`` resolution and availability checks.

The one place that turns a user's ``--device`` / ``device:`` setting (``"auto"``, ``"cpu"``,
``"cuda"``, ``"cuda:1"``) into a device: feature extractors, generation and training all take
it from here. torch is imported lazily, so importing this module stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

AUTO = "auto"
"""The device name that means: CUDA when available, else CPU."""


def resolve_device(name: str, local_rank: int | None = None) -> torch.device:
    """The device ``name`` stands for, checked to exist on this machine.

    Args:
        name: ``"auto"`` (CUDA when available, else CPU) or a torch device name.
        local_rank: the CUDA device a bare ``"cuda"`` means (a process's rank on its node);
            ``None`` leaves a bare ``"cuda"`` as torch's current CUDA device.

    Raises:
        ValueError: ``name`` is not a device name, or names CUDA where CUDA is not available.
    """
    import torch

    if name == AUTO:
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ValueError(f"{name!r} is not a device name ({exc})") from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} requested but CUDA is not available")
        if device.index is None and local_rank is not None:
            device = torch.device("cuda", local_rank)
    return device
