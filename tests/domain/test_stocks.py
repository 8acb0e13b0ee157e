"""Symbols, names and the logo state machine."""

from __future__ import annotations

import re
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stockday.domain.stocks import (
    FORBIDDEN_NAME_CATEGORIES,
    SYMBOL_PATTERN,
    InvalidStock,
    InvalidTransition,
    LogoState,
    Stock,
    forbidden_in_name,
    logo_key,
    normalize_name,
    normalize_symbol,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("aapl", "AAPL"), ("msft", "MSFT"), ("brk.b", "BRK.B"), ("RDS-A", "RDS-A"), ("X", "X")],
)
def test_valid_symbols_are_normalised(raw: str, expected: str) -> None:
    assert normalize_symbol(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        *("", " ", " msft", "MSFT\n", "1ABC", "AB CD", "ABCDEFGHIJK", "A..B", "A."),
        *("<script>", "A/B", "A\x00B", "A\x7f"),
    ],
)
def test_invalid_symbols_are_refused_with_a_message(raw: str) -> None:
    with pytest.raises(InvalidStock, match="is not a ticker: use 1-10 ASCII letters"):
        normalize_symbol(raw)


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        ("ß", "U+00DF LATIN SMALL LETTER SHARP S"),  # upper-cases to SS
        ("\u0131bm", "U+0131 LATIN SMALL LETTER DOTLESS I"),  # upper-cases to IBM
        ("ﬁt", "U+FB01 LATIN SMALL LIGATURE FI"),  # upper-cases to FIT
        ("\uff21\uff21\uff30\uff2c", "U+FF21 FULLWIDTH LATIN CAPITAL LETTER A"),
        ("\u212abc", "U+212A KELVIN SIGN"),  # matches [a-z] under Unicode case-insensitivity
        ("ÄPPL", "U+00C4 LATIN CAPITAL LETTER A WITH DIAERESIS"),
        ("AA\u0661", "U+0661 ARABIC-INDIC DIGIT ONE"),
    ],
)
def test_symbols_are_ascii_before_any_case_mapping(raw: str, named: str) -> None:
    with pytest.raises(InvalidStock, match=f"{re.escape(named)} is not an ASCII letter or digit"):
        normalize_symbol(raw)


@given(st.text(max_size=30))
def test_any_text_is_a_canonical_symbol_or_refused(raw: str) -> None:
    try:
        symbol = normalize_symbol(raw)
    except InvalidStock:
        return
    assert raw.isascii()
    assert SYMBOL_PATTERN.fullmatch(symbol)
    assert symbol == raw.upper()  # accepted as sent, only its case changed
    assert normalize_symbol(symbol) == symbol  # idempotent


@given(st.text(st.characters(min_codepoint=128), min_size=1, max_size=10))
def test_no_text_beyond_ascii_becomes_a_symbol(raw: str) -> None:
    with pytest.raises(InvalidStock, match="is not an ASCII letter or digit"):
        normalize_symbol(raw)


@given(st.text(max_size=200))
def test_any_text_is_a_clean_name_or_refused(raw: str) -> None:
    try:
        name = normalize_name(raw)
    except InvalidStock:
        return
    assert name == name.strip()
    assert "  " not in name
    assert 0 < len(name) <= 120
    assert not any(forbidden_in_name(ch) for ch in name)
    assert normalize_name(name) == name


PEOPLES_CHARACTERS = st.characters(
    # Letters, marks, numbers, punctuation, symbols, private use and the not yet assigned (an
    # emoji newer than this Python's Unicode tables); spaces are checked on their own.
    categories=[
        *("Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Me", "Nd", "Nl", "No"),
        *("Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po", "Sm", "Sc", "Sk", "So", "Co", "Cn"),
    ]
)


@given(
    st.text(PEOPLES_CHARACTERS, max_size=20),
    st.characters(categories=list(FORBIDDEN_NAME_CATEGORIES)),
    st.text(max_size=20),
)
def test_every_control_format_or_separator_character_is_refused(
    before: str, forbidden: str, after: str
) -> None:
    category = unicodedata.category(forbidden)
    with pytest.raises(InvalidStock, match=f"U\\+{ord(forbidden):04X}") as refused:
        normalize_name(f"Acme{before}{forbidden}{after}")
    assert FORBIDDEN_NAME_CATEGORIES[category] in str(refused.value)


@given(st.text(PEOPLES_CHARACTERS, min_size=1, max_size=120))
def test_letters_marks_numbers_punctuation_and_symbols_are_kept(raw: str) -> None:
    assert normalize_name(raw) == raw


@pytest.mark.parametrize(
    "name",
    [
        "Société Générale",
        "Nestlé S.A.",
        "トヨタ自動車株式会社",
        "삼성전자",
        "Газпром",
        "मारुति सुज़ुकी",
        "شركة الاتصالات",  # right-to-left text, without overrides
        "Coca-Cola 🥤",
        "Banco Santander\u00a0S.A.",  # a no-break space: kept as one space
    ],
)
def test_names_people_write_are_accepted(name: str) -> None:
    assert normalize_name(name) == " ".join(name.split())


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        ("Apple\u202eInc", "U+202E RIGHT-TO-LEFT OVERRIDE"),
        ("Goo\u200bgle", "U+200B ZERO WIDTH SPACE"),
        ("Acme\x7f", "U+007F"),
        ("Acme\tCorp", "U+0009"),
        ("Acme\u2028Corp", "U+2028 LINE SEPARATOR"),
        ("\ufeffAcme", "U+FEFF ZERO WIDTH NO-BREAK SPACE"),
    ],
)
def test_invisible_and_control_characters_are_named_in_the_refusal(raw: str, named: str) -> None:
    with pytest.raises(InvalidStock, match=f"^name must not contain {re.escape(named)}"):
        normalize_name(raw)


def test_a_name_is_bounded_and_not_empty() -> None:
    assert normalize_name("  Acme   Corp ") == "Acme Corp"
    assert normalize_name("x" * 120) == "x" * 120
    with pytest.raises(InvalidStock, match="longer than 120"):
        normalize_name("x" * 121)
    with pytest.raises(InvalidStock, match="must not be empty"):
        normalize_name(" \u3000 ")


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
