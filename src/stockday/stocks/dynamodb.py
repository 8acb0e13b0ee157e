"""DynamoDB stock repository: the AWS adapter, one table, conditional writes only.

The items (stock, slot copy, counter) are laid out in stockday.stocks.dynamodb_items.

Every write that touches more than one item is one TransactWriteItems whose conditions pin what
was read, so the invariant "slots 0..n-1 each hold a copy of a distinct live stock, the stock
item points back at its slot, and nothing else exists" holds under any concurrency:

- add: [counter n -> n+1 if still n; put the stock if its symbol is absent; put slot n]. A
  cancelled transaction says which condition failed: the stock item (-> StockExists with the
  stored stock, returned by the failed condition itself) or the counter (-> retry on the count
  the failed condition returned, with jittered backoff).
- update: read the stock, then rewrite it and its slot copy if ``rev`` is unchanged.
- delete: move the last slot's stock into the hole and shrink the counter, in one transaction
  conditioned on the revisions and the count that were read; retried on conflict.
- hide: the same transaction as delete, except that the stock item stays, marked hidden,
  without a slot nor a place in the by-symbol index. Unhide is an add of the existing item:
  [counter n -> n+1 if still n; give the stock slot n if its ``rev`` is unchanged; put slot n].
- random: draw k in [0, n) from the last count this process saw, then one TransactGetItems
  reads the counter and slot k in one serializable snapshot. The pick is taken only if the
  snapshot's count is the n that k was drawn from, so it is uniform over that snapshot
  (otherwise redraw with the new count): one round trip per page view in the steady state,
  whatever the table size, and never a Scan. The slot copy is what makes it one round trip.

Writes retry the races they lose within a time budget, not a count of attempts (see
stockday.stocks.dynamodb_retry for why).

The counter is one item, so writes that add or delete stocks serialize on it (fine for a
watchlist) and every pick reads it (a hot key from about 1,500 picks a second; a short-lived
cache in front of ``random`` is the lever beyond that). The ``by-symbol`` index is eventually
consistent: a stock just added may take a moment to appear in ``list``; ``get``, ``count`` and
``random`` read strongly consistently.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from stockday.aws.dynamodb_values import attribute, from_item, to_item
from stockday.aws.schema import STOCKS_BY_CREATED, STOCKS_BY_SYMBOL
from stockday.domain.errors import BackendUnavailable
from stockday.domain.stocks import Stock
from stockday.stocks.base import StockExists, StockNotFound, StockPage, VersionConflict
from stockday.stocks.dynamodb_items import (
    ADDED,
    COUNTER_PK,
    LISTING,
    Record,
    counter_update,
    decode_cursor,
    delete_actions,
    encode_cursor,
    hide_actions,
    is_hidden,
    slot_item,
    slot_pk,
    stock_item,
    stock_pk,
    stock_record,
    to_stock,
    unhide_actions,
)
from stockday.stocks.dynamodb_retry import Retries
from stockday.stocks.dynamodb_table import Cancelled, StockTable

if TYPE_CHECKING:
    from types_boto3_dynamodb.type_defs import (
        AttributeValueTypeDef,
        TransactWriteItemTypeDef,
    )

__all__ = ["DynamoDbStockRepository"]

MAX_PAGE = 500

# A pick is redrawn only when the count changed between draw and read; a page view does not
# wait out contention, so its bound stays a small count (its last attempt settles).
RANDOM_ATTEMPTS = 8


class DynamoDbStockRepository(StockTable):
    """StockRepository on one DynamoDB table (see the module docstring for the item layout)."""

    # --- the port -----------------------------------------------------------------------

    async def add(self, stock: Stock) -> None:
        n = self._count_hint if self._count_hint is not None else await self._read_count()
        fresh = self._count_hint is None
        retries = Retries(self._rng)
        while True:
            record = stock_record(stock, slot=n, rev=0)
            counter_condition = "attribute_not_exists(pk) OR n = :n" if n == 0 else "n = :n"
            try:
                await self._transact(
                    [
                        counter_update(self._table, n, n + 1, counter_condition),
                        {
                            "Put": {
                                "TableName": self._table,
                                "Item": to_item(stock_item(record)),
                                "ConditionExpression": "attribute_not_exists(pk)",
                                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                            }
                        },
                        {"Put": {"TableName": self._table, "Item": to_item(slot_item(record))}},
                    ]
                )
            except Cancelled as cancelled:
                if cancelled.failed(1):
                    existing = cancelled.item(1) or await self._get_item(stock_pk(stock.symbol))
                    if existing is not None:
                        raise StockExists(to_stock(existing)) from None
                # The counter moved (or the stock vanished again): retry on a fresh count,
                # backing off only when the count we used was already fresh.
                if fresh:
                    await self._backoff(retries, "adding a stock")
                n = await self._current_count(cancelled, 0)
                fresh = True
                continue
            self._count_hint = n + 1
            return

    async def get(self, symbol: str) -> Stock | None:
        item = await self._get_item(stock_pk(symbol))
        return to_stock(item) if item is not None else None

    async def list(self, *, limit: int = 50, cursor: str | None = None) -> StockPage:
        limit = max(1, min(limit, MAX_PAGE))
        after = decode_cursor(cursor) if cursor else ""
        condition = "listing = :listing"
        values = {":listing": attribute(LISTING)}
        if after:
            condition += " AND symbol > :after"
            values[":after"] = attribute(after)
        items: list[Mapping[str, AttributeValueTypeDef]] = []
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
        stocks = [to_stock(from_item(item)) for item in items[:limit]]
        next_cursor = encode_cursor(stocks[-1].symbol) if len(items) > limit else None
        return StockPage(items=stocks, next_cursor=next_cursor)

    async def update(self, stock: Stock, *, expected_version: int) -> None:
        retries = Retries(self._rng)
        while True:
            current = await self._get_item(stock_pk(stock.symbol))
            if current is None:
                raise StockNotFound(stock.symbol)
            if int(current["version"]) != expected_version:
                raise VersionConflict(stock.symbol, expected_version)
            rev = int(current["rev"])
            # Hidden or not is the stored stock's, never the caller's copy's: only set_hidden
            # changes it.
            hidden = is_hidden(current)
            slot = None if hidden else int(current["slot"])
            record = stock_record(replace(stock, hidden=hidden), slot=slot, rev=rev + 1)
            actions: list[TransactWriteItemTypeDef] = [
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": to_item(stock_item(record)),
                        "ConditionExpression": "rev = :rev",
                        "ExpressionAttributeValues": {":rev": attribute(rev)},
                    }
                }
            ]
            if not hidden:
                actions.append(
                    {"Put": {"TableName": self._table, "Item": to_item(slot_item(record))}}
                )
            try:
                await self._transact(actions)
            except Cancelled:
                # Changed since read: the next read tells a real conflict from a slot move.
                await self._backoff(retries, f"updating stock {stock.symbol}")
                continue
            return

    async def delete(self, symbol: str) -> Stock | None:
        item = await self._vacate(symbol, remove=True)
        return to_stock(item) if item is not None else None

    async def recent(self, *, limit: int = 50) -> Sequence[Stock]:
        answer = await self._call(
            self._client.query,
            TableName=self._table,
            IndexName=STOCKS_BY_CREATED,
            KeyConditionExpression="added = :added",
            ExpressionAttributeValues={":added": attribute(ADDED)},
            ScanIndexForward=False,
            Limit=max(1, min(limit, MAX_PAGE)),
        )
        return [to_stock(from_item(item)) for item in answer.get("Items", [])]

    async def set_hidden(self, symbol: str, hidden: bool) -> Stock | None:
        item = await (self._vacate(symbol, remove=False) if hidden else self._unhide(symbol))
        return to_stock(item) if item is not None else None

    async def _vacate(self, symbol: str, *, remove: bool) -> Record | None:
        """Delete (``remove``) or hide a stock, keeping the slots dense; the item as it was
        read, or (hiding) as it now is; None when there is no such stock."""
        what = f"{'deleting' if remove else 'hiding'} stock {symbol}"
        # One snapshot reads the stock, the counter and the last slot, guessed from the count
        # hint; a wrong guess costs one more snapshot, now with the count it returned.
        guess = self._count_hint or 0
        fresh = False
        retries = Retries(self._rng)
        while True:
            last_pks = [slot_pk(guess - 1)] if guess > 0 else []
            try:
                item, counter, *tail = await self._snapshot(stock_pk(symbol), COUNTER_PK, *last_pks)
            except Cancelled:  # a write transaction was in flight on one of the items
                await self._backoff(retries, what)
                continue
            if item is None or (is_hidden(item) and not remove):
                return item
            n = int(counter["n"]) if counter is not None else 0
            if is_hidden(item):  # holds no slot: only the item goes
                only_item = delete_actions(self._table, item, n, None)
                if await self._transacted(only_item, retries, what):
                    return item
                continue
            slot, last = int(item["slot"]), n - 1
            moved = tail[0] if tail and guess == n and slot != last else None
            if slot != last and (moved is None or moved["symbol"] == symbol):
                if fresh:  # the count moved again since the last snapshot
                    await self._backoff(retries, what)
                guess, fresh = n, True
                continue
            build = delete_actions if remove else hide_actions
            actions = build(self._table, item, n, moved)
            try:
                await self._transact(actions)
            except Cancelled as cancelled:
                # A lost race: the counter's failed condition says the count to guess next.
                await self._backoff(retries, what)
                fresh = cancelled.failed(len(actions) - 1)
                guess = await self._current_count(cancelled, len(actions) - 1) if fresh else n
                continue
            self._count_hint = last
            return item if remove else _hidden(item)

    async def _unhide(self, symbol: str) -> Record | None:
        """Give a hidden stock the next slot; the item as it now is, None when there is none."""
        retries = Retries(self._rng)
        n = self._count_hint
        while True:
            item = await self._get_item(stock_pk(symbol))
            if item is None or not is_hidden(item):
                return item
            if n is None:
                n = await self._read_count()
            try:
                await self._transact(unhide_actions(self._table, item, n))
            except Cancelled as cancelled:
                await self._backoff(retries, f"showing stock {symbol}")
                n = await self._current_count(cancelled, 0) if cancelled.failed(0) else None
                continue
            self._count_hint = n + 1
            shown = {name: value for name, value in item.items() if name != "is_hidden"}
            return {**shown, "slot": n}

    async def count(self) -> int:
        return await self._read_count()

    async def random(self) -> Stock | None:
        n = self._count_hint
        retries = Retries(self._rng)
        for attempt in range(RANDOM_ATTEMPTS):
            if not n:  # unknown, or a zero that may be stale
                n = await self._read_count()
                if n == 0:
                    return None
            k = self._rng.randrange(n)
            try:
                counter, item = await self._snapshot(COUNTER_PK, slot_pk(k))
            except Cancelled:  # a concurrent write transaction on one of the two items
                await retries.pause()
                continue
            current = int(counter["n"]) if counter is not None else 0
            self._count_hint = current
            # Uniform: k was drawn from exactly the count of the snapshot slot k comes from.
            # The last attempt settles for any live slot rather than failing a page view.
            if item is not None and (current == n or attempt == RANDOM_ATTEMPTS - 1):
                return to_stock(item)
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
        for index, purpose in ((STOCKS_BY_SYMBOL, "by symbol"), (STOCKS_BY_CREATED, "by age")):
            if index not in indexes:
                raise BackendUnavailable(
                    self._reason(
                        f"it has no index {index!r} to list stocks {purpose}; create the table"
                        " with stockday.aws.provision.create_table (stockday provision)"
                    )
                )

    # --- calls ------------------------------------------------------------------------


def _hidden(item: Record) -> Record:
    """A stock item as hide_actions leaves it."""
    kept = {name: value for name, value in item.items() if name not in ("slot", "listing")}
    return {**kept, "is_hidden": True}
