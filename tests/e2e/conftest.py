"""One local stack for the whole e2e session: moto, local API, sink, Apple stub, the real handlers.

Started in-process on ephemeral ports; every sample of ``events/`` is posted once, plus the requests the tests
need, and the pipeline is drained before any test looks. moto keeps its state per process, so there is one stack
for the package.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from functions.names import ENV_KOCHAVA_APP_IDS_BY_BUNDLE
from tests.e2e.shared import BOUND_APP, BOUND_GUID, BOUND_KEY, NATIVE_EVENT, SEGMENT_EVENT, Run
from tests.reliability.lambda_logs import LambdaLogCapture
from tools.local.stack import LocalConfig, LocalStack


@pytest.fixture(scope="package")  # stopped after tests/e2e: its pollers must not outlive it
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    lambda_log = tmp_path_factory.mktemp("e2e") / "lambdas.log"  # what CloudWatch would hold (tools.trace reads it)
    # One key bound to one app (as the stack's sourceApps) for the sources-bound-to-apps tests; the default key is not.
    # The default key stays able to send anywhere (requireBoundKeys=false), so the samples posted with it go through.
    config = LocalConfig(
        source_apps={BOUND_KEY: [BOUND_APP]},
        require_bound_keys=False,
        env={ENV_KOCHAVA_APP_IDS_BY_BUNDLE: json.dumps({BOUND_APP: BOUND_GUID})},
    )
    with LocalStack(config) as stack, LambdaLogCapture(lambda_log, stdout=False):
        samples = {path.name: response for path, response in stack.post_samples()}
        without_key = stack.post("native", {**NATIVE_EVENT, "uuid": "e2e-no-key"}, api_key="")
        wrong_key = stack.post("segment", {**SEGMENT_EVENT, "messageId": "e2e-wrong-key"}, api_key="not-the-key")
        native = stack.post("native", NATIVE_EVENT)
        segment = stack.post("segment", SEGMENT_EVENT)
        assert stack.wait_drained(timeout_s=45), f"not drained: {stack.queue_depths()}"
        yield Run(stack, stack.report(), samples, without_key, wrong_key, native, segment, lambda_log)
