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
  connection for long. A GET or HEAD that the stack's own services send one another is
  given up on a silent replica well within its caller's own timeout, and tried on another:
  a replica that hangs, or whose zone is cut off, is taken out by its checks only after up
  to 1.55 s, and meanwhile holds the requests sent on its kept-alive connections.
- On the site's port, the only public one: a request's headers must arrive within the
  ``edge_header_timeout_seconds`` setting, however slowly they trickle in; one client address
  holds at most ``edge_max_connections_per_source`` connections and the site
  ``edge_max_connections``, with room beside them for the services' own calls; a body
  declared larger than the frontend accepts (``max_upload_bytes``, the same setting) is
  answered 413 by HAProxy, which then reads and drops the rest (oversize.lua); /metrics is not
  served (scrapers read each replica's own port).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from stockday.devstack.topology import FRONT_HOST, Topology
from stockday.runtime import catalog
from stockday.runtime.settings import Settings

# How often a replica's readiness is checked, and how many checks decide: out after FALL failed
# checks (the last ones FAST_INTERVAL apart), back after RISE good ones. With a check timeout of
# CHECK_TIMEOUT, a replica that goes silent just after a good check is out after at most
# INTERVAL + FALL * CHECK_TIMEOUT + (FALL - 1) * FAST_INTERVAL = 1.55 s.
INTERVAL_MS = 500
FAST_INTERVAL_MS = 250
CHECK_TIMEOUT_MS = 400
FALL = 2
RISE = 2
# The services the stack's own services call through HAProxy, by their place in the chain of
# calls: the frontend (and queue-worker) call stock-symbol, which calls stock-price for prices.
# The frontend's callers are browsers.
CALL_DEPTH = {"stock-symbol": 1, "stock-price": 2}
# The service browsers reach, on the site's port: the only front open to the public.
SITE = "frontend"
# Connections the services' calls to stock-symbol and stock-price may hold at once, on top of
# the site's own limit.
INTERNAL_CONNECTIONS = 2000
# The Lua service that answers 413 to a declared body above the upload limit.
OVERSIZE_SERVICE = Path(__file__).with_name("oversize.lua")
# Paths every replica serves for the stack itself, never for browsers: scrapers read each
# replica's own port.
INTERNAL_PATHS = ("/metrics",)


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


def haproxy_config(topology: Topology, settings: Settings | None = None) -> str:
    """The whole configuration of the stack's HAProxy, from the services' own ``settings``: the
    callers' timeout, the upload limit and the edge's limits on slow and numerous clients."""
    settings = settings or Settings()
    sections = [_global_and_defaults(settings), _stats(topology)]
    for service in catalog.HTTP_SERVICES:
        sections.append(_service(topology, service, settings))
    return "\n".join(sections)


def _global_and_defaults(settings: Settings) -> str:
    # Room for the site's connections and, beside them, the services' calls to each other.
    maxconn = settings.edge_max_connections + INTERNAL_CONNECTIONS
    return f"""\
global
    maxconn {maxconn}
    # One thread: the replicas share this machine's cores with it, and a second thread cost
    # more in wake-ups and hand-offs than it served (page views through the site's port: 5,100
    # against 6,100 a second, p99 63 against 27 ms, measured alternately on two cores).
    nbthread 1
    lua-load {OVERSIZE_SERVICE}
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
    # A request's headers (and, on the site, the first buffer of its body) must arrive within
    # this, however slowly they trickle in: a slow client cannot hold a connection for long.
    timeout http-request {_milliseconds(settings.edge_header_timeout_seconds)}ms
    timeout http-keep-alive 10s
    # Every call a replica makes has its own timeout of at most a few seconds: one that has
    # sent nothing for 10 s is hung, and a request safe to repeat is then tried elsewhere
    # (sooner for the calls between services: see the backends).
    timeout server 10s
    timeout check {CHECK_TIMEOUT_MS}ms
    retries 2
    retry-on conn-failure empty-response response-timeout
    option redispatch 1
    default-server check inter {INTERVAL_MS}ms fastinter {FAST_INTERVAL_MS}ms \
downinter {FAST_INTERVAL_MS}ms fall {FALL} rise {RISE}
"""


def _milliseconds(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _stats(topology: Topology) -> str:
    return f"""\
listen stats
    bind {FRONT_HOST}:{topology.stats_port}
    stats enable
    stats uri /
    stats refresh 2s
"""


def _service(topology: Topology, service: catalog.Service, settings: Settings) -> str:
    servers = "\n".join(
        f"    server {r.name} {r.host}:{r.port}" for r in topology.replicas_of(service.name)
    )
    caller_timeout = settings.http_timeout_seconds
    public = _site_defences(settings) if service.name == SITE else ""
    return f"""\
frontend {service.name}
    bind {FRONT_HOST}:{topology.front_port(service.name)}
    # The services trust this balancer's word on the scheme: it says what it was sent over
    # (plain HTTP here), whatever a client claimed; the ALB does the same on AWS.
    http-request set-header X-Forwarded-Proto http
{public}\
{_client_address(service)}\
    default_backend {service.name}

backend {service.name}
    # The replica with the fewest requests in flight (round robin among equals): one slowed
    # down by a long request or a busy core gets fewer, which trims the tail of the latency.
    balance leastconn
    # Only a request that never reached a replica may be sent again, unless it is safe to repeat.
    http-request disable-l7-retry unless METH_GET || METH_HEAD
{_read_timeout(service, caller_timeout)}\
    option httpchk
    http-check send meth GET uri {service.health.readiness}
    http-check expect status 200
{servers}
"""


def _client_address(service: catalog.Service) -> str:
    """The site's callers are browsers: HAProxy, their first hop, names them to the replicas
    (whose per-client limits trust it, STOCKDAY_TRUSTED_PROXIES), replacing any
    X-Forwarded-For a client sent. The ALB appends instead; the replicas take the rightmost
    address that is not a trusted proxy, so either way a client cannot choose its own."""
    if service.name != "frontend":
        return ""
    return "    http-request set-header X-Forwarded-For %[src]\n"


def _read_timeout(service: catalog.Service, caller_timeout: float) -> str:
    """For a service the services call: how long a GET or HEAD waits for a silent replica.

    The callers give up after ``caller_timeout``. A request sent on a kept-alive connection to
    a replica that has just hung, or whose zone has just been cut off, gets no answer, and the
    checks take the replica out only later: with the default server timeout (10 s), HAProxy
    would try the request elsewhere long after its caller gave up (and the page failed).

    So a GET is tried on another replica after half of what is left of the callers' time at
    its depth: stock-symbol's after half of it, stock-price's (called while stock-symbol
    answers) after a quarter. Even when a request meets a silent replica at both depths, it
    is answered after about three quarters of the callers' timeout. The cost: a GET slower than
    that on a healthy replica is sent again, to another one. Requests that are not safe to
    repeat keep the longer timeout: they are not tried again anyway.
    """
    depth = CALL_DEPTH.get(service.name)
    if depth is None:
        return ""
    milliseconds = max(1, round(caller_timeout * 1000 / 2**depth))
    return f"""\
    # Callers wait {caller_timeout:g} s in all: a GET silent {milliseconds} ms is tried elsewhere.
    http-request set-timeout server {milliseconds}ms if METH_GET || METH_HEAD
"""


def _site_defences(settings: Settings) -> str:
    """The public front's limits: connections overall and per client address, no internal
    routes, no body above the upload limit (the frontend's own, the same setting)."""
    per_source = settings.edge_max_connections_per_source
    internal = " ".join(INTERNAL_PATHS)
    internal_under = " ".join(f"{path}/" for path in INTERNAL_PATHS)
    return f"""\
    maxconn {settings.edge_max_connections}
    # Open connections per client address: one address cannot take every connection slot.
    stick-table type ip size 100k expire 60s store conn_cur
    tcp-request connection track-sc0 src
    tcp-request connection reject if {{ sc_conn_cur(0) gt {per_source} }}
    # The first buffer of a body must arrive within the header timeout too: a body sent a
    # byte at a time does not reach, and hold, a replica.
    option http-buffer-request
    http-request deny deny_status 404 if {{ path {internal} }} || {{ path_beg {internal_under} }}
    # A declared length above the limit is answered 413 before a byte of the body is
    # forwarded, and the body read to its end (oversize.lua says why); a chunked body is
    # counted by the frontend, which answers 413 itself.
    http-request set-var(txn.upload_limit) int({settings.max_upload_bytes})
    http-request use-service lua.refuse_oversize if {{ req.hdr_val(content-length) gt \
{settings.max_upload_request_bytes} }}
"""
