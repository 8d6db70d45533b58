"""``python -m ssdlib.cli``: the ``ssdlib`` command without its console script."""

import sys

from ssdlib.cli import main

sys.exit(main())
