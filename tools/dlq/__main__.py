"""``python -m tools.dlq``: see ``python -m tools.dlq --help`` and docs/runbook.md."""

import sys

from tools.dlq.cli import main

if __name__ == "__main__":
    sys.exit(main())
