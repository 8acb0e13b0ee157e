"""Large images against a running stack, and what they cost it: uploaders that keep
stock-symbol decoding 25-megapixel images, timed reads beside them, logos resized by the real
logo-resizer, and a process's peak memory. Shared by tests/abuse and bench/hostile_images.py."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from stockday.contracts.stocks import StockCreate
from tests.support.waiting import wait_until

UPLOAD_TIMEOUT_SECONDS = 60.0


def peak_rss_mb(pid: int) -> float:
    """A process's peak resident memory since it started (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise LookupError(f"no VmHWM for process {pid}")


def quantile(samples: Sequence[float], q: float) -> float:
    """The nearest-rank quantile (q in 0..1) of a non-empty sample."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


@dataclass
class Uploaders:
    """``with Uploaders(url, images): ...`` keeps one client per image uploading it to
    ``/api/uploads``, again and again, for the block (each at most ``max_each`` times)."""

    url: str
    images: Sequence[bytes]
    max_each: int = 50
    answers: list[tuple[float, int]] = field(default_factory=list)  # (monotonic time, status)
    errors: list[str] = field(default_factory=list)
    ran_out: list[int] = field(default_factory=list)  # uploaders that reached max_each
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> Uploaders:
        self._threads = [
            threading.Thread(target=self._upload, args=(index,), daemon=True)
            for index in range(len(self.images))
        ]
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(UPLOAD_TIMEOUT_SECONDS + 5)

    def answered(self) -> int:
        with self._lock:
            return len(self.answers)

    def wait_for_answers(self, count: int, timeout: float) -> None:
        wait_until(
            lambda: self.answered() >= count,
            timeout,
            lambda: f"{self.answered()} uploads answered, errors {self.errors[:5]}",
        )

    def _upload(self, index: int) -> None:
        body, content_type = multipart_body(self.images[index])
        headers = {"content-type": content_type}
        with httpx.Client(base_url=self.url, timeout=UPLOAD_TIMEOUT_SECONDS) as client:
            for _ in range(self.max_each):
                if self._stop.is_set():
                    return
                try:
                    answer = client.post("/api/uploads", content=body, headers=headers)
                    status = answer.status_code
                except httpx.HTTPError as exc:
                    with self._lock:
                        self.errors.append(repr(exc))
                    continue
                with self._lock:
                    self.answers.append((time.monotonic(), status))
        with self._lock:
            self.ran_out.append(index)


def multipart_body(image: bytes) -> tuple[bytes, str]:
    """An upload form's body with ``image`` as its file, and its content type: encoded once,
    so that the uploaders spend no CPU (nor this process's GIL) beside the timed reads."""
    boundary = "stockday-hostile-image-upload-boundary"
    head = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="file"; filename="large.png"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    return head + image + f"\r\n--{boundary}--\r\n".encode(), (
        f"multipart/form-data; boundary={boundary}"
    )


def timed_gets(client: httpx.Client, path: str, count: int) -> list[float]:
    """``count`` sequential GETs of ``path``, each answered 200; their latencies in seconds."""
    latencies = []
    for _ in range(count):
        started = time.perf_counter()
        answer = client.get(path)
        latencies.append(time.perf_counter() - started)
        assert answer.status_code == 200, answer.text
    return latencies


def add_stocks_with_logos(api: httpx.Client, images: Sequence[bytes], prefix: str) -> list[str]:
    """A stock per image, its logo uploaded through stock-symbol; the symbols."""
    symbols = []
    for index, image in enumerate(images):
        symbol = f"{prefix}{index:02d}"
        uploaded = api.post("/api/uploads", files={"file": ("logo", image, "image/png")})
        assert uploaded.status_code == 201, uploaded.text
        body = StockCreate(symbol=symbol, name=symbol, upload_id=uploaded.json()["upload_id"])
        created = api.post("/api/stocks", json=body.model_dump(exclude_none=True))
        assert created.status_code == 201, created.text
        symbols.append(symbol)
    return symbols


def wait_for_logos(api: httpx.Client, symbols: Sequence[str], timeout: float) -> dict[str, str]:
    """Until every stock's logo is ready or failed; each symbol's logo state."""
    states: dict[str, str] = {}

    def settled() -> bool:
        for symbol in symbols:
            if states.get(symbol) not in ("ready", "failed"):
                logo = api.get(f"/api/stocks/{symbol}").json()["logo"]
                states[symbol] = logo["state"]
        return all(state in ("ready", "failed") for state in states.values())

    wait_until(settled, timeout, lambda: f"logos not settled: {states}", interval=0.2)
    return states
