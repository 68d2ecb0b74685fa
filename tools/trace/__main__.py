"""``python -m tools.trace``: see ``python -m tools.trace --help`` and docs/runbook.md."""

import sys

from tools.robust import run
from tools.trace.cli import main

if __name__ == "__main__":
    sys.exit(run(main))  # | head: exit quietly (141), no BrokenPipeError traceback
