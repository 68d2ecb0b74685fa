"""API key authorizer Lambda (REQUEST authorizer of the ingest API): thin wiring around :mod:`.core`.

Standard library only (no Powertools, no boto3, not even ``functions.names``), so its cold start is the Python
runtime's plus a few milliseconds of imports (docs/deploy.md has the figures and the cost). API Gateway caches its
answers per key, so it runs on a cache miss only, never once per request.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from functions.authorizer.config import AuthorizerConfig
from functions.authorizer.core import authorize

CONFIG = AuthorizerConfig.from_env(os.environ)
logger = logging.getLogger("authorizer")
logger.setLevel(CONFIG.log_level)


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    decision = authorize(event, CONFIG)
    if decision.denied is not None:
        # Never the key or the header: the reason and the path only.
        logger.warning("denied: %s", decision.denied, extra={"path": event.get("resource")})
    return decision.answer
