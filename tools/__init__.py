"""The command-line tools (on-call, local stack, transform, smoke). Each prints the project's version with
``--version``, from functions/version.py (the one place it is kept).

Example:
    >>> import argparse
    >>> parser = argparse.ArgumentParser(prog="python -m tools.x")
    >>> add_version_option(parser)
    >>> parser.format_usage().strip()
    'usage: python -m tools.x [-h] [--version]'
"""

from __future__ import annotations

import argparse

from functions.version import __version__

PROJECT_NAME = "kochava-pipeline"  # pyproject.toml's [project] name


def add_version_option(parser: argparse.ArgumentParser) -> None:
    """``--version``: ``python -m tools.trace 0.2.0 (kochava-pipeline)``, then exit 0."""
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__} ({PROJECT_NAME})", help="print the version"
    )
