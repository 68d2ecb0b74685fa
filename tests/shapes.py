"""Odd but valid JSON shapes that several test suites feed to the pipeline."""

from __future__ import annotations

from typing import Any


def nested_list(depth: int) -> list[Any]:
    """``[[[...]]]`` with ``depth`` lists inside the outer one (JSON nesting ``depth + 1``)."""
    root: list[Any] = []
    node = root
    for _ in range(depth):
        child: list[Any] = []
        node.append(child)
        node = child
    return root
