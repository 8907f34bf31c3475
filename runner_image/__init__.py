"""The runner image: its Dockerfile, pinned requirements and the in-container harness.

``protocol`` and ``harness`` are standard-library only: they are copied into the image as is.
"""

from functools import cache
from pathlib import Path

RUNNER_DIR = Path(__file__).resolve().parent


@cache
def direct_packages() -> tuple[str, ...]:
    """The packages the runner offers scripts: the direct block of ``requirements.txt``."""
    names: list[str] = []
    for line in (RUNNER_DIR / "requirements.txt").read_text("utf-8").splitlines():
        if line.startswith("# --- transitive"):
            break
        line = line.split("#", 1)[0].strip()
        if line:
            names.append(line.split("==")[0].strip())
    return tuple(names)
