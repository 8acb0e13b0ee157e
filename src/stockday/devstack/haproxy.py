"""The local stack's load balancer: HAProxy (Debian's package) in front of every HTTP service.

It plays the part a Kubernetes Service and the ALB play on AWS. One frontend per HTTP service
(the site on N, stock-symbol on N+1, stock-price on N+2) balances over the service's replicas,
each its own process on its own port. Callers inside the stack reach stock-symbol and
stock-price through those same frontends, as pods reach a Service.

What each setting buys:
- Active health checks on the readiness endpoint, twice a second with short timeouts: a
  replica that stops answering (hung, stopped, or its zone cut off) is out of rotation within
  two seconds, back after two good checks.
- Kept-alive connections on both sides (``http-reuse safe``): no TCP handshake per request.
  A connection to a replica that then hangs holds only the request on it, and that request is
  retried elsewhere after the server timeout if it is safe to repeat.
- Retries (with ``redispatch``, on another replica) of requests that failed before any answer:
  for every method when the connection was never made, and for GET and HEAD only when the
  replica died or went silent after taking the request.
- Client and server timeouts, so that neither a slow client nor a silent replica holds a
  connection for long.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from stockday.devstack.topology import FRONT_HOST, Topology
from stockday.runtime import catalog

# How often a replica's readiness is checked, and how many checks decide: out after FALL failed
# checks (the last ones FAST_INTERVAL apart), back after RISE good ones. With a check timeout of
# CHECK_TIMEOUT, a replica that goes silent just after a good check is out after at most
# INTERVAL + FALL * CHECK_TIMEOUT + (FALL - 1) * FAST_INTERVAL = 1.55 s.
INTERVAL_MS = 500
FAST_INTERVAL_MS = 250
CHECK_TIMEOUT_MS = 400
FALL = 2
RISE = 2


class HAProxyMissing(RuntimeError):
    """HAProxy is not installed: the local stack cannot run without its load balancer."""


def haproxy_binary() -> str:
    found = shutil.which("haproxy") or next(
        (p for p in ("/usr/sbin/haproxy", "/usr/bin/haproxy") if Path(p).exists()), None
    )
    if found is None:
        raise HAProxyMissing(
            "HAProxy is not installed; the local stack balances its replicas with it: "
            "apt-get install haproxy (or run `make up`, which installs it)"
        )
    return found


def haproxy_config(topology: Topology) -> str:
    """The whole configuration of the stack's HAProxy."""
    sections = [_GLOBAL_AND_DEFAULTS, _stats(topology)]
    for service in catalog.HTTP_SERVICES:
        sections.append(_service(topology, service))
    return "\n".join(sections)


_GLOBAL_AND_DEFAULTS = f"""\
global
    maxconn 4096
    log stderr format short local0 warning

defaults
    mode http
    log global
    option dontlognull
    # Kept-alive connections to the replicas, shared between client connections for requests
    # that are safe to send on a connection another client used before.
    option http-keep-alive
    http-reuse safe
    # A zone cut off drops packets: a connection attempt there is given up after a second.
    timeout connect 1s
    timeout client 30s
    timeout http-request 10s
    timeout http-keep-alive 10s
    # Every call a replica makes has its own timeout of at most a few seconds: one that has
    # sent nothing for 10 s is hung, and a request safe to repeat is then tried elsewhere.
    timeout server 10s
    timeout check {CHECK_TIMEOUT_MS}ms
    retries 2
    retry-on conn-failure empty-response response-timeout
    option redispatch 1
    default-server check inter {INTERVAL_MS}ms fastinter {FAST_INTERVAL_MS}ms downinter 1s \
fall {FALL} rise {RISE}
"""


def _stats(topology: Topology) -> str:
    return f"""\
listen stats
    bind {FRONT_HOST}:{topology.stats_port}
    stats enable
    stats uri /
    stats refresh 2s
"""


def _service(topology: Topology, service: catalog.Service) -> str:
    servers = "\n".join(
        f"    server {r.name} {r.host}:{r.port}" for r in topology.replicas_of(service.name)
    )
    return f"""\
frontend {service.name}
    bind {FRONT_HOST}:{topology.front_port(service.name)}
    default_backend {service.name}

backend {service.name}
    balance roundrobin
    # Only a request that never reached a replica may be sent again, unless it is safe to repeat.
    http-request disable-l7-retry unless METH_GET || METH_HEAD
    option httpchk
    http-check send meth GET uri {service.health.readiness}
    http-check expect status 200
{servers}
"""
