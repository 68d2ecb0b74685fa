"""``python -m tools.dlq``: see ``python -m tools.dlq --help`` and docs/runbook.md."""

import sys

from tools.dlq.cli import main
from tools.robust import run

if __name__ == "__main__":
    sys.exit(run(main))  # | head: exit quietly (141), no BrokenPipeError traceback
