"""stock-symbol in-process, on embedded adapters, with the real stock-price app behind it."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from scipy.stats import chisquare

from stockday.contracts.messages import LogoRequested, decode
from stockday.domain.stocks import logo_key, upload_key, upload_link_key
from stockday.objects.filesystem import FilesystemObjectStore
from stockday.runtime import composition
from stockday.runtime.settings import Settings
from stockday.stock_price.app import create_app as create_price_app
from stockday.stock_symbol.app import create_app as create_symbol_app
from tests.support import images as sample_images
from tests.support.seeded import seeded_stocks
from tests.support.stocks import add_stock_with_a_known_price

pytestmark = pytest.mark.anyio


@dataclass
class Api:
    client: httpx.AsyncClient
    settings: Settings


def _price_client(settings: Settings) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_price_app(settings)), base_url="http://price"
    )


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    settings = Settings(data_dir=tmp_path)
    async with _price_client(settings) as prices:
        app = create_symbol_app(settings, price_client=prices, repository=seeded_stocks(settings))
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://symbol"
        ) as client:
            yield Api(client, settings)


async def upload(client: httpx.AsyncClient, data: bytes, name: str = "logo.png") -> httpx.Response:
    return await client.post(
        "/api/uploads", files={"file": (name, data, "application/octet-stream")}
    )


async def test_create_and_read_a_stock(api: Api) -> None:
    response = await api.client.post(
        "/api/stocks", json={"symbol": "aapl", "name": " Apple  Inc. "}
    )
    assert response.status_code == 201
    body = response.json()
    assert body["symbol"] == "AAPL"
    assert body["name"] == "Apple Inc."
    assert body["version"] == 1
    assert body["logo"] == {"state": "none", "upload_id": None, "url": None, "error": None}
    stock = (await api.client.get("/api/stocks/aapl")).json()
    assert stock["symbol"] == "AAPL"
    price = stock["price"]
    assert price["source"] == "simulated"
    assert price["stale"] is False
    assert price["value"] > 0
    assert price["change"] == pytest.approx(price["value"] - price["previous_close"], abs=1e-3)


async def test_duplicate_is_409_with_the_existing_stock(api: Api) -> None:
    await api.client.post("/api/stocks", json={"symbol": "MSFT", "name": "Microsoft"})
    response = await api.client.post("/api/stocks", json={"symbol": "msft", "name": "Other"})
    assert response.status_code == 409
    assert "already exists" in response.json()["detail"]
    assert response.json()["stock"]["name"] == "Microsoft"
    listing = (await api.client.get("/api/stocks")).json()
    assert listing["total"] == 1


async def test_retried_create_with_same_idempotency_key_is_safe(api: Api) -> None:
    body = {"symbol": "NVDA", "name": "NVIDIA"}
    first = await api.client.post("/api/stocks", json=body, headers={"Idempotency-Key": "k-1"})
    again = await api.client.post("/api/stocks", json=body, headers={"Idempotency-Key": "k-1"})
    other = await api.client.post("/api/stocks", json=body, headers={"Idempotency-Key": "k-2"})
    assert (first.status_code, again.status_code, other.status_code) == (201, 201, 409)
    assert again.json()["version"] == first.json()["version"]


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ({"symbol": "not a symbol", "name": "X"}, "is not a ticker"),
        ({"symbol": "", "name": "X"}, "is not a ticker"),
        ({"symbol": "TOOLONGSYMBOL1", "name": "X"}, "is not a ticker"),
        ({"symbol": "ABC", "name": "   "}, "name must not be empty"),
        ({"symbol": "ABC", "name": "x" * 121}, "longer than"),
        ({"symbol": "ABC", "name": "X", "upload_id": "f" * 32}, "does not exist"),
        ({"symbol": " ABC", "name": "X"}, "is not a ticker"),
        ({"symbol": "\u00df", "name": "X"}, "U+00DF LATIN SMALL LETTER SHARP S is not an ASCII"),
        ({"symbol": "ABC", "name": "Apple\u202eInc"}, "U+202E RIGHT-TO-LEFT OVERRIDE"),
        ({"symbol": "ABC", "name": "Goo\u200bgle"}, "U+200B ZERO WIDTH SPACE"),
        ({"symbol": "ABC", "name": "Acme\x7f"}, "U+007F, a control character"),
        ({"symbol": "ABC", "name": "Acme\nCorp"}, "U+000A, a control character"),
    ],
)
async def test_bad_input_is_422_with_a_message(
    api: Api, payload: dict[str, str], fragment: str
) -> None:
    response = await api.client.post("/api/stocks", json=payload)
    assert response.status_code == 422
    assert fragment in response.json()["detail"]


async def test_a_symbol_that_upper_cases_into_another_is_not_that_one(api: Api) -> None:
    await api.client.post("/api/stocks", json={"symbol": "SS", "name": "Sharp S"})
    await api.client.post("/api/stocks", json={"symbol": "IBM", "name": "IBM"})
    for typed in ("%C3%9F", "%C4%B1bm"):  # sharp s and dotless i: SS and IBM upper-cased
        assert (await api.client.get(f"/api/stocks/{typed}")).status_code == 422
        assert (await api.client.delete(f"/api/stocks/{typed}")).status_code == 422
    assert (await api.client.get("/api/stocks/ss")).json()["name"] == "Sharp S"
    assert (await api.client.get("/api/stocks/IBM")).status_code == 200


async def test_malformed_bodies_are_422(api: Api) -> None:
    for content in (b"not json", b"[]", b'{"symbol": 3}', b'{"symbol": "A", "name": "B", "x": 1}'):
        response = await api.client.post(
            "/api/stocks", content=content, headers={"content-type": "application/json"}
        )
        assert response.status_code == 422, content


async def test_random_on_empty_store_is_404_with_a_clear_body(api: Api) -> None:
    response = await api.client.get("/api/stocks/random")
    assert response.status_code == 404
    assert "no stocks yet" in response.json()["detail"]


async def test_random_picks_are_independent_uniform_draws_with_prices(api: Api) -> None:
    symbols = ("PA", "PB", "PC", "PD", "PE")
    for symbol in symbols:
        await api.client.post("/api/stocks", json={"symbol": symbol, "name": f"Stock {symbol}"})
    drawn: list[str] = []
    for _ in range(30):
        response = await api.client.get("/api/stocks/random-picks", params={"count": 100})
        assert response.status_code == 200
        items = response.json()["items"]
        assert len(items) == 100
        assert all(item["price"]["value"] > 0 for item in items)
        drawn += [item["symbol"] for item in items]
    counts = Counter(drawn)
    assert chisquare([counts[s] for s in symbols]).pvalue > 0.001, counts
    # Independent draws, not a shuffled deck: a stock follows itself as often as any other.
    pairs = Counter((a == b) for a, b in itertools.pairwise(drawn))
    same = pairs[True] / (pairs[True] + pairs[False])
    assert abs(same - 1 / len(symbols)) < 0.03, same


async def test_random_picks_of_no_stocks_are_empty_and_the_count_is_bounded(api: Api) -> None:
    empty = await api.client.get("/api/stocks/random-picks", params={"count": 5})
    assert empty.status_code == 200
    assert empty.json() == {"items": []}
    for count in ("0", "101", "x"):
        refused = await api.client.get("/api/stocks/random-picks", params={"count": count})
        assert refused.status_code == 422, count


async def test_random_returns_a_priced_stock(api: Api) -> None:
    for symbol in ("A", "B", "C"):
        await api.client.post("/api/stocks", json={"symbol": symbol, "name": f"Stock {symbol}"})
    seen = set()
    for _ in range(60):
        body = (await api.client.get("/api/stocks/random")).json()
        assert body["price"]["value"] > 0
        seen.add(body["symbol"])
    assert seen == {"A", "B", "C"}


async def test_list_is_paginated(api: Api) -> None:
    symbols = [f"P{i:02d}" for i in range(7)]
    for symbol in symbols:
        await api.client.post("/api/stocks", json={"symbol": symbol, "name": symbol})
    first = (await api.client.get("/api/stocks", params={"limit": 5})).json()
    assert [s["symbol"] for s in first["items"]] == symbols[:5]
    assert first["total"] == 7
    rest = (
        await api.client.get("/api/stocks", params={"limit": 5, "cursor": first["next_cursor"]})
    ).json()
    assert [s["symbol"] for s in rest["items"]] == symbols[5:]
    assert rest["next_cursor"] is None
    assert (await api.client.get("/api/stocks", params={"limit": 0})).status_code == 422


async def test_upload_then_create_queues_one_logo_job(api: Api) -> None:
    uploaded = await upload(api.client, sample_images.png(300, 100))
    assert uploaded.status_code == 201
    info = uploaded.json()
    assert (info["width"], info["height"], info["content_type"]) == (300, 100, "image/png")
    created = await api.client.post(
        "/api/stocks", json={"symbol": "LOGO", "name": "Logo Co", "upload_id": info["upload_id"]}
    )
    assert created.status_code == 201
    assert created.json()["logo"]["state"] == "pending"
    jobs = composition.message_queue(api.settings, api.settings.logo_jobs_queue)
    messages = await jobs.receive(max_messages=10, wait_seconds=0.5)
    assert len(messages) == 1
    job = decode(messages[0].body)
    assert isinstance(job, LogoRequested)
    assert (job.symbol, job.upload_id) == ("LOGO", info["upload_id"])
    await jobs.close()


@pytest.mark.parametrize(
    ("data", "status", "fragment"),
    [
        (b"hello, I am a text file\n", 415, ""),
        (sample_images.truncated_jpeg(), 422, ""),
        (sample_images.huge_png(), 422, ""),
        (b"", 415, ""),
    ],
    ids=["text", "truncated-jpeg", "20000x20000-png", "empty"],
)
async def test_bad_logos_are_rejected_and_nothing_is_stored(
    api: Api, data: bytes, status: int, fragment: str
) -> None:
    response = await upload(api.client, data)
    assert response.status_code == status
    assert response.json()["detail"]
    objects = composition.object_store(api.settings)
    assert await objects.list("uploads/") == []


async def test_too_many_bytes_is_413(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, max_upload_bytes=10_000)
    app = create_symbol_app(settings, price_client=_price_client(settings))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s") as c:
        response = await upload(c, sample_images.jpeg(1000, 1000) + b"\0" * 20_000)
        assert response.status_code == 413
        assert "larger than" in response.json()["detail"]


async def test_logo_state_machine_over_http(api: Api) -> None:
    first = (await upload(api.client, sample_images.png())).json()["upload_id"]
    second = (await upload(api.client, sample_images.png(10, 10))).json()["upload_id"]
    await api.client.post("/api/stocks", json={"symbol": "SM", "name": "State", "upload_id": first})
    put = api.client.put
    wrong_key = await put(
        "/api/stocks/SM/logo", json={"upload_id": first, "state": "ready", "key": "x"}
    )
    assert wrong_key.status_code == 422
    key = logo_key("SM", first)
    ready = await put(
        "/api/stocks/SM/logo", json={"upload_id": first, "state": "ready", "key": key}
    )
    assert ready.status_code == 200
    assert ready.json()["logo"]["state"] == "ready"
    assert ready.json()["logo"]["url"] == f"/logos/SM/{first}.webp"
    # Duplicate delivery: same answer, no new version.
    again = await put(
        "/api/stocks/SM/logo", json={"upload_id": first, "state": "ready", "key": key}
    )
    assert again.json()["version"] == ready.json()["version"]
    # A new logo upload; then a stale result for the old upload is refused.
    stale_if_match = await put(
        "/api/stocks/SM/logo", json={"upload_id": second}, headers={"If-Match": "1"}
    )
    assert stale_if_match.status_code == 412
    pending = await put("/api/stocks/SM/logo", json={"upload_id": second})
    assert pending.json()["logo"]["state"] == "pending"
    late = await put("/api/stocks/SM/logo", json={"upload_id": first, "state": "ready", "key": key})
    assert late.status_code == 409
    failed = await put(
        "/api/stocks/SM/logo", json={"upload_id": second, "state": "failed", "error": "bad image"}
    )
    assert failed.json()["logo"] == {
        "state": "failed",
        "upload_id": second,
        "url": None,
        "error": "bad image",
    }
    missing = await put("/api/stocks/NOPE/logo", json={"upload_id": second})
    assert missing.status_code == 404


async def test_delete_removes_the_stock_and_its_objects(api: Api) -> None:
    upload_id = (await upload(api.client, sample_images.png())).json()["upload_id"]
    await api.client.post(
        "/api/stocks", json={"symbol": "DEL", "name": "Gone", "upload_id": upload_id}
    )
    objects = composition.object_store(api.settings)
    await objects.put(logo_key("DEL", upload_id), b"webp", content_type="image/webp")
    assert (await api.client.delete("/api/stocks/del")).status_code == 204
    assert (await api.client.get("/api/stocks/DEL")).status_code == 404
    assert (await api.client.delete("/api/stocks/DEL")).status_code == 404
    assert await objects.list("logos/") == []
    assert await objects.list("uploads/") == []


async def test_logos_are_served_with_their_content_type(api: Api) -> None:
    objects = composition.object_store(api.settings)
    await objects.put("logos/X/abc.webp", b"RIFF....WEBP", content_type="image/webp")
    response = await api.client.get("/api/logos/X/abc.webp")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/webp"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert (await api.client.get("/api/logos/X/missing.webp")).status_code == 404
    assert (await api.client.get("/api/logos/../stocks.sqlite3")).status_code == 404


async def test_price_falls_back_to_last_known_marked_stale(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, price_url="http://127.0.0.1:9", http_timeout_seconds=0.5)
    await add_stock_with_a_known_price(settings)
    app = create_symbol_app(settings)  # its price client points at a closed port
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s") as c:
        body = (await c.get("/api/stocks/random")).json()
        assert body["price"]["value"] == 12.5
        assert body["price"]["stale"] is True
        # No price ever known: the stock is still served, without a price.
        await c.post("/api/stocks", json={"symbol": "NEW", "name": "New"})
        fresh = (await c.get("/api/stocks/NEW")).json()
        assert fresh["price"] is None


async def test_fresh_price_is_remembered_on_the_stock(api: Api) -> None:
    await api.client.post("/api/stocks", json={"symbol": "MEM", "name": "Memory"})
    price = (await api.client.get("/api/stocks/MEM")).json()["price"]
    repository = composition.stock_repository(api.settings)
    stored = await repository.get("MEM")
    await repository.close()
    assert stored is not None
    assert stored.last_price is not None
    assert stored.last_price.value == price["value"]


async def test_probes(api: Api) -> None:
    assert (await api.client.get("/api/ping")).status_code == 200
    ready = await api.client.get("/api/ready")
    assert ready.status_code == 200, ready.text
    assert (await api.client.get("/metrics")).status_code == 200


async def test_retries_stay_safe_after_the_raw_upload_is_cleaned_up(api: Api) -> None:
    """queue-worker deletes a raw upload once its logo is ready; repeats must still succeed."""
    upload_id = (await upload(api.client, sample_images.png())).json()["upload_id"]
    body = {"symbol": "CLNUP", "name": "Cleaned Up", "upload_id": upload_id}
    first = await api.client.post("/api/stocks", json=body, headers={"Idempotency-Key": "k-9"})
    assert first.status_code == 201
    store = FilesystemObjectStore(api.settings.objects_dir)
    await store.delete(f"uploads/{upload_id}")

    again = await api.client.post("/api/stocks", json=body, headers={"Idempotency-Key": "k-9"})
    assert again.status_code == 201, again.text
    assert again.json()["version"] == first.json()["version"]
    relink = await api.client.put("/api/stocks/CLNUP/logo", json={"upload_id": upload_id})
    assert relink.status_code == 200, relink.text

    # Without the key, or with another upload, a missing upload is still refused.
    other = await api.client.post(
        "/api/stocks", json=body | {"symbol": "OTHER"}, headers={"Idempotency-Key": "k-9"}
    )
    assert other.status_code == 422
    unknown = await api.client.put("/api/stocks/CLNUP/logo", json={"upload_id": "f" * 32})
    assert unknown.status_code == 422


async def _stored(api: Api, key: str) -> bool:
    return await FilesystemObjectStore(api.settings.objects_dir).exists(key)


async def test_a_refused_create_deletes_its_upload_unless_a_stock_links_it(api: Api) -> None:
    png = sample_images.png(80, 40)
    linked = (await upload(api.client, png)).json()["upload_id"]
    created = {"symbol": "LNK", "name": "Linked", "upload_id": linked}
    assert (await api.client.post("/api/stocks", json=created)).status_code == 201
    assert await _stored(api, upload_link_key(linked))
    # The same upload sent again with a taken symbol, then with a bad one: the stock keeps it.
    assert (await api.client.post("/api/stocks", json=created)).status_code == 409
    bad = {"symbol": "NOT A TICKER", "name": "x", "upload_id": linked}
    assert (await api.client.post("/api/stocks", json=bad)).status_code == 422
    assert await _stored(api, upload_key(linked))
    # A fresh upload refused with either is deleted at once.
    for body in ({**created, "name": "Again"}, bad):
        fresh = (await upload(api.client, png)).json()["upload_id"]
        refused = await api.client.post("/api/stocks", json={**body, "upload_id": fresh})
        assert refused.status_code in (409, 422)
        assert not await _stored(api, upload_key(fresh))


async def test_discarding_an_upload_spares_a_linked_one(api: Api) -> None:
    png = sample_images.png(80, 40)
    orphan = (await upload(api.client, png)).json()["upload_id"]
    assert (await api.client.delete(f"/api/uploads/{orphan}")).status_code == 204
    assert not await _stored(api, upload_key(orphan))
    assert (await api.client.delete(f"/api/uploads/{orphan}")).status_code == 204  # idempotent
    linked = (await upload(api.client, png)).json()["upload_id"]
    body = {"symbol": "KEEP", "name": "Kept", "upload_id": linked}
    assert (await api.client.post("/api/stocks", json=body)).status_code == 201
    answer = await api.client.delete(f"/api/uploads/{linked}")
    assert answer.status_code == 409
    assert "is a stock's logo" in answer.json()["detail"]
    assert await _stored(api, upload_key(linked))
    assert (await api.client.delete("/api/uploads/not-an-id")).status_code == 422
