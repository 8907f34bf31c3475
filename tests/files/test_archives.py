"""Hostile archives: each is refused with the expected error and leaves nothing behind."""

from __future__ import annotations

import bz2
import gzip
import io
import tarfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from files import ArchiveRejected, CorruptFile, FileIntake, FileTooLarge, IntakeLimits, IntakeResult
from tests.files.conftest import tree

ZEROS_MB = 200


def _zip(entries: list[tuple[str | zipfile.ZipInfo, bytes]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries:
            zf.writestr(name, data)
    return buf.getvalue()


def _tar(entries: list[tarfile.TarInfo | tuple[str, bytes]], mode: str = "w") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:  # type: ignore[call-overload]
        for entry in entries:
            if isinstance(entry, tarfile.TarInfo):
                tf.addfile(entry)
            else:
                info = tarfile.TarInfo(entry[0])
                info.size = len(entry[1])
                tf.addfile(info, io.BytesIO(entry[1]))
    return buf.getvalue()


def _link(name: str, target: str, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


@pytest.fixture(scope="module")
def zeros_gz() -> bytes:
    """200 MB of zeros as gzip (~200 KB): the classic single-stream bomb."""
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=9) as gz:
        block = b"\x00" * 2**20
        for _ in range(ZEROS_MB):
            gz.write(block)
    return out.getvalue()


@pytest.fixture(scope="module")
def zeros_zip() -> bytes:
    buf = io.BytesIO()
    with (
        zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf,
        zf.open("zeros.csv", "w") as fh,
    ):
        block = b"\x00" * 2**20
        for _ in range(ZEROS_MB):
            fh.write(block)
    return buf.getvalue()


def run(job_dir: Path, name: str, data: bytes, limits: IntakeLimits | None = None) -> IntakeResult:
    intake = FileIntake(job_dir, limits)
    intake.add_stream(name, iter([data]))
    return intake.finish(with_metadata=False)


def refused(job_dir: Path, name: str, data: bytes, error: type[Exception], match: str,
            limits: IntakeLimits | None = None) -> None:  # fmt: skip
    outside = job_dir.parent.parent
    before = tree(outside)
    with pytest.raises(error, match=match):
        run(job_dir, name, data, limits)
    assert tree(job_dir) == {name}, "the rejected archive's members must be cleaned up"
    assert tree(outside) - {f"job/input/{name}"} == before


@pytest.mark.parametrize(
    ("name", "data", "match"),
    [
        (
            "slip.zip",
            lambda: _zip([("ok.csv", b"a\n1\n"), ("../../evil.csv", b"x\n")]),
            r"escapes.*\.\.",
        ),
        ("abs.zip", lambda: _zip([("/tmp/abs_evil.csv", b"x\n")]), "absolute path"),
        ("slip.tar", lambda: _tar([("../evil.txt", b"x")]), r"escapes"),
        ("abs.tar", lambda: _tar([("/etc/evil.txt", b"x")]), "absolute path"),
        (
            "sym.tar",
            lambda: _tar([_link("data", "/etc", tarfile.SYMTYPE), ("data/passwd.txt", b"x")]),
            "symbolic link 'data' points outside",
        ),
        (
            "symrel.tar.gz",
            lambda: _tar([_link("up.txt", "../../../etc/passwd", tarfile.SYMTYPE)], "w:gz"),
            "points outside",
        ),
        (
            "hard.tar",
            lambda: _tar([_link("passwd.txt", "/etc/passwd", tarfile.LNKTYPE)]),
            "hard link 'passwd.txt' points outside",
        ),
        (
            "hardrel.tar",
            lambda: _tar([_link("x.txt", "../outside.txt", tarfile.LNKTYPE)]),
            "points outside",
        ),
    ],
)
def test_escaping_members_are_rejected(
    job_dir: Path, name: str, data: Callable[[], bytes], match: str
) -> None:
    refused(job_dir, name, data(), ArchiveRejected, match)
    assert not Path("/tmp/abs_evil.csv").exists() and not Path("/etc/evil.txt").exists()


def test_zip_symlink_escape_is_rejected(job_dir: Path) -> None:
    info = zipfile.ZipInfo("link.csv")
    info.external_attr = 0o120777 << 16
    refused(job_dir, "zlink.zip", _zip([(info, b"/etc/passwd")]), ArchiveRejected, "points outside")


def test_internal_links_are_skipped_and_reported(job_dir: Path) -> None:
    data = _tar([("data.csv", b"a\n1\n"), _link("latest.csv", "data.csv", tarfile.SYMTYPE),
                 _link("copy.csv", "data.csv", tarfile.LNKTYPE)])  # fmt: skip
    result = run(job_dir, "links.tar", data)
    assert {f.name for f in result.files} == {"links.tar", "links/data.csv"}
    skipped = result.metadata["links.tar"]["extraction"]["skipped"]
    assert {s["name"] for s in skipped} == {"latest.csv", "copy.csv"}
    assert all("never extracted" in s["reason"] for s in skipped)
    assert not any(p.is_symlink() for p in job_dir.rglob("*"))


def test_zip_bomb_is_rejected_quickly(job_dir: Path, zeros_zip: bytes) -> None:
    assert len(zeros_zip) < 1_000_000
    start = time.monotonic()
    refused(
        job_dir, "bomb.zip", zeros_zip, ArchiveRejected, r"compression-ratio limit \(zip bomb\?\)"
    )
    assert time.monotonic() - start < 2


@pytest.mark.parametrize("name", ["bomb.csv.gz", "bomb.tar.gz"])
def test_gzip_bomb_is_stopped_while_counting(job_dir: Path, zeros_gz: bytes, name: str) -> None:
    data = zeros_gz
    if name.endswith(".tar.gz"):  # a tar header in front of the zeros, so tarfile streams them
        info = tarfile.TarInfo("zeros.csv")
        info.size = ZEROS_MB * 2**20
        data = gzip.compress(info.tobuf(), compresslevel=1) + zeros_gz  # two gzip members
    start = time.monotonic()
    refused(job_dir, name, data, ArchiveRejected, "compression-ratio limit")
    assert time.monotonic() - start < 5


def test_bz2_extracted_size_cap(job_dir: Path) -> None:
    data = bz2.compress(b"a,b\n" + b"1,2\n" * 400_000)  # 1.6 MB, compresses ~1000:1
    limits = IntakeLimits(max_extracted_bytes=1_000_000, max_compression_ratio=10_000)
    refused(job_dir, "rows.csv.bz2", data, FileTooLarge, "limit on extracted data", limits)


def test_nesting_depth(job_dir: Path) -> None:
    level3 = _zip([("deep.csv", b"a\n1\n")])
    level2 = _zip([("l3.zip", level3)])
    level1 = _zip([("l2.zip", level2)])
    ok = run(job_dir, "two.zip", level2)  # two levels: allowed
    assert "two/l3/deep.csv" in {f.name for f in ok.files}
    (job_dir / "two.zip").unlink()
    import shutil

    shutil.rmtree(job_dir / "two")
    refused(job_dir, "three.zip", level1, ArchiveRejected, "nested more than 2 levels")


def test_too_many_members(job_dir: Path) -> None:
    data = _zip([(f"f{i}.txt", b"x") for i in range(51)])
    refused(job_dir, "many.zip", data, ArchiveRejected, "51 members, over the 50-member limit",
            IntakeLimits(max_archive_members=50))  # fmt: skip


def test_too_many_tar_members_counted_while_streaming(job_dir: Path) -> None:
    data = _tar([(f"f{i}.txt", b"x") for i in range(51)])
    refused(job_dir, "many.tar", data, ArchiveRejected, "more than 50 archive members",
            IntakeLimits(max_archive_members=50))  # fmt: skip


def test_broken_archive_is_corrupt(job_dir: Path) -> None:
    data = _tar([("a.txt", b"hello" * 1000)], "w:gz")
    refused(job_dir, "cut.tar.gz", data[: len(data) // 2], CorruptFile, "broken archive")


def test_bad_members_are_skipped_not_fatal(job_dir: Path, samples: dict[str, Path]) -> None:
    data = _zip([("good.csv", b"a\n1\n"), ("image.csv", samples["logo.png"].read_bytes()),
                 ("empty.txt", b""), ("run.sh", b"echo hi")])  # fmt: skip
    result = run(job_dir, "mixed.zip", data)
    assert {f.name for f in result.files} == {"mixed.zip", "mixed/good.csv"}
    reasons = {
        s["name"]: s["reason"] for s in result.metadata["mixed.zip"]["extraction"]["skipped"]
    }
    assert "content is PNG" in reasons["image.csv"]
    assert reasons["empty.txt"] == "empty file" and reasons["run.sh"] == "unsupported type .sh"
    assert tree(job_dir) == {"mixed.zip", "mixed", "mixed/good.csv"}


def test_folder_and_member_collisions(job_dir: Path) -> None:
    intake = FileIntake(job_dir)
    with pytest.warns(UserWarning, match="Duplicate name"):  # zip allows it; so must we
        dup = _zip([("a.csv", b"x\n1\n"), ("a.csv", b"x\n2\n")])
    intake.add_stream("data.zip", iter([dup]))
    intake.add_stream("data.tar", iter([_tar([("a.csv", b"x\n3\n")])]))
    names = [f.name for f in intake.finish(with_metadata=False).files]
    assert names == ["data.zip", "data.tar", "data/a.csv", "data/a-1.csv", "data-1/a.csv"]


def test_7z_bomb_is_rejected(job_dir: Path, tmp_path: Path) -> None:
    import py7zr

    src = tmp_path / "bomb.7z"
    with py7zr.SevenZipFile(src, "w") as sz:
        sz.writestr(b"\x00" * (20 * 2**20), "zeros.csv")
    assert src.stat().st_size < 100_000
    refused(job_dir, "bomb.7z", src.read_bytes(), ArchiveRejected, "compression-ratio limit")


def test_single_stream_names_and_tgz_alias(job_dir: Path) -> None:
    intake = FileIntake(job_dir)
    intake.add_stream("mystery.gz", iter([gzip.compress(b"no extension inside\n")]))
    intake.add_stream("pack.tgz", iter([_tar([("in.txt", b"tgz member\n")], "w:gz")]))
    result = intake.finish(with_metadata=False)
    assert {f.name for f in result.files} == {"mystery.gz", "pack.tgz", "pack/in.txt"}
    skipped = result.metadata["mystery.gz"]["extraction"]["skipped"]
    assert skipped == [{"name": "mystery", "reason": "unsupported type (no extension)"}]
