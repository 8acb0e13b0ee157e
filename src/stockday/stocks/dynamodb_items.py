"""The items of the DynamoDB stock table, the multi-item writes on them, and the list cursors.

Items of the table (string partition key ``pk``):

- ``STOCK#<SYMBOL>``: the stock, plus ``slot`` (its dense slot number), ``rev`` (an internal
  revision bumped by every write, so one condition ``rev = :read`` says "unchanged since I read
  it"), ``listing = "STOCK"`` (key of the ``by-symbol`` index, sort key ``symbol``) and
  ``added = "STOCK"`` (key of the ``by-created`` index, sort key ``created_at``). A hidden
  stock has ``is_hidden = true`` (``hidden`` is a reserved word), no ``slot`` and no
  ``listing``: it is out of the pick and the listing, still in ``by-created`` for moderation.
- ``SLOT#<k>`` for k in 0..n-1: a copy of the stock in slot k (same attributes, no ``listing``
  nor ``added``, so the indexes stay sparse and hold stocks only).
- ``META#count``: ``n``, the number of visible stocks.

Records are plain Python values (numbers read back are Decimal); stockday.aws.dynamodb_values
turns them into DynamoDB's typed attribute values. How the repository uses these items under
concurrency is described in stockday.stocks.dynamodb.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from stockday.aws.dynamodb_values import attribute, to_item
from stockday.domain.stocks import Logo, LogoState, Price, Stock

if TYPE_CHECKING:
    from types_boto3_dynamodb.type_defs import AttributeValueTypeDef, TransactWriteItemTypeDef

LISTING = "STOCK"
ADDED = "STOCK"
COUNTER_PK = "META#count"

Record = dict[str, Any]


def stock_pk(symbol: str) -> str:
    return f"STOCK#{symbol}"


def slot_pk(slot: int) -> str:
    return f"SLOT#{slot}"


def key(pk: str) -> dict[str, AttributeValueTypeDef]:
    return {"pk": attribute(pk)}


def stock_record(stock: Stock, *, slot: int | None, rev: int) -> Record:
    """The attributes a stock item and its slot copy share; no slot when ``stock`` is hidden."""
    record: Record = {
        "symbol": stock.symbol,
        "name": stock.name,
        "version": stock.version,
        "logo_state": stock.logo.state.value,
        "created_at": stock.created_at.isoformat(),
        "updated_at": stock.updated_at.isoformat(),
        "rev": rev,
    }
    if stock.hidden:
        record["is_hidden"] = True
    elif slot is not None:
        record["slot"] = slot
    optional = {
        "logo_upload_id": stock.logo.upload_id,
        "logo_key": stock.logo.key,
        "logo_error": stock.logo.error,
        "request_key": stock.request_key,
    }
    record.update({name: value for name, value in optional.items() if value is not None})
    if stock.last_price is not None:
        record["last_price"] = _price_map(stock.last_price.to_record())
    return record


def stock_item(record: Mapping[str, Any]) -> Record:
    """The stock item: the record under its symbol's key, in the by-created index and, unless
    hidden, in the by-symbol index."""
    listed = {} if record.get("is_hidden") else {"listing": LISTING}
    return {**record, "pk": stock_pk(record["symbol"]), "added": ADDED, **listed}


def slot_item(record: Mapping[str, Any]) -> Record:
    """The slot copy: the record under its slot's key, left out of the indexes."""
    copy = {name: value for name, value in record.items() if name not in ("listing", "added")}
    return {**copy, "pk": slot_pk(int(record["slot"]))}


def is_hidden(item: Mapping[str, Any]) -> bool:
    return "slot" not in item


def to_stock(record: Mapping[str, Any]) -> Stock:
    price = record.get("last_price")
    return Stock(
        symbol=record["symbol"],
        name=record["name"],
        version=int(record["version"]),
        logo=Logo(
            state=LogoState(record["logo_state"]),
            upload_id=record.get("logo_upload_id"),
            key=record.get("logo_key"),
            error=record.get("logo_error"),
        ),
        last_price=Price.from_record(_from_price_map(price)) if price is not None else None,
        request_key=record.get("request_key"),
        created_at=datetime.fromisoformat(record["created_at"]),
        updated_at=datetime.fromisoformat(record["updated_at"]),
        hidden=bool(record.get("is_hidden", False)),
    )


def counter_update(table: str, read: int, new: int, condition: str) -> TransactWriteItemTypeDef:
    """Set the stock count to ``new`` if ``condition`` holds (``:n`` is the count read)."""
    return {
        "Update": {
            "TableName": table,
            "Key": key(COUNTER_PK),
            "UpdateExpression": "SET n = :new",
            "ConditionExpression": condition,
            "ExpressionAttributeValues": {":n": attribute(read), ":new": attribute(new)},
            # A lost race then carries the current count: the retry needs no read for it.
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
    }


def delete_actions(
    table: str, item: Record, n: int, moved: Record | None
) -> list[TransactWriteItemTypeDef]:
    """Remove stock ``item`` of ``n`` and, unless it is hidden, fill its slot with ``moved``
    (see ``vacate_actions``); conditioned on the revisions read."""
    remove: TransactWriteItemTypeDef = {
        "Delete": {
            "TableName": table,
            "Key": key(stock_pk(item["symbol"])),
            "ConditionExpression": "rev = :rev",
            "ExpressionAttributeValues": {":rev": attribute(int(item["rev"]))},
        }
    }
    return [remove] if is_hidden(item) else [remove, *vacate_actions(table, item, n, moved)]


def hide_actions(
    table: str, item: Record, n: int, moved: Record | None
) -> list[TransactWriteItemTypeDef]:
    """Hide visible stock ``item`` of ``n``: out of its slot and the listing, ``moved`` into
    its slot (see ``vacate_actions``); conditioned on the revisions read."""
    rev = int(item["rev"])
    hide: TransactWriteItemTypeDef = {
        "Update": {
            "TableName": table,
            "Key": key(stock_pk(item["symbol"])),
            "UpdateExpression": "SET is_hidden = :true, rev = :next REMOVE slot, listing",
            "ConditionExpression": "rev = :rev",
            "ExpressionAttributeValues": {
                ":true": attribute(True),
                ":next": attribute(rev + 1),
                ":rev": attribute(rev),
            },
        }
    }
    return [hide, *vacate_actions(table, item, n, moved)]


def vacate_actions(
    table: str, item: Record, n: int, moved: Record | None
) -> list[TransactWriteItemTypeDef]:
    """Empty the slot of ``item`` and fill it with ``moved``, the stock in the last slot (None
    when ``item`` is the last slot itself); the counter goes from ``n`` to n-1, last."""
    slot, last = int(item["slot"]), n - 1
    actions: list[TransactWriteItemTypeDef] = []
    if moved is None:
        actions.append({"Delete": {"TableName": table, "Key": key(slot_pk(slot))}})
    else:
        moved_rev = int(moved["rev"])
        record = {**moved, "slot": slot, "rev": moved_rev + 1}
        actions += [
            {
                "Update": {
                    "TableName": table,
                    "Key": key(stock_pk(moved["symbol"])),
                    "UpdateExpression": "SET slot = :slot, rev = :next",
                    "ConditionExpression": "rev = :rev",
                    "ExpressionAttributeValues": {
                        ":slot": attribute(slot),
                        ":next": attribute(moved_rev + 1),
                        ":rev": attribute(moved_rev),
                    },
                }
            },
            {"Put": {"TableName": table, "Item": to_item(slot_item(record))}},
            {"Delete": {"TableName": table, "Key": key(slot_pk(last))}},
        ]
    actions.append(counter_update(table, n, last, "n = :n"))
    return actions


def unhide_actions(table: str, item: Record, n: int) -> list[TransactWriteItemTypeDef]:
    """Put hidden stock ``item`` back as slot ``n`` of n+1 (the counter first, then the stock
    item, then its slot copy); conditioned on the count and the revision read."""
    rev = int(item["rev"])
    shown = {name: value for name, value in item.items() if name != "is_hidden"}
    record = {**shown, "slot": n, "rev": rev + 1}
    condition = "attribute_not_exists(pk) OR n = :n" if n == 0 else "n = :n"
    return [
        counter_update(table, n, n + 1, condition),
        {
            "Update": {
                "TableName": table,
                "Key": key(stock_pk(item["symbol"])),
                "UpdateExpression": "SET slot = :slot, listing = :listing, rev = :next"
                " REMOVE is_hidden",
                "ConditionExpression": "rev = :rev",
                "ExpressionAttributeValues": {
                    ":slot": attribute(n),
                    ":listing": attribute(LISTING),
                    ":next": attribute(rev + 1),
                    ":rev": attribute(rev),
                },
            }
        },
        {"Put": {"TableName": table, "Item": to_item(slot_item(record))}},
    ]


def _price_map(record: Mapping[str, Any]) -> Record:
    # boto3 stores numbers as Decimal only; the float's shortest repr keeps its exact digits.
    out: Record = {}
    for name, value in record.items():
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise TypeError(f"cannot store {name}={value!r}")
        out[name] = value if isinstance(value, str) else Decimal(repr(value))
    return out


def _from_price_map(attributes: Mapping[str, Any]) -> Record:
    return {
        name: float(value) if isinstance(value, Decimal) else value
        for name, value in attributes.items()
    }


# --- cursors -------------------------------------------------------------------------------


def encode_cursor(symbol: str) -> str:
    return base64.urlsafe_b64encode(symbol.encode()).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> str:
    """The symbol a cursor of ours stands for.

    Anything else is taken as a plain lower bound, as the SQLite adapter takes every cursor:
    a malformed cursor yields the stocks after it (often none), never an error.
    """
    try:
        symbol = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return cursor
    if not symbol.isprintable() or encode_cursor(symbol) != cursor:
        return cursor
    return symbol
