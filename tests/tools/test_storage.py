"""File-storage tools on local roots: reads, tables, listings, writes, and every refusal
(traversal, absolute paths, symlinks, a symlink swapped in after the check, devices, FIFOs,
the size cap)."""

from __future__ import annotations

import base64
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from security.paths import PathRefused, StorageRoots
from service.errors import InvalidRequest, NotFound, PathNotAllowed, PayloadTooLarge
from service.tools.models import ListFilesArgs, ReadFileArgs, ReadTableArgs, WriteFileArgs
from service.tools.registry import DataTools
from service.tools.storage import list_files, read_csv, read_file, read_parquet, write_file


@pytest.fixture
def tools(tools_for: Callable[..., DataTools]) -> DataTools:
    return tools_for(storage_max_file_size=1)  # 1 MB cap


@pytest.fixture
def root(tools: DataTools) -> Path:
    return tools.settings.storage_roots[0]


def test_read_file_detects_the_encoding(tools: DataTools, root: Path) -> None:
    (root / "utf8.txt").write_text("naïve café ☕\n", encoding="utf-8")
    (root / "latin.txt").write_bytes("Grüße aus Köln\n".encode("cp1252"))
    assert read_file(tools, ReadFileArgs(file_path="utf8.txt")).content == "naïve café ☕\n"
    latin = read_file(tools, ReadFileArgs(file_path=str(root / "latin.txt")))
    assert latin.content == "Grüße aus Köln\n" and latin.encoding in ("latin-1", "cp1252")


def test_read_file_caps_characters_and_reads_bytes(tools: DataTools, root: Path) -> None:
    (root / "long.txt").write_text("abcdef" * 100)
    capped = read_file(tools, ReadFileArgs(file_path="long.txt", max_chars=10))
    assert capped.content == "abcdefabcd" and capped.truncated and capped.size == 600
    (root / "blob.bin").write_bytes(bytes(range(256)))
    with pytest.raises(InvalidRequest, match="not a text file"):
        read_file(tools, ReadFileArgs(file_path="blob.bin"))
    raw = read_file(tools, ReadFileArgs(file_path="blob.bin", as_base64=True))
    assert base64.b64decode(raw.content) == bytes(range(256)) and raw.encoding == "base64"


def test_read_csv_rows_columns_and_schema(tools: DataTools, root: Path) -> None:
    (root / "sales.csv").write_text("region,amount,day\nnorth,1.5,2024-01-01\nsouth,,x\neast,3,y\n")
    table = read_csv(tools, ReadTableArgs(file_path="sales.csv", n_rows=2))
    assert [c.name for c in table.columns] == ["region", "amount", "day"]
    assert table.rows == [["north", 1.5, "2024-01-01"], ["south", None, "x"]]
    assert table.truncated is True
    only = read_csv(tools, ReadTableArgs(file_path="sales.csv", columns=["amount"]))
    assert only.rows == [[1.5], [None], [3.0]] and only.truncated is False
    with pytest.raises(InvalidRequest, match="could not be read as CSV"):
        read_csv(tools, ReadTableArgs(file_path="sales.csv", columns=["nope"]))


def test_read_parquet_rows_columns_and_schema(tools: DataTools, root: Path) -> None:
    frame = pd.DataFrame({"a": range(50), "b": [f"x{i}" for i in range(50)]})
    frame.to_parquet(root / "t.parquet")
    table = read_parquet(tools, ReadTableArgs(file_path="t.parquet", n_rows=3, columns=["b"]))
    assert [c.name for c in table.columns] == ["b"] and "string" in table.columns[0].type
    assert table.rows == [["x0"], ["x1"], ["x2"]]
    assert (table.total_rows, table.truncated) == (50, True)
    with pytest.raises(InvalidRequest, match="no column"):
        read_parquet(tools, ReadTableArgs(file_path="t.parquet", columns=["zzz"]))
    with pytest.raises(InvalidRequest, match="n_rows must be at most"):
        read_parquet(tools, ReadTableArgs(file_path="t.parquet", n_rows=10**6))


def test_list_files_pattern_recursive_sizes_mtimes(tools: DataTools, root: Path) -> None:
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "a.csv").write_text("x\n1\n")
    (root / "sub" / "b.csv").write_text("x\n2\n")
    (root / "sub" / "deeper" / "c.csv").write_text("x\n3\n")
    (root / "notes.txt").write_text("hi")
    (root / "link.csv").symlink_to(root / "a.csv")
    flat = list_files(tools, ListFilesArgs(directory=str(root), pattern="*.csv"))
    assert [f.name for f in flat.files] == ["a.csv"]  # the symlink is not listed
    assert flat.files[0].size == 4 and flat.files[0].modified.year >= 2024
    deep = list_files(tools, ListFilesArgs(directory=".", pattern="*.csv", recursive=True))
    assert sorted(f.name for f in deep.files) == ["a.csv", "b.csv", "c.csv"]
    with pytest.raises(NotFound):
        list_files(tools, ListFilesArgs(directory="missing"))


def test_write_file_text_and_base64(tools: DataTools, root: Path) -> None:
    written = write_file(tools, WriteFileArgs(file_path="out/new.txt", content="hello"))
    assert written.size == 5 and (root / "out" / "new.txt").read_text() == "hello"
    payload = base64.b64encode(b"\x00\x01\x02").decode()
    write_file(tools, WriteFileArgs(file_path="out/b.bin", content=payload, encoding="base64"))
    assert (root / "out" / "b.bin").read_bytes() == b"\x00\x01\x02"
    with pytest.raises(InvalidRequest, match="not valid base64"):
        write_file(tools, WriteFileArgs(file_path="x.bin", content="@@@", encoding="base64"))
    with pytest.raises(PathNotAllowed, match="overwrite is false"):
        write_file(tools, WriteFileArgs(file_path="out/new.txt", content="x", overwrite=False))
    assert not [p for p in (root / "out").iterdir() if p.name.endswith(".partial")]


# --- refusals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["../../../etc/passwd", "/etc/passwd", "sub/../../outside.txt", "/tmp/../etc/hostname"],
)
def test_traversal_and_absolute_paths_outside_roots(tools: DataTools, path: str) -> None:
    with pytest.raises(PathNotAllowed, match="outside the storage roots"):
        read_file(tools, ReadFileArgs(file_path=path))
    with pytest.raises(PathNotAllowed):
        write_file(tools, WriteFileArgs(file_path=path, content="x"))


def test_symlink_to_etc_is_refused(tools: DataTools, root: Path) -> None:
    (root / "etc").symlink_to("/etc")
    (root / "passwd").symlink_to("/etc/passwd")
    for path in ("etc/passwd", "passwd", str(root / "etc" / "hostname")):
        with pytest.raises(PathNotAllowed, match="symlink in it leads outside"):
            read_file(tools, ReadFileArgs(file_path=path))
    with pytest.raises(PathNotAllowed):
        list_files(tools, ListFilesArgs(directory="etc"))
    with pytest.raises(PathNotAllowed):
        write_file(tools, WriteFileArgs(file_path="etc/evil", content="x"))


def test_symlink_swapped_in_after_the_check(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "dir").mkdir(parents=True)
    (root / "dir" / "f.txt").write_text("fine")
    roots = StorageRoots([root])
    file_check = roots.locate("dir/f.txt")
    # the file itself becomes a symlink to /etc/passwd after the check
    (root / "dir" / "f.txt").unlink()
    (root / "dir" / "f.txt").symlink_to("/etc/passwd")
    with pytest.raises(PathRefused, match="symlink"), roots.open_file(file_check, max_bytes=10**6):
        pass
    # a directory on the way becomes a symlink to /etc after the check
    (root / "d2").mkdir()
    (root / "d2" / "hostname").write_text("mine")
    dir_check = roots.locate("d2/hostname")
    os.rename(root / "d2", root / "d2-moved")
    (root / "d2").symlink_to("/etc")
    with (
        pytest.raises(PathRefused, match="not a plain directory"),
        roots.open_file(dir_check, max_bytes=10**6),
    ):
        pass
    # a write through a swapped directory is refused too
    with pytest.raises(PathRefused):
        roots.write_file(dir_check, b"x", overwrite=True)
    assert (root / "d2-moved" / "hostname").read_text() == "mine"


def test_device_files_and_fifos_are_refused(tools: DataTools, root: Path) -> None:
    os.mkfifo(root / "pipe")
    with pytest.raises(PathNotAllowed, match="a FIFO"):
        read_file(tools, ReadFileArgs(file_path="pipe"))  # and it does not hang
    with pytest.raises(PathNotAllowed, match="a FIFO"):
        write_file(tools, WriteFileArgs(file_path="pipe", content="x"))
    try:
        os.mknod(root / "null", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("creating a device node needs CAP_MKNOD")
    with pytest.raises(PathNotAllowed, match="a device file"):
        read_file(tools, ReadFileArgs(file_path="null"))
    with pytest.raises(PathNotAllowed):
        read_file(tools, ReadFileArgs(file_path="/dev/zero"))


def test_size_cap(tools: DataTools, root: Path) -> None:
    with open(root / "big.csv", "wb") as f:
        f.truncate(1024 * 1024 + 1)  # sparse: one byte over the 1 MB cap
    with pytest.raises(PayloadTooLarge, match="over the limit"):
        read_csv(tools, ReadTableArgs(file_path="big.csv"))
    with pytest.raises(PayloadTooLarge, match="over the storage limit"):
        write_file(tools, WriteFileArgs(file_path="w.txt", content="x" * (1024 * 1024 + 1)))


def test_query_results_are_readable_not_writable(tools: DataTools) -> None:
    results = tools.settings.query_results_dir
    (results / "r.csv").write_text("a\n1\n")
    assert read_csv(tools, ReadTableArgs(file_path=str(results / "r.csv"))).rows == [[1]]
    with pytest.raises(PathNotAllowed):
        write_file(tools, WriteFileArgs(file_path=str(results / "r.csv"), content="x"))


def test_missing_file_is_not_found(tools: DataTools) -> None:
    with pytest.raises(NotFound):
        read_file(tools, ReadFileArgs(file_path="nothing-here.txt"))
