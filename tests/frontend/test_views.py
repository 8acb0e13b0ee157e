"""How a stock's answer from stock-symbol is shown: direction, badges, labels, placeholders."""

from __future__ import annotations

from datetime import date

from stockday.contracts.stocks import PriceOut
from stockday.frontend.views import initials, is_simulated, price_direction, source_label


def price(change: float, source: str = "simulated") -> PriceOut:
    return PriceOut(
        value=100 + change,
        previous_close=100,
        change=change,
        change_percent=change,
        as_of=date(2026, 1, 2),
        source=source,
        currency="USD",
        stale=False,
    )


def test_a_change_that_rounds_to_zero_is_flat() -> None:
    assert price_direction(price(0.01)) == "up"
    assert price_direction(price(-0.01)) == "down"
    assert price_direction(price(0.004)) == "flat"
    assert price_direction(price(-0.004)) == "flat"


def test_sources_are_named_for_people() -> None:
    assert is_simulated(price(1))
    assert not is_simulated(price(1, source="alphavantage"))
    assert source_label("alphavantage") == "Alpha Vantage"
    assert source_label("simulated") == "simulated data"
    assert source_label("other") == "other"


def test_the_logo_placeholder_shows_two_letters_or_digits_of_the_symbol() -> None:
    assert initials("ACME") == "AC"
    assert initials("B.RK") == "BR"
    assert initials("9-X") == "9X"
    assert initials(".-") == "?"
