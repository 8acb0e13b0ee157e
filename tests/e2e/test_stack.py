"""End to end: the whole stack as real processes, driven over HTTP like a browser would."""

from __future__ import annotations

import io
import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from stockday.devstack.processes import alive
from stockday.queues.base import MessageQueue
from tests.support import images as sample_images
from tests.support.stack import RunningStack, add_stock, free_port_base
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e


# Every test runs on the embedded backends and on the AWS backends (moto and memcached).
BACKENDS = ["local", "aws"]
SERVICES = ("frontend", "stock-symbol", "stock-price", "logo-resizer", "queue-worker")


def _run(data_dir: Path, backend: str) -> Iterator[RunningStack]:
    running = RunningStack(data_dir, free_port_base(), backend=backend)
    running.start()
    yield running
    if running.process and running.process.poll() is None:
        running.stop()


@pytest.fixture(params=BACKENDS)
def stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunningStack]:
    """A stack of its own, for tests that restart or kill parts of it."""
    yield from _run(tmp_path / "data", request.param)


@pytest.fixture(scope="module", params=BACKENDS)
def shared_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningStack]:
    """One stack for the tests that only look at it (starting one costs seconds)."""
    yield from _run(tmp_path_factory.mktemp("shared") / "data", request.param)


def stored_uploads(stack: RunningStack) -> set[str]:
    import asyncio

    from stockday.runtime import composition

    async def keys() -> set[str]:
        store = composition.object_store(stack.settings)
        try:
            return {info.key for info in await store.list("uploads/")}
        finally:
            await store.close()

    return asyncio.run(keys())


def upload_token(site: httpx.Client) -> dict[str, str]:
    """The add-stock form's CSRF token, sent with an upload as the page's script sends it."""
    found = re.search(r'name="csrf_token" value="([^"]+)"', site.get("/stocks/new").text)
    assert found is not None
    return {"X-CSRF-Token": found.group(1)}


def wait_for_logo(symbol_api: httpx.Client, symbol: str, deadline: float) -> dict[str, object]:
    while True:
        stock = symbol_api.get(f"/api/stocks/{symbol}").json()
        if stock["logo"]["state"] != "pending" or time.monotonic() > deadline:
            return stock  # type: ignore[no-any-return]
        time.sleep(0.05)


def test_add_a_stock_with_a_logo_then_restart(stack: RunningStack) -> None:
    with stack.client(stack.frontend) as site, stack.client(stack.symbol) as symbol_api:
        # Empty store: a friendly home page, not an error.
        empty_home = site.get("/")
        assert empty_home.status_code == 200, empty_home.text

        # The browser uploads the logo as soon as the file is picked...
        form_page = site.get("/stocks/new")
        assert form_page.status_code == 200
        logo = sample_images.png(640, 320)
        uploaded = site.post(
            "/uploads", files={"file": ("acme.png", logo, "image/png")}, headers=upload_token(site)
        )
        assert uploaded.status_code == 201, uploaded.text
        upload_id = uploaded.json()["upload_id"]

        # ...then the form is submitted with the upload id.
        fields = {"symbol": "ACME", "name": "Acme Corporation", "upload_id": upload_id}
        for name, value in re.findall(
            r'<input[^>]*type="hidden"[^>]*name="(\w+)"[^>]*value="([^"]*)"', form_page.text
        ):
            fields.setdefault(name, value)
        fields["upload_id"] = upload_id
        submitted_at = time.monotonic()
        created = site.post("/stocks", data=fields, follow_redirects=False)
        assert created.status_code == 303, created.text
        assert created.headers["location"].endswith("/stocks/ACME")

        stock = wait_for_logo(symbol_api, "ACME", submitted_at + 5.0)
        assert stock["logo"]["state"] == "ready", stock  # type: ignore[index]
        logo_url = stock["logo"]["url"]  # type: ignore[index]
        served = site.get(logo_url)
        assert served.status_code == 200
        assert served.headers["content-type"] == "image/webp"
        image = Image.open(io.BytesIO(served.content))
        assert image.format == "WEBP"
        assert max(image.size) <= 256
        assert image.size[0] == 2 * image.size[1]  # aspect ratio kept

        home = site.get("/")
        assert home.status_code == 200
        assert "ACME" in home.text
        page = site.get("/stocks/ACME")
        assert page.status_code == 200
        assert f"logos/ACME/{upload_id}.webp" in page.text  # path or signed URL

    assert stack.stop() == 0
    stack.start()
    with stack.client(stack.frontend) as site, stack.client(stack.symbol) as symbol_api:
        stock = symbol_api.get("/api/stocks/ACME").json()
        assert stock["name"] == "Acme Corporation"
        assert stock["logo"]["state"] == "ready"
        assert site.get(stock["logo"]["url"]).status_code == 200
        assert "ACME" in site.get("/watchlist").text


def test_every_service_reports_live_and_ready(shared_stack: RunningStack) -> None:
    """Every replica of every service answers its probes and its metrics on its own address,
    and each HTTP service answers through its load-balanced front port."""
    stack = shared_stack
    output = stack.output()
    logs = stack.data_dir / "logs"
    assert (logs / "haproxy.log").exists()
    for service in SERVICES:
        assert service in output  # the status table
        replicas = stack.replicas_of(service)
        assert len(replicas) == stack.replicas
        for replica in replicas:
            assert replica.name in output
            assert (logs / f"{replica.name}.log").exists()
    with httpx.Client(timeout=5) as client:
        for service in SERVICES:
            pids = set()
            for replica in stack.replicas_of(service):
                url = stack.replica_url(replica)
                ping = client.get(f"{url}/api/ping")
                assert ping.status_code == 200
                pids.add(ping.json()["pid"])
                assert client.get(f"{url}/api/ready").status_code == 200
                assert client.get(f"{url}/metrics").status_code == 200
            assert len(pids) == stack.replicas  # each replica a process of its own
        for front in (stack.frontend, stack.symbol, stack.price):
            assert client.get(f"{front}/api/ready").status_code == 200


def ping_pid(client: httpx.Client, url: str) -> int | None:
    try:
        answer = client.get(f"{url}/api/ping")
    except httpx.HTTPError:
        return None
    return int(answer.json()["pid"]) if answer.status_code == 200 else None


def test_a_killed_replica_is_restarted_while_haproxy_keeps_serving(stack: RunningStack) -> None:
    """SIGKILL one stock-symbol replica and one logo-resizer replica: the supervisor starts new
    processes in their places, and meanwhile every call through HAProxy is answered by the
    other replica."""
    symbol_replica = stack.replicas_of("stock-symbol")[0]
    consumer_replica = stack.replicas_of("logo-resizer")[0]
    before = stack.stack_pids()
    symbol_pid, consumer_pid = before[symbol_replica.name], before[consumer_replica.name]
    with httpx.Client(timeout=5) as client, stack.client(stack.symbol) as api:
        assert ping_pid(client, stack.replica_url(symbol_replica)) == symbol_pid
        assert ping_pid(client, stack.replica_url(consumer_replica)) == consumer_pid
        os.kill(consumer_pid, signal.SIGKILL)
        os.kill(symbol_pid, signal.SIGKILL)

        answers: list[int] = []

        def replaced() -> bool:
            answers.append(api.get("/api/stocks", params={"limit": 1}).status_code)
            now = stack.stack_pids()
            return all(
                now.get(replica.name) not in (pid, None)
                and ping_pid(client, stack.replica_url(replica)) == now[replica.name]
                for replica, pid in ((symbol_replica, symbol_pid), (consumer_replica, consumer_pid))
            )

        wait_until(replaced, 30, lambda: f"not replaced: {stack.state()['children']}")
        assert answers and set(answers) == {200}, answers
        assert not alive(symbol_pid) and not alive(consumer_pid)
        after = stack.stack_pids()
        # Only the killed ones were replaced, and the stack records their restart.
        changed = {name for name in before if after[name] != before[name]}
        assert changed == {symbol_replica.name, consumer_replica.name}
        restarts = {c["name"]: c["restarts"] for c in stack.state()["children"]}
        assert restarts[symbol_replica.name] == restarts[consumer_replica.name] == 1
        # The new stock-symbol replica is back in rotation and takes requests again.
        wait_until(
            lambda: client.get(f"{stack.replica_url(symbol_replica)}/api/ready").status_code == 200,
            10,
        )
        add_stock(api, "BACK")
        assert api.get("/api/stocks/BACK").status_code == 200


def test_seed_adds_demo_stocks_whose_logos_become_ready(shared_stack: RunningStack) -> None:
    stack = shared_stack
    import subprocess
    import sys

    from stockday.cli.seed import DEMO_STOCKS

    seed = [sys.executable, "-m", "stockday", "seed", "--port-base", str(stack.port_base)]
    first = subprocess.run(seed, capture_output=True, text=True, timeout=60, check=True)
    assert f"added {len(DEMO_STOCKS)} demo stocks" in first.stdout
    again = subprocess.run(seed, capture_output=True, text=True, timeout=60, check=True)
    assert "added 0 demo stocks" in again.stdout
    demo = {symbol for symbol, _ in DEMO_STOCKS}
    with stack.client(stack.symbol) as api:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            listed = api.get("/api/stocks", params={"limit": 200}).json()["items"]
            states = {s["symbol"]: s["logo"]["state"] for s in listed if s["symbol"] in demo}
            if set(states.values()) == {"ready"}:
                break
            time.sleep(0.1)
        assert states == dict.fromkeys(demo, "ready")


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"just some text, not an image\n", 415),
        (sample_images.truncated_jpeg(), 422),
        (sample_images.huge_png(), 422),
    ],
    ids=["text", "truncated-jpeg", "20000x20000-png"],
)
def test_bad_logos_are_refused_and_nothing_is_stored(
    shared_stack: RunningStack, data: bytes, status: int
) -> None:
    before = stored_uploads(shared_stack)
    with shared_stack.client(shared_stack.frontend) as site:
        response = site.post(
            "/uploads", files={"file": ("logo.png", data, "image/png")}, headers=upload_token(site)
        )
        assert response.status_code == status
        assert response.json()["detail"]
        assert site.get("/api/ping").status_code == 200  # nothing crashed
    assert stored_uploads(shared_stack) == before


def test_poison_messages_are_dead_lettered_while_good_ones_flow(
    shared_stack: RunningStack,
) -> None:
    import asyncio

    from stockday.runtime import composition

    settings = shared_stack.settings

    def open_queues() -> tuple[MessageQueue, MessageQueue]:
        return (
            composition.message_queue(settings, settings.logo_jobs_queue),
            composition.message_queue(settings, settings.logo_events_queue),
        )

    async def send_poison() -> None:
        jobs, events = open_queues()
        await jobs.send("{this is not json")
        await events.send('{"type": "logo.resized", "schema_version": 1}')
        await jobs.close()
        await events.close()

    async def dead_letters() -> tuple[list[str], list[str]]:
        jobs, events = open_queues()
        found = (
            [d.body for d in await jobs.dead_letters()],
            [d.body for d in await events.dead_letters()],
        )
        await jobs.close()
        await events.close()
        return found

    asyncio.run(send_poison())
    with shared_stack.client(shared_stack.symbol) as api:
        add_stock(api, "FLOW")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            jobs_dead, events_dead = asyncio.run(dead_letters())
            ready = api.get("/api/stocks/FLOW").json()["logo"]["state"] == "ready"
            if ready and jobs_dead and events_dead:
                break
            time.sleep(0.2)
        assert ready
        assert jobs_dead == ["{this is not json"]
        assert events_dead == ['{"type": "logo.resized", "schema_version": 1}']
