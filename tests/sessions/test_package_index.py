"""install_package against a real package index: the gateway's pip talks to a PEP 503 "simple"
index served over HTTP by a local server, as it would to PyPI or an operator's mirror. Each
refusal the docs promise is checked with its status and message: an unknown name, a project
that only has a source distribution, and wheels over the size cap; and a wheel fetched from
the index lands in the wheelhouse, so the next install works offline."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import os
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.sessions.conftest import MakeClient
from tests.sessions.test_sessions import cell, open_session

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


def _wheel(directory: Path, project: str, payload: bytes = b"") -> Path:
    module = project.replace("-", "_")
    info = f"{module}-1.0.0.dist-info"
    path = directory / f"{module}-1.0.0-py3-none-any.whl"
    files = {
        f"{module}/__init__.py": b"VALUE = 'from the index'\n",
        f"{module}/blob.bin": payload,
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {project}\nVersion: 1.0.0\n".encode(),
        f"{info}/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as wheel:
        for name, data in files.items():
            wheel.writestr(name, data)
        wheel.writestr(f"{info}/RECORD", "".join(f"{n},,\n" for n in files) + f"{info}/RECORD,,\n")
    return path


def _sdist(directory: Path, project: str) -> Path:
    module = project.replace("-", "_")
    path = directory / f"{module}-1.0.tar.gz"
    setup = f"from setuptools import setup\nsetup(name={project!r}, version='1.0')\n".encode()
    with tarfile.open(path, "w:gz") as tar:
        for name, data in ((f"{module}-1.0/setup.py", setup),):
            member = tarfile.TarInfo(name)
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    return path


def _publish(root: Path, project: str, dist: Path) -> None:
    """PEP 503: /simple/<project>/ lists the project's files, with their sha256."""
    page = root / "simple" / project
    page.mkdir(parents=True)
    (page / dist.name).write_bytes(dist.read_bytes())
    digest = hashlib.sha256(dist.read_bytes()).hexdigest()
    (page / "index.html").write_text(
        f'<!DOCTYPE html><html><body><a href="{dist.name}#sha256={digest}">{dist.name}</a>'
        "</body></html>\n"
    )


@pytest.fixture(scope="module")
def index_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("index")
    build = tmp_path_factory.mktemp("dists")
    _publish(root, "pyc-from-index", _wheel(build, "pyc-from-index"))
    _publish(root, "pyc-sdist-only", _sdist(build, "pyc-sdist-only"))
    _publish(root, "pyc-big-pkg", _wheel(build, "pyc-big-pkg", os.urandom(3 * 1024 * 1024)))
    handler = functools.partial(QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/simple"
    finally:
        server.shutdown()
        server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def client(make_client: MakeClient, index_url: str) -> TestClient:
    return make_client(package_index_url=index_url, package_max_mb=1)


def install(client: TestClient, sid: str, name: str) -> tuple[int, str]:
    answer = client.post(f"/v1/sessions/{sid}/packages", json={"name": name})
    return answer.status_code, answer.json().get("message", "")


def test_refusals_from_the_index_name_their_reason(client: TestClient) -> None:
    sid = open_session(client)
    status, message = install(client, sid, "pyc-no-such-pkg")
    assert status == 404, message
    assert "unknown package 'pyc-no-such-pkg'" in message

    status, message = install(client, sid, "pyc-sdist-only")
    assert status == 422, message
    assert "no binary wheel" in message and "source distributions are refused" in message

    status, message = install(client, sid, "pyc-big-pkg")
    assert status == 422, message
    assert "over the limit of 1 MB" in message

    # None of them reached the session; it still works and imports none of them.
    probe = (
        "try:\n    import pyc_big_pkg\n    r = 'there'\nexcept ImportError:\n    r = 'absent'\nr"
    )
    assert cell(client, sid, probe)["value"] == "'absent'"
    assert client.get(f"/v1/sessions/{sid}/environment").json()["installed"] == {}


def test_a_wheel_from_the_index_is_cached_for_offline_installs(
    make_client: MakeClient, index_url: str
) -> None:
    online = make_client(package_index_url=index_url)
    sid = open_session(online)
    assert install(online, sid, "pyc-from-index") == (200, "")
    assert cell(online, sid, "import pyc_from_index\npyc_from_index.VALUE")["value"] == (
        "'from the index'"
    )
    settings = online.app.state.settings  # type: ignore[attr-defined]
    assert (settings.wheelhouse / "pyc_from_index-1.0.0-py3-none-any.whl").is_file()

    # The same gateway with an index nobody answers at: the wheelhouse serves the install.
    offline = make_client(package_index_url="http://127.0.0.1:9/simple")
    sid = open_session(offline)
    assert install(offline, sid, "pyc-from-index") == (200, "")
    assert cell(offline, sid, "import pyc_from_index\npyc_from_index.VALUE")["value"] == (
        "'from the index'"
    )
    status, message = install(offline, sid, "pyc-sdist-only")
    assert status == 404 and "cannot be reached" in message, message
