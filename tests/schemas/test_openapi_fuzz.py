"""Schemathesis against the OpenAPI schemas: generated and mutated requests never get a 500.

Every operation of stock-symbol and stock-price is called with inputs derived from its schema
(valid and invalid). Each answer must not be a server error, and must conform to the schema
(documented status code, content type and body).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

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
DOCUMENTATION = {"title", "description"}


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


def _admits_invalid_input(operation: Any) -> bool:
    """Whether a request to it can be invalid: it has a body, or a parameter constrained beyond
    "any string" (a path segment or a header is a string whatever it holds)."""
    if list(operation.body):
        return True
    return any(
        {k: v for k, v in p.definition.get("schema", {}).items() if k not in DOCUMENTATION}
        != {"type": "string"}
        for p in operation.iter_parameters()
    )


def _operations(schema: schemathesis.BaseSchema) -> list[Any]:
    return [result.ok() for result in schema.get_all_operations()]


def _cases(schema: schemathesis.BaseSchema) -> list[object]:
    """Valid input for every operation; invalid input for those that admit some."""
    return [
        pytest.param(op, mode, id=f"{op.label} {mode.value}")
        for op in _operations(schema)
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        if mode is GenerationMode.POSITIVE or _admits_invalid_input(op)
    ]


def _fuzz(operation: Any, mode: GenerationMode) -> None:
    @hypothesis.given(case=operation.as_strategy(mode))
    @SETTINGS
    def run(case: schemathesis.Case) -> None:
        case.call_and_validate(checks=CHECKS)

    run()


@pytest.mark.parametrize(("operation", "mode"), _cases(SYMBOL_SCHEMA))
def test_stock_symbol_api(operation: object, mode: GenerationMode) -> None:
    _fuzz(operation, mode)


@pytest.mark.parametrize(("operation", "mode"), _cases(PRICE_SCHEMA))
def test_stock_price_api(operation: object, mode: GenerationMode) -> None:
    _fuzz(operation, mode)


@pytest.mark.parametrize(
    "operation",
    [
        pytest.param(op, id=op.label)
        for op in [*_operations(SYMBOL_SCHEMA), *_operations(PRICE_SCHEMA)]
        if not _admits_invalid_input(op)
    ],
)
def test_operations_left_out_of_invalid_input_admit_none(operation: object) -> None:
    """Where no invalid case is generated, schemathesis indeed finds no invalid input."""
    with pytest.raises(hypothesis.errors.Unsatisfiable):
        _fuzz(operation, GenerationMode.NEGATIVE)
