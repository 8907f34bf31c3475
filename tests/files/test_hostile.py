"""Hostile content reaches the metadata workers: clear per-file errors, the gateway untouched."""

from __future__ import annotations

import json
import os
import signal
import struct
import time
import zlib
from pathlib import Path

import pytest

from files import FileIntake, IntakeLimits, inspect_file
from files.worker import WorkerPool

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<lolz>&lol9;</lolz>
"""
XXE = """<?xml version="1.0"?>
<!DOCTYPE data [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<data>&secret;</data>
"""
XXE_PARAM = """<?xml version="1.0"?>
<!DOCTYPE data [<!ENTITY % ext SYSTEM "file:///etc/passwd"> %ext;]>
<data>x</data>
"""
XXE_SVG = """<?xml version="1.0"?>
<!DOCTYPE svg [<!ENTITY s SYSTEM "file:///etc/passwd">]>
<svg xmlns="http://www.w3.org/2000/svg"><text>&s;</text></svg>
"""
YAML_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
    for p, c in zip("abcdefgh", "bcdefghi", strict=True)
)


def _png_header(width: int, height: int) -> bytes:
    """A 1-bit PNG that *claims* width x height (the pixel data is a token IDAT)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def intake_of(job_dir: Path, files: dict[str, bytes], limits: IntakeLimits | None = None) -> dict:
    intake = FileIntake(job_dir, limits)
    for name, data in files.items():
        intake.add_stream(name, iter([data]))
    return intake.finish().metadata


def test_hostile_documents_get_per_file_errors(job_dir: Path) -> None:
    start = time.monotonic()
    meta = intake_of(
        job_dir,
        {
            "laughs.xml": BILLION_LAUGHS.encode(),
            "xxe.xml": XXE.encode(),
            "param.xml": XXE_PARAM.encode(),
            "xxe.svg": XXE_SVG.encode(),
            "deep.json": b"[" * 200_000 + b"]" * 200_000,
            "bomb.png": _png_header(20_000, 20_000),
            "fine.csv": b"a,b\n1,2\n",
        },
    )
    assert time.monotonic() - start < 10
    for name in ("laughs.xml", "xxe.xml", "param.xml", "xxe.svg"):
        assert "entities" in meta[name]["error"], name
    assert "nested" in meta["deep.json"]["error"]
    assert "decompression bomb" in meta["bomb.png"]["error"]
    assert meta["fine.csv"]["row_count"] == 1 and "error" not in meta["fine.csv"]
    assert "root:" not in json.dumps(meta)  # /etc/passwd never read


def test_yaml_alias_bomb_is_summarised_without_expansion(job_dir: Path) -> None:
    meta = intake_of(job_dir, {"bomb.yaml": YAML_BOMB.encode()})["bomb.yaml"]
    assert meta["top_level_keys"][:3] == ["a", "b", "c"] and "error" not in meta
    assert len(json.dumps(meta)) < 5000


def test_slow_file_times_out_and_others_carry_on(job_dir: Path) -> None:
    slow = b"<r>" + b"<a/>" * 3_000_000 + b"</r>"  # about 3 s of expat callbacks
    limits = IntakeLimits(metadata_timeout_s=0.8)
    start = time.monotonic()
    meta = intake_of(job_dir, {"big.xml": slow, "small.txt": b"hello\n"}, limits)
    assert "timed out after 0.8 s" in meta["big.xml"]["error"]
    assert meta["small.txt"]["line_count"] == 1
    assert time.monotonic() - start < 3


def test_memory_limit_turns_into_a_per_file_error(job_dir: Path) -> None:
    many_objects = b"[" + b",".join([b'{"a":1}'] * 3_000_000) + b"]"  # 24 MB -> ~600 MB of dicts
    limits = IntakeLimits(metadata_memory_bytes=256 * 2**20)
    meta = intake_of(job_dir, {"huge.json": many_objects, "note.txt": b"ok\n"}, limits)
    assert "memory" in meta["huge.json"]["error"] or "crashed" in meta["huge.json"]["error"]
    assert meta["note.txt"]["line_count"] == 1


def test_killed_and_closed_workers_leave_no_process(tmp_path: Path) -> None:
    slow = tmp_path / "slow.xml"
    slow.write_bytes(b"<r>" + b"<a/>" * 3_000_000 + b"</r>")
    pool = WorkerPool(512 * 2**20, max_workers=1)
    job = {"path": str(slow), "kind": "xml", "fmt": "text", "extension": ".xml"}
    worker = pool._checkout()
    pid = worker.proc.pid
    assert "timed out" in worker.request(job, 0.3)["error"]
    pool._checkin(worker)
    assert not _alive(pid)
    txt = tmp_path / "a.txt"
    txt.write_text("x\n")
    assert (
        pool.run({"path": str(txt), "kind": "text", "fmt": "text", "extension": ".txt"}, 10)[
            "line_count"
        ]
        == 1
    )
    pids = pool.worker_pids()
    assert len(pids) == 1 and pids[0] != pid  # a fresh worker replaced the killed one
    pool.close()
    assert not any(_alive(p) for p in pids)


def test_worker_is_reused_and_overhead_is_small(tmp_path: Path) -> None:
    txt = tmp_path / "a.txt"
    txt.write_text("x\n")
    pool = WorkerPool(512 * 2**20, max_workers=1)
    job = {"path": str(txt), "kind": "text", "fmt": "text", "extension": ".txt"}
    pool.run(job, 10)
    first = pool.worker_pids()
    start = time.monotonic()
    for _ in range(20):
        pool.run(job, 10)
    per_file = (time.monotonic() - start) / 20
    assert pool.worker_pids() == first
    assert per_file < 0.05
    pool.close()


def test_inspect_file_reports_problems_as_data(tmp_path: Path) -> None:
    png_as_csv = tmp_path / "x.csv"
    png_as_csv.write_bytes(_png_header(10, 10))
    meta = inspect_file(png_as_csv)
    assert meta["type"] == "invalid" and "content is PNG" in meta["error"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0): look at its state
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().split(")")[-1].split()[0] != "Z"


@pytest.fixture(autouse=True)
def _no_stray_files_outside(tmp_path: Path) -> object:
    before = {p for p in tmp_path.parent.iterdir()}
    yield None
    assert {p for p in tmp_path.parent.iterdir()} == before


def test_warm_up_starts_workers_with_libraries_loaded(tmp_path: Path) -> None:
    pool = WorkerPool(768 * 2**20, max_workers=2)
    pool.warm()
    assert len(pool.worker_pids()) >= 1
    csv = tmp_path / "t.csv"
    csv.write_text("a,b\n1,2\n")
    start = time.monotonic()
    meta = pool.run({"path": str(csv), "kind": "csv", "fmt": "text", "extension": ".csv"}, 10)
    assert meta["row_count"] == 1
    assert time.monotonic() - start < 0.5  # pandas was imported by warm()
    pool.close()


def test_a_worker_killed_while_idle_is_replaced(tmp_path: Path) -> None:
    """The gateway's shutdown path kills sandboxed descendants; a pool must not hand out the
    corpse of one to the next job."""
    txt = tmp_path / "a.txt"
    txt.write_text("x\n")
    pool = WorkerPool(512 * 2**20, max_workers=1)
    job = {"path": str(txt), "kind": "text", "fmt": "text", "extension": ".txt"}
    assert pool.run(job, 10)["line_count"] == 1
    (pid,) = pool.worker_pids()
    os.kill(pid, signal.SIGKILL)
    while _alive(pid):
        time.sleep(0.01)
    assert pool.run(job, 10)["line_count"] == 1
    assert pool.worker_pids() != [pid]
    pool.close()
