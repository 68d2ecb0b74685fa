"""Settings every test shares.

Hypothesis: no per-example deadline. Its default (200 ms) turns a busy machine into a failed property test: the
DLQ masking property failed that way once in a full run on this 2-core VM, and passed 20,000 examples on its own.
Speed is measured in ``bench/``, never asserted in a test. Under ``CI=true`` the examples are also derandomized,
so a CI failure can be reproduced by running the same commit again.

Node.js: the repo's own Node.js 22 (``node_modules/.bin/node``, from package.json) goes first on the PATH, as
``make`` puts it, so jsii under the CDK app, the CDK CLI and the Node clients run on it when pytest is started
directly too.

pytest-xdist (``make test`` runs ``-n auto --dist loadfile``): each test file goes whole to one worker, so a
module-scoped fixture (a local stack, the fault run, the outage run) starts once. The packages whose fixtures are
shared by several files go whole to one worker too (:class:`SharedFixtureScheduling`), so they also start once:
``tests/e2e`` (one local stack for the package, ``tests/e2e/conftest.py``) and ``tests/infra`` (the synthesized
stacks, session-scoped, ``tests/infra/conftest.py``), except their files that use none of those fixtures
(:data:`STANDALONE_FILES`), which are units of their own. The longest units are handed out first
(:data:`LONGEST_FIRST`), so the workers finish together instead of one starting the fault run last. Every stack,
server and sink listens on an ephemeral port and writes under pytest's temp directories (one base per worker), so
workers never share a port or a file.

botocore: every test process shares one cache of botocore's data files (:func:`share_botocore_data`). Each
``boto3.session.Session()`` has its own loader, which parses the service models, ``endpoints.json`` and the
partitions again (about 0.3 s of JSON per session); the integration tests and the local stack build a fresh runtime,
so a fresh session, per test. The files are the same for the whole run, so the parsed data is too.

Bytecode: the run starts by compiling the repo's packages (:func:`pytest_configure`, once, in the xdist controller),
so that no worker and no child process (the tools' CLIs, the cold-start probes, the benchmarks) compiles them from
source again when the shell sets ``PYTHONDONTWRITEBYTECODE`` (as this machine's does, and CI images often do).
"""

from __future__ import annotations

import compileall
import os
from collections import OrderedDict
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from xdist.remote import Producer
from xdist.scheduler import LoadFileScheduling
from xdist.workermanage import WorkerController

_NODE_BIN = Path(__file__).resolve().parents[1] / "node_modules" / ".bin"
if (_NODE_BIN / "node").exists() and not os.environ.get("PATH", "").startswith(str(_NODE_BIN)):
    os.environ["PATH"] = f"{_NODE_BIN}{os.pathsep}{os.environ.get('PATH', '')}"

# Nor the "input generation is slow" health check: it measures the machine, not the code (it failed a DLQ masking
# property, 1 input in 75 s, while mutmut and six other jobs shared the 2 cores).
_LOAD_BLIND = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}
settings.register_profile("default", **_LOAD_BLIND)
settings.register_profile("ci", derandomize=True, print_blob=True, **_LOAD_BLIND)
settings.load_profile("ci" if os.environ.get("CI") == "true" else "default")


def share_botocore_data() -> None:
    """Let every botocore loader with the same search paths share one cache of parsed data files.

    ``botocore.loaders.Loader`` caches what it loads per instance (``instance_cache`` over ``self._cache``), and
    every session builds its own loader. Giving the loaders of one search path the same ``_cache`` dict is what one
    long-lived session does already: same files, same parsed models, each parsed once per process.
    """
    from botocore import loaders

    if getattr(loaders.Loader, "_kochava_shared_cache", False):
        return
    caches: dict[tuple[tuple[str, ...], tuple[str, ...]], dict[object, object]] = {}
    original_init = loaders.Loader.__init__

    def init(self: loaders.Loader, *args: object, **kwargs: object) -> None:
        original_init(self, *args, **kwargs)  # type: ignore[arg-type]
        key = (tuple(self.search_paths), tuple(self.extras_types))
        self._cache = caches.setdefault(key, self._cache)  # type: ignore[attr-defined]

    loaders.Loader.__init__ = init  # type: ignore[method-assign]
    loaders.Loader._kochava_shared_cache = True  # type: ignore[attr-defined]


share_botocore_data()

# The repo's packages whose bytecode the run writes first (git-ignored ``__pycache__``, as any Python run does when
# it may): the workers import them all, and each child process again.
REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("functions", "infra", "tools", "bench", "tests")


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):  # the xdist controller, or a run without xdist: before any import
        for package in PACKAGES:
            compileall.compile_dir(REPO / package, quiet=1)
    # moto's SQS receive made O(n) (tools.local.aws): the local stacks apply it when they start; the in-process
    # moto tests (tests/integration) get it too, where it was ~15 % of an enricher test file's CPU.
    from tools.local.aws import speed_up_moto_sqs

    speed_up_moto_sqs()


# Packages whose fixtures are shared by more than one file: each goes whole to one xdist worker.
SHARED_FIXTURE_PACKAGES = ("tests/e2e/", "tests/infra/")
# Files of those packages that use none of the shared fixtures (tests/unit/test_scheduling.py checks it): each is a
# unit of its own, free to run on another worker (the CDK CLI's two synths, ~1 min, next to the synthesized stacks).
STANDALONE_FILES = frozenset(
    {
        "tests/e2e/test_segment_http_api.py",
        "tests/infra/test_bundling_bytecode.py",
        "tests/infra/test_cdk_cli.py",
        "tests/infra/test_config.py",
        "tests/infra/test_locks.py",
        "tests/infra/test_openapi.py",
    }
)
# The units that take longest (``--durations`` of a full run), longest first: handed out before all others, so no
# worker is left alone with a long unit at the end. The rest follow in xdist's order (most tests first).
LONGEST_FIRST = (
    "tests/e2e/",
    "tests/infra/test_cdk_cli.py",
    "tests/outage/test_poison_and_flapping.py",
    "tests/reliability/test_fault_injection.py",
    "tests/infra/",
    "tests/outage/test_kochava_outage.py",
    "tests/bench/test_make_bench.py",
    "tests/unit/pipeline/test_properties.py",
    "tests/unit/pipeline/test_parse_fast_paths.py",
    "tests/reliability/test_bad_input.py",
    "tests/integration/dlq/test_tool.py",
)


def unit_of(nodeid: str) -> str:
    """The unit of work a test belongs to: its file, or its package if that shares fixtures across files.

    >>> unit_of("tests/e2e/test_trace.py::test_x"), unit_of("tests/unit/test_a.py::test_b[1]")
    ('tests/e2e/', 'tests/unit/test_a.py')
    >>> unit_of("tests/infra/test_cdk_cli.py::test_y")
    'tests/infra/test_cdk_cli.py'
    """
    path = nodeid.split("::", 1)[0]
    if path in STANDALONE_FILES:
        return path
    for package in SHARED_FIXTURE_PACKAGES:
        if nodeid.startswith(package):
            return package
    return path


class SharedFixtureScheduling(LoadFileScheduling):
    """``--dist loadfile`` with the units of :func:`unit_of`, the units of :data:`LONGEST_FIRST` handed out first.

    (``--dist loadgroup`` with ``xdist_group`` marks would say the same, but pytest-xdist 3.8.0 writes the group
    into ``Item._nodeid``, which pytest 9 no longer reads: the marks are silently ignored.)

    >>> sorted(["tests/unit/a.py", "tests/infra/", "tests/e2e/"], key=SharedFixtureScheduling.rank)
    ['tests/e2e/', 'tests/infra/', 'tests/unit/a.py']
    """

    _ordered = False

    def _split_scope(self, nodeid: str) -> str:
        return unit_of(nodeid)

    @staticmethod
    def rank(scope: str) -> int:
        """Where a unit goes in the queue: its place in :data:`LONGEST_FIRST`, else after all of them."""
        return LONGEST_FIRST.index(scope) if scope in LONGEST_FIRST else len(LONGEST_FIRST)

    def _assign_work_unit(self, node: WorkerController) -> None:
        # xdist fills the queue (most tests first) just before the first assignment: put the longest units first
        # (a stable sort, so the others keep xdist's order).
        if not self._ordered:
            ordered = sorted(self.workqueue.items(), key=lambda unit: self.rank(unit[0]))
            self.workqueue = OrderedDict(ordered)
            self._ordered = True
        super()._assign_work_unit(node)


@pytest.hookimpl(tryfirst=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Producer) -> LoadFileScheduling | None:
    if config.getvalue("dist") != "loadfile":
        return None
    return SharedFixtureScheduling(config, log)
