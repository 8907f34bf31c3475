"""The gateway's request frame for the harness (``runner_image.protocol``), for every engine.

Engines differ only in which limits the harness must enforce itself: the docker engine has
cgroups for memory and tasks, the local engine relies on ``RLIMIT_AS`` and ``RLIMIT_NPROC``.
"""

from __future__ import annotations

from runner_image.protocol import encode_header
from service.executors.base import RunRequest


def encode_request(request: RunRequest, *, memory_bytes: int | None, nproc: int | None) -> bytes:
    """The frame header for ``request``; the input files' bytes follow it in order.

    ``memory_bytes``/``nproc``: the rlimits the harness sets on the script, None for none.
    """
    wire = request.limits.to_wire()
    wire["memory_bytes"] = memory_bytes
    wire["nproc"] = nproc
    header = {
        "code": request.code,
        "files": [{"name": f.name, "size": f.size} for f in request.inputs],
        "timeout_s": request.limits.timeout_s,
        "limits": wire,
    }
    if request.on_output is not None:
        header["stream"] = True  # chunk frames come before the result (someone listens)
    return encode_header(header)
