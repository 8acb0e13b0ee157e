"""Schemathesis against the OpenAPI schemas: generated and mutated requests never get a 500.

Every operation of stock-symbol and stock-price is called with inputs derived from its schema
(valid and invalid). Each answer must not be a server error, and must conform to the schema
(documented status code, content type and body).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import httpx
import hypothesis
import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from stockday.runtime.settings import Settings
from stockday.stock_price.app import create_app as create_price_app
from stockday.stock_symbol.app import create_app as create_symbol_app

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
SETTINGS = hypothesis.settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=list(hypothesis.HealthCheck),
    derandomize=True,
)


DATA_DIR = Path(tempfile.mkdtemp(prefix="stockday-schema-"))
# Price calls go to a closed port: the stale/None fallback path is part of what is fuzzed.
# The client is passed in so that the app does not close it when the test client ends its
# lifespan after each call.
SYMBOL_SCHEMA = schemathesis.openapi.from_asgi(
    "/openapi.json",
    create_symbol_app(
        Settings(data_dir=DATA_DIR),
        price_client=httpx.AsyncClient(base_url="http://127.0.0.1:9", timeout=0.2),
    ),
)
PRICE_SCHEMA = schemathesis.openapi.from_asgi(
    "/openapi.json", create_price_app(Settings(data_dir=DATA_DIR))
)


def _operations(schema: schemathesis.BaseSchema) -> list[object]:
    operations = [result.ok() for result in schema.get_all_operations()]
    return [
        pytest.param(op, mode, id=f"{op.label} {mode.value}")
        for op in operations
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    ]


def _fuzz(operation: object, mode: GenerationMode) -> None:
    @hypothesis.given(case=operation.as_strategy(mode))  # type: ignore[attr-defined]
    @SETTINGS
    def run(case: schemathesis.Case) -> None:
        case.call_and_validate(checks=CHECKS)

    try:
        run()
    except hypothesis.errors.Unsatisfiable:
        pytest.skip("the schema admits no invalid input for this operation")


@pytest.mark.parametrize(("operation", "mode"), _operations(SYMBOL_SCHEMA))
def test_stock_symbol_api(operation: object, mode: GenerationMode) -> None:
    _fuzz(operation, mode)


@pytest.mark.parametrize(("operation", "mode"), _operations(PRICE_SCHEMA))
def test_stock_price_api(operation: object, mode: GenerationMode) -> None:
    _fuzz(operation, mode)
