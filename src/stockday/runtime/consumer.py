"""The loop every queue consumer runs: long-poll, process a batch, ack only durable work.

A handler returns normally when the message's work is durable (then the message is deleted) or
raises (then the message becomes visible again after a short retry delay; after the queue's
max receives it goes to the dead-letter queue). While the consumer holds a message (running, or
received in a batch and waiting for a free slot), its visibility is extended so that long work
is not handed to a second consumer. On stop, messages not yet started are released at once
instead of waiting out their visibility timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from prometheus_client import Counter, Gauge, Histogram

from stockday.contracts.messages import MalformedMessage
from stockday.queues.base import MessageQueue, ReceivedMessage
from stockday.runtime.logs import request_id
from stockday.runtime.settings import Settings
from stockday.runtime.tracing import consuming, fastapi_telemetry
from stockday.runtime.web.observability import (
    READINESS_TIMEOUT_SECONDS,
    ReadinessCheck,
    install_observability,
)

log = logging.getLogger("stockday.consumer")

QUEUE_STATS_INTERVAL_SECONDS = 5.0
QUEUE_MESSAGES = Gauge(
    "stockday_queue_messages",
    "Messages in a consumer's queue, by state (visible, in_flight, dead).",
    ["queue", "state"],
)
QUEUE_OLDEST_AGE = Gauge(
    "stockday_queue_oldest_message_age_seconds",
    "Age of the oldest message waiting in a consumer's queue (an upper bound on SQS).",
    ["queue"],
)

Handler = Callable[[ReceivedMessage], Awaitable[None]]

MESSAGES = Counter(
    "stockday_consumer_messages_total",
    "Messages handled by a consumer, by outcome (done, retried).",
    ["consumer", "outcome"],
)
JOB_SECONDS = Histogram(
    "stockday_consumer_job_duration_seconds",
    "Time from receive to acknowledgement of a message.",
    ["consumer"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)


FIRST_DEPENDENCY_PAUSE_SECONDS = 1.0
MAX_DEPENDENCY_PAUSE_SECONDS = 30.0


class DependencyUnavailable(Exception):
    """A handler's dependency is down: not the message's fault, so the consumer pauses."""


class Consumer:
    def __init__(
        self,
        *,
        name: str,
        queue: MessageQueue,
        handler: Handler,
        concurrency: int,
        wait_seconds: float,
        visibility_timeout: float,
        retry_delay: float,
        crash_before_ack_file: Path | None = None,
    ) -> None:
        self.name = name
        self.queue = queue
        self.handler = handler
        self.concurrency = max(1, concurrency)
        self.wait_seconds = wait_seconds
        self.visibility_timeout = visibility_timeout
        self.retry_delay = retry_delay
        self.crash_before_ack_file = crash_before_ack_file
        self.stopping = asyncio.Event()
        self.last_poll = time.monotonic()
        # Consecutive handler calls that found a dependency down (see DependencyUnavailable).
        self.dependency_failures = 0

    @classmethod
    def configured(
        cls,
        settings: Settings,
        *,
        name: str,
        queue: MessageQueue,
        handler: Handler,
        concurrency: int,
    ) -> Consumer:
        """A consumer with the queue timings and the fault injection ``settings`` name."""
        return cls(
            name=name,
            queue=queue,
            handler=handler,
            concurrency=concurrency,
            wait_seconds=settings.queue_wait_seconds,
            visibility_timeout=settings.queue_visibility_seconds,
            retry_delay=settings.queue_retry_delay_seconds,
            crash_before_ack_file=settings.fault_crash_before_ack_file,
        )

    def stop(self) -> None:
        self.stopping.set()

    async def run(self) -> None:
        log.info("%s consuming %s", self.name, self.queue.name)
        receive_failure: str | None = None
        while not self.stopping.is_set():
            try:
                batch = await self.queue.receive(
                    max_messages=min(10, self.concurrency * 2),
                    wait_seconds=self.wait_seconds,
                    visibility_timeout=self.visibility_timeout,
                )
            except Exception as exc:
                # Said once per distinct failure, not once a second: a missing queue is one
                # line in the log (and the reason on /api/ready), not a flood.
                failure = str(exc) or type(exc).__name__
                if failure != receive_failure:
                    log.error("%s cannot receive from %s: %s", self.name, self.queue.name, failure)
                    receive_failure = failure
                await self._pause(1.0)
                continue
            if receive_failure is not None:
                log.info("%s receiving from %s again", self.name, self.queue.name)
                receive_failure = None
            self.last_poll = time.monotonic()
            if batch:
                await self._process_batch(batch)
        log.info("%s stopped", self.name)

    async def _pause(self, seconds: float) -> None:
        await stopped_within(self.stopping, seconds)

    async def _process_batch(self, batch: Sequence[ReceivedMessage]) -> None:
        gate = asyncio.Semaphore(self.concurrency)

        async def one(message: ReceivedMessage) -> None:
            # Held from the receive until acknowledged or released, waiting for a free slot
            # included: kept invisible all along, or a second consumer would get it meanwhile.
            keepalive = asyncio.create_task(self._keep_invisible(message))
            try:
                async with gate:
                    if self.stopping.is_set():
                        # Not started: hand it back now rather than after the visibility timeout.
                        await cancel_and_wait(keepalive)
                        await self._release(message, 0)
                        return
                    await self._process(message, keepalive)
            finally:
                await cancel_and_wait(keepalive)

        await asyncio.gather(*(one(m) for m in batch))

    async def _process(self, message: ReceivedMessage, keepalive: asyncio.Task[None]) -> None:
        # Log lines written while handling a message carry its id as their request id.
        token = request_id.set(message.message_id)
        try:
            await self._handle(message, keepalive)
        finally:
            request_id.reset(token)

    async def _handle(self, message: ReceivedMessage, keepalive: asyncio.Task[None]) -> None:
        started = time.perf_counter()
        try:
            while True:
                try:
                    with consuming(self.queue.name, message.attributes, message.message_id):
                        await self.handler(message)
                    break
                except DependencyUnavailable as exc:
                    # Not the message's fault: keep holding it (the keepalive keeps it
                    # invisible) and try it again here after a pause, 1 s doubling to 30 s,
                    # instead of spending its receives on an outage and dead-lettering it.
                    self.dependency_failures += 1
                    pause = min(
                        MAX_DEPENDENCY_PAUSE_SECONDS,
                        FIRST_DEPENDENCY_PAUSE_SECONDS * 2 ** (self.dependency_failures - 1),
                    )
                    log.warning(
                        "%s: %s; holding message %s, trying again in %.1f s",
                        self.name,
                        exc,
                        message.message_id,
                        pause,
                    )
                    await self._pause(pause)
                    if self.stopping.is_set():
                        await cancel_and_wait(keepalive)
                        await self._release(message, 0)  # another replica takes it over
                        return
        except Exception as exc:
            # Not acknowledged: visible again after the retry delay, dead-lettered by the
            # queue after its max receives (where a malformed message ends up).
            MESSAGES.labels(self.name, "retried").inc()
            what = "malformed" if isinstance(exc, MalformedMessage) else type(exc).__name__
            log.warning(
                "%s: message %s failed (receive %d, %s), will retry: %s",
                self.name,
                message.message_id,
                message.receive_count,
                what,
                exc,
            )
            # Stopped first, so that no late extension undoes the release.
            await cancel_and_wait(keepalive)
            await self._release(message, self.retry_delay)
            return
        await cancel_and_wait(keepalive)
        self.dependency_failures = 0
        if self.crash_before_ack_file is not None:
            crash_before_acknowledging(self.crash_before_ack_file, self.name)
        # The work is durable: only now acknowledge.
        await self.queue.delete(message.receipt)
        MESSAGES.labels(self.name, "done").inc()
        JOB_SECONDS.labels(self.name).observe(time.perf_counter() - started)

    async def _keep_invisible(self, message: ReceivedMessage) -> None:
        interval = max(0.2, self.visibility_timeout / 3)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.queue.change_visibility(message.receipt, self.visibility_timeout)
            except Exception as exc:
                log.warning("%s: cannot extend visibility: %s", self.name, exc)

    async def _release(self, message: ReceivedMessage, delay: float) -> None:
        try:
            await self.queue.change_visibility(message.receipt, delay)
        except Exception as exc:
            log.warning("%s: cannot release message %s: %s", self.name, message.message_id, exc)


async def cancel_and_wait(task: asyncio.Task[None]) -> None:
    """Cancel ``task`` and wait until it has stopped (a no-op once it has)."""
    task.cancel()
    # wait() does not re-raise the task's cancellation, yet lets our own propagate.
    await asyncio.wait([task])


async def stopped_within(stopping: asyncio.Event, seconds: float) -> bool:
    """Wait up to ``seconds``; True as soon as ``stopping`` is set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), seconds)
    return stopping.is_set()


async def watch_queue(queue: MessageQueue, stopping: asyncio.Event) -> None:
    """Publish the queue's depth and oldest-message age as gauges until ``stopping`` is set."""
    while not stopping.is_set():
        try:
            stats = await queue.stats()
        except Exception as exc:
            log.debug("queue stats of %s unavailable: %s", queue.name, exc)
        else:
            QUEUE_MESSAGES.labels(queue.name, "visible").set(stats.visible)
            QUEUE_MESSAGES.labels(queue.name, "in_flight").set(stats.in_flight)
            QUEUE_MESSAGES.labels(queue.name, "dead").set(stats.dead_letters)
            QUEUE_OLDEST_AGE.labels(queue.name).set(stats.oldest_age_seconds)
        await stopped_within(stopping, QUEUE_STATS_INTERVAL_SECONDS)


def crash_before_acknowledging(trigger: Path, consumer: str) -> None:
    """Die by SIGKILL, once, if ``trigger`` exists and names ``consumer``: fault injection
    (the fault_crash_before_ack_file setting) between a job's durable work and its ack."""
    try:
        with open(trigger) as armed:
            if armed.read().strip() != consumer:
                return
        os.unlink(trigger)  # one replica wins; the others find it gone
    except FileNotFoundError:
        return  # already used, or never armed
    log.warning("fault injection: dying before acknowledging a finished job")
    os.kill(os.getpid(), signal.SIGKILL)


class HealthServerFailed(Exception):
    """The consumer's health endpoints could not be served (usually: the port is taken)."""


class _EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the consumer process."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def health_app(
    consumer: Consumer,
    service: str,
    checks: Sequence[ReadinessCheck],
    readiness_timeout: float = READINESS_TIMEOUT_SECONDS,
) -> FastAPI:
    """Liveness, readiness and metrics endpoints of a consumer process."""
    app = FastAPI(
        title=service,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        telemetry=fastapi_telemetry(traced=False),  # probes and scrapes only
    )
    stall_limit = consumer.wait_seconds + consumer.visibility_timeout + 30

    async def polling() -> None:
        if time.monotonic() - consumer.last_poll > stall_limit:
            raise RuntimeError(f"{service} has not polled its queue for {stall_limit:.0f} s")

    install_observability(
        app,
        service=service,
        readiness_checks=[*checks, polling],
        readiness_timeout=readiness_timeout,
    )
    return app


@dataclass(frozen=True, slots=True)
class HealthEndpoint:
    """Where a consumer answers its probes and metrics; no server when ``port`` is None."""

    host: str
    port: int | None
    readiness_timeout: float = READINESS_TIMEOUT_SECONDS


async def serve_consumer(
    consumer: Consumer, health: HealthEndpoint, *, checks: Sequence[ReadinessCheck]
) -> None:
    """Run a consumer (and its health server when a port is given) until SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    service, host, health_port = consumer.name, health.host, health.port
    server: uvicorn.Server | None = None
    if health_port is not None:
        config = uvicorn.Config(
            health_app(consumer, service, checks, health.readiness_timeout),
            host=host,
            port=health_port,
            log_level="warning",
            access_log=False,
            lifespan="off",
        )
        server = _EmbeddedServer(config)

    def on_signal() -> None:
        consumer.stop()
        if server is not None:
            server.should_exit = True

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)

    async def serve_health(server: uvicorn.Server) -> None:
        try:
            await server.serve()
        except SystemExit:
            # uvicorn exits when it cannot listen; say so once and stop the whole consumer.
            raise HealthServerFailed(
                f"{service}: health server cannot listen on {host}:{health_port}"
            ) from None

    tasks = [asyncio.create_task(consumer.run())]
    if server is not None:
        tasks.append(asyncio.create_task(serve_health(server)))
    watcher = asyncio.create_task(watch_queue(consumer.queue, consumer.stopping))
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        on_signal()
        for outcome in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(outcome, HealthServerFailed):
                log.error("%s", outcome)
                raise SystemExit(3)
            if isinstance(outcome, BaseException):
                raise outcome
    finally:
        await cancel_and_wait(watcher)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
