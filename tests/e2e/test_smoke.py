"""``python -m tools.smoke`` against the local stack (the session's, tests/e2e/conftest.py): every route's filtered
call traced to ``filtered``, wrong keys refused; and a failure is reported with exit 1, never hidden."""

from __future__ import annotations

import io
import json

from tests.e2e.shared import Run
from tools.smoke import main


def _smoke(run: Run, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(
        [
            "--endpoint-url", run.stack.endpoint_url, "--lambda-log", str(run.lambda_log),
            "--api-url", run.stack.api_url, "--api-key", run.stack.config.api_key, *argv,
        ],
        stdout=out,
        stderr=err,
    )  # fmt: skip
    return code, out.getvalue(), err.getvalue()


def test_smoke_passes_against_the_local_stack(run: Run) -> None:
    code, out, err = _smoke(run, "--json", "--timeout", "60")
    result = json.loads(out)
    assert code == 0, (out, err)
    assert result["ok"] is True
    checks = {row["check"]: row for row in result["checks"]}
    assert checks["native /v1/events"]["status"] == 202
    for name in (
        "segment batch /v1/batch (Basic auth)",
        "segment call /v1/track (Basic auth)",
        "segment batch /v1/batch (Basic auth, gzip)",
    ):
        assert checks[name]["status"] == 200 and checks[name]["uuid"], name
    assert checks["wrong x-api-key on /v1/events"]["status"] in (401, 403)
    assert checks["wrong Basic auth on /v1/batch"]["status"] in (401, 403)


def test_smoke_fails_when_the_calls_are_not_filtered(run: Run) -> None:
    """An event name the stack does not filter is delivered, not filtered: every traced check fails, exit 1."""
    code, out, _ = _smoke(run, "--event", "smoke_not_filtered", "--timeout", "3")
    assert code == 1
    assert out.count("FAIL ") == 4, out
    assert "not filtered after 3 s" in out
    assert run.stack.wait_drained(timeout_s=45), "the delivered calls leave the shared stack drained for the next tests"


def test_smoke_fails_with_a_key_the_api_does_not_know(run: Run) -> None:
    """With a key the API does not know, nothing is accepted: the four posts fail (the refusals still pass)."""
    out, err = io.StringIO(), io.StringIO()
    code = main(
        ["--endpoint-url", run.stack.endpoint_url, "--api-url", run.stack.api_url, "--api-key", "not-a-key",
         "--lambda-log", str(run.lambda_log), "--timeout", "1"],
        stdout=out,
        stderr=err,
    )  # fmt: skip
    assert code == 1
    assert out.getvalue().count("FAIL ") == 4, out.getvalue()
