"""How identifiers appear in logs: never raw. An IDFA, IP or AdServices token is logged as a short fingerprint
(stable, so two log lines about the same device can be matched; not reversible in practice).

Example:
    >>> fingerprint("1.2.3.4")
    'sha256:6694f83c9f47'
    >>> fingerprint(None) is None
    True
"""

from __future__ import annotations

import hashlib


def fingerprint(value: str | None) -> str | None:
    """``sha256:<first 12 hex digits>`` of the value, or None when there is none."""
    if not value:
        return None
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()[:12]
