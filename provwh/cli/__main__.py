"""``python -m provwh.cli``: the ``provwh`` command."""

import sys

from provwh.cli import main

if __name__ == "__main__":
    sys.exit(main())
