"""Symbols, names and the logo state machine."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stockday.domain.stocks import (
    SYMBOL_PATTERN,
    InvalidStock,
    InvalidTransition,
    LogoState,
    Stock,
    logo_key,
    normalize_name,
    normalize_symbol,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("aapl", "AAPL"), (" msft ", "MSFT"), ("brk.b", "BRK.B"), ("RDS-A", "RDS-A"), ("X", "X")],
)
def test_valid_symbols_are_normalised(raw: str, expected: str) -> None:
    assert normalize_symbol(raw) == expected


@pytest.mark.parametrize(
    "raw",
    ["", " ", "1ABC", "AB CD", "ABCDEFGHIJK", "A..B", "A.", "<script>", "ÄPPL", "A/B", "A\x00B"],
)
def test_invalid_symbols_are_refused_with_a_message(raw: str) -> None:
    with pytest.raises(InvalidStock, match="is not a ticker"):
        normalize_symbol(raw)


@given(st.text(max_size=30))
def test_any_text_is_a_canonical_symbol_or_refused(raw: str) -> None:
    try:
        symbol = normalize_symbol(raw)
    except InvalidStock:
        return
    assert SYMBOL_PATTERN.fullmatch(symbol)
    assert normalize_symbol(symbol) == symbol  # idempotent


@given(st.text(max_size=200))
def test_any_text_is_a_clean_name_or_refused(raw: str) -> None:
    try:
        name = normalize_name(raw)
    except InvalidStock:
        return
    assert name == name.strip()
    assert "  " not in name
    assert 0 < len(name) <= 120
    assert normalize_name(name) == name


def test_new_stock_with_an_upload_is_pending() -> None:
    stock = Stock.new("abc", "Abc", upload_id="u1")
    assert stock.logo.state is LogoState.PENDING
    assert Stock.new("abc", "Abc").logo.state is LogoState.NONE


def test_transitions_and_their_idempotence() -> None:
    stock = Stock.new("ABC", "Abc", upload_id="u1")
    ready = stock.logo_ready("u1", logo_key("ABC", "u1"))
    assert (ready.logo.state, ready.version) == (LogoState.READY, 2)
    assert ready.logo_ready("u1", logo_key("ABC", "u1")) is ready  # duplicate: no-op
    assert ready.request_logo("u1") is ready  # re-linking the same upload: no-op
    with pytest.raises(InvalidTransition):
        ready.logo_failed("u1", "late failure after success")
    newer = ready.request_logo("u2")
    assert (newer.logo.state, newer.logo.upload_id, newer.logo.key) == (
        LogoState.PENDING,
        "u2",
        None,
    )
    with pytest.raises(InvalidTransition):
        newer.logo_ready("u1", logo_key("ABC", "u1"))  # a result for the replaced upload
    failed = newer.logo_failed("u2", "not an image")
    assert failed.logo_failed("u2", "not an image") is failed
    assert failed.request_logo("u3").logo.state is LogoState.PENDING


EVENTS = st.lists(
    st.tuples(st.sampled_from(["request", "ready", "failed"]), st.sampled_from(["u1", "u2", "u3"])),
    max_size=20,
)


@given(EVENTS)
def test_any_sequence_of_events_keeps_the_invariants(events: list[tuple[str, str]]) -> None:
    stock = Stock.new("INV", "Invariant")
    for kind, upload in events:
        before = stock
        try:
            if kind == "request":
                stock = stock.request_logo(upload)
            elif kind == "ready":
                stock = stock.logo_ready(upload, logo_key("INV", upload))
            else:
                stock = stock.logo_failed(upload, "bad")
        except InvalidTransition:
            assert stock is before
            continue
        # The version grows by exactly one on a change, and not at all on a no-op.
        assert stock.version == before.version + (stock is not before)
        logo = stock.logo
        assert (logo.state is LogoState.READY) == (logo.key is not None)
        if logo.state is LogoState.READY:
            assert logo.key == logo_key("INV", logo.upload_id or "")
        assert (logo.state is LogoState.FAILED) == (logo.error is not None)
