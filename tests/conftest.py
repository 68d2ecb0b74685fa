"""Settings every test shares.

Hypothesis: no per-example deadline. Its default (200 ms) turns a busy machine into a failed property test: the
DLQ masking property failed that way once in a full run on this 2-core VM, and passed 20,000 examples on its own.
Speed is measured in ``bench/``, never asserted in a test. Under ``CI=true`` the examples are also derandomized,
so a CI failure can be reproduced by running the same commit again.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("default", deadline=None)
settings.register_profile("ci", deadline=None, derandomize=True, print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") == "true" else "default")
