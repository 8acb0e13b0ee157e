"""DynamoDB's typed attribute values from and to plain Python values, with boto3's serializer.

Strings stay strings, ints and Decimals become numbers (``N``), dicts become maps (``M``);
numbers read back are Decimal. boto3 refuses floats, which would lose digits silently.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

if TYPE_CHECKING:
    from types_boto3_dynamodb.type_defs import AttributeValueTypeDef

__all__ = ["attribute", "from_item", "to_item"]

_SERIALIZER = TypeSerializer()
_DESERIALIZER = TypeDeserializer()


def attribute(value: Any) -> AttributeValueTypeDef:
    """One value as a typed attribute value (``"AAPL"`` -> ``{"S": "AAPL"}``)."""
    return _SERIALIZER.serialize(value)


def to_item(values: Mapping[str, Any]) -> dict[str, AttributeValueTypeDef]:
    return {name: attribute(value) for name, value in values.items()}


def from_item(item: Mapping[str, AttributeValueTypeDef]) -> dict[str, Any]:
    return {name: _DESERIALIZER.deserialize(value) for name, value in item.items()}
