"""Upload validation: names, sizes, counts, types, content sniffing, collisions."""

from __future__ import annotations

import asyncio
import io
import zipfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from files import (
    ContentMismatch,
    CorruptFile,
    EmptyFile,
    FileIntake,
    FileTooLarge,
    IntakeLimits,
    TooManyFiles,
    UnsafeFileName,
    UnsupportedFileType,
    safe_name,
)
from tests.files.conftest import tree


@pytest.mark.parametrize(
    "raw",
    [
        "../../etc/passwd",
        "/abs/data.csv",
        "\\\\server\\share.csv",
        "C:\\x\\y.csv",
        "a\x00b.csv",
        "..",
        ".",
        "",
        "   ",
        "bad\nname.csv",
        "evil\u202egpj.csv",
        "dir/../x.csv",
    ],
)
def test_unsafe_names_are_refused(raw: str) -> None:
    with pytest.raises(UnsafeFileName):
        safe_name(raw)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("sales.csv", "sales.csv"),
        ("folder/sales.csv", "sales.csv"),
        ("  spaced .csv ", "spaced .csv"),
        ("Ünïcode.csv", "Ünïcode.csv"),
        ("x" * 300 + ".csv", "x" * 196 + ".csv"),
    ],
)
def test_safe_names(raw: str, expected: str) -> None:
    assert safe_name(raw) == expected


def chunks(data: bytes, size: int = 1024) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def test_traversal_name_leaves_nothing_behind(job_dir: Path) -> None:
    before = tree(job_dir.parent.parent)
    with pytest.raises(UnsafeFileName):
        FileIntake(job_dir).add_stream("../../escape.csv", chunks(b"a,b\n1,2\n"))
    assert tree(job_dir.parent.parent) == before


def test_collisions_are_renamed_predictably(job_dir: Path) -> None:
    intake = FileIntake(job_dir)
    names = [
        intake.add_stream(n, chunks(b"a\n1\n")).name
        for n in ("a.csv", "a.csv", "A.csv", "dir/a.csv")
    ]
    assert names == ["a.csv", "a-1.csv", "A-2.csv", "a-3.csv"]
    assert sorted(p.name for p in job_dir.iterdir()) == ["A-2.csv", "a-1.csv", "a-3.csv", "a.csv"]


def test_oversized_upload_is_stopped_while_streaming(job_dir: Path) -> None:
    consumed = 0

    def endless() -> Iterator[bytes]:
        nonlocal consumed
        while True:
            consumed += 1
            yield b"x" * 1024

    intake = FileIntake(job_dir, IntakeLimits(max_file_bytes=10 * 1024))
    with pytest.raises(FileTooLarge) as err:
        intake.add_stream("big.txt", endless())
    assert err.value.limit_bytes == 10 * 1024 and err.value.filename == "big.txt"
    assert "big.txt" in err.value.message and "per-file limit" in err.value.message
    assert consumed == 11  # stopped on the first chunk over the limit
    assert list(job_dir.iterdir()) == []


def test_total_limit_counts_all_files(job_dir: Path) -> None:
    intake = FileIntake(job_dir, IntakeLimits(max_file_bytes=6000, max_total_bytes=10_000))
    intake.add_stream("one.txt", chunks(b"a" * 6000))
    with pytest.raises(FileTooLarge) as err:
        intake.add_stream("two.txt", chunks(b"b" * 6000))
    assert err.value.limit_bytes == 10_000 and "total limit" in err.value.message
    assert [p.name for p in job_dir.iterdir()] == ["one.txt"]


def test_too_many_files(job_dir: Path) -> None:
    intake = FileIntake(job_dir, IntakeLimits(max_files=2))
    for i in range(2):
        intake.add_stream(f"f{i}.txt", chunks(b"x"))
    with pytest.raises(TooManyFiles) as err:
        intake.add_stream("f2.txt", chunks(b"x"))
    assert err.value.limit == 2


def test_empty_file(job_dir: Path) -> None:
    with pytest.raises(EmptyFile, match=r"empty\.csv"):
        FileIntake(job_dir).add_stream("empty.csv", iter([]))
    assert list(job_dir.iterdir()) == []


def test_unsupported_type_lists_supported(job_dir: Path) -> None:
    with pytest.raises(UnsupportedFileType) as err:
        FileIntake(job_dir).add_stream("tool.exe", chunks(b"MZ"))
    assert ".csv" in err.value.message and ".7z" in err.value.message
    assert ".parquet" in err.value.supported


def test_png_renamed_csv_is_refused(job_dir: Path, samples: dict[str, Path]) -> None:
    with pytest.raises(ContentMismatch, match=r"sales\.csv: content is PNG, not text"):
        FileIntake(job_dir).add_path("sales.csv", samples["logo.png"])
    assert list(job_dir.iterdir()) == []


def test_binary_types_mismatch_is_a_warning(job_dir: Path, samples: dict[str, Path]) -> None:
    intake = FileIntake(job_dir)
    intake.add_path("photo.png", samples["photo.jpg"])  # a JPEG named .png
    intake.add_path("table.xlsx", samples["sales.csv"])  # a CSV named .xlsx
    result = intake.finish()
    photo = result.metadata["photo.png"]
    assert photo["type"] == "image" and photo["media_type"] == "image/jpeg" and photo["width"] == 64
    assert "content is JPEG" in photo["warnings"][0]
    table = result.metadata["table.xlsx"]
    assert table["type"] == "text" and "plain text" in table["warnings"][0]
    assert len(result.warnings) == 2


def test_executable_renamed_png_is_refused(job_dir: Path) -> None:
    elf = b"\x7fELF\x02\x01\x01" + b"\x00" * 200
    with pytest.raises(ContentMismatch, match="not a supported type"):
        FileIntake(job_dir).add_stream("cat.png", chunks(elf))


def test_random_bytes_named_pdf_are_corrupt(job_dir: Path) -> None:
    with pytest.raises(CorruptFile, match="not a valid PDF"):
        FileIntake(job_dir).add_stream("scan.pdf", chunks(bytes(range(256)) * 4))
    assert list(job_dir.iterdir()) == []


def test_truncated_xlsx_is_corrupt(job_dir: Path, samples: dict[str, Path]) -> None:
    data = samples["book.xlsx"].read_bytes()
    with pytest.raises(CorruptFile, match=r"book\.xlsx: not a readable zip"):
        FileIntake(job_dir).add_stream("book.xlsx", chunks(data[: len(data) // 2]))


def test_corrupt_pdf_body_is_a_metadata_error(job_dir: Path, samples: dict[str, Path]) -> None:
    intake = FileIntake(job_dir)
    intake.add_stream("broken.pdf", chunks(b"%PDF-1.7\n" + b"\x00garbage" * 100))
    intake.add_path("sales.csv", samples["sales.csv"])
    result = intake.finish()
    assert (
        "error" in result.metadata["broken.pdf"] and result.metadata["broken.pdf"]["type"] == "pdf"
    )
    assert result.metadata["sales.csv"]["row_count"] == 40  # the other file carries on


def test_broken_sheet_inside_valid_zip_is_a_metadata_error(job_dir: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("xl/workbook.xml", "<not-closed")
    intake = FileIntake(job_dir)
    intake.add_stream("bad.xlsx", chunks(buf.getvalue()))  # a readable OOXML zip: accepted
    meta = intake.finish().metadata["bad.xlsx"]
    assert meta["type"] == "excel" and meta["error"].startswith("could not read as excel")


def test_async_stream(job_dir: Path) -> None:
    async def source() -> AsyncIterator[bytes]:
        for part in (b"a,b\n", b"1,2\n", b"3,4\n"):
            yield part

    intake = FileIntake(job_dir)
    stored = asyncio.run(intake.add_async_stream("upload.csv", source()))
    assert stored.size == 12 and stored.media_type == "text/csv" and stored.extension == ".csv"
    assert intake.finish().metadata["upload.csv"]["row_count"] == 2


def test_async_stream_over_limit_is_cleaned(job_dir: Path) -> None:
    async def source() -> AsyncIterator[bytes]:
        for _ in range(100):
            yield b"z" * 1000

    intake = FileIntake(job_dir, IntakeLimits(max_file_bytes=5000))
    with pytest.raises(FileTooLarge):
        asyncio.run(intake.add_async_stream("big.txt", source()))
    assert list(job_dir.iterdir()) == []
