"""The project's version, in one place: the Lambdas (the User-Agent of Kochava requests), the tools' ``--version``
and ``pyproject.toml`` (``[tool.setuptools.dynamic]``) read it from here.

Example:
    >>> __version__.count(".")
    2
"""

__version__ = "0.3.0"  # CHANGELOG.md says what changed in each version
