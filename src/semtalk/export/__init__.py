"""Motion export to formats other tools read: BVH, glTF binary (GLB), USD, FBX.

:func:`export_motion` picks the writer from a format name or the file's suffix:

======  ========================  =====================================  =====================
format  suffixes                  writer                                 needs
======  ========================  =====================================  =====================
bvh     ``.bvh``                  :func:`semtalk.export.bvh.write_bvh`   (nothing)
glb     ``.glb``                  :func:`semtalk.export.glb.write_glb`   ``semtalk[export]``
usd     ``.usd .usda .usdc``      ``semtalk.export.usd.write_usd``       ``semtalk[usd]``
fbx     ``.fbx``                  ``semtalk.export.fbx.write_fbx``       ``semtalk[fbx]``
======  ========================  =====================================  =====================

Writers are imported when used, so a missing optional package only matters for its format.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from semtalk.export.bvh import BvhMotion, read_bvh, write_bvh

if TYPE_CHECKING:
    from semtalk.body.motion import Motion
    from semtalk.body.skeleton import BodyModel


@dataclass(frozen=True)
class ExportFormat:
    """One export format: its writer and what it needs."""

    name: str
    suffixes: tuple[str, ...]
    """File suffixes, the default first."""
    module: str
    writer: str
    extra: str | None
    """The ``semtalk[...]`` extra that installs its package (``None``: nothing to install)."""
    package: str | None
    """The Python package the writer needs (checked before any work), if known."""
    takes_up: bool
    """The writer has an ``up`` axis option."""

    @property
    def suffix(self) -> str:
        return self.suffixes[0]


FORMATS: dict[str, ExportFormat] = {
    "bvh": ExportFormat("bvh", (".bvh",), "semtalk.export.bvh", "write_bvh", None, None, False),
    "glb": ExportFormat("glb", (".glb",), "semtalk.export.glb", "write_glb", "export",
                        "pygltflib", True),
    "usd": ExportFormat("usd", (".usd", ".usda", ".usdc"), "semtalk.export.usd", "write_usd",
                        "usd", "pxr", True),
    "fbx": ExportFormat("fbx", (".fbx",), "semtalk.export.fbx", "write_fbx", "fbx", None,
                        False),
}
"""The formats :func:`export_motion` writes, by name."""


def export_format(path: str | Path, fmt: str | None = None) -> ExportFormat:
    """The format for ``path``: ``fmt`` if given (checked against a known suffix of another
    format), else the one ``path``'s suffix names.

    Raises:
        ValueError: an unknown ``fmt``, a suffix no format has (without ``fmt``), or a suffix
            of another format than ``fmt``.
    """
    suffix = Path(path).suffix.lower()
    by_suffix = {s: f for f in FORMATS.values() for s in f.suffixes}
    names = ", ".join(FORMATS)
    if fmt is None:
        if suffix not in by_suffix:
            raise ValueError(f"{path}: cannot tell the export format from the suffix "
                             f"{suffix or '(none)'}; name one of {names}, or use one of "
                             f"{', '.join(by_suffix)}")
        return by_suffix[suffix]
    chosen = _named(fmt)
    if suffix in by_suffix and by_suffix[suffix] is not chosen:
        raise ValueError(f"{path}: the suffix {suffix} is a {by_suffix[suffix].name} file, not "
                         f"{chosen.name}; use {chosen.suffix}")
    return chosen


def _named(fmt: str) -> ExportFormat:
    key = fmt.lower().lstrip(".")
    if key not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return FORMATS[key]


def _install_hint(spec: ExportFormat) -> str:
    return f"pip install 'semtalk[{spec.extra}]'"


def _check_up(spec: ExportFormat, up: str) -> None:
    if up not in ("y", "z"):
        raise ValueError(f"up must be 'y' or 'z', got {up!r}")
    if up != "y" and not spec.takes_up:
        raise ValueError(f"{spec.name} export has no up-axis option (up={up!r}); use glb or usd")


def check_export(fmt: str, *, up: str = "y") -> ExportFormat:
    """Fail early (before generating anything) if format ``fmt`` cannot be written here.

    Raises:
        ValueError: an unknown format, or an ``up`` it does not take.
        ImportError: its writer or the package it needs is not installed (the message names
            the extra to install).
    """
    spec = _named(fmt)
    _check_up(spec, up)
    _writer(spec)
    return spec


def _writer(spec: ExportFormat) -> Any:
    """The writer function of ``spec`` (ImportError naming the extra when it cannot run)."""
    if spec.package is not None and importlib.util.find_spec(spec.package) is None:
        raise ImportError(f"{spec.name} export needs the '{spec.package}' package: "
                          f"{_install_hint(spec)}")
    try:
        module = importlib.import_module(spec.module)
    except ImportError as exc:
        if exc.name == spec.module:
            raise ImportError(f"this semtalk has no {spec.name} writer ({spec.module})") from exc
        if spec.extra is None:
            raise
        raise ImportError(f"{spec.name} export needs {exc.name or 'a missing package'}: "
                          f"{_install_hint(spec)}") from exc
    return getattr(module, spec.writer)


def export_motion(motion: Motion, path: str | Path, fmt: str | None = None, *,
                  body_model: BodyModel | None = None, up: str = "y",
                  stick: bool | None = None) -> Path:
    """Write ``motion`` to ``path`` in format ``fmt`` (default: the one ``path``'s suffix names).

    Args:
        motion: the clip.
        path: the file to write (atomically, by every writer).
        fmt: ``bvh``, ``glb``, ``usd`` or ``fbx``; ``None``: from the suffix.
        body_model: the body whose rest skeleton (and, where the format carries one, skinned
            mesh) the file gets; ``None``: the built-in skeleton. For an SMPL-X model the
            rotations written include its mean hand pose (:mod:`semtalk.export.rig`), BVH's too.
        up: ``"y"`` or ``"z"``: the up axis of GLB and USD files (see their writers); BVH and
            FBX take ``"y"`` only (FBX records its axis system in the file).
        stick: GLB only (other formats ignore it): add the stick-figure mesh that makes the
            motion visible in viewers that draw meshes only; ``None``: when the file has no
            body mesh (see :func:`semtalk.export.glb.write_glb`).

    Raises:
        ValueError: unknown or mismatched format, or ``up="z"`` for a format without it.
        ImportError: the format's optional package is missing (the message names the extra).
    """
    spec = export_format(path, fmt)
    _check_up(spec, up)
    if spec.name == "bvh":
        from semtalk.export.rig import build_rig

        rig = build_rig(body_model, motion.betas, with_mesh=False)
        return write_bvh(motion.poses + rig.pose_offset, motion.trans, path,
                         rest_joints=rig.rest_joints, fps=motion.fps)
    writer = _writer(spec)
    kwargs: dict[str, Any] = {"body_model": body_model}
    if spec.takes_up:
        kwargs["up"] = up
    if spec.name == "glb":
        kwargs["stick"] = stick
    return Path(writer(motion, path, **kwargs))


__all__ = ["FORMATS", "BvhMotion", "ExportFormat", "check_export", "export_format",
           "export_motion", "read_bvh", "write_bvh"]
