"""DynamoDB-specific: slot density under concurrency, no scans, failures named in one line."""

from __future__ import annotations

import asyncio
import random
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import date
from typing import Any

import pytest

import stockday.stocks.dynamodb_table as dynamodb_table
from stockday.aws.clients import AwsConfig, make_client
from stockday.aws.provision import create_table
from stockday.aws.schema import STOCKS_TABLE, KeyAttribute, TableSchema
from stockday.domain.errors import BackendUnavailable
from stockday.domain.stocks import Price, Stock
from stockday.stocks.dynamodb import DynamoDbStockRepository
from tests.stocks.churn import churn
from tests.support.aws import emulator_config, new_stocks_table, unreachable_config
from tests.support.servers import EMULATOR_ENV, ServerProcess, moto_server

pytestmark = pytest.mark.anyio


# moto's server runs requests on concurrent threads, and there its TransactWriteItems is not
# atomic: a cancelled transaction restores a copy of the whole table taken when it started,
# undoing any write committed in between (about one churn run in twenty lost a stock). DynamoDB
# serializes conflicting transactions, so the churn test talks to a moto that handles one
# request at a time; the clients' round trips still interleave freely, which is what the
# adapter's slot bookkeeping has to survive.
SERIAL_MOTO = """
import sys
from moto.server import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple

app = DomainDispatcherApplication(create_backend_app)
run_simple("127.0.0.1", int(sys.argv[1]), app, threaded=False, request_handler=MotoRequestHandler)
"""


@pytest.fixture(scope="module")
def serial_moto() -> Iterator[ServerProcess]:
    with moto_server([sys.executable, "-c", SERIAL_MOTO]) as server:
        yield server


@pytest.fixture
def table(config: AwsConfig) -> Iterator[str]:
    name = f"stocks-{uuid.uuid4().hex}"
    client = make_client("dynamodb", config)
    try:
        create_table(client, name)
        yield name
    finally:
        client.close()


@pytest.fixture
async def repo(config: AwsConfig, table: str) -> AsyncIterator[DynamoDbStockRepository]:
    repository = DynamoDbStockRepository(config, table)
    yield repository
    await repository.close()


def table_items(config: AwsConfig, table: str) -> dict[str, dict[str, Any]]:
    """Every item of the table by partition key (tests may scan; the adapter never does)."""
    client = make_client("dynamodb", config)
    try:
        items: dict[str, dict[str, Any]] = {}
        for page in client.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
            for item in page["Items"]:
                items[item["pk"]["S"]] = dict(item)
        return items
    finally:
        client.close()


async def test_a_missing_table_is_named_with_its_setting(config: AwsConfig) -> None:
    missing = f"no-such-table-{uuid.uuid4().hex[:8]}"
    repository = DynamoDbStockRepository(config, missing)
    try:
        with pytest.raises(BackendUnavailable) as info:
            await repository.check()
        message = str(info.value)
        assert "\n" not in message
        assert missing in message
        assert "STOCKDAY_DYNAMODB_TABLE" in message
        assert "does not exist" in message
        # Data calls fail the same way, never with a raw botocore error.
        with pytest.raises(BackendUnavailable, match=missing):
            await repository.get("AAPL")
        with pytest.raises(BackendUnavailable, match=missing):
            await repository.add(Stock.new("AAPL", "Apple Inc."))
    finally:
        await repository.close()


async def test_a_table_without_the_listing_index_is_not_ready(config: AwsConfig) -> None:
    name = f"stocks-{uuid.uuid4().hex}"
    client = make_client("dynamodb", config)
    try:
        client.create_table(
            TableName=name,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        )
        # DynamoDB answers CREATING for a while: wait as provisioning does.
        client.get_waiter("table_exists").wait(
            TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 120}
        )
    finally:
        client.close()
    repository = DynamoDbStockRepository(config, name)
    try:
        with pytest.raises(BackendUnavailable) as info:
            await repository.check()
        assert "by-symbol" in str(info.value)
        assert "STOCKDAY_DYNAMODB_TABLE" in str(info.value)
    finally:
        await repository.close()


async def test_an_unreachable_endpoint_fails_fast_in_one_line() -> None:
    config = unreachable_config()
    repository = DynamoDbStockRepository(config, "stocks", setting="MY_TABLE_SETTING")
    try:
        for call in (repository.check, repository.count, repository.random, repository.list):
            with pytest.raises(BackendUnavailable) as info:
                await call()
            message = str(info.value)
            assert "\n" not in message
            assert "'stocks'" in message
            assert "MY_TABLE_SETTING" in message
            assert "cannot reach" in message
    finally:
        await repository.close()


async def test_create_table_is_idempotent(
    config: AwsConfig, table: str, repo: DynamoDbStockRepository
) -> None:
    await repo.add(Stock.new("KEEP", "Kept across a second create"))
    client = make_client("dynamodb", config)
    try:
        create_table(client, table)
        described = client.describe_table(TableName=table)["Table"]
    finally:
        client.close()
    assert described["TableStatus"] == "ACTIVE"
    assert described["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert described["SSEDescription"]["Status"] in {"ENABLED", "ENABLING"}
    assert [i["IndexName"] for i in described["GlobalSecondaryIndexes"]] == [
        "by-symbol",
        "by-created",
    ]
    assert await repo.get("KEEP") is not None
    await repo.check()


async def test_create_table_adds_an_index_the_table_lacks(config: AwsConfig) -> None:
    """A table made without the by-created index gets it, and its stocks stay and are in it."""
    name = f"stocks-{uuid.uuid4().hex}"
    older = TableSchema(partition_key=KeyAttribute("pk"), indexes=STOCKS_TABLE.indexes[:1])
    client = make_client("dynamodb", config)
    try:
        create_table(client, name, older)
        repository = DynamoDbStockRepository(config, name)
        try:
            await repository.add(Stock.new("OLD", "Made before"))
            with pytest.raises(BackendUnavailable, match="by-created"):
                await repository.check()
            create_table(client, name)
            await repository.check()
            await repository.add(Stock.new("NEW", "Made after"))
            assert [s.symbol for s in await repository.recent(limit=5)] == ["NEW", "OLD"]
        finally:
            await repository.close()
    finally:
        client.close()


async def test_list_and_random_never_scan(
    config: AwsConfig, table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    operations: list[tuple[str, dict[str, Any]]] = []

    def recording_client(service: Any, cfg: AwsConfig, **kwargs: Any) -> Any:
        client = make_client(service, cfg, **kwargs)

        def record(model: Any, params: dict[str, Any], **_: Any) -> None:
            operations.append((model.name, params))

        client.meta.events.register("before-parameter-build.dynamodb.*", record)
        return client

    monkeypatch.setattr(dynamodb_table, "make_client", recording_client)
    repository = DynamoDbStockRepository(config, table)
    try:
        for i in range(12):
            await repository.add(Stock.new(f"L{i:02d}", f"Listed {i}"))
        operations.clear()
        seen: list[str] = []
        cursor: str | None = None
        while True:
            page = await repository.list(limit=5, cursor=cursor)
            seen += [s.symbol for s in page.items]
            if page.next_cursor is None:
                break
            assert page.next_cursor != page.items[-1].symbol  # opaque, not the raw symbol
            cursor = page.next_cursor
        assert seen == [f"L{i:02d}" for i in range(12)]
        listing = [name for name, _ in operations]
        assert listing == ["Query"] * 3
        assert all(params["IndexName"] == "by-symbol" for _, params in operations)
        operations.clear()
        for _ in range(20):
            assert await repository.random() is not None
        assert {name for name, _ in operations} <= {"GetItem", "TransactGetItems"}
        # The count is known after the first pick: one round trip per pick from then on.
        assert len(operations) <= 21
    finally:
        await repository.close()


async def test_replicas_adding_and_deleting_concurrently_keep_slots_dense(
    serial_moto: ServerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Four replicas (own clients, own count hints) churn one table at the same time."""
    for name, value in EMULATOR_ENV.items():
        monkeypatch.setenv(name, value)
    config = emulator_config(serial_moto)
    table = new_stocks_table(config)
    workers = 4
    # Seeded, and distinct per replica: the same seed would back them off in lockstep.
    replicas = [
        DynamoDbStockRepository(config, table, rng=random.Random(1000 + w)) for w in range(workers)
    ]
    try:
        await asyncio.gather(*(churn(r, w, rounds=12) for w, r in enumerate(replicas)))
    finally:
        for replica in replicas:
            await replica.close()

    items = table_items(config, table)
    stocks = {pk: item for pk, item in items.items() if pk.startswith("STOCK#")}
    slots = {
        int(pk.removeprefix("SLOT#")): item for pk, item in items.items() if pk.startswith("SLOT#")
    }
    count = int(items["META#count"]["n"]["N"])
    # Each worker adds 12 and deletes 4; SHARED is created exactly once.
    assert count == workers * 8 + 1
    assert len(stocks) == count
    assert sorted(slots) == list(range(count))
    for k, slot in slots.items():
        stock = stocks[f"STOCK#{slot['symbol']['S']}"]
        assert int(stock["slot"]["N"]) == k
        # The slot holds an exact copy of its stock, so a pick returns current data.
        same = {
            name: value for name, value in stock.items() if name not in {"pk", "listing", "added"}
        }
        assert {name: value for name, value in slot.items() if name != "pk"} == same
    assert len({slot["symbol"]["S"] for slot in slots.values()}) == count


async def test_updates_reach_the_slot_copy_that_random_reads(
    repo: DynamoDbStockRepository,
) -> None:
    await repo.add(Stock.new("ONE", "Only stock", upload_id="u1"))
    stock = await repo.get("ONE")
    assert stock is not None
    ready = stock.logo_ready("u1", "logos/ONE/u1.webp")
    await repo.update(ready, expected_version=stock.version)
    picked = await repo.random()
    assert picked == await repo.get("ONE")
    assert picked is not None
    assert picked.logo.key == "logos/ONE/u1.webp"


async def test_items_keep_their_stored_typed_attributes(
    config: AwsConfig, table: str, repo: DynamoDbStockRepository
) -> None:
    """The exact attributes written, so that tables written before stay readable and the same."""
    price = Price(value=123.45, previous_close=120, as_of=date(2024, 5, 17), source="simulated")
    added = Stock.new("FMT", "Format Inc.", upload_id="u1", request_key="rk-1")
    await repo.add(added)
    stock = added.with_price(price)
    await repo.update(stock, expected_version=added.version)
    items = table_items(config, table)

    shared = {
        "symbol": {"S": "FMT"},
        "name": {"S": "Format Inc."},
        "version": {"N": str(stock.version)},
        "logo_state": {"S": "pending"},
        "logo_upload_id": {"S": "u1"},
        "request_key": {"S": "rk-1"},
        "created_at": {"S": stock.created_at.isoformat()},
        "updated_at": {"S": stock.updated_at.isoformat()},
        "slot": {"N": "0"},
        "rev": {"N": "1"},
        "last_price": {
            "M": {
                "value": {"N": "123.45"},
                "previous_close": {"N": "120"},
                "as_of": {"S": "2024-05-17"},
                "source": {"S": "simulated"},
                "currency": {"S": "USD"},
            }
        },
    }
    indexed = {"listing": {"S": "STOCK"}, "added": {"S": "STOCK"}}
    assert items["STOCK#FMT"] == {**shared, "pk": {"S": "STOCK#FMT"}, **indexed}
    assert items["SLOT#0"] == {**shared, "pk": {"S": "SLOT#0"}}
    assert items["META#count"] == {"pk": {"S": "META#count"}, "n": {"N": "1"}}
    assert await repo.get("FMT") == stock

    # Hidden: no slot, no listing, a flag; the count and the slot copy go.
    await repo.set_hidden("FMT", True)
    items = table_items(config, table)
    hidden = {name: value for name, value in shared.items() if name != "slot"}
    assert items["STOCK#FMT"] == {
        **hidden,
        "rev": {"N": "2"},
        "pk": {"S": "STOCK#FMT"},
        "added": {"S": "STOCK"},
        "is_hidden": {"BOOL": True},
    }
    assert "SLOT#0" not in items
    assert items["META#count"] == {"pk": {"S": "META#count"}, "n": {"N": "0"}}
    assert await repo.get("FMT") == replace(stock, hidden=True)
