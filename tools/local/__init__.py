"""``python -m tools.local`` (``make local``): the whole pipeline on this machine (``__main__.py``, docs/local.md)."""

import tempfile
from pathlib import Path
from urllib.parse import urlsplit


def default_lambda_log(endpoint_url: str | None) -> Path:
    """Where ``python -m tools.local`` writes the Lambdas' JSON logs (its CloudWatch) unless --lambda-log /
    --verbose: one file per stack, named by its AWS endpoint's port (two stacks never read each other's logs);
    ``python -m tools.trace --endpoint-url URL`` reads the one of that URL.

    >>> default_lambda_log("http://127.0.0.1:4566").name
    'kochava-local-4566-lambdas.log'
    """
    try:
        port = urlsplit(endpoint_url or "").port
    except ValueError:
        port = None
    label = str(port) if port else "default"
    return Path(tempfile.gettempdir()) / f"kochava-local-{label}-lambdas.log"


def default_sink_log(endpoint_url: str | None) -> Path:
    """Where ``python -m tools.local`` has its Kochava sink write what it received (JSON lines), next to the
    Lambdas' log of the same stack.

    >>> default_sink_log("http://127.0.0.1:4566").name
    'kochava-local-4566-sink.jsonl'
    """
    return default_lambda_log(endpoint_url).with_name(
        default_lambda_log(endpoint_url).name.replace("lambdas.log", "sink.jsonl")
    )
