"""Issue 12: a schema-driven fuzz run over the gateway's OpenAPI document finds no server error.

schemathesis generates requests from ``/openapi.json`` (valid and invalid bodies, parameters,
headers) and sends them to the live system started by ``make run``'s code path, with the real
database and Rasa. Every operation is tried without credentials (it must answer 4xx, never 5xx);
the read-only ones are tried again as an admin, so the code behind authentication is reached too.
Writes are not fuzzed as an admin: they would start training jobs, swap models or revoke the
sessions other tests use. Examples per operation are bounded to keep `make test` fast.
"""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from tests.conftest import ADMIN_TOKEN, LiveSystem

EXAMPLES = 8


@pytest.fixture(scope="session")
def api_schema(live: LiveSystem) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{live.url}/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


@schema.parametrize()
@FUZZ
def test_no_operation_fails_with_a_server_error_for_a_stranger(case: schemathesis.Case) -> None:
    response = case.call(timeout=60)
    case.validate_response(response, checks=[not_a_server_error])
    assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:300]}"


@schema.include(method="GET").parametrize()
@FUZZ
def test_no_read_fails_with_a_server_error_for_an_admin(case: schemathesis.Case) -> None:
    response = case.call(headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=60)
    case.validate_response(response, checks=[not_a_server_error])


def test_the_fuzzed_document_covers_the_public_routes(live: LiveSystem) -> None:
    """The fuzz run above is only as good as the document: the routes customers and agents use are in it."""
    paths = httpx.get(f"{live.url}/openapi.json", timeout=30).json()["paths"]
    for route in ("/api/v1/chat", "/api/v1/agent/login", "/api/v1/conversations/{sender_id}/messages",
                  "/api/v1/admin/kb/articles"):
        assert route in paths, route
