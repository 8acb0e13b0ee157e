"""Abuse of the running stack (``stockday up`` as processes, HAProxy in front): one client
creating stocks as fast as it can is refused after its quota while another keeps reading the
home page; uploads past the byte quota are refused and not stored; a refused create's upload
goes at once and an upload nobody links goes after its retention.

The clients are told apart as they are in production, by the address the proxy reports: each
connects from an address of its own on the loopback network (127.0.0.2, 127.0.0.3...), and
HAProxy names it to the replicas in X-Forwarded-For.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from tests.support import images as sample_images
from tests.support.stack import RunningStack
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e

CREATES_PER_MINUTE = 20
UPLOAD_BYTES_PER_HOUR = 300_000
RETENTION_SECONDS = 5
ABUSE_SECONDS = 10.0
LIMITS = {
    "STOCKDAY_RATE_LIMIT_PAGES": "3000/minute",
    "STOCKDAY_RATE_LIMIT_CREATES": f"{CREATES_PER_MINUTE}/minute",
    "STOCKDAY_RATE_LIMIT_UPLOADS": "100/minute",
    "STOCKDAY_UPLOAD_BYTES_PER_HOUR": str(UPLOAD_BYTES_PER_HOUR),
    "STOCKDAY_UPLOAD_RETENTION_SECONDS": str(RETENTION_SECONDS),
    "STOCKDAY_JANITOR_INTERVAL_SECONDS": "0.5",
}
IMAGE = sample_images.jpeg(640, 400)  # 64 KB: the quota takes four


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    running = RunningStack(tmp_path_factory.mktemp("abuse") / "data", env=LIMITS)
    running.start()
    try:
        yield running
    finally:
        assert running.stop() == 0, running.output()


def client_from(stack: RunningStack, address: str) -> httpx.Client:
    """A client of the site connecting from ``address``: a client of its own to the limiter."""
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=stack.frontend, transport=transport, timeout=10.0)


def form_fields(site: httpx.Client) -> dict[str, str]:
    page = site.get("/stocks/new")
    assert page.status_code == 200, page.text
    return dict(
        re.findall(r'<input[^>]*type="hidden"[^>]*name="(\w+)"[^>]*value="([^"]*)"', page.text)
    )


def upload(site: httpx.Client, token: str) -> httpx.Response:
    files = {"file": ("logo.jpg", IMAGE, "image/jpeg")}
    return site.post("/uploads", files=files, headers={"X-CSRF-Token": token})


def stored_uploads(stack: RunningStack) -> set[str]:
    folder = stack.settings.objects_dir / "data" / "uploads"
    return {path.name for path in folder.iterdir()} if folder.exists() else set()


@dataclass
class Visitor:
    """Reads the home page every few milliseconds until stopped, noting every answer."""

    site: httpx.Client
    answers: Counter[str] = field(default_factory=Counter)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.wait(0.02):
            try:
                self.answers[str(self.site.get("/").status_code)] += 1
            except httpx.HTTPError as exc:
                self.answers[type(exc).__name__] += 1


def test_a_client_creating_flat_out_is_refused_while_another_reads_the_site(
    stack: RunningStack,
) -> None:
    with client_from(stack, "127.0.0.2") as abuser, client_from(stack, "127.0.0.3") as reader:
        visitor = Visitor(reader)
        reading = threading.Thread(target=visitor.run)
        reading.start()
        fields = form_fields(abuser)
        answers: Counter[int] = Counter()
        retry_after: set[str] = set()
        started = time.monotonic()
        try:
            while time.monotonic() - started < ABUSE_SECONDS:
                number = sum(answers.values())
                form = {**fields, "symbol": f"AB{number:04d}", "name": "Abuse Inc."}
                answer = abuser.post("/stocks", data=form, follow_redirects=False)
                answers[answer.status_code] += 1
                if answer.status_code == 429:
                    retry_after.add(answer.headers["retry-after"])
                    assert "Please try again in " in answer.text
        finally:
            visitor.stop.set()
            reading.join(timeout=15)
        tried = sum(answers.values())
        print(f"abuser: {tried} creates in {ABUSE_SECONDS:g} s, answers {dict(answers)}")
        print(f"reader meanwhile: {dict(visitor.answers)}")
        assert answers[303] == CREATES_PER_MINUTE
        assert answers[429] == tried - CREATES_PER_MINUTE > 0
        assert all(1 <= int(seconds) <= 60 for seconds in retry_after)
        assert set(visitor.answers) == {"200"}, visitor.answers
        assert visitor.answers["200"] > 100


def test_uploads_past_the_byte_quota_are_refused_and_orphans_expire(
    stack: RunningStack,
) -> None:
    with client_from(stack, "127.0.0.4") as uploader:
        token = form_fields(uploader)["csrf_token"]
        answers = [upload(uploader, token) for _ in range(8)]
        statuses = [answer.status_code for answer in answers]
        accepted = [a.json()["upload_id"] for a in answers if a.status_code == 201]
        print(f"uploads of {len(IMAGE)} bytes against {UPLOAD_BYTES_PER_HOUR}: {statuses}")
        assert statuses == [201] * 4 + [429] * 4
        assert int(answers[-1].headers["retry-after"]) > 60  # the hour's window
        # Only what was accepted was stored; nobody links it, so it goes after the retention.
        assert set(accepted) <= stored_uploads(stack)
        assert len(stored_uploads(stack)) == len(accepted)
        written = time.monotonic()
        wait_until(
            lambda: not set(accepted) & stored_uploads(stack),
            RETENTION_SECONDS + 15,
            lambda: f"orphan uploads still stored: {stored_uploads(stack)}",
        )
        print(f"orphan uploads gone {time.monotonic() - written:.1f} s after their upload")


def test_a_create_refused_for_its_rate_deletes_its_upload_at_once(stack: RunningStack) -> None:
    with client_from(stack, "127.0.0.5") as visitor:
        fields = form_fields(visitor)
        for number in range(CREATES_PER_MINUTE):
            form = {**fields, "symbol": f"RF{number:04d}", "name": "Refused Inc."}
            assert visitor.post("/stocks", data=form).status_code in (200, 303)
        uploaded = upload(visitor, fields["csrf_token"])
        assert uploaded.status_code == 201
        upload_id = uploaded.json()["upload_id"]
        form = {**fields, "symbol": "RFLAST", "name": "Refused Inc.", "upload_id": upload_id}
        refused = visitor.post("/stocks", data=form)
        assert refused.status_code == 429
        # Well within the retention: the refusal, not the janitor, deleted it.
        assert upload_id not in stored_uploads(stack)
