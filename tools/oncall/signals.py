"""SIGTERM handled as Ctrl-C by the on-call tools: the same clean-up runs (hidden DLQ messages made visible
again) and the run ends with exit code 130 (:data:`tools.oncall.EXIT_INTERRUPTED`).

Example:
    >>> import signal
    >>> with sigterm_as_interrupt():
    ...     signal.getsignal(signal.SIGTERM) is raise_interrupt
    True
    >>> signal.getsignal(signal.SIGTERM) is raise_interrupt
    False
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any


def raise_interrupt(signum: int, frame: FrameType | None) -> None:
    """A signal handler: raise ``KeyboardInterrupt`` so that SIGTERM runs the same clean-up as Ctrl-C."""
    raise KeyboardInterrupt


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises ``KeyboardInterrupt``; the previous handler is restored after. Outside the
    main thread (a tool called from a test thread) signals cannot be handled: the block runs without."""
    try:
        previous: Any = signal.signal(signal.SIGTERM, raise_interrupt)
    except ValueError:  # not the main thread
        previous = None
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
