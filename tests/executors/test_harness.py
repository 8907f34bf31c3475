"""The harness on its own: run as a child process with the dev interpreter, no Docker.

These pin the behaviour both engines inherit: framing, files in and out, the timeout, capped
output, exit codes, rlimits and the artifact caps.
"""

from __future__ import annotations

import io
import os
import resource
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from runner_image.protocol import MAGIC, copy_exact, encode_header, read_header

HARNESS = Path(__file__).resolve().parents[2] / "runner_image" / "harness.py"
DEFAULT_LIMITS: dict[str, Any] = {
    "max_output_bytes": 64 * 1024,
    "max_artifact_bytes": 1024 * 1024,
    "max_artifacts_total_bytes": 4 * 1024 * 1024,
    "max_artifacts": 10,
    "memory_bytes": None,
    "cpu_s": None,
    "fsize_bytes": None,
    "nofile": None,
    "nproc": None,
}


@dataclass
class Outcome:
    header: dict[str, Any]
    files: dict[str, bytes]
    diagnostics: str
    workdir: Path
    wall_s: float


def run_harness(
    workdir: Path,
    code: str,
    files: dict[str, bytes] | None = None,
    timeout_s: float = 10.0,
    env: dict[str, str] | None = None,
    **limits: Any,
) -> Outcome:
    files = files or {}
    header = {
        "code": code,
        "files": [{"name": n, "size": len(b)} for n, b in files.items()],
        "timeout_s": timeout_s,
        "limits": {**DEFAULT_LIMITS, **limits},
    }
    frame = encode_header(header) + b"".join(files.values())
    began = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-s", "-E", str(HARNESS), str(workdir)],
        input=frame,
        capture_output=True,
        env={"PYC_PREIMPORT": "", "PATH": os.environ["PATH"], **(env or {})},
        timeout=timeout_s + 30,
        check=False,
    )
    wall = time.monotonic() - began
    assert proc.returncode == 0, proc.stderr.decode()
    stream = io.BytesIO(proc.stdout)
    result = read_header(stream.read)
    produced: dict[str, bytes] = {}
    for entry in result["files"]:
        sink = io.BytesIO()
        copy_exact(stream.read, sink.write, entry["size"])
        produced[entry["name"]] = sink.getvalue()
    assert stream.read() == b"", "bytes after the last artifact"
    return Outcome(result, produced, proc.stderr.decode(), workdir, wall)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path


def test_round_trip(workdir: Path) -> None:
    code = (
        "import sys, os\n"
        "print('hello', __name__, __file__, sys.argv)\n"
        "print('cwd', os.getcwd())\n"
        "print('err', file=sys.stderr)\n"
        "print('stdin', repr(sys.stdin.read()))\n"
    )
    out = run_harness(workdir, code)
    h = out.header
    assert h["exit_code"] == 0, h
    assert h["stdout"] == (f"hello __main__ script.py ['script.py']\ncwd {workdir}\nstdin ''\n")
    assert h["stderr"] == "err\n"
    assert h["timed_out"] is False and h["signal"] is None and h["error"] is None
    assert 0 < h["duration_s"] < 5
    assert h["files"] == [] and h["skipped"] == []


def test_files_in_and_artifacts_out(workdir: Path) -> None:
    files = {"data/sub/sales.csv": b"a,b\n1,2\n3,4\n", "notes.txt": b"keep me", "old.txt": b"v1"}
    code = (
        "import csv, os\n"
        "rows = list(csv.DictReader(open('data/sub/sales.csv')))\n"
        "print(sum(int(r['b']) for r in rows))\n"
        "os.makedirs('out/plots', exist_ok=True)\n"
        "open('out/plots/summary.txt', 'w').write('total=6')\n"
        "open('old.txt', 'w').write('v2, longer')\n"
        "os.symlink('/etc/passwd', 'link.txt')\n"
        "os.mkfifo('pipe')\n"
    )
    out = run_harness(workdir, code, files)
    assert out.header["exit_code"] == 0, out.header["stderr"]
    assert out.header["stdout"] == "6\n"
    # unchanged inputs, symlinks and special files are not artifacts
    assert out.files == {"old.txt": b"v2, longer", "out/plots/summary.txt": b"total=6"}
    assert [f["name"] for f in out.header["files"]] == ["old.txt", "out/plots/summary.txt"]
    assert (workdir / "data" / "sub" / "sales.csv").read_bytes() == files["data/sub/sales.csv"]


def test_uploaded_module_is_importable_without_bytecode_artifacts(workdir: Path) -> None:
    out = run_harness(
        workdir,
        "import helper\nprint(helper.twice(21))",
        {"helper.py": b"def twice(x):\n    return 2 * x\n"},
    )
    assert out.header["stdout"] == "42\n", out.header["stderr"]
    assert out.files == {}


def test_timeout_kills_the_script_and_keeps_its_output(workdir: Path) -> None:
    out = run_harness(workdir, "print('started')\nwhile True:\n    pass\n", timeout_s=1.0)
    h = out.header
    assert h["timed_out"] is True
    assert h["exit_code"] == -signal.SIGKILL and h["signal"] == signal.SIGKILL
    assert h["error"] == "timed out after 1 s"
    assert h["stdout"] == "started\n"  # line-buffered, so not lost with the process
    assert 1.0 <= h["duration_s"] < 3.0
    assert out.wall_s < 10


def test_timeout_kills_escaped_descendants(workdir: Path) -> None:
    code = (
        "import subprocess, sys, time\n"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'],"
        " start_new_session=True)\n"
        "print(p.pid, flush=True)\n"
        "time.sleep(120)\n"
    )
    out = run_harness(workdir, code, timeout_s=1.5)
    assert out.header["timed_out"] is True
    pid = int(out.header["stdout"].split()[0])
    assert not Path(f"/proc/{pid}").exists(), "a process of the script outlived the run"


def test_background_process_dies_when_the_script_ends(workdir: Path) -> None:
    code = (
        "import subprocess, sys\n"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'],"
        " start_new_session=True)\n"
        "print(p.pid)\n"
    )
    out = run_harness(workdir, code)
    assert out.header["exit_code"] == 0 and out.wall_s < 5
    assert not Path(f"/proc/{int(out.header['stdout'])}").exists()


def test_output_flood_is_capped_and_does_not_block(workdir: Path) -> None:
    code = (
        "import sys\n"
        "for _ in range(20000):\n"
        "    sys.stdout.write('x' * 1000 + '\\n')\n"
        "    sys.stderr.write('e' * 1000 + '\\n')\n"
        "print('done', file=sys.stderr)\n"
    )
    out = run_harness(workdir, code, max_output_bytes=5000)
    h = out.header
    assert h["exit_code"] == 0
    assert h["stdout_truncated"] is True and h["stderr_truncated"] is True
    assert len(h["stdout"]) == 5000 and len(h["stderr"]) == 5000
    assert h["stdout"].startswith("x" * 1000 + "\n")
    assert out.wall_s < 10


def test_exception_gives_a_script_traceback_and_exit_1(workdir: Path) -> None:
    out = run_harness(workdir, "def f():\n    return 1 / 0\n\nf()\n")
    h = out.header
    assert h["exit_code"] == 1 and h["error"] is None
    assert h["stderr"].startswith("Traceback (most recent call last):\n")
    assert 'File "script.py", line 4, in <module>' in h["stderr"]
    assert "return 1 / 0" in h["stderr"]  # source lines are shown
    assert h["stderr"].rstrip().endswith("ZeroDivisionError: division by zero")
    assert "harness" not in h["stderr"]


def test_syntax_error(workdir: Path) -> None:
    h = run_harness(workdir, "print('a'\n").header
    assert h["exit_code"] == 1
    assert 'File "script.py", line 1' in h["stderr"] and "SyntaxError" in h["stderr"]


@pytest.mark.parametrize(
    ("code", "exit_code", "stderr"),
    [
        ("raise SystemExit(3)", 3, ""),
        ("import sys; sys.exit()", 0, ""),
        ("import sys; sys.exit('bad input')", 1, "bad input\n"),
        ("import os; os._exit(7)", 7, ""),
    ],
)
def test_exit_codes(workdir: Path, code: str, exit_code: int, stderr: str) -> None:
    h = run_harness(workdir, code).header
    assert (h["exit_code"], h["stderr"], h["error"]) == (exit_code, stderr, None)


def test_death_by_signal_is_reported(workdir: Path) -> None:
    h = run_harness(workdir, "import os, signal\nos.kill(os.getpid(), signal.SIGTERM)").header
    assert h["exit_code"] == -signal.SIGTERM and h["signal"] == signal.SIGTERM
    assert h["error"] == "killed by signal SIGTERM"
    h = run_harness(workdir, "import os, signal\nos.kill(os.getpid(), signal.SIGRTMIN + 3)").header
    assert h["exit_code"] == -(signal.SIGRTMIN + 3)
    assert h["error"] == f"killed by signal {signal.SIGRTMIN + 3}"
    h = run_harness(workdir, "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)").header
    assert h["exit_code"] == -9 and h["error"].startswith("killed (SIGKILL)")


def test_non_utf8_output_is_replaced(workdir: Path) -> None:
    code = "import os, sys\nos.write(1, b'caf\\xe9 ok\\n')\nprint('\\udcff', file=sys.stderr)"
    h = run_harness(workdir, code).header
    assert h["exit_code"] == 0
    assert h["stdout"] == "caf\ufffd ok\n"
    assert h["stderr"] == "\\udcff\n"  # a lone surrogate does not crash print


@pytest.mark.parametrize(
    ("limits", "kept", "reason"),
    [
        ({"max_artifacts": 2}, ["a.bin", "b.bin"], "more than 2 files"),
        ({"max_artifact_bytes": 1500}, ["a.bin", "b.bin"], "per-file limit of 1500"),
        ({"max_artifacts_total_bytes": 2500}, ["a.bin", "b.bin"], "total artifact limit of 2500"),
    ],
)
def test_artifact_caps(workdir: Path, limits: dict[str, Any], kept: list[str], reason: str) -> None:
    code = "for n, size in (('a', 1000), ('b', 1000), ('c', 2000)):\n    open(n + '.bin', 'wb').write(b'z' * size)"
    out = run_harness(workdir, code, **limits)
    assert sorted(out.files) == kept
    assert [s["name"] for s in out.header["skipped"]] == ["c.bin"]
    assert out.header["skipped"][0]["size"] == 2000
    assert reason in out.header["skipped"][0]["reason"]


@pytest.mark.parametrize("bad", ["../escape.txt", "/etc/evil", "a//b", "./a", "a/../../b", ""])
def test_bad_input_names_are_refused(workdir: Path, bad: str) -> None:
    out = run_harness(workdir, "print('ran')", {"ok.txt": b"fine", bad: b"payload"})
    h = out.header
    assert h["stdout"] == "" and h["exit_code"] is None
    assert h["error"] is not None and "harness error" in h["error"]
    assert not (workdir.parent / "escape.txt").exists()


def test_rlimit_fsize_gives_a_clear_error(workdir: Path) -> None:
    code = "open('big.bin', 'wb').write(b'x' * 300_000)"
    out = run_harness(workdir, code, fsize_bytes=100_000)
    h = out.header
    assert h["exit_code"] == 1
    assert "File too large" in h["stderr"]
    assert out.files["big.bin"] == b"x" * 100_000


def test_rlimit_cpu(workdir: Path) -> None:
    out = run_harness(workdir, "while True:\n    pass", timeout_s=20, cpu_s=1)
    h = out.header
    assert h["timed_out"] is False
    assert h["signal"] == signal.SIGXCPU and h["error"] == "CPU time limit exceeded (1 s)"
    assert out.wall_s < 10


def test_rlimit_address_space_gives_memory_error(workdir: Path) -> None:
    code = "try:\n    b = bytearray(2 * 1024**3)\nexcept MemoryError:\n    print('MemoryError')"
    h = run_harness(workdir, code, memory_bytes=512 * 1024**2).header
    assert (h["exit_code"], h["stdout"]) == (0, "MemoryError\n")


def test_rlimit_nofile(workdir: Path) -> None:
    code = "fs = []\ntry:\n    while True: fs.append(open('/dev/null'))\nexcept OSError as e:\n    print(len(fs) < 40, e.errno)"
    h = run_harness(workdir, code, nofile=32).header
    assert h["stdout"] == "True 24\n"  # EMFILE


def test_the_script_cannot_see_the_result_channel(workdir: Path) -> None:
    # Open in the script: 0, 1, 2, the completion pipe (3, closed on exec) and the listing.
    code = (
        "import os, stat\n"
        "print(sorted(os.listdir('/proc/self/fd')))\n"
        "print(stat.S_ISFIFO(os.fstat(3).st_mode), os.get_inheritable(3))\n"
    )
    h = run_harness(workdir, code).header
    assert h["stdout"] == "['0', '1', '2', '3', '4']\nTrue False\n"


def test_the_completion_pipe_only_speaks_for_the_script(workdir: Path) -> None:
    """What a script writes there decides only its own result: a forged "done" ends it as
    that status (it could have exited so), garbage is ignored, and a file the script opened
    in its place gets nothing of ours."""
    forged = run_harness(workdir, "import os, time\nos.write(3, b'done 0\\n')\ntime.sleep(30)")
    assert forged.header["exit_code"] == 0 and forged.header["timed_out"] is False
    assert forged.wall_s < 5  # ended by its own message, not by the 10 s timeout
    garbage = run_harness(workdir, "import os\nos.write(3, b'nonsense')\nraise SystemExit(3)")
    assert garbage.header["exit_code"] == 3
    # A child the script forks runs on to the end of the script too: it does not speak for
    # the script, which finishes after it.
    forked = run_harness(
        workdir,
        "import os, time\nchild = os.fork()\nif child:\n    os.waitpid(child, 0)\n"
        "    time.sleep(0.5)\n    print('parent done')\nelse:\n    print('child done')",
    )
    assert forked.header["exit_code"] == 0
    assert forked.header["stdout"].splitlines() == ["child done", "parent done"]
    replaced = run_harness(
        workdir,
        "import os\nos.close(3)\nf = open('mine.txt', 'w')\nassert f.fileno() == 3\n"
        "f.write('only mine')\nf.flush()",
    )
    assert replaced.header["exit_code"] == 0
    assert replaced.files["mine.txt"] == b"only mine"


def test_preimport_is_done_before_the_request_and_failures_only_logged(workdir: Path) -> None:
    out = run_harness(
        workdir,
        "import sys\nprint('json' in sys.modules, 'csv' in sys.modules)",
        env={"PYC_PREIMPORT": "json, no_such_module_xyz"},
    )
    assert out.header["stdout"] == "True False\n"
    assert "pre-import of no_such_module_xyz failed" in out.diagnostics


def test_the_script_runs_with_the_collector_on_and_the_preimports_frozen(
    workdir: Path,
) -> None:
    # The harness pauses the collector for the pre-import only: the script's own cycles are
    # collected, and what the harness imported is in the permanent generation.
    code = (
        "import gc\n"
        "class Node:\n    pass\n"
        "a, b = Node(), Node()\na.other, b.other = b, a\ndel a, b\n"
        "print(gc.isenabled(), gc.get_freeze_count() > 1000, gc.collect() >= 2)"
    )
    out = run_harness(workdir, code, env={"PYC_PREIMPORT": "json, decimal"})
    assert out.header["stdout"] == "True True True\n", out.diagnostics


def test_default_preimport_makes_pandas_warm(workdir: Path) -> None:
    # imported before the script's first line ran, i.e. before the request was read
    code = "import sys\nprint('pandas' in sys.modules, 'numpy' in sys.modules)\n"
    frame = encode_header({"code": code, "files": [], "timeout_s": 20, "limits": DEFAULT_LIMITS})
    env = {k: v for k, v in os.environ.items() if k != "PYC_PREIMPORT"}  # the default applies
    proc = subprocess.run(
        [sys.executable, "-s", "-E", str(HARNESS), str(workdir)],
        input=frame,
        capture_output=True,
        env=env,
        timeout=60,
        check=True,
    )
    assert read_header(io.BytesIO(proc.stdout).read)["stdout"] == "True True\n"


def start_ready_harness(workdir: Path) -> subprocess.Popen[bytes]:
    """A harness as a pooled sandbox holds it: started, its ready frame already read."""
    proc = subprocess.Popen(
        [sys.executable, "-s", "-E", str(HARNESS), str(workdir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={"PYC_PREIMPORT": "", "PYC_HELLO": "1", "PATH": os.environ["PATH"]},
    )
    assert proc.stdout is not None
    assert read_header(proc.stdout.read)["ready"] is True
    return proc


def test_the_script_process_is_forked_before_the_request_arrives(workdir: Path) -> None:
    """The fork of a pandas-sized interpreter is paid while the sandbox waits: the process
    that runs the script already existed when the request was sent, half a second later."""
    code = (
        "import os, time\n"
        "ticks = int(open('/proc/self/stat').read().rsplit(')', 1)[1].split()[19])\n"
        "up = float(open('/proc/uptime').read().split()[0])\n"
        "print(round(up - ticks / os.sysconf('SC_CLK_TCK'), 2))\n"
    )
    frame = encode_header({"code": code, "files": [], "timeout_s": 20, "limits": DEFAULT_LIMITS})
    proc = start_ready_harness(workdir)
    try:
        time.sleep(0.6)
        out, _ = proc.communicate(frame, timeout=30)
    finally:
        proc.kill()
        proc.wait()
    header = read_header(io.BytesIO(out).read)
    assert header["exit_code"] == 0, header
    age = float(header["stdout"])
    assert age >= 0.5, f"the script's process is {age} s old: forked on request"


def test_an_unused_prefork_exits_with_the_harness(workdir: Path) -> None:
    """A request that never comes (or cannot be read) leaves no waiting child behind."""
    proc = start_ready_harness(workdir)
    try:
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        assert len(children) == 1  # the pre-forked script process, waiting
        _, err = proc.communicate(b"NOPE" + b"\x00" * 20, timeout=30)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 2 and b"unreadable request" in err
    assert not Path(f"/proc/{children[0]}").exists()


def test_garbage_request_exits_without_a_frame(workdir: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-s", "-E", str(HARNESS), str(workdir)],
        input=b"NOPE" + b"\x00" * 20,
        capture_output=True,
        env={"PYC_PREIMPORT": ""},
        timeout=30,
        check=False,
    )
    assert proc.returncode == 2 and proc.stdout == b""
    assert b"unreadable request" in proc.stderr and b"bad frame magic" in proc.stderr
    assert MAGIC not in proc.stdout


def test_workdir_defaults_to_the_current_directory(workdir: Path) -> None:
    frame = encode_header(
        {
            "code": "open('made.txt', 'w').write('x')",
            "files": [],
            "timeout_s": 5,
            "limits": DEFAULT_LIMITS,
        }
    )
    proc = subprocess.run(
        [sys.executable, "-s", "-E", str(HARNESS)],
        input=frame,
        capture_output=True,
        cwd=workdir,
        env={"PYC_PREIMPORT": ""},
        timeout=30,
        check=True,
    )
    header = read_header(io.BytesIO(proc.stdout).read)
    assert [f["name"] for f in header["files"]] == ["made.txt"]
    assert (workdir / "made.txt").exists()


def test_the_script_is_the_preferred_oom_victim(workdir: Path) -> None:
    h = run_harness(workdir, "print(open('/proc/self/oom_score_adj').read().strip())").header
    assert h["stdout"] == "1000\n"


def test_a_script_that_leaves_its_process_group_still_times_out(workdir: Path) -> None:
    code = (
        "import os, subprocess, sys, time\n"
        "helper = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'], process_group=0)\n"
        "os.setpgid(0, helper.pid)\n"  # join the helper's group, leaving our own
        "print(os.getpgid(0) == helper.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    out = run_harness(workdir, code, timeout_s=1.5)
    assert out.header["timed_out"] is True and out.wall_s < 10
    assert out.header["stdout"] == "True\n"


def test_an_input_that_cannot_be_written_is_reported_after_reading_everything(
    workdir: Path,
) -> None:
    files = {"big.bin": b"x" * 50_000, "after.txt": b"later"}
    frame = encode_header(
        {
            "code": "print('ran')",
            "files": [{"name": n, "size": len(b)} for n, b in files.items()],
            "timeout_s": 5,
            "limits": DEFAULT_LIMITS,
        }
    ) + b"".join(files.values())
    proc = subprocess.run(
        [sys.executable, "-s", "-E", str(HARNESS), str(workdir)],
        input=frame,
        capture_output=True,
        env={"PYC_PREIMPORT": ""},
        # the harness itself may not write files over 10 kB: the input fails with EFBIG
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (10_000, 10_000)),
        timeout=30,
        check=True,
    )
    header = read_header(io.BytesIO(proc.stdout).read)
    assert header["stdout"] == "" and header["exit_code"] is None
    assert "writing input 'big.bin': File too large" in header["error"]


def test_multiprocessing_fork_and_spawn_work(workdir: Path) -> None:
    code = (
        "import multiprocessing as mp\n"
        "def square(x):\n"
        "    return x * x\n"
        "if __name__ == '__main__':\n"
        "    for method in ('fork', 'spawn'):\n"
        "        with mp.get_context(method).Pool(2) as pool:\n"
        "            print(method, pool.map(square, range(4)))\n"
    )
    out = run_harness(workdir, code, timeout_s=60)
    assert out.header["stdout"] == "fork [0, 1, 4, 9]\nspawn [0, 1, 4, 9]\n", out.header["stderr"]
    assert out.files == {}  # script.py is on disk for spawn, but it is no artifact
    assert (workdir / "script.py").read_text() == code


def test_many_files_are_counted_not_listed(workdir: Path) -> None:
    code = "for i in range(300):\n    open(f'f{i:04d}.txt', 'w').write('x')\n"
    out = run_harness(workdir, code, max_artifacts=10)
    h = out.header
    assert len(h["files"]) == 10
    assert len(h["skipped"]) == 50 and h["skipped_more"] == 240


def test_unportable_names_are_skipped_and_the_rest_returned(workdir: Path) -> None:
    code = (
        "import os\n"
        "open('good.csv', 'w').write('a')\n"
        "open('a\\\\b.csv', 'w').write('b')\n"
        "open(os.fsdecode(b'r\\xe9sum\\xe9.txt'), 'w').write('c')\n"
    )
    out = run_harness(workdir, code)
    assert out.header["exit_code"] == 0, out.header
    assert set(out.files) == {"good.csv"}
    reasons = sorted(s["reason"] for s in out.header["skipped"])
    assert reasons == ["its name contains a backslash", "its name is not valid UTF-8"]


def test_sigint_to_the_harness_does_not_lose_the_result(workdir: Path) -> None:
    code = "import os, signal\nos.kill(os.getppid(), signal.SIGINT)\nprint('still here')\n"
    out = run_harness(workdir, code)
    assert out.header["exit_code"] == 0 and out.header["stdout"] == "still here\n"
