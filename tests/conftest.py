"""Settings every test shares.

Hypothesis: no per-example deadline. Its default (200 ms) turns a busy machine into a failed property test: the
DLQ masking property failed that way once in a full run on this 2-core VM, and passed 20,000 examples on its own.
Speed is measured in ``bench/``, never asserted in a test. Under ``CI=true`` the examples are also derandomized,
so a CI failure can be reproduced by running the same commit again.

Node.js: the repo's own Node.js 22 (``node_modules/.bin/node``, from package.json) goes first on the PATH, as
``make`` puts it, so jsii under the CDK app, the CDK CLI and the Node clients run on it when pytest is started
directly too.
"""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import settings

_NODE_BIN = Path(__file__).resolve().parents[1] / "node_modules" / ".bin"
if (_NODE_BIN / "node").exists() and not os.environ.get("PATH", "").startswith(str(_NODE_BIN)):
    os.environ["PATH"] = f"{_NODE_BIN}{os.pathsep}{os.environ.get('PATH', '')}"

settings.register_profile("default", deadline=None)
settings.register_profile("ci", deadline=None, derandomize=True, print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") == "true" else "default")
