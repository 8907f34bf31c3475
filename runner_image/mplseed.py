"""Seeds matplotlib's prebuilt font cache into a writable ``MPLCONFIGDIR`` at interpreter start.

In the runner image the root filesystem is read-only and ``/tmp`` is an empty tmpfs. matplotlib
refuses a config dir it cannot write (it warns, makes a temporary one and rescans the fonts),
so the image sets ``MPLCONFIGDIR=/tmp/matplotlib`` and a ``.pth`` file in the venv calls
``seed()``, which copies the cache built during the image build there on the first start of an
interpreter in the container. Standard library only, never raises, costs one ``stat`` when
there is nothing to do. The Dockerfile installs this file as ``python_coder_mplseed``.
"""

from __future__ import annotations

import os

SEED_DIR = "/opt/python-coder/mplconfig"


def seed(seed_dir: str = SEED_DIR, target: str | None = None) -> bool:
    """Copy ``seed_dir`` to ``target`` (default ``$MPLCONFIGDIR``) unless it exists already."""
    target = os.environ.get("MPLCONFIGDIR") if target is None else target
    if not target or os.path.isdir(target) or not os.path.isdir(seed_dir):
        return False
    import shutil

    # Copy beside the target, then rename: a concurrent interpreter sees all or nothing.
    partial = f"{target}.{os.getpid()}.partial"
    try:
        shutil.copytree(seed_dir, partial)
        os.rename(partial, target)
    except OSError:
        shutil.rmtree(partial, ignore_errors=True)
        return False
    return True
