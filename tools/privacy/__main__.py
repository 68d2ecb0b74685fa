"""``python -m tools.privacy``: see ``python -m tools.privacy --help`` and docs/privacy.md."""

import sys

from tools.privacy.cli import main

if __name__ == "__main__":
    sys.exit(main())
