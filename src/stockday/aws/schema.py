"""The shapes of the AWS resources, declared once as plain data.

``stockday provision`` (stockday.aws.provision) creates resources from these declarations, the
CDK app in deploy/aws builds its own from the same ones, and the adapters rely on them, so the
three cannot drift apart. Nothing here talks to AWS or imports boto3.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from types_boto3_dynamodb.type_defs import (
        AttributeDefinitionTypeDef,
        GlobalSecondaryIndexTypeDef,
        KeySchemaElementTypeDef,
    )

__all__ = [
    "DEAD_LETTER_RETENTION_SECONDS",
    "STOCKS_BY_CREATED",
    "STOCKS_BY_SYMBOL",
    "STOCKS_TABLE",
    "KeyAttribute",
    "TableIndex",
    "TableSchema",
    "dead_letter_queue_name",
]


@dataclass(frozen=True, slots=True)
class KeyAttribute:
    """A key attribute of a table or an index: its name and its DynamoDB scalar type."""

    name: str
    type: Literal["S", "N", "B"] = "S"


@dataclass(frozen=True, slots=True)
class TableIndex:
    """A global secondary index."""

    name: str
    partition_key: KeyAttribute
    sort_key: KeyAttribute | None = None
    projection: Literal["ALL", "KEYS_ONLY"] = "ALL"

    def key_schema(self) -> list[KeySchemaElementTypeDef]:
        return _key_schema(self.partition_key, self.sort_key)


@dataclass(frozen=True, slots=True)
class TableSchema:
    """A table's keys, indexes and billing mode; the methods give them as boto3 takes them."""

    partition_key: KeyAttribute
    sort_key: KeyAttribute | None = None
    indexes: tuple[TableIndex, ...] = ()
    billing_mode: Literal["PAY_PER_REQUEST", "PROVISIONED"] = "PAY_PER_REQUEST"

    def key_schema(self) -> list[KeySchemaElementTypeDef]:
        return _key_schema(self.partition_key, self.sort_key)

    def attribute_definitions(self) -> list[AttributeDefinitionTypeDef]:
        """Every key attribute of the table and its indexes, once each."""
        keys = [self.partition_key, self.sort_key]
        for index in self.indexes:
            keys += [index.partition_key, index.sort_key]
        unique = {key.name: key for key in keys if key is not None}
        return [{"AttributeName": key.name, "AttributeType": key.type} for key in unique.values()]

    def global_secondary_indexes(self) -> list[GlobalSecondaryIndexTypeDef]:
        return [
            {
                "IndexName": index.name,
                "KeySchema": index.key_schema(),
                "Projection": {"ProjectionType": index.projection},
            }
            for index in self.indexes
        ]


def _key_schema(
    partition_key: KeyAttribute, sort_key: KeyAttribute | None
) -> list[KeySchemaElementTypeDef]:
    schema: list[KeySchemaElementTypeDef] = [
        {"AttributeName": partition_key.name, "KeyType": "HASH"}
    ]
    if sort_key is not None:
        schema.append({"AttributeName": sort_key.name, "KeyType": "RANGE"})
    return schema


# The stocks table: one string partition key ``pk`` (see stockday.stocks.dynamodb for the
# items), and a sparse index listing the stock items by symbol.
STOCKS_BY_SYMBOL = "by-symbol"
# Newest first for moderation: every stock, hidden ones too.
STOCKS_BY_CREATED = "by-created"
STOCKS_TABLE = TableSchema(
    partition_key=KeyAttribute("pk"),
    indexes=(
        TableIndex(
            STOCKS_BY_SYMBOL, partition_key=KeyAttribute("listing"), sort_key=KeyAttribute("symbol")
        ),
        TableIndex(
            STOCKS_BY_CREATED,
            partition_key=KeyAttribute("added"),
            sort_key=KeyAttribute("created_at"),
        ),
    ),
)

# Every work queue ``<name>`` has a dead-letter queue ``<name>-dlq``. A dead letter keeps its
# original sent time, so it needs SQS's longest retention.
DEAD_LETTER_SUFFIX = "-dlq"
DEAD_LETTER_RETENTION_SECONDS = 14 * 24 * 3600


def dead_letter_queue_name(name: str) -> str:
    return name + DEAD_LETTER_SUFFIX
