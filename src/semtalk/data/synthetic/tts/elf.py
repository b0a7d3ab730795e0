"""Reading a 64-bit ELF shared object: its writable data segment and its symbol table."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

_PT_LOAD = 1
_PT_GNU_RELRO = 0x6474E552
_PF_W = 0x2
_SHT_SYMTAB = 2
_STT_OBJECT = 1
_STT_FUNC = 2


@dataclass(frozen=True)
class ElfLayout:
    """What :class:`SynthState` needs from the library file (link-time addresses)."""

    writable: tuple[int, int]
    """``[start, end)`` of the writable, non-RELRO data (``.got.plt``, ``.data``, ``.bss``)."""
    objects: dict[str, list[tuple[int, int, bool]]]
    """Data symbol (``.NNNN`` suffix removed) -> ``(address, size, is_function_static)`` of each
    definition."""
    functions: dict[str, int]
    """Function symbol -> address."""


def read_elf_layout(lib_path: Path) -> ElfLayout | None:
    """Parse a 64-bit ELF shared object's program headers and ``.symtab``; None if unusable."""
    try:
        image = lib_path.read_bytes()
    except OSError:
        return None
    if len(image) < 64 or image[:4] != b"\x7fELF" or image[4] != 2:
        return None
    order = "<" if image[5] == 1 else ">"
    try:
        writable = _writable_span(image, order)
        objects, functions = _symbols(image, order)
    except struct.error:  # truncated or malformed file
        return None
    if writable is None or not objects:
        return None
    return ElfLayout(writable, objects, functions)


def _writable_span(image: bytes, order: str) -> tuple[int, int] | None:
    """The single writable PT_LOAD segment minus its RELRO prefix (read-only after relocation)."""
    (phoff,) = struct.unpack_from(order + "Q", image, 0x20)
    phentsize, phnum = struct.unpack_from(order + "HH", image, 0x36)
    writable: list[tuple[int, int]] = []
    relro_end = 0
    for i in range(phnum):
        p_type, p_flags, _, vaddr, _, _, memsz = struct.unpack_from(
            order + "IIQQQQQ", image, phoff + i * phentsize)
        if p_type == _PT_LOAD and p_flags & _PF_W:
            writable.append((vaddr, vaddr + memsz))
        elif p_type == _PT_GNU_RELRO:
            relro_end = max(relro_end, vaddr + memsz)
    if len(writable) != 1:
        return None
    start, end = max(writable[0][0], relro_end), writable[0][1]
    return (start, end) if start < end else None


def _symbols(image: bytes, order: str
             ) -> tuple[dict[str, list[tuple[int, int, bool]]], dict[str, int]]:
    """Data objects and functions of the ``.symtab`` section (empty if the file is stripped)."""
    (shoff,) = struct.unpack_from(order + "Q", image, 0x28)
    shentsize, shnum = struct.unpack_from(order + "HH", image, 0x3A)
    sections = [struct.unpack_from(order + "IIQQQQIIQQ", image, shoff + i * shentsize)
                for i in range(shnum)]
    objects: dict[str, list[tuple[int, int, bool]]] = {}
    functions: dict[str, int] = {}
    for _, sh_type, _, _, offset, size, link, _, _, entsize in sections:
        if sh_type != _SHT_SYMTAB or entsize == 0:
            continue
        strtab_offset = sections[link][4]
        for pos in range(offset, offset + size, entsize):
            st_name, st_info, _, st_shndx, value, st_size = struct.unpack_from(
                order + "IBBHQQ", image, pos)
            if st_shndx == 0:
                continue
            end = image.index(b"\0", strtab_offset + st_name)
            name = image[strtab_offset + st_name:end].decode("ascii", "replace")
            if st_info & 0xF == _STT_OBJECT and st_size > 0:
                base, dot, suffix = name.partition(".")
                is_function_static = bool(dot) and suffix.isdigit()
                objects.setdefault(base, []).append((value, st_size, is_function_static))
            elif st_info & 0xF == _STT_FUNC:
                functions[name] = value
    return objects, functions

