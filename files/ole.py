"""Just enough of the OLE2 compound-file format (.doc, .xls) to list stream names.

Legacy Office files are OLE containers; the stream names say what is inside ("WordDocument"
for Word, "Workbook"/"Book" for Excel). Bounded: at most 64 directory sectors are read.
"""

from __future__ import annotations

import struct
from pathlib import Path

OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_END = 0xFFFFFFFE


def ole_stream_names(path: Path, max_sectors: int = 64) -> list[str]:
    """Names of the directory entries of an OLE2 file; ``ValueError`` if it is not one."""
    with path.open("rb") as fh:
        header = fh.read(512)
        if len(header) < 512 or not header.startswith(OLE_MAGIC):
            raise ValueError("not an OLE2 compound file")
        sector_size = 1 << struct.unpack_from("<H", header, 0x1E)[0]
        if sector_size not in (512, 4096):
            raise ValueError("bad OLE2 sector size")
        first_dir = struct.unpack_from("<I", header, 0x30)[0]
        difat = [s for s in struct.unpack_from("<109I", header, 0x4C) if s < _END]

        def read_sector(sid: int) -> bytes:
            fh.seek((sid + 1) * sector_size)
            return fh.read(sector_size)

        fat: list[int] = []
        for sid in difat[:max_sectors]:
            data = read_sector(sid)
            fat.extend(struct.unpack(f"<{len(data) // 4}I", data[: len(data) // 4 * 4]))
        names: list[str] = []
        sid, seen = first_dir, 0
        while sid < _END and seen < max_sectors:
            data = read_sector(sid)
            for off in range(0, len(data) - 127, 128):
                entry = data[off : off + 128]
                length = struct.unpack_from("<H", entry, 64)[0]
                if entry[66] in (1, 2, 5) and 2 <= length <= 64:
                    names.append(entry[: length - 2].decode("utf-16-le", errors="replace"))
            seen += 1
            sid = fat[sid] if sid < len(fat) else _END
        return names


def ole_flavour(names: list[str]) -> str:
    """``doc``, ``xls``, ``ppt`` or ``ole`` from the stream names."""
    lowered = {n.lower() for n in names}
    if "worddocument" in lowered:
        return "doc"
    if {"workbook", "book"} & lowered:
        return "xls"
    if "powerpoint document" in lowered:
        return "ppt"
    return "ole"
