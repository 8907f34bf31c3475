"""``python -m service.cli``: the same command as ``python-coder``."""

import sys

from service.cli import main

sys.exit(main())
