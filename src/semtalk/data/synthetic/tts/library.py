"""Finding the espeak-ng library (``espeakng-loader``) and loading a private copy of it."""

from __future__ import annotations

import _ctypes
import ctypes
import os
import shutil
import tempfile
from pathlib import Path

INSTALL_HINT = "install it with `pip install espeakng-loader`"


def library_paths() -> tuple[Path, Path]:
    """The espeak-ng shared library and its data directory, from ``espeakng-loader``."""
    try:
        import espeakng_loader
    except ImportError as exc:
        raise RuntimeError(f"the espeak-ng library is missing: {INSTALL_HINT}") from exc
    try:
        lib_path = Path(espeakng_loader.get_library_path())
        data_path = Path(espeakng_loader.get_data_path())
    except Exception as exc:  # the loader raises a bare RuntimeError for a missing data dir
        raise RuntimeError(f"espeakng-loader found no espeak-ng data ({exc}); {INSTALL_HINT}"
                           ) from exc
    return lib_path, data_path


def check_paths(lib_path: Path, data_path: Path) -> None:
    if not lib_path.is_file():
        raise RuntimeError(f"espeak-ng library not found at {lib_path}; {INSTALL_HINT}")
    if not (data_path / "phontab").is_file() or not (data_path / "phondata").is_file():
        raise RuntimeError(f"espeak-ng data (phontab, phondata) not found in {data_path}; "
                           f"{INSTALL_HINT}")


def load_private_copy(lib_path: Path) -> tuple[int, ctypes.CDLL]:
    """dlopen a fresh copy of the library, so that its static data is ours alone."""
    tmp_dir = tempfile.mkdtemp(prefix="semtalk-espeak-")
    copy = Path(tmp_dir) / lib_path.name
    try:
        shutil.copyfile(lib_path, copy)
        handle = _ctypes.dlopen(str(copy), os.RTLD_LOCAL) if hasattr(_ctypes, "dlopen") else None
        lib = ctypes.CDLL(str(copy), handle=handle)
    except OSError as exc:
        raise RuntimeError(f"cannot load the espeak-ng library {lib_path} ({exc}); "
                           f"{INSTALL_HINT}") from exc
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)  # the mapping outlives the file on POSIX
    return lib._handle, lib


def unload(handle: int) -> None:
    close = getattr(_ctypes, "dlclose", None) or getattr(_ctypes, "FreeLibrary", None)
    if close is not None:
        close(handle)

