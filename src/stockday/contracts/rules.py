"""The domain's input rules as JSON Schema, so that OpenAPI publishes what the services accept.

The rules themselves live in ``stockday.domain.stocks``; the services enforce them there and
answer 422 with the domain's sentence. Patterns are written in the common part of Python's and
ECMA-262's (Unicode mode) regular expressions, the dialect JSON Schema names.
"""

from __future__ import annotations

import sys
import unicodedata
from collections.abc import Iterable
from functools import cache
from typing import Any

from stockday.domain.stocks import (
    FORBIDDEN_NAME_CATEGORIES,
    MAX_NAME_LENGTH,
    NAME_RULE,
    SYMBOL_INPUT_PATTERN,
    SYMBOL_RULE,
)

# The symbol as a path parameter or a body field: what OpenAPI says about it.
SYMBOL_SCHEMA: dict[str, Any] = {
    "pattern": SYMBOL_INPUT_PATTERN,
    "description": f"A ticker symbol, in either case: {SYMBOL_RULE}.",
    "examples": ["AAPL", "brk.b"],
}


def publish_symbol_rule(schema: dict[str, Any]) -> None:
    schema.update(SYMBOL_SCHEMA)


def publish_name_rule(schema: dict[str, Any]) -> None:
    """Give a name field the domain's rule (computed when a schema is asked for, not at import:
    finding the characters of a category takes a scan of all of Unicode)."""
    schema.update(name_schema())


@cache
def name_schema() -> dict[str, Any]:
    forbidden, spaces = _name_characters()
    forbidden_class, spaces_class = character_ranges(forbidden), character_ranges(spaces)
    # Runs of spaces count as one, so a name needs one character that is not a space.
    return {
        "minLength": 1,
        "maxLength": MAX_NAME_LENGTH,
        "pattern": (
            f"^[^{forbidden_class}]*[^{forbidden_class}{spaces_class}][^{forbidden_class}]*$"
        ),
        "description": f"The company's name: {NAME_RULE}. Runs of spaces are kept as one.",
    }


def _name_characters() -> tuple[list[int], list[int]]:
    """The code points a name may not hold, and those it may hold that separate its words."""
    forbidden: list[int] = []
    spaces: list[int] = []
    for cp in range(sys.maxunicode + 1):
        ch = chr(cp)
        category = unicodedata.category(ch)
        if category == "Cs":
            # Left out of the pattern: some validators' regular expressions cannot name a lone
            # surrogate. A body that escapes one ("\ud800") is refused by the domain all the same.
            continue
        if category in FORBIDDEN_NAME_CATEGORIES:
            forbidden.append(cp)
        elif ch.isspace():  # what str.split() separates words by
            spaces.append(cp)
    return forbidden, spaces


def character_ranges(code_points: Iterable[int]) -> str:
    """The inside of a regex character class matching exactly ``code_points`` (ascending)."""
    parts: list[str] = []
    start = end = -2
    for cp in code_points:
        if cp == end + 1:
            end = cp
            continue
        if start >= 0:
            parts.append(_span(start, end))
        start = end = cp
    if start >= 0:
        parts.append(_span(start, end))
    return "".join(parts)


def _span(start: int, end: int) -> str:
    return _char(start) if start == end else f"{_char(start)}-{_char(end)}"


def _char(cp: int) -> str:
    # \\uXXXX reads alike everywhere for the basic plane; beyond it the character itself.
    return f"\\u{cp:04X}" if cp <= 0xFFFF else chr(cp)
