"""`stockday status` and `stockday up`'s readiness: a row is serving when its replica is ready
and, for an HTTP replica, when HAProxy has it in rotation."""

from __future__ import annotations

import pytest

from stockday.devstack.status import Row
from stockday.release.traffic import Traffic


def row(service: str, *, ready: bool = True, rotation: str = "") -> Row:
    return Row(
        name=f"{service}-a0",
        service=service,
        zone="a",
        pid=1,
        address="127.0.0.1:1",
        alive=True,
        ready=ready,
        rotation=rotation,
        reason="",
        traffic=Traffic(),
    )


@pytest.mark.parametrize("service", ["frontend", "stock-symbol", "stock-price"])
def test_an_http_replica_serves_once_haproxy_has_it_in_rotation(service: str) -> None:
    assert row(service, rotation="UP").serving
    assert row(service, rotation="UP 1/2").serving  # failing a check, still in rotation
    assert not row(service, rotation="DOWN").serving
    assert not row(service, rotation="DOWN 1/2").serving  # rising: not taking requests yet
    assert not row(service, rotation="").serving  # HAProxy did not say
    assert not row(service, ready=False, rotation="UP").serving


@pytest.mark.parametrize("service", ["logo-resizer", "queue-worker", "haproxy"])
def test_what_nothing_balances_serves_once_ready(service: str) -> None:
    assert row(service).serving
    assert not row(service, ready=False).serving
