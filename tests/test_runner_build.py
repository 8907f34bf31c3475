"""The runner image's build helpers, and (with Docker) what the built image promises."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from runner_image import mplseed
from service import runner_build as rb
from service.settings import get_settings

SEED_PACKAGES = [
    "numpy", "pandas", "scipy", "scikit-learn", "sympy", "statsmodels", "matplotlib", "seaborn",
    "plotly", "openpyxl", "xlrd", "xlwt", "python-docx", "PyPDF2", "pdfplumber", "pypdf",
    "pyarrow", "h5py", "tables", "netCDF4", "xarray", "PyYAML", "lxml", "beautifulsoup4",
    "chardet", "charset-normalizer", "jsonschema", "cerberus", "Pillow", "imageio", "nltk",
    "textblob", "python-dateutil",
]  # fmt: skip

IMPORT_LINE = (
    "import pandas, numpy, scipy, sklearn, matplotlib.pyplot as plt, seaborn, statsmodels.api,"
    " pyarrow, h5py, tables, netCDF4, xarray, docx, PyPDF2, pdfplumber, pypdf, openpyxl, xlrd,"
    " xlwt, yaml, lxml, bs4, chardet, charset_normalizer, jsonschema, cerberus, PIL, imageio,"
    " nltk, textblob, dateutil, plotly, sympy; plt.plot([1,2]); plt.savefig('/work/x.png');"
    " print('ok')"
)


def test_parse_requirements_accepts_exact_pins_and_comments() -> None:
    pins = rb.parse_requirements("# lock\n\nPyYAML==6.0.3  # yaml\npdfminer.six == 20260107\n")
    assert [(p.name, p.version, p.key) for p in pins] == [
        ("PyYAML", "6.0.3", "pyyaml"),
        ("pdfminer.six", "20260107", "pdfminer-six"),
    ]


@pytest.mark.parametrize(
    "line", ["numpy>=2", "numpy", "-e .", "https://example.org/x.whl", "numpy==2.0; os_name=='nt'"]
)
def test_parse_requirements_rejects_anything_but_exact_pins(line: str) -> None:
    with pytest.raises(ValueError, match="line 2"):
        rb.parse_requirements(f"scipy==1.0\n{line}\n")


def test_parse_requirements_rejects_a_package_pinned_twice_under_two_spellings() -> None:
    with pytest.raises(ValueError, match="pinned twice"):
        rb.parse_requirements("charset-normalizer==3.5.2\ncharset_normalizer==3.5.1\n")


def test_the_lock_pins_every_seed_package() -> None:
    pins = rb.read_requirements(rb.RUNNER_SOURCE_DIR / "requirements.txt")
    keys = {p.key for p in pins}
    assert {rb.canonical_name(n) for n in SEED_PACKAGES} <= keys
    assert len(pins) > len(SEED_PACKAGES)  # the transitive section is pinned too


def test_wheel_pin_reads_name_and_version_from_real_wheel_names() -> None:
    assert rb.wheel_pin(
        "numpy-2.4.6-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl"
    ) == (rb.Pin("numpy", "2.4.6"))
    assert rb.wheel_pin("pdfminer_six-20260107-py3-none-any.whl") == rb.Pin(
        "pdfminer_six", "20260107"
    )
    assert rb.wheel_pin("pandas-3.1.1.tar.gz") is None


def test_wheels_for_finds_only_the_pinned_versions(tmp_path: Path) -> None:
    for name in (
        "PyYAML-6.0.3-cp311-cp311-manylinux_2_17_x86_64.whl",
        "pyyaml-6.0.2-cp311-cp311-manylinux_2_17_x86_64.whl",  # stale version, ignored
        "pdfminer_six-20260107-py3-none-any.whl",
        "notes.txt",
    ):
        (tmp_path / name).write_bytes(b"x")
    pins = rb.parse_requirements("pyyaml==6.0.3\npdfminer.six==20260107\nxlwt==1.3.0\n")
    found = {str(p): [f.name for f in files] for p, files in rb.wheels_for(pins, tmp_path).items()}
    assert found == {
        "pyyaml==6.0.3": ["PyYAML-6.0.3-cp311-cp311-manylinux_2_17_x86_64.whl"],
        "pdfminer.six==20260107": ["pdfminer_six-20260107-py3-none-any.whl"],
        "xlwt==1.3.0": [],
    }


def test_platform_tags_stop_at_the_base_images_glibc() -> None:
    tags = rb.manylinux_platforms()
    assert "manylinux_2_28_x86_64" in tags and "manylinux_2_36_x86_64" in tags
    assert "manylinux2014_x86_64" in tags and "manylinux_2_17_x86_64" in tags
    assert "manylinux_2_37_x86_64" not in tags


def test_wheelhouse_download_args_target_cpython_311_binaries(tmp_path: Path) -> None:
    req, wh = tmp_path / "requirements.txt", tmp_path / "wh"
    args = rb.wheelhouse_download_args(req, wh, python="/usr/bin/python3")
    assert args[:4] == ["/usr/bin/python3", "-m", "pip", "download"]
    joined = " ".join(args)
    assert "--only-binary=:all: --python-version 3.11 --implementation cp" in joined
    assert "--abi cp311" in joined
    assert args[-4:] == ["-r", str(req), "-d", str(wh)]
    assert args.count("--platform") == len(rb.manylinux_platforms())


def test_local_install_is_offline_only_with_a_wheelhouse(tmp_path: Path) -> None:
    py, req = tmp_path / "bin/python", tmp_path / "r.txt"
    assert "--no-index" not in rb.local_install_args(py, req, None)
    offline = rb.local_install_args(py, req, tmp_path / "wh")
    assert offline[offline.index("--find-links") + 1] == str(tmp_path / "wh")
    assert "--no-index" in offline and "--only-binary=:all:" in offline


@pytest.fixture
def sources(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    for name in rb.IMAGE_SOURCES:
        shutil.copy(rb.RUNNER_SOURCE_DIR / name, src / name)
    return src


def test_source_hash_follows_every_image_source(sources: Path) -> None:
    first = rb.runner_source_hash(sources)
    assert first == rb.runner_source_hash(sources) and len(first) == 64
    seen = {first}
    for name in rb.IMAGE_SOURCES:
        with (sources / name).open("a") as f:
            f.write("\n# changed\n")
        seen.add(rb.runner_source_hash(sources))
    assert len(seen) == len(rb.IMAGE_SOURCES) + 1


def test_context_holds_the_sources_and_the_wheels(sources: Path, tmp_path: Path) -> None:
    wheel = tmp_path / "xlwt-1.3.0-py2.py3-none-any.whl"
    wheel.write_bytes(b"wheel bytes")
    with (tmp_path / "ctx.tar").open("w+b") as f:
        rb.write_context(f, sources, [wheel])
        f.seek(0)
        with tarfile.open(fileobj=f) as tar:
            names = tar.getnames()
            member = tar.extractfile("wheels/" + wheel.name)
            assert member is not None and member.read() == b"wheel bytes"
    assert sorted(names) == sorted([*rb.IMAGE_SOURCES, "wheels/" + wheel.name])


def test_context_refuses_a_missing_source(sources: Path, tmp_path: Path) -> None:
    (sources / "harness.py").unlink()
    with (
        (tmp_path / "ctx.tar").open("w+b") as f,
        pytest.raises(rb.RunnerBuildError, match=r"harness\.py"),
    ):
        rb.write_context(f, sources)


def test_mplseed_copies_the_cache_once(tmp_path: Path) -> None:
    seed = tmp_path / "seed"
    seed.mkdir()
    (seed / "fontlist-v390.json").write_text("{}")
    target = tmp_path / "tmp" / "matplotlib"
    assert mplseed.seed(str(seed), str(target)) is True
    assert (target / "fontlist-v390.json").read_text() == "{}"
    assert mplseed.seed(str(seed), str(target)) is False  # already there
    assert mplseed.seed(str(tmp_path / "absent"), str(tmp_path / "other")) is False
    assert not (tmp_path / "other").exists()
    assert [p.name for p in target.parent.iterdir()] == ["matplotlib"]  # no partial copies left


def test_local_venv_with_a_current_stamp_is_not_rebuilt(tmp_path: Path) -> None:
    req = tmp_path / "requirements.txt"
    req.write_text("xlwt==1.3.0\n")
    target = tmp_path / "venv"
    (target / "bin").mkdir(parents=True)
    (target / "bin" / "python").write_text("")
    import sys

    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    (target / rb.LOCAL_STAMP).write_text(f"{rb.requirements_hash(req)} {version}\n")
    assert rb.build_local_venv(target, req, None, rb.BuildOutput(quiet=True)) is False


def _args(**kw: object) -> argparse.Namespace:
    base: dict[str, object] = dict(
        image=None, offline=False, bootstrap_base=False, base_image=None, local=False,
        wheelhouse=None, quiet=True, force=False,
    )  # fmt: skip
    base.update(kw)
    return argparse.Namespace(**base)


def test_unreachable_engine_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-such.sock")
    assert rb.build_runner_command(_args()) == 1
    err = capsys.readouterr().err
    assert "Docker engine unreachable" in err and "Traceback" not in err


# --- the built image (needs Docker) -------------------------------------------------------------


def _docker(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.mark.docker
def test_image_imports_everything_on_a_read_only_root_without_warnings() -> None:
    proc = _docker(
        "run", "--rm", "--network", "none", "--read-only", "--tmpfs", "/work", "--tmpfs", "/tmp",
        "--user", "10001", "--entrypoint", "/opt/venv/bin/python", get_settings().image,
        "-c", IMPORT_LINE,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
    assert proc.stderr == ""


@pytest.mark.docker
def test_image_labels_user_and_package_list() -> None:
    image = get_settings().image
    proc = _docker("image", "inspect", image)
    assert proc.returncode == 0, proc.stderr
    config = json.loads(proc.stdout)[0]["Config"]
    assert config["Labels"]["io.python-coder.runner"] == "1"
    assert len(config["Labels"].get(rb.SOURCE_HASH_LABEL, "")) == 64, "build with build-runner"
    assert config["User"] == "10001:10001" and config["WorkingDir"] == "/work"
    proc = _docker(
        "run",
        "--rm",
        "--network",
        "none",
        "--entrypoint",
        "cat",
        image,
        "/opt/python-coder/packages.json",
    )
    assert proc.returncode == 0, proc.stderr
    packages = {rb.canonical_name(p["name"]): p["version"] for p in json.loads(proc.stdout)}
    pins = rb.read_requirements(rb.RUNNER_SOURCE_DIR / "requirements.txt")
    assert {p.key: p.version for p in pins}.items() <= packages.items()
    assert "pip" not in packages
