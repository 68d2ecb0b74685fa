"""What the on-call tools print, and how: results on stdout (human text, or one JSON document with ``--json``),
notes, errors and prompts on stderr, a progress bar on a terminal only. Shared by ``tools.dlq`` and
``tools.privacy`` (``tools.trace`` prints one JSON line per uuid itself).

Every text goes through :func:`~functions.pipeline.jsontext.escape_surrogates`: a body or event name read from an
escaped lone surrogate (``"\\ud800"``) holds a character no terminal encoding can write; it is shown as the escape
received.

Example:
    >>> import io
    >>> out, err = io.StringIO(), io.StringIO()
    >>> ui = Ui(out=out, err=err, json=True, stdin=io.StringIO())
    >>> fail(ui, "no such queue", 1)
    1
    >>> err.getvalue(), out.getvalue().replace(chr(10), "")
    ('error: no such queue\\n', '{  "error": "no such queue",  "exit_code": 1}')
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, TextIO

from functions.pipeline.jsontext import escape_surrogates


@dataclass
class Ui:
    """Where output goes: results on ``out`` (human text or one JSON document), notes and prompts on ``err``."""

    out: TextIO
    err: TextIO
    json: bool
    stdin: TextIO

    def line(self, text: str = "") -> None:
        """A line of the human output (nothing with ``--json``)."""
        if not self.json:
            print(escape_surrogates(text), file=self.out)

    def note(self, text: str) -> None:
        """A line on stderr, with or without ``--json``."""
        print(escape_surrogates(text), file=self.err)

    def document(self, doc: dict[str, Any]) -> None:
        """The one JSON document of a ``--json`` run (nothing otherwise)."""
        if self.json:
            self.out.write(escape_surrogates(json.dumps(doc, indent=2, ensure_ascii=False)))
            self.out.write("\n")

    def progress(self, label: str, total: int) -> ProgressBar:
        return ProgressBar(self.err, label, total)


class ProgressBar:
    """``label [#######.......] 70/100`` on stderr, redrawn in place; silent when stderr is not a terminal."""

    WIDTH = 30

    def __init__(self, stream: TextIO, label: str, total: int) -> None:
        self.stream = stream
        self.label = label
        self.total = max(total, 0)
        self.enabled = isatty(stream)
        self.drawn = False

    def __call__(self, done: int) -> None:
        if not self.enabled:
            return
        total = max(self.total, done, 1)
        filled = int(self.WIDTH * done / total)
        bar = "#" * filled + "." * (self.WIDTH - filled)
        self.stream.write(f"\r{self.label} [{bar}] {done}/{total}")
        self.stream.flush()
        self.drawn = True

    def close(self) -> None:
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()


def isatty(stream: TextIO) -> bool:
    """Whether ``stream`` is a terminal (False for anything that cannot say)."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def fail(ui: Ui, message: str, code: int) -> int:
    """Report a run that stopped: ``error: ...`` on stderr, ``{"error", "exit_code"}`` with ``--json``; ``code``."""
    ui.note(f"error: {message}")
    ui.document({"error": message, "exit_code": code})
    return code
