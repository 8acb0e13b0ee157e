"""DynamoDB stock repository: the AWS adapter, one table, conditional writes only.

Items of the table (string partition key ``pk``):

- ``STOCK#<SYMBOL>``: the stock, plus ``slot`` (its dense slot number), ``rev`` (an internal
  revision bumped by every write, so one condition ``rev = :read`` says "unchanged since I read
  it") and ``listing = "STOCK"`` (key of the ``by-symbol`` index, sort key ``symbol``).
- ``SLOT#<k>`` for k in 0..n-1: a copy of the stock in slot k (same attributes, no ``listing``,
  so the index stays sparse and holds stocks only).
- ``META#count``: ``n``, the number of stocks.

Every write that touches more than one item is one TransactWriteItems whose conditions pin what
was read, so the invariant "slots 0..n-1 each hold a copy of a distinct live stock, the stock
item points back at its slot, and nothing else exists" holds under any concurrency:

- add: [counter n -> n+1 if still n; put the stock if its symbol is absent; put slot n]. A
  cancelled transaction says which condition failed: the stock item (-> StockExists with the
  stored stock, returned by the failed condition itself) or the counter (-> retry on a fresh
  count, with jittered backoff).
- update: read the stock, then rewrite it and its slot copy if ``rev`` is unchanged.
- delete: move the last slot's stock into the hole and shrink the counter, in one transaction
  conditioned on the revisions and the count that were read; retried on conflict.
- random: draw k in [0, n) from the last count this process saw, then one TransactGetItems
  reads the counter and slot k in one serializable snapshot. The pick is taken only if the
  snapshot's count is the n that k was drawn from, so it is uniform over that snapshot
  (otherwise redraw with the new count): one round trip per page view in the steady state,
  whatever the table size, and never a Scan. The slot copy is what makes it one round trip.

The counter is one item, so writes that add or delete stocks serialize on it (fine for a
watchlist) and every pick reads it (a hot key from about 1,500 picks a second; a short-lived
cache in front of ``random`` is the lever beyond that). The ``by-symbol`` index is eventually
consistent: a stock just added may take a moment to appear in ``list``; ``get``, ``count`` and
``random`` read strongly consistently.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import random
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, NoReturn, ParamSpec, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from stockday.aws.clients import AwsCalls, AwsConfig, describe_failure, error_code, make_client
from stockday.aws.schema import STOCKS_BY_SYMBOL
from stockday.domain.errors import BackendUnavailable
from stockday.domain.stocks import Logo, LogoState, Price, Stock
from stockday.stocks.base import StockExists, StockNotFound, StockPage, VersionConflict

if TYPE_CHECKING:
    from types_boto3_dynamodb import DynamoDBClient
    from types_boto3_dynamodb.type_defs import (
        AttributeValueTypeDef,
        TransactWriteItemTypeDef,
    )

    Item = Mapping[str, AttributeValueTypeDef]

P = ParamSpec("P")
T = TypeVar("T")

__all__ = ["DynamoDbStockRepository"]

LISTING = "STOCK"
COUNTER_PK = "META#count"
MAX_PAGE = 500

# Optimistic writes retry on a conflict a bounded number of times, with full-jitter backoff.
WRITE_ATTEMPTS = 16
BACKOFF_BASE_SECONDS = 0.005
BACKOFF_CAP_SECONDS = 0.4
# A pick is redrawn only when the count changed between draw and read.
RANDOM_ATTEMPTS = 8

_CONDITION_FAILED = "ConditionalCheckFailed"
_CANCELLED = "TransactionCanceledException"
_RETRYABLE_REASONS = {
    "None",
    _CONDITION_FAILED,
    "TransactionConflict",
    "ThrottlingError",
    "ProvisionedThroughputExceeded",
    "RequestLimitExceeded",
}


class _Cancelled(Exception):
    """A transaction was cancelled; ``reasons`` has one entry per item, in order."""

    def __init__(self, reasons: Sequence[Mapping[str, Any]]) -> None:
        super().__init__("transaction cancelled")
        self.reasons = list(reasons)

    def failed(self, index: int) -> bool:
        return index < len(self.reasons) and self.reasons[index].get("Code") == _CONDITION_FAILED

    def item(self, index: int) -> Item | None:
        if index < len(self.reasons):
            found: Item | None = self.reasons[index].get("Item")
            return found
        return None


class DynamoDbStockRepository:
    """StockRepository on one DynamoDB table (see the module docstring for the item layout)."""

    def __init__(
        self,
        config: AwsConfig,
        table: str,
        *,
        setting: str = "STOCKDAY_DYNAMODB_TABLE",
        calls: AwsCalls | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._table = table
        self._setting = setting
        self._owns_calls = calls is None
        self._calls = calls or AwsCalls()
        self._rng = rng or random.SystemRandom()
        self._client: DynamoDBClient = make_client("dynamodb", config)
        # The last count this process saw: a hint, always verified by a condition or snapshot.
        self._count_hint: int | None = None

    # --- the port -----------------------------------------------------------------------

    async def add(self, stock: Stock) -> None:
        n = self._count_hint if self._count_hint is not None else await self._read_count()
        fresh = self._count_hint is None
        for attempt in range(WRITE_ATTEMPTS):
            record = _stock_attributes(stock, slot=n, rev=0)
            counter_condition = "attribute_not_exists(pk) OR n = :n" if n == 0 else "n = :n"
            try:
                await self._transact(
                    [
                        self._counter_update(n, n + 1, counter_condition),
                        {
                            "Put": {
                                "TableName": self._table,
                                "Item": _stock_item(record),
                                "ConditionExpression": "attribute_not_exists(pk)",
                                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                            }
                        },
                        {"Put": {"TableName": self._table, "Item": _slot_item(record)}},
                    ]
                )
            except _Cancelled as cancelled:
                if cancelled.failed(1):
                    existing = cancelled.item(1) or await self._get_item(_stock_pk(stock.symbol))
                    if existing is not None:
                        raise StockExists(_to_stock(existing)) from None
                # The counter moved (or the stock vanished again): retry on a fresh count,
                # backing off only when the count we used was already fresh.
                if fresh:
                    await self._pause(attempt)
                n = await self._read_count()
                fresh = True
                continue
            self._count_hint = n + 1
            return
        self._too_contended("adding a stock")

    async def get(self, symbol: str) -> Stock | None:
        item = await self._get_item(_stock_pk(symbol))
        return _to_stock(item) if item is not None else None

    async def list(self, *, limit: int = 50, cursor: str | None = None) -> StockPage:
        limit = max(1, min(limit, MAX_PAGE))
        after = _decode_cursor(cursor) if cursor else ""
        condition = "listing = :listing"
        values: dict[str, AttributeValueTypeDef] = {":listing": {"S": LISTING}}
        if after:
            condition += " AND symbol > :after"
            values[":after"] = {"S": after}
        items: list[Item] = []
        start: Mapping[str, AttributeValueTypeDef] | None = None
        # One more than a page tells whether there is a next page; the loop only continues
        # when DynamoDB stopped at its 1 MB response limit before that.
        while len(items) <= limit:
            extra: dict[str, Any] = {"ExclusiveStartKey": start} if start else {}
            answer = await self._call(
                self._client.query,
                TableName=self._table,
                IndexName=STOCKS_BY_SYMBOL,
                KeyConditionExpression=condition,
                ExpressionAttributeValues=values,
                Limit=limit + 1 - len(items),
                **extra,
            )
            items.extend(answer.get("Items", []))
            start = answer.get("LastEvaluatedKey")
            if not start:
                break
        stocks = [_to_stock(item) for item in items[:limit]]
        next_cursor = _encode_cursor(stocks[-1].symbol) if len(items) > limit else None
        return StockPage(items=stocks, next_cursor=next_cursor)

    async def update(self, stock: Stock, *, expected_version: int) -> None:
        for attempt in range(WRITE_ATTEMPTS):
            current = await self._get_item(_stock_pk(stock.symbol))
            if current is None:
                raise StockNotFound(stock.symbol)
            if _int(current, "version") != expected_version:
                raise VersionConflict(stock.symbol, expected_version)
            rev = _int(current, "rev")
            record = _stock_attributes(stock, slot=_int(current, "slot"), rev=rev + 1)
            try:
                await self._transact(
                    [
                        {
                            "Put": {
                                "TableName": self._table,
                                "Item": _stock_item(record),
                                "ConditionExpression": "rev = :rev",
                                "ExpressionAttributeValues": {":rev": _number(rev)},
                            }
                        },
                        {"Put": {"TableName": self._table, "Item": _slot_item(record)}},
                    ]
                )
            except _Cancelled:
                # Changed since read: the next read tells a real conflict from a slot move.
                await self._pause(attempt)
                continue
            return
        self._too_contended(f"updating stock {stock.symbol}")

    async def delete(self, symbol: str) -> Stock | None:
        # One snapshot reads the stock, the counter and the last slot, guessed from the count
        # hint; a wrong guess costs one more snapshot, now with the count it returned.
        guess = self._count_hint or 0
        fresh = False
        for attempt in range(WRITE_ATTEMPTS):
            last_pks = [_slot_pk(guess - 1)] if guess > 0 else []
            try:
                item, counter, *tail = await self._snapshot(
                    _stock_pk(symbol), COUNTER_PK, *last_pks
                )
            except _Cancelled:  # a write transaction was in flight on one of the items
                await self._pause(attempt)
                continue
            if item is None:
                return None
            n = _int(counter, "n") if counter is not None else 0
            slot, last = _int(item, "slot"), n - 1
            moved = tail[0] if tail and guess == n and slot != last else None
            if slot != last and (moved is None or _str(moved, "symbol") == symbol):
                if fresh:  # the count moved again since the last snapshot
                    await self._pause(attempt)
                guess, fresh = n, True
                continue
            try:
                await self._transact(self._delete_actions(item, n, moved))
            except _Cancelled:
                await self._pause(attempt)
                guess, fresh = n, False
                continue
            self._count_hint = last
            return _to_stock(item)
        self._too_contended(f"deleting stock {symbol}")

    def _delete_actions(
        self, item: Item, n: int, moved: Item | None
    ) -> Sequence[TransactWriteItemTypeDef]:
        """Remove ``item`` and fill its slot with ``moved``, the stock in the last slot (None
        when ``item`` is the last slot itself)."""
        slot, last = _int(item, "slot"), n - 1
        actions: list[TransactWriteItemTypeDef] = [
            {
                "Delete": {
                    "TableName": self._table,
                    "Key": _key(_stock_pk(_str(item, "symbol"))),
                    "ConditionExpression": "rev = :rev",
                    "ExpressionAttributeValues": {":rev": _number(_int(item, "rev"))},
                }
            }
        ]
        if moved is None:
            actions.append({"Delete": {"TableName": self._table, "Key": _key(_slot_pk(slot))}})
        else:
            moved_rev = _int(moved, "rev")
            record = {**moved, "slot": _number(slot), "rev": _number(moved_rev + 1)}
            actions += [
                {
                    "Update": {
                        "TableName": self._table,
                        "Key": _key(_stock_pk(_str(moved, "symbol"))),
                        "UpdateExpression": "SET slot = :slot, rev = :next",
                        "ConditionExpression": "rev = :rev",
                        "ExpressionAttributeValues": {
                            ":slot": _number(slot),
                            ":next": _number(moved_rev + 1),
                            ":rev": _number(moved_rev),
                        },
                    }
                },
                {"Put": {"TableName": self._table, "Item": _slot_item(record)}},
                {"Delete": {"TableName": self._table, "Key": _key(_slot_pk(last))}},
            ]
        actions.append(self._counter_update(n, last, "n = :n"))
        return actions

    async def count(self) -> int:
        return await self._read_count()

    async def random(self) -> Stock | None:
        n = self._count_hint
        for attempt in range(RANDOM_ATTEMPTS):
            if not n:  # unknown, or a zero that may be stale
                n = await self._read_count()
                if n == 0:
                    return None
            k = self._rng.randrange(n)
            try:
                counter, item = await self._snapshot(COUNTER_PK, _slot_pk(k))
            except _Cancelled:  # a concurrent write transaction on one of the two items
                await self._pause(attempt)
                continue
            current = _int(counter, "n") if counter is not None else 0
            self._count_hint = current
            # Uniform: k was drawn from exactly the count of the snapshot slot k comes from.
            # The last attempt settles for any live slot rather than failing a page view.
            if item is not None and (current == n or attempt == RANDOM_ATTEMPTS - 1):
                return _to_stock(item)
            if current == 0:
                return None
            n = current
        self._too_contended("picking a random stock")

    async def check(self) -> None:
        answer = await self._call(self._client.describe_table, TableName=self._table)
        description = answer["Table"]
        status = description.get("TableStatus", "")
        indexes = {i.get("IndexName") for i in description.get("GlobalSecondaryIndexes", [])}
        if status not in {"ACTIVE", "UPDATING"}:
            raise BackendUnavailable(self._reason(f"its status is {status or 'unknown'}"))
        if STOCKS_BY_SYMBOL not in indexes:
            raise BackendUnavailable(
                self._reason(
                    f"it has no index {STOCKS_BY_SYMBOL!r} to list stocks by symbol; create the"
                    " table with stockday.aws.provision.create_table (stockday provision)"
                )
            )

    async def close(self) -> None:
        self._client.close()
        if self._owns_calls:
            self._calls.close()

    # --- calls ------------------------------------------------------------------------

    async def _call(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run one client call on the pool; AWS and network failures become BackendUnavailable."""
        try:
            return await self._calls.run(fn, *args, **kwargs)
        except (ClientError, BotoCoreError) as exc:
            if error_code(exc) == _CANCELLED and isinstance(exc, ClientError):
                reasons = exc.response.get("CancellationReasons", [])
                # Lost races are retried by the caller; anything else (a validation error,
                # an item too large) would fail again.
                if all(r.get("Code") in _RETRYABLE_REASONS for r in reasons):
                    raise _Cancelled(reasons) from None
            raise BackendUnavailable(
                describe_failure(exc, f"DynamoDB table {self._table!r}", self._setting)
            ) from exc

    async def _get_item(self, pk: str) -> Item | None:
        answer = await self._call(
            self._client.get_item, TableName=self._table, Key=_key(pk), ConsistentRead=True
        )
        item: Item | None = answer.get("Item")
        return item

    async def _snapshot(self, *pks: str) -> Sequence[Item | None]:
        """Several items read in one serializable snapshot (TransactGetItems)."""
        answer = await self._call(
            self._client.transact_get_items,
            TransactItems=[{"Get": {"TableName": self._table, "Key": _key(pk)}} for pk in pks],
        )
        return [response.get("Item") or None for response in answer["Responses"]]

    async def _transact(self, actions: Sequence[TransactWriteItemTypeDef]) -> None:
        # botocore fills ClientRequestToken, so its own retries of one call are idempotent.
        await self._call(self._client.transact_write_items, TransactItems=list(actions))

    async def _read_count(self) -> int:
        item = await self._get_item(COUNTER_PK)
        n = _int(item, "n") if item is not None else 0
        self._count_hint = n
        return n

    def _counter_update(self, read: int, new: int, condition: str) -> TransactWriteItemTypeDef:
        return {
            "Update": {
                "TableName": self._table,
                "Key": _key(COUNTER_PK),
                "UpdateExpression": "SET n = :new",
                "ConditionExpression": condition,
                "ExpressionAttributeValues": {":n": _number(read), ":new": _number(new)},
            }
        }

    async def _pause(self, attempt: int) -> None:
        ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2**attempt)
        await asyncio.sleep(self._rng.uniform(0, ceiling))

    def _reason(self, why: str) -> str:
        return f"DynamoDB table {self._table!r} unavailable: {why} (set by {self._setting})"

    def _too_contended(self, what: str) -> NoReturn:
        raise BackendUnavailable(
            self._reason(f"{what} kept conflicting with concurrent writes; try again")
        )


# --- items ---------------------------------------------------------------------------------


def _stock_pk(symbol: str) -> str:
    return f"STOCK#{symbol}"


def _slot_pk(slot: int) -> str:
    return f"SLOT#{slot}"


def _key(pk: str) -> dict[str, AttributeValueTypeDef]:
    return {"pk": {"S": pk}}


def _number(value: int | float) -> AttributeValueTypeDef:
    return {"N": repr(value)}


def _stock_attributes(stock: Stock, *, slot: int, rev: int) -> dict[str, AttributeValueTypeDef]:
    """The attributes a stock item and its slot copy share."""
    record: dict[str, AttributeValueTypeDef] = {
        "symbol": {"S": stock.symbol},
        "name": {"S": stock.name},
        "version": _number(stock.version),
        "logo_state": {"S": stock.logo.state.value},
        "created_at": {"S": stock.created_at.isoformat()},
        "updated_at": {"S": stock.updated_at.isoformat()},
        "slot": _number(slot),
        "rev": _number(rev),
    }
    optional = {
        "logo_upload_id": stock.logo.upload_id,
        "logo_key": stock.logo.key,
        "logo_error": stock.logo.error,
        "request_key": stock.request_key,
    }
    record.update({name: {"S": value} for name, value in optional.items() if value is not None})
    if stock.last_price is not None:
        record["last_price"] = {"M": _to_map(stock.last_price.to_record())}
    return record


def _stock_item(record: Mapping[str, AttributeValueTypeDef]) -> dict[str, AttributeValueTypeDef]:
    return {**record, "pk": {"S": _stock_pk(_str(record, "symbol"))}, "listing": {"S": LISTING}}


def _slot_item(record: Mapping[str, AttributeValueTypeDef]) -> dict[str, AttributeValueTypeDef]:
    copy = {name: value for name, value in record.items() if name != "listing"}
    return {**copy, "pk": {"S": _slot_pk(_int(record, "slot"))}}


def _to_map(record: Mapping[str, Any]) -> dict[str, AttributeValueTypeDef]:
    out: dict[str, AttributeValueTypeDef] = {}
    for name, value in record.items():
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise TypeError(f"cannot store {name}={value!r}")
        out[name] = {"S": value} if isinstance(value, str) else _number(value)
    return out


def _from_map(attributes: Mapping[str, Any]) -> dict[str, Any]:
    return {
        name: value["S"] if "S" in value else float(value["N"])
        for name, value in attributes.items()
    }


def _str(item: Mapping[str, AttributeValueTypeDef], name: str) -> str:
    return item[name]["S"]


def _optional_str(item: Mapping[str, AttributeValueTypeDef], name: str) -> str | None:
    value = item.get(name)
    return value["S"] if value is not None else None


def _int(item: Mapping[str, AttributeValueTypeDef], name: str) -> int:
    return int(item[name]["N"])


def _to_stock(item: Mapping[str, AttributeValueTypeDef]) -> Stock:
    price = item.get("last_price")
    return Stock(
        symbol=_str(item, "symbol"),
        name=_str(item, "name"),
        version=_int(item, "version"),
        logo=Logo(
            state=LogoState(_str(item, "logo_state")),
            upload_id=_optional_str(item, "logo_upload_id"),
            key=_optional_str(item, "logo_key"),
            error=_optional_str(item, "logo_error"),
        ),
        last_price=Price.from_record(_from_map(price["M"])) if price is not None else None,
        request_key=_optional_str(item, "request_key"),
        created_at=datetime.fromisoformat(_str(item, "created_at")),
        updated_at=datetime.fromisoformat(_str(item, "updated_at")),
    )


# --- cursors -------------------------------------------------------------------------------


def _encode_cursor(symbol: str) -> str:
    return base64.urlsafe_b64encode(symbol.encode()).decode("ascii").rstrip("=")


def _decode_cursor(cursor: str) -> str:
    """The symbol a cursor of ours stands for.

    Anything else is taken as a plain lower bound, as the SQLite adapter takes every cursor:
    a malformed cursor yields the stocks after it (often none), never an error.
    """
    try:
        symbol = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return cursor
    if not symbol.isprintable() or _encode_cursor(symbol) != cursor:
        return cursor
    return symbol
