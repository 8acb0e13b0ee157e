"""The local stack's front door: HAProxy in front of the frontend's uvicorn workers.

On AWS the load balancer sits in front of the pods; on one machine HAProxy (Debian's package)
takes that place. Besides forwarding, it retries a page view whose worker died before
answering (``retry-on``, GET and HEAD only), so that a replica killed mid-request costs the
visitor a few milliseconds instead of an error page. Without haproxy installed, `stockday up`
serves the frontend directly and says so.
"""

from __future__ import annotations

import shutil
from pathlib import Path


def haproxy_binary() -> str | None:
    return shutil.which("haproxy") or next(
        (p for p in ("/usr/sbin/haproxy", "/usr/bin/haproxy") if Path(p).exists()), None
    )


def haproxy_config(*, host: str, port: int, frontend_port: int) -> str:
    """An HAProxy configuration: ``host:port`` forwarding to the frontend on ``frontend_port``."""
    return f"""\
global
    maxconn 4096
    log stderr format short local0 warning

defaults
    mode http
    log global
    option dontlognull
    timeout connect 2s
    timeout client 60s
    # A page view needs well under a second (its own calls time out after 2 s); a worker that
    # has not answered in 15 s is hung, and a GET is then tried on another.
    timeout server 15s
    timeout http-keep-alive 10s
    # A new connection to the frontend per request: a connection kept open to a worker that
    # then hangs would hold every later request sent on it.
    option http-server-close
    http-reuse never
    # A worker killed mid-request: ask again (the kernel hands the new connection to a live
    # worker), but only for requests that are safe to repeat.
    retries 3
    retry-on conn-failure empty-response response-timeout
    option redispatch

frontend site
    bind {host}:{port}
    http-request disable-l7-retry unless METH_GET || METH_HEAD
    default_backend frontend

backend frontend
    server frontend {host}:{frontend_port}
"""
