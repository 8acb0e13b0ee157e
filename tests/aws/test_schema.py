"""The declared table shape, as boto3 takes it: what existing tables were created with."""

from __future__ import annotations

from stockday.aws.schema import (
    STOCKS_TABLE,
    KeyAttribute,
    TableIndex,
    TableSchema,
    dead_letter_queue_name,
)


def test_the_stocks_table_keeps_its_keys_and_its_index() -> None:
    assert STOCKS_TABLE.billing_mode == "PAY_PER_REQUEST"
    assert STOCKS_TABLE.key_schema() == [{"AttributeName": "pk", "KeyType": "HASH"}]
    assert STOCKS_TABLE.attribute_definitions() == [
        {"AttributeName": "pk", "AttributeType": "S"},
        {"AttributeName": "listing", "AttributeType": "S"},
        {"AttributeName": "symbol", "AttributeType": "S"},
        {"AttributeName": "added", "AttributeType": "S"},
        {"AttributeName": "created_at", "AttributeType": "S"},
    ]
    assert STOCKS_TABLE.global_secondary_indexes() == [
        {
            "IndexName": "by-symbol",
            "KeySchema": [
                {"AttributeName": "listing", "KeyType": "HASH"},
                {"AttributeName": "symbol", "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "ALL"},
        },
        {
            "IndexName": "by-created",
            "KeySchema": [
                {"AttributeName": "added", "KeyType": "HASH"},
                {"AttributeName": "created_at", "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "ALL"},
        },
    ]


def test_an_attribute_shared_by_keys_is_defined_once() -> None:
    schema = TableSchema(
        partition_key=KeyAttribute("pk"),
        sort_key=KeyAttribute("at", "N"),
        indexes=(TableIndex("by-at", partition_key=KeyAttribute("at", "N")),),
    )
    assert schema.attribute_definitions() == [
        {"AttributeName": "pk", "AttributeType": "S"},
        {"AttributeName": "at", "AttributeType": "N"},
    ]
    assert schema.key_schema()[1] == {"AttributeName": "at", "KeyType": "RANGE"}


def test_dead_letter_queues_are_named_after_their_queue() -> None:
    assert dead_letter_queue_name("logo-jobs") == "logo-jobs-dlq"
