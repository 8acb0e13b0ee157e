"""Request parameters that more than one JSON API takes, declared once."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

from stockday.contracts.rules import SYMBOL_SCHEMA

# The domain refuses a symbol that is no ticker with its own sentence (422); the pattern is
# published so that clients and fuzzers know the rule, not enforced a second time here.
SymbolPath = Annotated[str, Path(json_schema_extra=SYMBOL_SCHEMA)]
