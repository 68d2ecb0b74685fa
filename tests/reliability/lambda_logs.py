"""Capture what the Lambdas would write to CloudWatch during a local-stack run, into one text file.

The handlers run in-process (``tools.local``). Their Powertools loggers write JSON lines to the stream they were
created with, which in a pytest session is whatever ``sys.stdout`` was at the first import (Powertools configures a
service's logger once per process). So, for the duration of a capture:

* each handler's Powertools handler is pointed at the capture file and its level set to ``INFO`` (restored after);
* ``print`` output (Powertools' single metrics) goes there too (``sys.stdout`` redirected);
* records of other libraries' loggers (urllib3, botocore...) emitted on the Lambdas' threads (the pollers' threads
  and the deliverer's / Apple client's worker pools), as the Lambda runtime's root handler would send them to
  CloudWatch, are written there at WARNING and above. The local stack's own loggers (``tools.*``) are not Lambda
  output and are left out.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from pathlib import Path
from types import ModuleType, TracebackType
from typing import IO, Any, Self

HANDLER_MODULES = ("functions.enricher.handler", "functions.deliverer.handler")
LAMBDA_THREAD_PREFIXES = ("poller-", "deliver", "apple")


class _LambdaThreads(logging.Filter):
    """Records of the Lambdas' threads, but neither the local stack's own nor the Powertools loggers' (already
    captured as JSON)."""

    def __init__(self, powertools: set[str]) -> None:
        super().__init__()
        self.powertools = powertools

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("tools.") or record.name.split(".")[0] in self.powertools:
            return False
        return (record.threadName or "").startswith(LAMBDA_THREAD_PREFIXES)


class LambdaLogCapture:
    """``with LambdaLogCapture(path): ...`` after the stack started (the handler modules are loaded then).

    ``stdout=False`` leaves ``sys.stdout`` alone (only the loggers are pointed at the file): for a capture that spans
    several tests, whose output pytest swaps in and out per test.
    """

    def __init__(self, path: Path, *, stdout: bool = True) -> None:
        self.path = path
        self.stdout = stdout
        self._file: IO[str] | None = None
        self._undo: list[Any] = []
        self._redirect: contextlib.redirect_stdout[IO[str]] | None = None

    def __enter__(self) -> Self:
        self._file = self.path.open("w", encoding="utf-8")
        services = set()
        for name in HANDLER_MODULES:
            services.add(self._capture_powertools(sys.modules[name], self._file))
        other = logging.StreamHandler(self._file)
        other.setLevel(logging.WARNING)
        other.addFilter(_LambdaThreads(services))
        other.setFormatter(logging.Formatter("%(levelname)s %(name)s [%(threadName)s] %(message)s"))
        logging.getLogger().addHandler(other)
        self._undo.append(lambda: logging.getLogger().removeHandler(other))
        if self.stdout:
            self._redirect = contextlib.redirect_stdout(self._file)
            self._redirect.__enter__()
        return self

    def _capture_powertools(self, module: ModuleType, file: IO[str]) -> str:
        """Point the module's Powertools logger at ``file`` at INFO; its logger name (the service)."""
        logger = module.logger
        handler = logger.registered_handler
        level = logger.log_level
        previous = handler.setStream(file)
        logger.setLevel("INFO")
        self._undo.append(lambda: handler.setStream(previous))
        self._undo.append(lambda: logger.setLevel(level))
        return str(logger.name)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._redirect is not None:
            self._redirect.__exit__(exc_type, exc, tb)
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()
        if self._file is not None:
            self._file.close()

    def text(self) -> str:
        return self.path.read_text(encoding="utf-8")
