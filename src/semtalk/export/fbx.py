"""FBX files through Blender run as a Python module (``bpy``).

FBX is a closed format without a maintained pure-Python writer, so semtalk writes a glTF binary
first and lets Blender's glTF importer and FBX exporter convert it
(:mod:`semtalk.export.fbx_bpy` holds the Blender side and documents every option):

- :func:`glb_to_fbx` converts any ``.glb``: armature with a baked action (a key on every frame),
  meshes with skinning, morph targets as shape keys with their animation, at ``fps``;
- :func:`write_fbx` writes a :class:`~semtalk.body.motion.Motion` with
  ``semtalk.export.glb.write_glb`` to a temporary folder, then calls :func:`glb_to_fbx`.

What the FBX holds: lengths in **metres** (the file declares metres as its unit); axes as in the
glTF file, i.e. SMPL-X's for semtalk's GLB (y up, z forward, x towards the body's left, FBX
"-Z forward, Y up" settings); SMPL-X joints keep identity rest orientations, so each joint's
FBX local rotation is its SMPL-X local rotation. Files are written atomically.

Where Blender runs:

- in this process when ``bpy`` is importable (``pip install 'semtalk[fbx]'``: ``bpy==5.0.1``,
  Python 3.11 only, a ~374 MB wheel, ~820 MB installed; it needs ``numpy<2``);
- otherwise in another interpreter that has ``bpy``, given as ``python=`` or by the
  environment variable ``SEMTALK_BPY_PYTHON`` (for example a separate virtual environment:
  ``python3.11 -m venv .venv-bpy && .venv-bpy/bin/pip install bpy==5.0.1``). It runs
  ``fbx_bpy.py`` as a script with the two file paths; it needs neither semtalk nor torch.
  An explicit ``python=`` or ``SEMTALK_BPY_PYTHON`` wins over an importable ``bpy``.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from semtalk.constants import MOTION_FPS
from semtalk.errors import require_file
from semtalk.export.fbx_bpy import MISSING_BPY_EXIT
from semtalk.fileio import atomic_path

if TYPE_CHECKING:
    from semtalk.body.motion import Motion
    from semtalk.body.skeleton import BodyModel

BPY_PYTHON_ENV = "SEMTALK_BPY_PYTHON"
"""Environment variable naming a Python interpreter that can ``import bpy``."""
INSTALL_HINT = (f"FBX export needs Blender's Python module: pip install 'semtalk[fbx]' "
                f"(Python 3.11), or set {BPY_PYTHON_ENV} to a Python interpreter that has bpy")
_SCRIPT = Path(__file__).with_name("fbx_bpy.py")
_STDERR_TAIL = 2000


def bpy_interpreter(python: str | Path | None = None) -> Path | None:
    """The Python that will run Blender: ``None`` for this process, else an interpreter path.

    Args:
        python: an interpreter path or command name; default ``$SEMTALK_BPY_PYTHON``, and when
            that is unset too, this process (if ``bpy`` is importable here).

    Raises:
        ImportError: the named interpreter does not exist, or none is named and ``bpy`` is
            not importable here (the message says how to install it).
    """
    chosen = str(python) if python is not None else os.environ.get(BPY_PYTHON_ENV, "")
    if chosen:
        found = shutil.which(chosen)
        if found is None:
            raise ImportError(f"no Python interpreter at {chosen!r} (from "
                              f"{'python=' if python is not None else BPY_PYTHON_ENV}); "
                              f"{INSTALL_HINT}")
        return Path(found)
    if importlib.util.find_spec("bpy") is None:
        raise ImportError(INSTALL_HINT)
    return None


def _convert_here(glb: Path, fbx: Path, fps: int) -> None:
    from semtalk.export import fbx_bpy

    try:
        fbx_bpy.convert(str(glb), str(fbx), fps)
    except RuntimeError as exc:
        raise RuntimeError(f"Blender could not convert {glb} to FBX: {exc}") from exc


def _convert_in(python: Path, glb: Path, fbx: Path, fps: int) -> None:
    # -P: do not put the script's folder (semtalk/export) on sys.path
    command = [str(python), "-P", str(_SCRIPT), str(glb), str(fbx), "--fps", str(fps)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode == 0:
        return
    tail = (done.stderr.strip() or done.stdout.strip())[-_STDERR_TAIL:]
    if done.returncode == MISSING_BPY_EXIT:
        raise ImportError(f"{tail}; {INSTALL_HINT}")
    raise RuntimeError(f"Blender ({python}) could not convert {glb} to FBX "
                       f"(exit status {done.returncode}):\n{tail}")


def glb_to_fbx(
    glb_path: str | Path,
    fbx_path: str | Path,
    *,
    fps: int = MOTION_FPS,
    python: str | Path | None = None,
) -> Path:
    """Convert a glTF binary into an FBX file with Blender, atomically.

    Args:
        glb_path: the ``.glb`` to convert (its animation sampled at ``fps``).
        fbx_path: the ``.fbx`` to write.
        fps: frame rate of the FBX take; a glTF sample at ``t`` seconds becomes frame
            ``t * fps``.
        python: the interpreter that runs Blender (see :func:`bpy_interpreter`).

    Returns:
        ``fbx_path`` as a :class:`~pathlib.Path`.

    Raises:
        ImportError: no ``bpy`` (here or in the named interpreter).
        DataError: ``glb_path`` is not a file.
        RuntimeError: Blender failed; the message ends with its error output.
    """
    if not (isinstance(fps, int) and fps > 0):
        raise ValueError(f"fps must be a positive integer, got {fps!r}")
    glb = require_file(glb_path, "glTF binary (.glb)").resolve()
    interpreter = bpy_interpreter(python)
    fbx_path = Path(fbx_path)
    with atomic_path(fbx_path) as tmp:
        if interpreter is None:
            _convert_here(glb, tmp.resolve(), fps)
        else:
            _convert_in(interpreter, glb, tmp.resolve(), fps)
    return fbx_path


def write_fbx(
    motion: Motion,
    path: str | Path,
    *,
    body_model: BodyModel | None = None,
    python: str | Path | None = None,
) -> Path:
    """Write a motion as an FBX file (skeleton + animation; mesh and expressions with a body).

    The motion goes through ``semtalk.export.glb.write_glb`` (y up) into a temporary ``.glb``,
    which :func:`glb_to_fbx` converts.

    Args:
        motion: the clip; its ``fps`` becomes the FBX frame rate.
        path: the ``.fbx`` to write.
        body_model: passed to ``write_glb``: with one, the FBX also holds the skinned mesh and
            the expression shape keys with their animation; without, the skeleton only.
        python: the interpreter that runs Blender (see :func:`bpy_interpreter`).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    interpreter = bpy_interpreter(python)  # fail before writing the GLB
    # imported by name at call time: the GLB writer is an optional sibling module
    glb_module = importlib.import_module("semtalk.export.glb")
    with tempfile.TemporaryDirectory(prefix="semtalk-fbx-") as folder:
        glb = glb_module.write_glb(motion, Path(folder) / "motion.glb", body_model=body_model,
                                   up="y", stick=False)  # Blender shows the armature
        return glb_to_fbx(glb, path, fps=motion.fps, python=interpreter)
