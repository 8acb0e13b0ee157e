"""Schemathesis against the OpenAPI schemas, every check on: never a 500, never a failure.

Every operation of stock-symbol and stock-price is called with inputs derived from its schema
(valid and invalid). Each answer must not be a server error and must conform to the schema
(documented status code, content type, headers and body); valid input must be accepted and
invalid input refused, so the schema states exactly the rules the services apply.
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
import httpx
import hypothesis
import pytest
import schemathesis
from schemathesis.checks import CHECKS, is_check_class, load_all_checks, positive_data_acceptance
from schemathesis.generation import GenerationMode

from stockday.domain.stocks import InvalidStock, logo_key, normalize_symbol
from stockday.runtime.settings import Settings
from stockday.stock_price.app import create_app as create_price_app
from stockday.stock_symbol.app import create_app as create_symbol_app
from tests.support import images

load_all_checks()
# Every check schemathesis registers (max_response_time is not one: a wall-clock limit, which
# no functional test asserts).
ALL_CHECKS = [check for check in CHECKS.get_all() if not is_check_class(check)]
SETTINGS = hypothesis.settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=list(hypothesis.HealthCheck),
    derandomize=True,
)
DOCUMENTATION = {"title", "description"}

# A schema cannot say "bytes that decode as an image": schema-valid bytes for the logo upload
# are mostly refused (415, 422, as documented), so its valid cases are judged by every check
# but the one that wants them accepted. Real images are accepted in tests/stock_symbol, and
# tests/logos refuses a hostile corpus.
NOT_AN_IMAGE_BY_SCHEMA = {"POST /api/uploads": [positive_data_acceptance]}


DATA_DIR = Path(tempfile.mkdtemp(prefix="stockday-schema-"))
# Price calls go to a closed port: the stale/None fallback path is part of what is fuzzed.
# The client is passed in so that the app does not close it when the test client ends its
# lifespan after each call.
SYMBOL_APP = create_symbol_app(
    Settings(data_dir=DATA_DIR),
    price_client=httpx.AsyncClient(base_url="http://127.0.0.1:9", timeout=0.2),
)
SYMBOL_SCHEMA = schemathesis.openapi.from_asgi("/openapi.json", SYMBOL_APP)
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


def stored_upload_id() -> str:
    """A new upload, for a valid create or logo change to refer to (one per request: deleting
    a stock deletes its upload)."""

    async def upload() -> httpx.Response:
        transport = httpx.ASGITransport(app=SYMBOL_APP)
        async with httpx.AsyncClient(transport=transport, base_url="http://symbol") as client:
            files = {"file": ("logo.png", images.png(), "image/png")}
            return await client.post("/api/uploads", files=files)

    response = anyio.run(upload)
    assert response.status_code == 201, response.text
    return str(response.json()["upload_id"])


def _with_stored_upload(case: schemathesis.Case) -> schemathesis.Case:
    # Any 32 hex digits fit the schema, but only a stored upload can be linked (else 422): a
    # valid request names one. Unknown uploads are refused in tests/stock_symbol.
    if isinstance(case.body, dict) and "upload_id" in case.body:
        case.body = {**case.body, "upload_id": stored_upload_id()}
    return case


def _with_derived_logo_key(case: schemathesis.Case) -> schemathesis.Case:
    # A ready logo lives under the key derived from its stock and upload (a retried job
    # overwrites it), which no schema can relate to the path and the body: a valid request
    # names that key. Other keys are refused in tests/stock_symbol.
    body, symbol = case.body, (case.path_parameters or {}).get("symbol")
    if isinstance(body, dict) and "key" in body and "upload_id" in body and isinstance(symbol, str):
        # Not a symbol: the request is refused for that, whatever its key.
        with contextlib.suppress(InvalidStock):
            body["key"] = logo_key(normalize_symbol(symbol), str(body["upload_id"]))
    return case


def current_version(symbol: str) -> int | None:
    """The version of the stock at ``symbol`` now, or None when there is none."""

    async def read() -> httpx.Response:
        transport = httpx.ASGITransport(app=SYMBOL_APP)
        async with httpx.AsyncClient(transport=transport, base_url="http://symbol") as client:
            return await client.get(f"/api/stocks/{quote(symbol, safe='')}")

    response = anyio.run(read)
    return int(response.json()["version"]) if response.status_code == 200 else None


def _with_current_version(case: schemathesis.Case) -> schemathesis.Case:
    # A version is state the schema cannot know: a valid If-Match names the stock's current
    # version (a stale one is refused with 412, as tests/stock_symbol checks).
    headers = case.headers or {}
    names = [name for name in headers if name.lower() == "if-match"]
    symbol = (case.path_parameters or {}).get("symbol")
    if names and isinstance(symbol, str):
        version = current_version(symbol)
        if version is not None:
            headers[names[0]] = str(version)
    return case


def _fuzz(operation: Any, mode: GenerationMode) -> None:
    cases = operation.as_strategy(mode)
    excluded = []
    if mode.is_positive:
        cases = (
            cases.map(_with_stored_upload).map(_with_derived_logo_key).map(_with_current_version)
        )
        excluded = NOT_AN_IMAGE_BY_SCHEMA.get(operation.label, [])

    @hypothesis.given(case=cases)
    @SETTINGS
    def run(case: schemathesis.Case) -> None:
        case.call_and_validate(checks=ALL_CHECKS, excluded_checks=excluded)

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
