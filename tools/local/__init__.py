"""``python -m tools.local`` (``make local``): the whole pipeline on this machine (``__main__.py``, docs/local.md)."""

import tempfile
from pathlib import Path

# Where ``python -m tools.local`` writes the Lambdas' JSON logs (its CloudWatch), unless --lambda-log / --verbose;
# ``python -m tools.trace --endpoint-url ...`` reads them there.
DEFAULT_LAMBDA_LOG = Path(tempfile.gettempdir()) / "kochava-local-lambdas.log"
