"""``python -m tools.privacy``: see ``python -m tools.privacy --help`` and docs/privacy.md."""

import sys

from tools.privacy.cli import main
from tools.robust import run

if __name__ == "__main__":
    sys.exit(run(main))  # | head: exit quietly (141), no BrokenPipeError traceback
