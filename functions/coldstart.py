"""Keep Python's cyclic garbage collector out of a Lambda's cold start.

A handler's imports (pydantic models, botocore, Powertools) and its first-invocation wiring (boto3 clients, their
service models) allocate some 80,000 container objects, nearly all of which live as long as the container. The
collector runs every 700 net allocations and walks the young ones each time, so during init it walks the same
long-lived objects over and over without finding anything to free: 15-25 ms of the enricher's import and about
40 ms of its wiring on the benchmark machine (``make bench ARGS=coldstart``).

:func:`collector_paused` switches the collector off for such a block and back on after it. With
``freeze=True`` it also moves every object alive at that point into the permanent generation
(:func:`gc.freeze`), so the collections that the invocations trigger never walk the imported modules again:
that is for the handler's module-level imports, which happen once per container. Wiring is done with
``freeze=False``, because tests build and drop it many times in one process.

Example::

    with collector_paused(freeze=True):
        import boto3
        from functions.enricher.core import Enricher
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused(*, freeze: bool = False) -> Iterator[None]:
    """Run the block with the cyclic garbage collector off; restore it (and optionally freeze) afterwards.

    The collector is switched back on only if it was on before, so a caller that had disabled it keeps it so.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if freeze:
            gc.freeze()
        if was_enabled:
            gc.enable()
