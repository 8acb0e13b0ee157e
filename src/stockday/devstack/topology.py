"""Where every process of the local stack listens: zones, their loopback addresses, the ports.

The local picture of a Kubernetes cluster over availability zones. Each replica is a pod: one
process on an address and port of its own. Each zone is an AZ: with more than one zone, a zone's
replicas listen on a loopback network of their own (127.0.1.0/24 for zone a, 127.0.2.0/24 for
zone b...), so that the zone can lose its network as well as its processes. HAProxy, the
Service and the load balancer in one, listens on 127.0.0.1 in no zone, as an ALB spans zones.
Pure planning: nothing here starts or opens anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from stockday.runtime import catalog

ZONE_NAMES = "abcdefgh"
MAX_ZONES = len(ZONE_NAMES)
MAX_REPLICAS = 8  # replica ports of two services must not meet (their offsets are 10 apart)
FRONT_HOST = "127.0.0.1"
# HAProxy's statistics page (CSV at /;csv): which servers it has in rotation.
STATS_PORT_OFFSET = 3
# Prometheus, with `stockday up --prometheus`: scrapes every replica, evaluates the SLO rules.
PROMETHEUS_PORT_OFFSET = 4
GATEWAY = "haproxy"


@dataclass(frozen=True, slots=True)
class Zone:
    name: str
    index: int
    single: bool  # the only zone: everything on 127.0.0.1, as before zones existed

    @property
    def host(self) -> str:
        """The address its replicas listen on."""
        return FRONT_HOST if self.single else f"127.0.{self.index + 1}.1"

    @property
    def network(self) -> str:
        """Its loopback network, what a partition cuts off (CIDR)."""
        return "127.0.0.0/8" if self.single else f"127.0.{self.index + 1}.0/24"

    @property
    def probe_source(self) -> str | None:
        """Where the supervisor's liveness probes come from: inside the zone, as a kubelet
        probes its node's pods, so that a partition of the zone does not look like a hang."""
        return None if self.single else f"127.0.{self.index + 1}.254"


@dataclass(frozen=True, slots=True)
class Replica:
    service: str
    index: int
    zone: Zone
    port: int

    @property
    def host(self) -> str:
        return self.zone.host

    @property
    def name(self) -> str:
        """Unique in the stack, and HAProxy's name for it: ``frontend-a0``."""
        return f"{self.service}-{self.zone.name}{self.index}"

    @property
    def is_http(self) -> bool:
        return catalog.service(self.service).is_http


@dataclass(frozen=True)
class Topology:
    port_base: int
    replicas: int = 2
    zones: int = 1
    prometheus: bool = False  # run Prometheus beside the stack (`up --prometheus`)

    def __post_init__(self) -> None:
        if not 1 <= self.zones <= MAX_ZONES:
            raise ValueError(f"zones must be between 1 and {MAX_ZONES}, not {self.zones}")
        if not 1 <= self.replicas <= MAX_REPLICAS:
            raise ValueError(f"replicas must be between 1 and {MAX_REPLICAS}, not {self.replicas}")

    @cached_property
    def zone_list(self) -> tuple[Zone, ...]:
        single = self.zones == 1
        return tuple(Zone(ZONE_NAMES[i], i, single) for i in range(self.zones))

    def zone(self, name: str) -> Zone:
        for zone in self.zone_list:
            if zone.name == name:
                return zone
        known = ", ".join(z.name for z in self.zone_list)
        raise ValueError(f"no zone {name!r} in this stack: its zones are {known}")

    def replicas_of(self, service: str) -> tuple[Replica, ...]:
        """A service's replicas, spread over the zones in turn (replica i in zone i mod n)."""
        first = self.port_base + catalog.service(service).replica_port_offset
        return tuple(
            Replica(service, i, self.zone_list[i % self.zones], first + i)
            for i in range(self.replicas)
        )

    @cached_property
    def all_replicas(self) -> tuple[Replica, ...]:
        """Every replica, called services before their callers (the order they start in)."""
        return tuple(r for s in reversed(catalog.SERVICES) for r in self.replicas_of(s.name))

    def front_port(self, service: str) -> int:
        """Where the load balancer takes an HTTP service's requests."""
        offset = catalog.service(service).front_port_offset
        if offset is None:
            raise ValueError(f"{service} is a consumer: it has no front port")
        return self.port_base + offset

    def front_url(self, service: str) -> str:
        return f"http://{FRONT_HOST}:{self.front_port(service)}"

    @property
    def site_url(self) -> str:
        return self.front_url("frontend") + "/"

    @property
    def stats_port(self) -> int:
        return self.port_base + STATS_PORT_OFFSET

    @property
    def prometheus_port(self) -> int:
        return self.port_base + PROMETHEUS_PORT_OFFSET

    @property
    def prometheus_url(self) -> str:
        return f"http://{FRONT_HOST}:{self.prometheus_port}"

    def ports(self) -> list[tuple[str, int]]:
        """Every (address, port) the stack listens on."""
        front = [(FRONT_HOST, self.front_port(s.name)) for s in catalog.HTTP_SERVICES]
        replicas = [(r.host, r.port) for r in self.all_replicas]
        prometheus = [(FRONT_HOST, self.prometheus_port)] if self.prometheus else []
        return [*front, (FRONT_HOST, self.stats_port), *prometheus, *replicas]


def port_offsets(replicas: int) -> list[int]:
    """Every port of a stack with ``replicas`` replicas, Prometheus's included, as offsets
    from its port base."""
    plan = Topology(port_base=0, replicas=replicas, prometheus=True)
    return [port for _, port in plan.ports()]
