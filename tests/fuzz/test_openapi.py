"""schemathesis against the real server's /openapi.json with a valid bearer token.

Every operation gets a bounded number of generated requests (``LIVEEDIT_FUZZ_SCALE``
scales them); every response must be non-5xx and conform to the description: declared
status code, content type, headers and body schema (errors are ``{"error", "message"}``).
The server must log no traceback.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import checks

from tests.integration.conftest import ServerHandle

from .conftest import examples, tracebacks


def test_api_conforms_to_its_openapi_description(fuzz_server: ServerHandle) -> None:
    """No 5xx, and status, content type, headers and body match the OpenAPI description."""
    fuzz_server.add_user("schema-rep")
    token = fuzz_server.token("schema-rep")
    api = schemathesis.openapi.from_url(f"{fuzz_server.http_url}/openapi.json")
    headers = {"Authorization": f"Bearer {token}"}
    calls: Counter[str] = Counter()
    failures: list[str] = []
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 14, [op.label for op in operations]
    # Event streams (text/event-stream) never end by themselves; tests/browser covers them.
    operations = [op for op in operations if not op.path.endswith("/events")]

    for operation in operations:
        try:
            _fuzz(operation, headers, calls)()
        except Exception as exc:  # collect every operation's failure, then fail once
            failures.append(f"{operation.label}: {exc}")
    print("\nschemathesis calls per operation:", dict(sorted(calls.items())),
          "total", sum(calls.values()))
    assert failures == [], "\n\n".join(failures)
    assert tracebacks(fuzz_server) == []


def _fuzz(operation: Any, headers: dict[str, str], calls: Counter[str]) -> Any:
    """A hypothesis test calling ``operation`` with generated requests and checking them."""

    @given(case=operation.as_strategy())
    @settings(max_examples=examples(25), deadline=None, database=None,
              phases=[Phase.explicit, Phase.generate],
              suppress_health_check=list(HealthCheck))
    def run(case: Any) -> None:
        calls[operation.label] += 1
        case.call_and_validate(headers=headers, checks=CHECKS)

    return run


CHECKS = [
    checks.not_a_server_error, checks.status_code_conformance,
    checks.content_type_conformance, checks.response_headers_conformance,
    checks.response_schema_conformance,
]
