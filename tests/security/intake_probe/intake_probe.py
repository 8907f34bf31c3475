"""Stands in for an exploited parser: what can code running inside an intake worker reach?

Started by tests/security/test_intake_sandbox.py through ``WorkerSandbox.command``, the very
command the worker pool uses, so it runs after ``files.confine`` like ``files.worker`` does.
argv: MEMORY_BYTES SPEC_JSON. Prints one JSON object of findings on stdout.
"""

from __future__ import annotations

import ctypes
import json
import os
import socket
import sys
import time
from typing import Any


def _try(fn: Any) -> str:
    try:
        result = fn()
    except OSError as exc:
        return f"errno {exc.errno}"
    except MemoryError:
        return "MemoryError"
    return f"ok {result!r}"[:200]


def _read(path: str) -> Any:
    with open(path, "rb") as fh:
        return fh.read(4096)


def _connect_unix(path: str) -> str:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
    finally:
        s.close()
    return "connected"


def main() -> None:
    spec = json.loads(sys.argv[2])
    out: dict[str, Any] = {"uid": os.getuid(), "euid": os.geteuid(), "groups": os.getgroups()}
    # A non-dumpable process's /proc/self/environ is root's: read what exec handed over.
    out["proc_environ"] = _try(lambda: spec["secret"].encode() in _read("/proc/self/environ"))
    out["env_keys"] = sorted(os.environ)
    out["secret_in_environ"] = any(spec["secret"].encode() in v for v in os.environb.values())
    status = _read("/proc/self/status").decode()
    out["status"] = {
        line.split(":")[0]: line.split(":", 1)[1].strip()
        for line in status.splitlines()
        if line.startswith(("Seccomp", "NoNewPrivs", "CapEff"))
    }
    libc = ctypes.CDLL(None, use_errno=True)
    out["dumpable"] = libc.prctl(3, 0, 0, 0, 0)  # PR_GET_DUMPABLE
    families = {"inet": socket.AF_INET, "inet6": socket.AF_INET6, "unix": socket.AF_UNIX,
                "netlink": socket.AF_NETLINK, "packet": socket.AF_PACKET}  # fmt: skip
    out["sockets"] = {
        name: _try(lambda f=fam: socket.socket(f, socket.SOCK_DGRAM).close())
        for name, fam in families.items()
    }
    out["socketpair"] = _try(lambda: [s.close() for s in socket.socketpair()])
    out["docker_socket"] = {
        "stat": _try(lambda: os.stat(spec["docker_socket"]).st_mode),
        "open": _try(lambda: os.close(os.open(spec["docker_socket"], os.O_RDWR))),
        "connect": _try(lambda: _connect_unix(spec["docker_socket"])),
    }
    out["files"] = {path: _try(lambda p=path: _read(p)) for path in spec["files"]}
    gw = spec["gateway_pid"]
    out["gateway_environ"] = _try(lambda: spec["secret"].encode() in _read(f"/proc/{gw}/environ"))
    out["gateway_mem"] = _try(lambda: os.close(os.open(f"/proc/{gw}/mem", os.O_RDONLY)))
    out["signal_gateway"] = _try(lambda: os.kill(gw, 0))
    out["fds"] = {n: _try(lambda n=n: os.readlink(f"/proc/self/fd/{n}"))
                  for n in os.listdir("/proc/self/fd")}  # fmt: skip
    if spec.get("allocate_mb"):
        out["allocate"] = _try(lambda: len(bytearray(spec["allocate_mb"] * 2**20)))
    print(json.dumps(out), flush=True)
    if spec.get("sleep_s"):
        time.sleep(spec["sleep_s"])


if __name__ == "__main__":
    main()
