"""The attach connection to a runner container: docker's multiplexed stream, both ways.

stdin carries the request frame and the input files (``Sender``, its own thread); stdout the
ready frame, then the result frame and the artifacts; stderr the harness's diagnostics
(``Demux`` keeps a capped copy). No ``docker exec``, no archive copies.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
import time
from collections.abc import Callable

import docker

from runner_image.protocol import ProtocolError, copy_exact
from service.errors import ExecutorError
from service.executors.base import InputFile

# Time allowed on top of the script's timeout: interpreter start, collection.
GRACE_S = 10.0
MAX_DIAGNOSTICS = 64 * 1024

_STREAM_HEADER = struct.Struct(">BxxxI")


class StreamTimeout(Exception):
    """The container kept the stream open past the deadline."""


class Demux:
    """Reads docker's multiplexed attach stream: stdout on demand, stderr kept (capped)."""

    def __init__(self, sock: socket.socket, deadline: Callable[[], float]) -> None:
        self.sock = sock
        self.deadline = deadline  # asked again before every read: it moves once sending ends
        self.pending = bytearray()  # stdout bytes read but not yet consumed
        self.diagnostics = bytearray()
        self.diagnostics_truncated = False
        self.eof = False

    def _recv_exact(self, n: int) -> bytes | None:
        buf = bytearray()
        while len(buf) < n:
            remaining = self.deadline() - time.monotonic()
            if remaining <= 0:
                raise StreamTimeout
            # Short slices, so a deadline that moves (sending ended) is noticed.
            self.sock.settimeout(min(remaining, 0.5))
            try:
                chunk = self.sock.recv(n - len(buf))
            except TimeoutError:
                continue
            if not chunk:
                if buf:
                    raise ProtocolError("attach stream ended inside a frame")
                return None
            buf += chunk
        return bytes(buf)

    def _next_stdout_frame(self) -> bool:
        """Read frames until one carries stdout; False at end of stream."""
        while not self.eof:
            header = self._recv_exact(_STREAM_HEADER.size)
            if header is None:
                self.eof = True
                return False
            stream, size = _STREAM_HEADER.unpack(header)
            body = self._recv_exact(size) if size else b""
            if body is None:
                raise ProtocolError("attach stream ended inside a frame")
            if stream == 1:
                self.pending += body
                return True
            if stream == 2:
                room = MAX_DIAGNOSTICS - len(self.diagnostics)
                self.diagnostics += body[: max(room, 0)]
                self.diagnostics_truncated |= len(body) > room
        return False

    def read_stdout(self, n: int) -> bytes:
        """Up to ``n`` stdout bytes; ``b""`` only at the end of the stream."""
        while not self.pending:
            if not self._next_stdout_frame():
                return b""
        chunk = bytes(self.pending[:n])
        del self.pending[:n]
        return chunk

    def drain(self) -> None:
        """Read to the end so stderr diagnostics are complete (stdout past the frame is junk)."""
        while self._next_stdout_frame():
            self.pending.clear()

    def diagnostics_text(self) -> str:
        return bytes(self.diagnostics).decode("utf-8", errors="replace")


class Attachment:
    """The hijacked attach connection: the raw socket plus the HTTP response that owns it.

    ``APIClient.attach_socket`` hands out only the socket, and closing that under the response
    makes the response's finalizer raise later. Closing the response first, then the socket,
    leaves neither an fd nor an unraisable exception behind.
    """

    def __init__(self, client: docker.APIClient, container_id: str) -> None:
        self.response = client.post(
            client._url("/containers/{0}/attach", container_id),
            None,
            params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1},
            stream=True,
            headers={"Connection": "Upgrade", "Upgrade": "tcp"},
        )
        client._raise_for_status(self.response)
        raw = self.response.raw._fp.fp.raw  # socket.SocketIO under http.client's reader
        sock = getattr(raw, "_sock", None)
        if not isinstance(sock, socket.socket):
            self.response.close()
            raise ExecutorError(f"unsupported attach transport {type(raw).__name__}")
        self.sock = sock

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.response.close()
        with contextlib.suppress(OSError):
            self.sock.close()


class Sender(threading.Thread):
    """Writes the request frame and the input files, then half-closes stdin.

    It runs beside the reader: a harness that stops reading early (a bad name, a full work
    dir) answers and exits, and the daemon then stops taking stdin; writing and reading in
    one thread would wait on each other until the deadline. It writes through its own socket
    object (same connection) so its timeouts do not disturb the reader's.
    """

    def __init__(
        self, sock: socket.socket, header: bytes, inputs: tuple[InputFile, ...], deadline: float
    ) -> None:
        super().__init__(name="pyc-docker-send", daemon=True)
        self.sock = sock.dup()
        self.header = header
        self.inputs = inputs
        self.deadline = deadline
        self.stopping = threading.Event()
        self.error: BaseException | None = None
        self.completed = False
        self.finished_at: float | None = None  # monotonic time the sending ended, either way

    def _write(self, data: bytes) -> None:
        if self.stopping.is_set():
            raise InterruptedError("the runner has answered")
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("sending the request took too long")
        self.sock.settimeout(remaining)
        self.sock.sendall(data)

    def run(self) -> None:
        try:
            self._write(self.header)
            for item in self.inputs:
                with item.path.open("rb") as f:
                    copy_exact(f.read, self._write, item.size)
            self.completed = True
        except BaseException as exc:  # reported by finish(); the thread must not die loudly
            self.error = exc
        finally:
            # EOF for the harness, also after a failure, so it never waits for more bytes.
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_WR)
            self.finished_at = time.monotonic()

    def finish(self) -> None:
        """Stop sending (the answer is in) and release the thread and its socket."""
        self.stopping.set()
        self.join(0.5)
        if self.is_alive():  # blocked in sendall on a runner that stopped reading
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)
            self.join(GRACE_S)
        self.sock.close()


def peer_closed(sock: socket.socket) -> bool:
    """Has the container ended its side of the stream? (No engine API call.)"""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        if not readable:
            return False
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True
