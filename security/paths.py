"""Path guard for the local file-storage tools: files under allow-listed roots, opened safely.

A path is resolved (``..`` and symlinks) and must land under one of the roots. It is then
opened by walking from the root's directory descriptor one component at a time with
``O_NOFOLLOW``: a symlink swapped in after the check, anywhere on the path, makes the open
fail instead of leading outside. The opened object must be a regular file (no devices, FIFOs
or sockets) within the size cap, checked with ``fstat`` on the descriptor actually read.
"""

from __future__ import annotations

import errno
import os
import stat
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class PathRefused(ValueError):
    """The path is outside the roots, a symlink, not a regular file, or otherwise unsafe."""


class FileTooBig(ValueError):
    pass


@dataclass(frozen=True)
class Located:
    """A checked path: the root it lies under and its components below that root."""

    root: Path
    parts: tuple[str, ...]

    @property
    def path(self) -> Path:
        return self.root.joinpath(*self.parts)


class StorageRoots:
    """The allow-list of directories; every path the tools touch is located here first."""

    def __init__(self, roots: Sequence[Path | str]) -> None:
        if not roots:
            raise ValueError("at least one storage root is needed")
        self.roots = tuple(Path(os.path.realpath(r)) for r in roots)

    def locate(self, raw: str) -> Located:
        """Resolve ``raw`` (absolute, or relative to the first root) and check it."""
        if "\x00" in raw:
            raise PathRefused("the path contains a NUL character")
        if not raw.strip():
            raise PathRefused("the path is empty")
        candidate = Path(raw)
        if not candidate.is_absolute():
            candidate = self.roots[0] / candidate
        resolved = Path(os.path.realpath(candidate))
        for root in self.roots:
            if resolved == root or resolved.is_relative_to(root):
                return Located(root, resolved.relative_to(root).parts)
        lexical = Path(os.path.normpath(candidate))
        inside = any(lexical.is_relative_to(r) for r in self.roots)
        why = "a symlink in it leads" if inside else "it is"
        raise PathRefused(
            f"{raw!r} is not allowed: {why} outside the storage roots "
            f"({', '.join(str(r) for r in self.roots)})"
        )

    @contextmanager
    def open_dir(self, located: Located, *, create: bool = False) -> Iterator[int]:
        """A descriptor of the directory ``located`` names, opened without following links."""
        fd = os.open(located.root, DIR_FLAGS)
        try:
            for part in located.parts:
                child = _step(fd, part, create=create)
                os.close(fd)
                fd = child
            yield fd
        finally:
            os.close(fd)

    @contextmanager
    def open_file(self, located: Located, *, max_bytes: int) -> Iterator[tuple[int, int]]:
        """``(fd, size)`` of the regular file ``located`` names, read-only."""
        if not located.parts:
            raise PathRefused(f"{str(located.path)!r} is a directory, not a file")
        parent = Located(located.root, located.parts[:-1])
        with self.open_dir(parent) as dir_fd:
            try:  # refuse devices and FIFOs before opening them (opening may have effects)
                before = os.stat(located.parts[-1], dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                raise FileNotFoundError(f"no file {str(located.path)!r}") from None
            if not stat.S_ISLNK(before.st_mode):
                _require_regular(before, located)
            fd = _open_leaf(dir_fd, located.parts[-1], os.O_RDONLY)
        try:
            info = os.fstat(fd)
            _require_regular(info, located)
            if info.st_size > max_bytes:
                raise FileTooBig(
                    f"{str(located.path)!r} is {info.st_size} bytes, over the limit of "
                    f"{max_bytes} bytes"
                )
            yield fd, info.st_size
        finally:
            os.close(fd)

    def write_file(self, located: Located, data: bytes, *, overwrite: bool) -> None:
        """Write ``data`` to a new file beside the target, then rename it into place (a rename
        replaces a symlink instead of following it)."""
        if not located.parts:
            raise PathRefused(f"{str(located.path)!r} is a directory, not a file")
        name = located.parts[-1]
        with self.open_dir(Located(located.root, located.parts[:-1]), create=True) as dir_fd:
            try:
                existing = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                existing = None
            if existing is not None:
                _require_regular(existing, located)
                if not overwrite:
                    raise PathRefused(f"{str(located.path)!r} exists and overwrite is false")
            partial = f".{name}.{uuid.uuid4().hex[:12]}.partial"
            fd = os.open(
                partial,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                0o644,
                dir_fd=dir_fd,
            )
            try:
                with os.fdopen(fd, "wb", closefd=False) as out:
                    out.write(data)
                os.close(fd)
                os.replace(partial, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            except BaseException:
                with suppress(OSError):
                    os.close(fd)
                with suppress(OSError):
                    os.unlink(partial, dir_fd=dir_fd)
                raise


def _step(dir_fd: int, part: str, *, create: bool) -> int:
    try:
        if create:
            with suppress(FileExistsError):
                os.mkdir(part, 0o755, dir_fd=dir_fd)
        return os.open(part, DIR_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise PathRefused(
                f"{part!r} is not a plain directory (a symlink swapped in after the check?)"
            ) from exc
        if exc.errno == errno.ENOENT:
            raise FileNotFoundError(f"no directory {part!r}") from exc
        raise


def _open_leaf(dir_fd: int, name: str, flags: int) -> int:
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer before we can refuse it.
        return os.open(
            name, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY, dir_fd=dir_fd
        )
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise PathRefused(
                f"{name!r} is a symlink (swapped in after the check?); refusing to follow it"
            ) from exc
        raise


def _require_regular(info: os.stat_result, located: Located) -> None:
    mode = info.st_mode
    if stat.S_ISREG(mode):
        return
    kind = (
        "a directory"
        if stat.S_ISDIR(mode)
        else "a device file"
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
        else "a FIFO"
        if stat.S_ISFIFO(mode)
        else "a socket"
        if stat.S_ISSOCK(mode)
        else "a symlink"
        if stat.S_ISLNK(mode)
        else "not a regular file"
    )
    raise PathRefused(f"{str(located.path)!r} is {kind}; only regular files are allowed")
