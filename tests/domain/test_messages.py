"""Queue message envelopes: round trips, and any body is either a message or MalformedMessage."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stockday.contracts import messages

MESSAGES = [
    messages.LogoRequested(symbol="AAPL", upload_id="a" * 32, upload_key="uploads/" + "a" * 32),
    messages.LogoResized(
        symbol="AAPL", upload_id="a" * 32, logo_key="logos/AAPL/x.webp", width=9, height=4
    ),
    messages.LogoFailed(symbol="AAPL", upload_id="a" * 32, error="not an image"),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: m.type)
def test_round_trip_carries_type_and_schema_version(
    message: messages.LogoRequested | messages.LogoResized | messages.LogoFailed,
) -> None:
    body = messages.encode(message)
    raw = json.loads(body)
    assert raw["type"] == message.type
    assert raw["schema_version"] == 1
    assert messages.decode(body) == message


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("not json", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"type": "logo.requested"}', "invalid message"),
        ('{"type": "logo.teleported", "schema_version": 1}', "invalid message"),
        ('{"type": "logo.requested", "schema_version": 2}', "unsupported schema_version"),
        (
            '{"type": "logo.failed", "symbol": "A", "upload_id": "u", "error": "e", "x": 1}',
            "invalid",
        ),
    ],
)
def test_malformed_bodies_are_explained(body: str, reason: str) -> None:
    with pytest.raises(messages.MalformedMessage, match=reason):
        messages.decode(body)


@given(
    st.one_of(
        st.text(max_size=200),
        st.dictionaries(
            st.sampled_from(["type", "schema_version", "symbol", "upload_id", "upload_key", "x"]),
            st.one_of(
                st.none(),
                st.integers(),
                st.text(max_size=20),
                st.sampled_from(["logo.requested", "logo.resized", "logo.failed"]),
            ),
        ).map(json.dumps),
    )
)
def test_any_body_is_a_message_or_malformed(body: str) -> None:
    try:
        message = messages.decode(body)
    except messages.MalformedMessage:
        return
    assert messages.decode(messages.encode(message)) == message
