"""Find, verify and read the published official SemTalk weight files.

The official weights are distributed as ``weights_semtalk_no_smplx.zip`` (speaker 2) and
``SemTalk_all_speakers_weights_25spk.zip`` (25 speakers, with a ``SHA256SUMS`` file). Users pass
either zip, or a folder they unpacked one into. This module owns everything up to "here are the
eight files as local paths, with their digests" and "here is one file's state dict":

- :func:`open_official_source` finds the eight required files by base name at any depth, refuses
  ambiguous or unsafe layouts, copies only those members out of a zip (streamed, hashed while
  copying, into a temporary folder removed on exit) and checks them against ``SHA256SUMS``
  when one is present.
- :func:`load_official_state_dict` reads one ``.bin`` with ``torch.load(weights_only=True)``,
  checks the ``{'model_state': state_dict}`` container and strips the ``module.`` prefix that
  ``DataParallel`` training leaves on every key.

The conversion of those state dicts into semtalk releases lives above this module.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import posixpath
import re
import tempfile
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from semtalk.errors import DataError, require_file
from semtalk.fileio import file_sha256

OFFICIAL_ZIPS: dict[str, str] = {
    "weights_semtalk_no_smplx.zip": "speaker 2",
    "SemTalk_all_speakers_weights_25spk.zip": "25 speakers, with a SHA256SUMS file",
}
"""The published archives (name -> what they hold), named in error messages."""

OFFICIAL_FILES: dict[str, str] = {
    "rvq_face_600.bin": "face RVQ-VAE tokenizer",
    "rvq_upper_500.bin": "upper-body RVQ-VAE tokenizer",
    "rvq_hands_500.bin": "hands RVQ-VAE tokenizer",
    "rvq_lower_600.bin": "lower-body RVQ-VAE tokenizer",
    "last_1700_foot.bin": "global-motion (translation and foot contact) net",
    "best_semtalk_base.bin": "base (rhythmic) motion generator",
    "best_semtalk_sparse.bin": "sparse (semantic) motion generator",
    "vocab.pkl": "word vocabulary",
}
"""The required files, by base name, with the role each plays (in file order)."""

SUMS_NAME = "SHA256SUMS"
"""Base name of the optional digest list (``<hex>  <relative path>`` lines)."""

STATE_KEY = "model_state"
"""The only top-level key of every official ``.bin`` container."""

MODULE_PREFIX = "module."
"""The prefix ``torch.nn.DataParallel`` puts on every state-dict key."""

_CHUNK = 1 << 22  # 4 MiB: copy and hash block
_MAX_SUMS_BYTES = 1 << 22  # a digest list is a few KiB; refuse anything absurd
_SUMS_LINE = re.compile(r"^\\?([0-9a-fA-F]{64}) [ *](.+)$")


@dataclass(frozen=True)
class OfficialSource:
    """The eight official files, readable on local disk for the life of the context.

    ``paths``, ``sha256`` and ``member_names`` are keyed by the names of
    :data:`OFFICIAL_FILES`, in that order. ``member_names`` gives each file's path inside the
    zip or folder (POSIX separators); ``origin`` is the zip or folder itself; ``checked_sums``
    says whether a ``SHA256SUMS`` was found and at least one required file was verified against
    it (every listed required file was, or an error would have been raised).
    """

    origin: str
    paths: dict[str, Path]
    sha256: dict[str, str]
    member_names: dict[str, str]
    checked_sums: bool


@dataclass(frozen=True)
class _Member:
    """One file of the source: its path inside the zip or folder and whether it is unsafe."""

    name: str  # POSIX path inside the zip or folder
    unsafe: bool  # absolute, drive-qualified or with a '..' segment


def _member(name: str) -> tuple[str, _Member]:
    """(base name, member) for a zip member name or a folder-relative path."""
    norm = name.replace("\\", "/")
    parts = norm.split("/")
    unsafe = norm.startswith("/") or re.match(r"^[A-Za-z]:", norm) is not None or ".." in parts
    return parts[-1], _Member(norm, unsafe)


def _expected_sources() -> str:
    """The sentence naming the archives the files come from."""
    zips = " or ".join(f"{name} ({what})" for name, what in OFFICIAL_ZIPS.items())
    return (f"expected the official SemTalk weights: {zips}, as downloaded or unpacked into a "
            "folder")


def _inventory(found: Mapping[str, list[_Member]]) -> str:
    """One line per required name: where it was found, or 'missing'."""
    lines = []
    for name, role in OFFICIAL_FILES.items():
        hits = found.get(name, [])
        if not hits:
            where = "missing"
        elif len(hits) == 1:
            where = hits[0].name
        else:
            where = f"found {len(hits)} times: " + ", ".join(h.name for h in hits)
        unsafe = [h.name for h in hits if h.unsafe]
        if unsafe:
            where += " (unsafe member name, absolute or with '..': " + ", ".join(unsafe) + ")"
        lines.append(f"  {name} ({role}): {where}")
    return "\n".join(lines)


def _discover(origin: Path, names: list[str]) -> tuple[dict[str, _Member], list[_Member]]:
    """The required members and the ``SHA256SUMS`` members among ``names``.

    Raises :class:`DataError` listing every required name if one is missing, found more than
    once, or found under an unsafe member name.
    """
    found: dict[str, list[_Member]] = {}
    sums: list[_Member] = []
    for raw in names:
        base, member = _member(raw)
        if base in OFFICIAL_FILES:
            found.setdefault(base, []).append(member)
        elif base == SUMS_NAME and not member.unsafe:
            sums.append(member)
    problems = []
    if any(len(found.get(name, [])) == 0 for name in OFFICIAL_FILES):
        problems.append("required files are missing")
    if any(len(hits) > 1 for hits in found.values()):
        problems.append("some names are found more than once (which copy is meant is ambiguous)")
    if any(m.unsafe for hits in found.values() for m in hits):
        problems.append("some required members have unsafe names (absolute or with '..'); "
                        "refusing to extract them")
    if problems:
        raise DataError(origin, "; ".join(problems) + ":\n" + _inventory(found) + "\n"
                        + _expected_sources())
    return {name: found[name][0] for name in OFFICIAL_FILES}, sums


def _parse_sums(where: Path, text: str, sums_member: _Member) -> dict[str, list[str]]:
    """Listed POSIX path (relative to the source root) -> digests, from one ``SHA256SUMS``."""
    base_dir = posixpath.dirname(sums_member.name)
    listed: dict[str, list[str]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _SUMS_LINE.match(line)
        if match is None:
            raise DataError(where, f"line {number} is not '<sha256 hex>  <path>': {line[:120]!r}")
        path = posixpath.normpath(posixpath.join(base_dir, match.group(2).replace("\\", "/")))
        listed.setdefault(path, []).append(match.group(1).lower())
    return listed


def _verify_sums(origin: Path, members: Mapping[str, _Member], sha256: Mapping[str, str],
                 listed: Mapping[str, list[str]]) -> bool:
    """Compare computed digests with the ``SHA256SUMS`` entries; True if any file was checked.

    A line matches a required file by its full relative path when one does, else by base name
    (lines for other files are ignored). A mismatch raises :class:`DataError`.
    """
    checked = False
    for name, member in members.items():
        expected = listed.get(posixpath.normpath(member.name))
        if expected is None:
            expected = [d for path, digests in listed.items()
                        if posixpath.basename(path) == name for d in digests]
        if not expected:
            continue
        if sha256[name] not in expected:
            raise DataError(origin / member.name,
                            f"SHA-256 mismatch for {name} ({OFFICIAL_FILES[name]}): SHA256SUMS "
                            f"expects {' or '.join(sorted(set(expected)))}, the file has "
                            f"{sha256[name]}; the download is corrupt or incomplete, download "
                            "it again")
        checked = True
    return checked


@contextlib.contextmanager
def open_official_source(src: Path, *, work_dir: Path | None = None
                         ) -> Iterator[OfficialSource]:
    """Yield the eight official files of a zip or folder ``src`` as local, verified files.

    Files are found by base name at any depth. From a zip, only the required members are
    copied (streamed in chunks, hashed while copying) into a temporary folder created in
    ``work_dir`` (default: the system temp folder; the big zip needs about 1.7 GB free) and
    removed when the context exits. A folder's files are hashed in place. If a ``SHA256SUMS``
    is present anywhere in ``src``, every required file it lists is verified.

    Raises :class:`DataError` (naming ``src``) for a missing path, a file that is not a zip, a
    corrupt zip or member, a missing, duplicate or unsafely named required file, a malformed
    ``SHA256SUMS`` or a digest mismatch.
    """
    src = Path(src)
    if src.is_dir():
        yield _read_folder(src)
        return
    if not src.is_file():
        raise DataError(src, "not found; " + _expected_sources())
    if src.suffix.lower() != ".zip" and not zipfile.is_zipfile(src):
        raise DataError(src, "is neither a .zip nor a folder; " + _expected_sources())
    with tempfile.TemporaryDirectory(prefix="semtalk-official-", dir=work_dir) as tmp:
        yield _read_zip(src, Path(tmp))


def _read_folder(src: Path) -> OfficialSource:
    """The required files of an unpacked folder, hashed in place."""
    names: list[str] = []
    for root, dirs, files in os.walk(src):
        dirs.sort()
        rel = Path(root).relative_to(src)
        names.extend((rel / f).as_posix() for f in sorted(files))
    members, sums_members = _discover(src, names)
    paths = {name: src / m.name for name, m in members.items()}
    sha256 = {name: file_sha256(path) for name, path in paths.items()}
    listed: dict[str, list[str]] = {}
    for sums_member in sums_members:
        where = src / sums_member.name
        if where.stat().st_size > _MAX_SUMS_BYTES:
            raise DataError(where, f"is over {_MAX_SUMS_BYTES} bytes; not a digest list")
        text = _decode_sums(where, where.read_bytes())
        for path, digests in _parse_sums(where, text, sums_member).items():
            listed.setdefault(path, []).extend(digests)
    checked = _verify_sums(src, members, sha256, listed)
    return OfficialSource(origin=str(src), paths=paths, sha256=sha256,
                          member_names={name: m.name for name, m in members.items()},
                          checked_sums=checked)


def _decode_sums(where: Path, data: bytes) -> str:
    """A ``SHA256SUMS`` file's text (UTF-8), or :class:`DataError`."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(where, f"is not UTF-8 text ({exc}); not a digest list") from None


def _zip_failure(src: Path, member: str, exc: BaseException) -> DataError:
    """A clear error for a member that cannot be read."""
    if isinstance(exc, NotImplementedError):
        hint = ("it uses a compression method Python cannot read; unpack the zip with another "
                "tool and pass the folder instead")
    elif isinstance(exc, RuntimeError):
        hint = "it cannot be read (encrypted?); unpack it with another tool and pass the folder"
    else:
        hint = "the zip is corrupt or incomplete; download it again"
    return DataError(src, f"cannot read member {member}: {exc}; {hint}")


def _read_zip(src: Path, tmp: Path) -> OfficialSource:
    """Copy the required members of zip ``src`` into ``tmp/<base name>``, hashing them."""
    try:
        archive = zipfile.ZipFile(src)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(src, f"is not a readable zip ({exc}); the download is corrupt or "
                             "incomplete, download it again") from None
    with archive:
        infos = [info for info in archive.infolist() if not info.is_dir()]
        members, sums_members = _discover(src, [info.filename for info in infos])
        by_name = {_member(info.filename)[1].name: info for info in infos}
        paths: dict[str, Path] = {}
        sha256: dict[str, str] = {}
        for name, member in members.items():
            # The target is tmp / <one of the fixed required names>: nothing in the member name
            # reaches the file system, so no member can write outside ``tmp``.
            target = tmp / name
            sha256[name] = _copy_member(src, archive, by_name[member.name], target)
            paths[name] = target
        listed: dict[str, list[str]] = {}
        for sums_member in sums_members:
            info = by_name[sums_member.name]
            where = src / sums_member.name
            if info.file_size > _MAX_SUMS_BYTES:
                raise DataError(where, f"is over {_MAX_SUMS_BYTES} bytes; not a digest list")
            try:
                data = archive.read(info)
            except (zipfile.BadZipFile, zlib.error, EOFError, RuntimeError,
                    NotImplementedError, OSError) as exc:
                raise _zip_failure(src, sums_member.name, exc) from None
            for path, digests in _parse_sums(where, _decode_sums(where, data),
                                             sums_member).items():
                listed.setdefault(path, []).extend(digests)
    checked = _verify_sums(src, members, sha256, listed)
    return OfficialSource(origin=str(src), paths=paths, sha256=sha256,
                          member_names={name: m.name for name, m in members.items()},
                          checked_sums=checked)


def _copy_member(src: Path, archive: zipfile.ZipFile, info: zipfile.ZipInfo,
                 target: Path) -> str:
    """Stream one member to ``target`` (which must not exist) in chunks; its hex SHA-256.

    ``zipfile`` checks the member's CRC when the last chunk is read.
    """
    digest = hashlib.sha256()
    try:
        with archive.open(info) as reader, target.open("xb") as writer:
            while chunk := reader.read(_CHUNK):
                digest.update(chunk)
                writer.write(chunk)
    except (zipfile.BadZipFile, zlib.error, EOFError, RuntimeError, NotImplementedError) as exc:
        raise _zip_failure(src, info.filename, exc) from None
    except OSError as exc:
        raise DataError(src, f"cannot extract member {info.filename} to {target}: {exc}; "
                             "pass a work folder with enough free space, or unpack the zip and "
                             "pass the folder") from None
    return digest.hexdigest()


def load_official_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The state dict of one official ``.bin``, keys without the ``module.`` prefix, on CPU.

    The file is read with ``torch.load(map_location="cpu", weights_only=True)``: a pickle that
    references anything beyond tensors and plain containers is refused, never executed. The
    container must be ``{'model_state': {str: Tensor}}``; the stored entry order is kept. If
    every key starts with ``module.`` one such prefix is removed; a mix of prefixed and plain
    keys, an empty state dict or any other container raises :class:`DataError` naming the file.
    """
    path = require_file(path, "official weight file")
    try:
        container = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise DataError(path, _unpickling_problem(exc)) from None
    except Exception as exc:  # torch raises RuntimeError, EOFError, ValueError ... for bad files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise DataError(path, f"cannot be read as a torch checkpoint ({type(exc).__name__}: "
                              f"{first}); is it truncated or not an official weight file?"
                        ) from None
    if not isinstance(container, Mapping):
        raise DataError(path, f"holds a {type(container).__name__}, expected the official "
                              f"container {{'{STATE_KEY}': state_dict}}")
    keys = list(container.keys())
    if keys != [STATE_KEY]:
        shown = ", ".join(repr(k) for k in keys[:8]) + (" ..." if len(keys) > 8 else "")
        raise DataError(path, f"container has keys [{shown}], expected exactly "
                              f"['{STATE_KEY}']")
    state = container[STATE_KEY]
    if not isinstance(state, Mapping):
        raise DataError(path, f"'{STATE_KEY}' is a {type(state).__name__}, expected a mapping "
                              "of names to tensors")
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise DataError(path, f"'{STATE_KEY}' entry {key!r} is a {type(key).__name__} -> "
                                  f"{type(value).__name__}, expected str -> Tensor")
    if not state:
        raise DataError(path, f"'{STATE_KEY}' is empty: the file holds no weights")
    return _strip_module_prefix(path, dict(state))


def _unpickling_problem(exc: pickle.UnpicklingError) -> str:
    """The message for a pickle that safe loading rejected: refused code, or not a checkpoint."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    refusal = next((line for line in lines
                    if re.search(r"global|unsupported class", line, re.IGNORECASE)), None)
    if refusal is not None:
        return ("refused: its pickle references code that safe loading (weights_only=True) "
                f"does not allow ({refusal}); nothing was executed. Official weight files hold "
                "only tensors: this file is not one of them or has been tampered with")
    detail = next((line for line in lines if line.startswith("Unsupported")),
                  lines[0] if lines else "")
    return (f"cannot be read as a torch checkpoint (UnpicklingError: {detail}); is it truncated "
            "or not an official weight file?")


def _strip_module_prefix(path: Path, state: dict[str, torch.Tensor]
                         ) -> dict[str, torch.Tensor]:
    """Remove one leading ``module.`` from every key if all keys have it; reject a mix."""
    prefixed = [key for key in state if key.startswith(MODULE_PREFIX)]
    if not prefixed:
        return state
    if len(prefixed) != len(state):
        plain = next(key for key in state if not key.startswith(MODULE_PREFIX))
        raise DataError(path, f"mixes keys with and without the '{MODULE_PREFIX}' prefix "
                              f"({len(prefixed)} of {len(state)} have it), e.g. {prefixed[0]!r} "
                              f"and {plain!r}; cannot tell which form is meant")
    return {key[len(MODULE_PREFIX):]: value for key, value in state.items()}
