"""Where the local stack's processes listen: planned by stockday.devstack.topology alone."""

from __future__ import annotations

import pytest

from stockday.devstack.topology import (
    FRONT_HOST,
    MAX_REPLICAS,
    MAX_ZONES,
    Topology,
    port_offsets,
)
from stockday.runtime import catalog

BASE = 20_000


@pytest.mark.parametrize("zones", [1, 2, 3])
@pytest.mark.parametrize("replicas", [1, 2, MAX_REPLICAS])
def test_every_port_is_unique(replicas: int, zones: int) -> None:
    plan = Topology(BASE, replicas=replicas, zones=zones)
    ports = [port for _, port in plan.ports()]
    assert len(ports) == len(set(ports))
    # Fronts, statistics and every replica of every service.
    assert len(ports) == len(catalog.HTTP_SERVICES) + 1 + replicas * len(catalog.SERVICES)
    assert min(ports) == BASE


def test_replicas_take_consecutive_ports_above_their_service_offset() -> None:
    plan = Topology(BASE, replicas=3)
    expected = {
        "frontend": 30,
        "stock-symbol": 40,
        "stock-price": 50,
        "logo-resizer": 10,
        "queue-worker": 20,
    }
    for service, offset in expected.items():
        assert [r.port for r in plan.replicas_of(service)] == [BASE + offset + i for i in range(3)]
        assert [r.index for r in plan.replicas_of(service)] == [0, 1, 2]


def test_fronts_and_statistics_sit_on_the_port_base() -> None:
    plan = Topology(BASE)
    assert plan.front_port("frontend") == BASE
    assert plan.front_port("stock-symbol") == BASE + 1
    assert plan.front_port("stock-price") == BASE + 2
    assert plan.stats_port == BASE + 3
    assert plan.site_url == f"http://{FRONT_HOST}:{BASE}/"
    assert plan.front_url("stock-price") == f"http://{FRONT_HOST}:{BASE + 2}"
    fronts = [(host, port) for host, port in plan.ports() if port < BASE + 10]
    assert all(host == FRONT_HOST for host, _ in fronts)


def test_a_consumer_has_no_front_port() -> None:
    with pytest.raises(ValueError, match="consumer"):
        Topology(BASE).front_port("logo-resizer")


@pytest.mark.parametrize("zones", [1, 2, 3])
def test_replica_i_lives_in_zone_i_mod_n(zones: int) -> None:
    plan = Topology(BASE, replicas=5, zones=zones)
    for service in catalog.SERVICE_NAMES:
        for replica in plan.replicas_of(service):
            assert replica.zone is plan.zone_list[replica.index % zones]
            assert replica.name == f"{service}-{replica.zone.name}{replica.index}"


def test_one_zone_keeps_everything_on_the_front_address() -> None:
    plan = Topology(BASE, replicas=2, zones=1)
    (zone,) = plan.zone_list
    assert zone.name == "a" and zone.single
    assert zone.host == FRONT_HOST
    assert zone.network == "127.0.0.0/8"
    assert zone.probe_source is None  # probes come from anywhere: nothing is cut off
    assert {host for host, _ in plan.ports()} == {FRONT_HOST}


def test_each_zone_listens_on_a_loopback_network_of_its_own() -> None:
    plan = Topology(BASE, replicas=4, zones=2)
    a, b = plan.zone_list
    assert (a.name, a.host, a.network, a.probe_source) == (
        "a",
        "127.0.1.1",
        "127.0.1.0/24",
        "127.0.1.254",
    )
    assert (b.name, b.host, b.network, b.probe_source) == (
        "b",
        "127.0.2.1",
        "127.0.2.0/24",
        "127.0.2.254",
    )
    assert plan.zone("b") is b
    for replica in plan.all_replicas:
        assert replica.host == replica.zone.host
    hosts = {host for host, _ in plan.ports()}
    assert hosts == {FRONT_HOST, "127.0.1.1", "127.0.2.1"}  # the load balancer is in no zone


def test_all_replicas_start_called_services_before_their_callers() -> None:
    plan = Topology(BASE, replicas=2)
    services = list(dict.fromkeys(r.service for r in plan.all_replicas))
    assert services == [s.name for s in reversed(catalog.SERVICES)]
    assert services[-1] == "frontend"
    assert len(plan.all_replicas) == 2 * len(catalog.SERVICES)
    assert [r.is_http for r in plan.replicas_of("frontend")] == [True, True]
    assert [r.is_http for r in plan.replicas_of("queue-worker")] == [False, False]


@pytest.mark.parametrize(
    ("replicas", "zones"), [(0, 1), (MAX_REPLICAS + 1, 1), (2, 0), (2, MAX_ZONES + 1), (-1, 1)]
)
def test_impossible_plans_are_refused(replicas: int, zones: int) -> None:
    with pytest.raises(ValueError, match="must be between"):
        Topology(BASE, replicas=replicas, zones=zones)


def test_an_unknown_zone_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(ValueError, match="its zones are a, b"):
        Topology(BASE, zones=2).zone("c")


def test_an_unknown_service_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown service"):
        Topology(BASE).replicas_of("nope")


@pytest.mark.parametrize("replicas", [1, 2, MAX_REPLICAS])
def test_port_offsets_are_the_ports_of_a_stack_on_base_zero(replicas: int) -> None:
    offsets = port_offsets(replicas)
    plan = Topology(0, replicas=replicas, prometheus=True)
    assert offsets == [port for _, port in plan.ports()]
    shifted = Topology(BASE, replicas=replicas, prometheus=True)
    assert offsets == [port - BASE for _, port in shifted.ports()]
    expected = {0, 1, 2, 3, 4}  # 4: Prometheus, with `up --prometheus`
    for first in (10, 20, 30, 40, 50):
        expected |= {first + i for i in range(replicas)}
    assert set(offsets) == expected
    assert len(offsets) == len(expected)
    without = {port for _, port in Topology(0, replicas=replicas).ports()}
    assert without == expected - {4}
