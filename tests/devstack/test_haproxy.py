"""The local stack's HAProxy configuration: valid for HAProxy itself, and saying what the
stack relies on (every replica a server, readiness checks, safe reuse and retries, timeouts)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from stockday.devstack.haproxy import haproxy_config
from stockday.devstack.topology import FRONT_HOST, Topology
from stockday.runtime import catalog
from stockday.runtime.settings import Settings
from tests.support.programs import require_program

BASE = 21_000


def sections(config: str) -> dict[str, list[str]]:
    """Each section ("defaults", "backend stock-price"...) with its stripped, non-comment lines."""
    found: dict[str, list[str]] = {}
    current = ""
    for line in config.splitlines():
        if not line.strip() or line.strip().startswith("#"):
            continue
        if not line[0].isspace():
            current = line.strip()
            found[current] = []
        else:
            found[current].append(" ".join(line.split()))
    return found


@pytest.mark.parametrize("zones", [1, 2])
def test_haproxy_accepts_the_configuration(zones: int, tmp_path: Path) -> None:
    haproxy = require_program("haproxy")
    path = tmp_path / "haproxy.cfg"
    path.write_text(haproxy_config(Topology(BASE, replicas=2, zones=zones)))
    checked = subprocess.run(
        [haproxy, "-c", "-f", str(path)], capture_output=True, text=True, timeout=30
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "Configuration file is valid" in checked.stdout + checked.stderr


def test_haproxy_rejects_a_broken_configuration(tmp_path: Path) -> None:
    """The check above can fail: a server line without an address is refused."""
    haproxy = require_program("haproxy")
    path = tmp_path / "haproxy.cfg"
    broken = haproxy_config(Topology(BASE)).replace(f"{FRONT_HOST}:{BASE + 50}", "")
    path.write_text(broken)
    checked = subprocess.run(
        [haproxy, "-c", "-f", str(path)], capture_output=True, text=True, timeout=30
    )
    assert checked.returncode != 0


@pytest.mark.parametrize("zones", [1, 2])
def test_every_replica_of_every_http_service_is_a_server_of_its_backend(zones: int) -> None:
    plan = Topology(BASE, replicas=3, zones=zones)
    config = sections(haproxy_config(plan))
    for service in catalog.HTTP_SERVICES:
        servers = [line for line in config[f"backend {service.name}"] if line.startswith("server")]
        assert servers == [
            f"server {r.name} {r.host}:{r.port}" for r in plan.replicas_of(service.name)
        ]
        assert (
            f"bind {FRONT_HOST}:{plan.front_port(service.name)}"
            in (config[f"frontend {service.name}"])
        )
        assert f"default_backend {service.name}" in config[f"frontend {service.name}"]
    for consumer in catalog.CONSUMERS:  # nothing calls a consumer
        assert f"backend {consumer.name}" not in config
        assert consumer.name not in haproxy_config(plan)
    assert f"bind {FRONT_HOST}:{plan.stats_port}" in config["listen stats"]


def test_replicas_are_checked_on_the_catalog_readiness_path() -> None:
    config = sections(haproxy_config(Topology(BASE)))
    for service in catalog.HTTP_SERVICES:
        backend = config[f"backend {service.name}"]
        assert "option httpchk" in backend
        assert f"http-check send meth GET uri {service.health.readiness}" in backend
        assert "http-check expect status 200" in backend
    # Every server is checked, and taken out and back on a few checks.
    (default_server,) = [line for line in config["defaults"] if line.startswith("default-server")]
    assert re.search(r"\bcheck\b", default_server)
    assert re.search(r"\bfall \d\b", default_server) and re.search(r"\brise \d\b", default_server)


def test_connections_are_kept_alive_and_shared_safely() -> None:
    defaults = sections(haproxy_config(Topology(BASE)))["defaults"]
    assert "http-reuse safe" in defaults
    assert "option http-keep-alive" in defaults


def test_only_get_and_head_are_retried_once_a_replica_took_them() -> None:
    config = sections(haproxy_config(Topology(BASE)))
    for service in catalog.HTTP_SERVICES:
        assert (
            "http-request disable-l7-retry unless METH_GET || METH_HEAD"
            in (config[f"backend {service.name}"])
        )
    defaults = config["defaults"]
    assert "retry-on conn-failure empty-response response-timeout" in defaults
    assert any(line.startswith("option redispatch") for line in defaults)


def test_every_timeout_is_set() -> None:
    defaults = sections(haproxy_config(Topology(BASE)))["defaults"]
    timeouts = {
        line.split()[1]: line.split()[2] for line in defaults if line.startswith("timeout ")
    }
    assert set(timeouts) >= {"connect", "client", "server", "check", "http-request"}
    for value in timeouts.values():
        assert re.fullmatch(r"\d+(ms|s)", value), value


# --- The site's defences against slow, numerous and oversize clients ----------------------

EDGE = Settings(
    edge_header_timeout_seconds=2.5,
    edge_max_connections=1234,
    edge_max_connections_per_source=17,
    max_upload_bytes=1_000_000,
)


def test_the_header_timeout_and_connection_limits_come_from_the_settings() -> None:
    config = sections(haproxy_config(Topology(BASE), EDGE))
    assert "timeout http-request 2500ms" in config["defaults"]
    site = config["frontend frontend"]
    assert "maxconn 1234" in site
    # Room beside the site's connections for the services' calls to each other.
    (global_maxconn,) = [line for line in config["global"] if line.startswith("maxconn ")]
    assert int(global_maxconn.split()[1]) >= 1234 + 1000
    assert "tcp-request connection track-sc0 src" in site
    assert "tcp-request connection reject if { sc_conn_cur(0) gt 17 }" in site
    assert any(line.startswith("stick-table type ip ") and "conn_cur" in line for line in site)


def test_the_site_refuses_bodies_above_the_frontends_own_limit() -> None:
    config = sections(haproxy_config(Topology(BASE), EDGE))
    limit = EDGE.max_upload_request_bytes  # what the frontend itself accepts
    assert (
        "http-request use-service lua.refuse_oversize if "
        f"{{ req.hdr_val(content-length) gt {limit} }}"
    ) in config["frontend frontend"]
    # What the answer names: the file's limit, the setting itself.
    assert "http-request set-var(txn.upload_limit) int(1000000)" in config["frontend frontend"]
    (lua_load,) = [line for line in config["global"] if line.startswith("lua-load ")]
    script = Path(lua_load.split()[1])
    assert 'register_service("refuse_oversize", "http"' in script.read_text()
    assert "option http-buffer-request" in config["frontend frontend"]


def test_the_site_does_not_serve_metrics() -> None:
    site = sections(haproxy_config(Topology(BASE)))["frontend frontend"]
    assert (
        "http-request deny deny_status 404 if { path /metrics } || { path_beg /metrics/ }" in site
    )


def test_only_the_site_is_limited_the_services_calls_are_not() -> None:
    config = sections(haproxy_config(Topology(BASE), EDGE))
    for service in ("stock-symbol", "stock-price"):
        front = " ".join(config[f"frontend {service}"])
        for public_only in ("maxconn", "track-sc0", "refuse_oversize", "deny", "buffer-request"):
            assert public_only not in front, (service, public_only)


def test_the_scheme_the_services_are_told_is_the_balancers_own() -> None:
    # The frontend believes X-Forwarded-Proto from this balancer: it must overwrite a client's.
    config = sections(haproxy_config(Topology(BASE)))
    for service in catalog.HTTP_SERVICES:
        assert (
            "http-request set-header X-Forwarded-Proto http" in config[f"frontend {service.name}"]
        )


def test_replicas_leave_forwarded_headers_to_the_app() -> None:
    # One trust list (STOCKDAY_TRUSTED_PROXIES), read by the app, not a second one in uvicorn.
    assert "--no-proxy-headers" in catalog.uvicorn_args("frontend", "127.0.0.1", BASE)


def test_the_site_front_names_the_client_and_no_other_does() -> None:
    # The operator login's failure limit and the rate limits count the address HAProxy saw:
    # it replaces whatever X-Forwarded-For a client sent, so a client cannot choose its own.
    found = sections(haproxy_config(Topology(BASE)))
    for service in catalog.HTTP_SERVICES:
        front = found[f"frontend {service.name}"]
        named = "http-request set-header X-Forwarded-For %[src]" in front
        assert named == (service.name == "frontend"), service.name
        assert "option forwardfor" not in front, service.name
