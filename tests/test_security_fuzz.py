"""Issue 12: a schema-driven fuzz run over the gateway's OpenAPI document finds no server error.

schemathesis generates requests from ``/openapi.json`` (valid ones, and invalid bodies, parameters
and headers in its negative mode) and sends them to the live system started by ``make run``'s code path, with the real
database and Rasa. Every operation is tried without credentials (it must answer 4xx, never 5xx);
the read-only ones are tried again as an admin, so the code behind authentication is reached too.
Writes are not fuzzed as an admin: they would start training jobs, swap models or revoke the
sessions other tests use. Examples per operation are bounded (and derandomized) to keep `make
test` fast and repeatable.

The operations are driven with hypothesis directly (``operation.as_strategy()``) rather than
through schemathesis' pytest plugin, whose lazy fixture loader does not work with pytest 9.
"""

from __future__ import annotations

import contextlib
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable

from tests.conftest import ADMIN_TOKEN, LiveSystem

EXAMPLES = 8
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
                database=None)


@pytest.fixture(scope="module")
def api_schema(live: LiveSystem) -> Any:
    return schemathesis.openapi.from_url(f"{live.url}/openapi.json")


def fuzz(schema: Any, headers: dict[str, str], methods: tuple[str, ...] | None = None) -> tuple[int, list[str]]:
    """Fuzz every operation (or those with ``methods``); returns (operations tried, server errors)."""
    errors: list[str] = []
    tried = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if methods is not None and operation.method.upper() not in methods:
            continue
        tried += 1

        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):

            @FUZZ
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case: Any) -> None:
                response = case.call(headers=headers, timeout=60)
                if response.status_code >= 500:
                    errors.append(f"{case.method} {case.formatted_path} → {response.status_code}: {response.text[:200]}")

            with contextlib.suppress(Unsatisfiable):  # negative mode of an operation with nothing to get wrong
                run()
    return tried, errors


def test_no_operation_fails_with_a_server_error_for_a_stranger(api_schema: Any) -> None:
    tried, errors = fuzz(api_schema, {})
    assert tried >= 40  # the whole document was fuzzed, not a corner of it
    assert errors == []


def test_no_read_fails_with_a_server_error_for_an_admin(api_schema: Any) -> None:
    tried, errors = fuzz(api_schema, {"Authorization": f"Bearer {ADMIN_TOKEN}"}, methods=("GET",))
    assert tried >= 15
    assert errors == []


def test_the_fuzzed_document_covers_the_public_routes(live: LiveSystem) -> None:
    """The fuzz run above is only as good as the document: the routes customers and agents use are in it."""
    paths = httpx.get(f"{live.url}/openapi.json", timeout=30).json()["paths"]
    for route in ("/api/v1/chat", "/api/v1/agent/login", "/api/v1/conversations/{sender_id}/messages",
                  "/api/v1/admin/kb/articles"):
        assert route in paths, route
