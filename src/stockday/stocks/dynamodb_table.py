"""The calls of the DynamoDB stock repository: one client, its thread pool, the table's
transactions and reads, and how lost races and failures are reported."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, ParamSpec, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from stockday.aws.clients import AwsCalls, AwsConfig, describe_failure, error_code, make_client
from stockday.aws.dynamodb_values import from_item
from stockday.domain.errors import BackendUnavailable
from stockday.stocks.dynamodb_items import COUNTER_PK, Record, key
from stockday.stocks.dynamodb_retry import Retries

if TYPE_CHECKING:
    from types_boto3_dynamodb import DynamoDBClient
    from types_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

P = ParamSpec("P")
T = TypeVar("T")

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


class Cancelled(Exception):
    """A transaction was cancelled; ``reasons`` has one entry per item, in order."""

    def __init__(self, reasons: Sequence[Mapping[str, Any]]) -> None:
        super().__init__("transaction cancelled")
        self.reasons = list(reasons)

    def failed(self, index: int) -> bool:
        return index < len(self.reasons) and self.reasons[index].get("Code") == _CONDITION_FAILED

    def item(self, index: int) -> Record | None:
        found = self.reasons[index].get("Item") if index < len(self.reasons) else None
        return from_item(found) if found else None


class StockTable:
    """The stock table's calls, shared by the repository's operations."""

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

    async def close(self) -> None:
        self._client.close()
        if self._owns_calls:
            self._calls.close()

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
                    raise Cancelled(reasons) from None
            raise BackendUnavailable(
                describe_failure(exc, f"DynamoDB table {self._table!r}", self._setting)
            ) from exc

    async def _get_item(self, pk: str) -> Record | None:
        answer = await self._call(
            self._client.get_item, TableName=self._table, Key=key(pk), ConsistentRead=True
        )
        item = answer.get("Item")
        return from_item(item) if item is not None else None

    async def _snapshot(self, *pks: str) -> Sequence[Record | None]:
        """Several items read in one serializable snapshot (TransactGetItems)."""
        answer = await self._call(
            self._client.transact_get_items,
            TransactItems=[{"Get": {"TableName": self._table, "Key": key(pk)}} for pk in pks],
        )
        items = [response.get("Item") for response in answer["Responses"]]
        return [from_item(item) if item else None for item in items]

    async def _transact(self, actions: Sequence[TransactWriteItemTypeDef]) -> None:
        # botocore fills ClientRequestToken, so its own retries of one call are idempotent.
        await self._call(self._client.transact_write_items, TransactItems=list(actions))

    async def _read_count(self) -> int:
        item = await self._get_item(COUNTER_PK)
        n = int(item["n"]) if item is not None else 0
        self._count_hint = n
        return n

    async def _current_count(self, cancelled: Cancelled, counter_index: int) -> int:
        """The count after a lost race: the one the counter's failed condition returned."""
        counter = cancelled.item(counter_index) if cancelled.failed(counter_index) else None
        if counter is None:  # the counter was not what failed, or it is absent
            return await self._read_count()
        n = int(counter["n"])
        self._count_hint = n
        return n

    async def _backoff(self, retries: Retries, what: str) -> None:
        if not await retries.pause():
            self._too_contended(what)

    def _reason(self, why: str) -> str:
        return f"DynamoDB table {self._table!r} unavailable: {why} (set by {self._setting})"

    def _too_contended(self, what: str) -> NoReturn:
        raise BackendUnavailable(
            self._reason(f"{what} kept conflicting with concurrent writes; try again")
        )

    async def _transacted(
        self, actions: Sequence[TransactWriteItemTypeDef], retries: Retries, what: str
    ) -> bool:
        """One transaction; False (after a backoff) when it lost a race and must be redone."""
        try:
            await self._transact(actions)
        except Cancelled:
            await self._backoff(retries, what)
            return False
        return True
