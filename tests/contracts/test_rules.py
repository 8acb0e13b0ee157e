"""The rules OpenAPI publishes (stockday.contracts.rules) are exactly the domain's."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from stockday.contracts.rules import SYMBOL_SCHEMA, name_schema
from stockday.domain.stocks import InvalidStock, normalize_name, normalize_symbol

# Built once here: it takes a scan of all of Unicode.
NAME_SCHEMA = name_schema()


def _accepted(rule: Callable[[str], str], raw: str) -> bool:
    try:
        rule(raw)
    except InvalidStock:
        return False
    return True


def _published(schema: dict[str, Any], raw: str) -> bool:
    # JSON Schema's "$" is the end of the text, which Python spells \Z.
    pattern = re.compile(schema["pattern"].removesuffix("$") + r"\Z")
    fits = schema.get("minLength", 0) <= len(raw) <= schema.get("maxLength", len(raw))
    return fits and pattern.search(raw) is not None


# Text near the boundaries: the forbidden characters, spaces of every kind, and anything else.
NEAR_NAMES = st.text(
    st.one_of(
        st.characters(categories=["Cc", "Cf", "Zl", "Zp", "Zs"]),
        st.characters(codec="utf-8"),
    ),
    max_size=130,
)


@given(NEAR_NAMES)
@example("Acme\n")
@example("x" * 121)
@example(" \u3000 ")
def test_the_published_name_pattern_accepts_what_the_domain_accepts(raw: str) -> None:
    assert _published(NAME_SCHEMA, raw) == _accepted(normalize_name, raw)


@given(st.text(max_size=20) | st.from_regex(SYMBOL_SCHEMA["pattern"]))
@example("AAPL\n")
@example("ß")
def test_the_published_symbol_pattern_accepts_what_the_domain_accepts(raw: str) -> None:
    assert _published(SYMBOL_SCHEMA, raw) == _accepted(normalize_symbol, raw)
