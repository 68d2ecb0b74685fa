"""The enricher's logs never hold user agents, user ids, consent strings, referrers or e-mail addresses (besides
the advertising ids, IPs and tokens ``test_lambda_handler`` checks), even when an error message echoes what was
sent: through the entry point on the in-memory ports (moved from ``tests/integration/enricher``)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.samples.enricher import IDFV, UA, native_event
from tests.unit.enricher.stack import FakeStack

USER_ID = "user-private-7731"
TC_STRING = "CPXxRfAPXxRfAAfKABENB-CgAAAAAAAAAAYgAAAAAAAA"
REFERRER = "utm_source=friend&utm_campaign=spring&gclid=EAIaIQobChMIprivate"
EMAIL = "jo.doe@example.com"


def _personal(kind: str = "track", **fields: Any) -> dict[str, Any]:
    return native_event(
        kind,
        user_id=USER_ID,
        consent={"gdpr_applies": True, "tc_string": TC_STRING, "ad_user_data": True},
        properties={"contact": EMAIL},
        **fields,
    )


def test_logs_hold_no_user_agent_user_id_consent_string_referrer_or_email(
    stack: FakeStack, capsys: pytest.CaptureFixture[str]
) -> None:
    """Given events full of personal data, three of them invalid with errors that quote what was sent
    When they are handled Then the three are logged dead-lettered, the echo masked, and no personal value logged."""
    install = _personal("install", install_referrer={"referrer": REFERRER})
    echoes_email = {**_personal(), "timestamp": EMAIL}
    echoes_ua = {**_personal(), "timestamp": UA[:40]}
    bad_platform = _personal(device={"platform": "windows", "id": IDFV, "user_agent": UA})
    stack.invoke(stack.record({"batch": [install, echoes_email, echoes_ua, bad_platform, _personal()]}))
    stack.deliveries()

    logged = stack.logs.getvalue() + capsys.readouterr().out
    dead_lettered = [line for line in stack.log_lines() if line.get("message") == "event dead-lettered"]
    assert len(dead_lettered) == 3, "the invalid events were not logged: the check would read nothing"
    assert any("<email>" in str(line.get("error")) for line in dead_lettered)  # masked, still readable
    leaked = [value[:16] for value in (UA, UA[:40], USER_ID, TC_STRING, REFERRER, EMAIL) if value in logged]
    assert leaked == []
