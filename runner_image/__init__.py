"""The runner image: its Dockerfile, pinned requirements and the in-container harness.

``protocol`` and ``harness`` are standard-library only: they are copied into the image as is.
"""

from pathlib import Path

RUNNER_DIR = Path(__file__).resolve().parent
