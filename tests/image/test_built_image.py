"""The container image built for real, published through a registry, and run.

``deploy/image.sh --fresh`` (what ``make image`` runs) builds the Dockerfile with podman once per
session, in a store of its own: from nothing in CI, where it also makes the base images. The
tests then use the image it pulled back from the registry by digest: its SBOM against the
packages installed in it; the five services on the embedded backend, one container each,
unprivileged on a read-only root; and the whole stack on the AWS emulator (five containers and
moto), through a page view, an add-stock with a logo and the logo made ready. Containers share
the host's network and listen on free 127.0.0.1 ports only; each is removed by the test that
started it, and the session removes whatever is left in the store. The image's record and SBOM
are copied to test-artifacts/image/, which both pipelines keep.

Set STOCKDAY_TEST_IMAGE_DIR to keep the store (and so the base images) between runs while
developing; the image itself is rebuilt every session either way.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from stockday.aws.provision import provision
from stockday.runtime.container import SERVICES
from stockday.runtime.settings import Settings
from tests.support import images
from tests.support.ports import HOST, free_port
from tests.support.servers import EMULATOR_ENV, moto_server
from tests.support.waiting import wait_until

# Making the base images and building from scratch took 8.5 minutes on the shared 2-core
# machine under heavy load (3 on a quiet one): the session's first test waits for it.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1500)]

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy" / "image.sh"
ARTIFACTS = ROOT / "test-artifacts" / "image"
UID = 10001
# As deploy/image.sh runs them. podman logs that it cannot schedule the image's HEALTHCHECK
# without systemd; the tests run the check themselves.
CONTAINER_OPTIONS = (
    *("--network", "host", "--read-only", "--cap-drop", "ALL"),
    *("--security-opt", "no-new-privileges"),
)


def podman_env(out: Path) -> dict[str, str]:
    """The environment that points podman at the script's store and configuration in ``out``."""
    exports = re.findall(r"(?m)^export (\w+)=(.*)$", (out / "podman.env").read_text())
    return {**os.environ, **dict(exports)}


def podman(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["podman", *args], env=env, capture_output=True, text=True, timeout=120)
    assert not check or result.returncode == 0, result.stderr
    return result


@dataclass
class BuiltImage:
    """The script's output directory: its record, SBOM, and podman configured on its store."""

    out: Path
    record: dict[str, Any] = field(init=False)
    env: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        self.record = json.loads((self.out / "image.json").read_text())
        self.env = podman_env(self.out)

    @property
    def reference(self) -> str:
        """The image as pulled back from the registry by its digest."""
        return str(self.record["pulled_as"])

    def podman(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return podman(self.env, *args, check=check)


@pytest.fixture(scope="session")
def built_image() -> Iterator[BuiltImage]:
    kept = os.environ.get("STOCKDAY_TEST_IMAGE_DIR")
    # In the checkout, not /tmp: a CI job's workspace is a bind mount where podman's overlay
    # storage works, and nothing else's clean-up of old temporary directories reaches it.
    out = Path(kept) if kept else ROOT / "build" / f"test-image-{uuid.uuid4().hex[:12]}"
    try:
        run_script(out)
        image = BuiltImage(out)
        # The record and SBOM of the tested image, which both pipelines keep with the build.
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        for name in ("image.json", "sbom.cdx.json"):
            shutil.copy(out / name, ARTIFACTS / name)
        yield image
    finally:
        if (out / "podman.env").exists():
            env = podman_env(out)
            podman(env, "rm", "--all", "--force", "--time", "5", check=False)
            if not kept:
                podman(env, "rmi", "--all", "--force", check=False)
                remove_podman_state(out)
        if not kept:
            shutil.rmtree(out, ignore_errors=True)


def run_script(out: Path) -> None:
    """``deploy/image.sh --fresh OUT``; killed with its registry if it outlives its deadline.

    Its progress, with the second each step began at, is the captured output on failure."""
    process = subprocess.Popen(["bash", str(SCRIPT), "--fresh", str(out)], start_new_session=True)
    try:
        assert process.wait(timeout=1400) == 0, "deploy/image.sh failed: see its output"
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def remove_podman_state(out: Path) -> None:
    """The run and tmp directories the script gave this store's podman (beside its runroot)."""
    storage = (out / "podman" / "storage.conf").read_text()
    runroot = re.search(r'(?m)^runroot = "(.+)"$', storage)
    if runroot:
        shutil.rmtree(Path(runroot.group(1)).parent, ignore_errors=True)


def test_the_image_was_published_and_pulled_back_by_digest(built_image: BuiltImage) -> None:
    record = built_image.record
    assert re.fullmatch(r"127\.0\.0\.1:\d+/stockday@sha256:[0-9a-f]{64}", built_image.reference)
    pulled = built_image.podman("image", "inspect", "--format", "{{.Id}}", built_image.reference)
    assert pulled.stdout.strip() == record["id"]
    assert record["python_version"].startswith("3.11.")
    assert record["base"]["image"] == "docker.io/library/python:3.11.14-slim-bookworm"
    assert 50e6 < record["size_bytes"] < 400e6, record["size_bytes"]


def run_python(image: BuiltImage, code: str, *argv: str) -> str:
    """Run ``code`` with the image's Python, in a container as locked down as the services'."""
    args = ("run", "--rm", *CONTAINER_OPTIONS, "--entrypoint", "python", image.reference)
    return image.podman(*args, "-c", code, *argv).stdout


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_the_sbom_lists_exactly_the_packages_installed_in_the_image(
    built_image: BuiltImage,
) -> None:
    sbom = json.loads((built_image.out / "sbom.cdx.json").read_text())
    assert (sbom["bomFormat"], sbom["specVersion"]) == ("CycloneDX", "1.5")
    parts = [sbom["metadata"]["component"], *sbom["components"]]
    # A package may be locked twice, at two versions for two Python ranges: entries are
    # (name, version), each with its platform marker if it has one.
    listed = {
        (canonical(part["name"]), part["version"]): next(
            (p["value"] for p in part.get("properties", []) if p["name"] == "uv:package:marker"),
            None,
        )
        for part in parts
    }
    markers = sorted({marker for marker in listed.values() if marker is not None})
    # The image's own Python says what is installed, and which platform markers hold there.
    found = json.loads(
        run_python(
            built_image,
            "import importlib.metadata as m, json, sys; from packaging.markers import Marker; "
            "print(json.dumps({'installed': {d.metadata['Name']: d.version "
            "for d in m.distributions()}, 'holds': {marker: Marker(marker).evaluate() "
            "for marker in json.loads(sys.argv[1])}}))",
            json.dumps(markers),
        )
    )
    installed = {(canonical(name), version) for name, version in found["installed"].items()}
    # Every installed package at its version; listed but absent only where its marker fails.
    assert installed <= set(listed), installed - set(listed)
    ruled_out = {entry for entry, marker in listed.items() if marker and not found["holds"][marker]}
    assert set(listed) - installed == ruled_out
    names = {name for name, _ in installed}
    assert "stockday" in names and "uvicorn" in names
    assert not {"pytest", "moto"} & {name for name, _ in listed}
    assert built_image.record["packages"] == len(installed)


@dataclass
class Container:
    name: str
    port: int
    pid: int

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def wait_for_answer(image: BuiltImage, name: str, url: str) -> None:
    """Poll ``url`` until it answers 200; the container's log is the failure message."""

    def log() -> str:
        result = image.podman("logs", name, check=False)
        return f"{url} did not answer; log of {name}:\n{(result.stdout + result.stderr)[-3000:]}"

    wait_until(lambda: answers(url), 60, log, interval=0.2)


@contextmanager
def service_container(
    image: BuiltImage, service: str, port: int, env: dict[str, str], volumes: tuple[str, ...] = ()
) -> Iterator[Container]:
    """``service`` started from the image on 127.0.0.1:``port``; removed on leaving, however
    left."""
    name = f"stockday-test-{service}-{port}"
    options = [*CONTAINER_OPTIONS, "--env", f"PORT={port}"]
    options += [f"--env={key}={value}" for key, value in env.items()]
    options += [f"--volume={volume}" for volume in volumes]
    try:
        image.podman("run", "--detach", "--name", name, *options, image.reference, service,
                     "--host", HOST)  # fmt: skip
        pid = int(image.podman("inspect", "--format", "{{.State.Pid}}", name).stdout)
        yield Container(name, port, pid)
    finally:
        image.podman("rm", "--force", "--time", "5", name, check=False)


@contextmanager
def five_services(
    image: BuiltImage, env: dict[str, str], volumes: tuple[str, ...] = ()
) -> Iterator[dict[str, Container]]:
    """All five services, one container each, wired to each other; ready when yielded."""
    ports = {service: free_port() for service in SERVICES}
    env = {
        **env,
        "STOCKDAY_SYMBOL_URL": f"http://{HOST}:{ports['stock-symbol']}",
        "STOCKDAY_PRICE_URL": f"http://{HOST}:{ports['stock-price']}",
    }
    with ExitStack() as stack:
        running = {
            service: stack.enter_context(service_container(image, service, port, env, volumes))
            for service, port in ports.items()
        }
        for container in running.values():
            wait_for_answer(image, container.name, f"{container.url}/api/ready")
        yield running


def test_every_service_runs_unprivileged_on_a_read_only_root(
    built_image: BuiltImage, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    os.chown(data, UID, UID)
    env = {"STOCKDAY_BACKEND": "local", "STOCKDAY_DATA_DIR": "/data"}
    with five_services(built_image, env, (f"{data}:/data",)) as running:
        for service, container in running.items():
            process = psutil.Process(container.pid)
            assert process.uids().real == UID, service
            assert process.uids().effective == UID, service
            listening = {
                (c.laddr.ip, c.laddr.port)
                for c in process.net_connections(kind="inet")
                if c.status == psutil.CONN_LISTEN
            }
            assert listening == {(HOST, container.port)}, service
            written = built_image.podman(
                "exec", container.name, "python", "-c", "open('/opt/stockday/x', 'w')", check=False
            )
            assert written.returncode != 0
            assert "Read-only file system" in written.stderr, written.stderr
            # The Dockerfile's HEALTHCHECK, as the container runtime runs it (fails if unhealthy).
            built_image.podman("healthcheck", "run", container.name)
    assert list(data.iterdir()), "the services kept nothing in their data directory"


def aws_env(endpoint: str, suffix: str) -> dict[str, str]:
    """The aws backend on the emulator, with resource names of this test's own."""
    return {
        **EMULATOR_ENV,
        "STOCKDAY_BACKEND": "aws",
        "STOCKDAY_AWS_ENDPOINT_URL": endpoint,
        "STOCKDAY_AWS_REGION": "us-east-1",
        "STOCKDAY_DYNAMODB_TABLE": f"stocks-{suffix}",
        "STOCKDAY_S3_BUCKET": f"objects-{suffix}",
        "STOCKDAY_LOGO_JOBS_QUEUE": f"logo-jobs-{suffix}",
        "STOCKDAY_LOGO_EVENTS_QUEUE": f"logo-events-{suffix}",
        # No memcached: the price cache is optional, and a refused connection is a quick miss.
        "STOCKDAY_MEMCACHED_SERVERS": f"{HOST}:{free_port()}",
        "STOCKDAY_QUEUE_WAIT_SECONDS": "1",
        "STOCKDAY_HTTP_TIMEOUT_SECONDS": "10",
        "STOCKDAY_AWS_TIMEOUT_SECONDS": "10",
    }


def add_stock_through_the_form(site: httpx.Client, symbol: str) -> None:
    """Upload a logo and submit the add-stock form, as the browser does."""
    form = site.get("/stocks/new")
    assert form.status_code == 200, form.text
    fields = dict(
        re.findall(r'<input[^>]*type="hidden"[^>]*name="(\w+)"[^>]*value="([^"]*)"', form.text)
    )
    uploaded = site.post(
        "/uploads",
        files={"file": ("logo.png", images.png(400, 200), "image/png")},
        headers={"X-CSRF-Token": fields["csrf_token"]},
    )
    assert uploaded.status_code == 201, uploaded.text
    fields.update(symbol=symbol, name=f"{symbol} Inc.", upload_id=uploaded.json()["upload_id"])
    created = site.post("/stocks", data=fields, follow_redirects=False)
    assert created.status_code == 303, created.text


def test_the_stack_runs_from_the_image_on_the_aws_emulator(built_image: BuiltImage) -> None:
    with moto_server() as moto:
        env = aws_env(moto.url, str(moto.port))
        settings = Settings(
            backend="aws",
            aws_endpoint_url=moto.url,
            dynamodb_table=env["STOCKDAY_DYNAMODB_TABLE"],
            s3_bucket=env["STOCKDAY_S3_BUCKET"],
            logo_jobs_queue=env["STOCKDAY_LOGO_JOBS_QUEUE"],
            logo_events_queue=env["STOCKDAY_LOGO_EVENTS_QUEUE"],
        )
        provision(settings, say=lambda _: None, emulator_credentials=("testing", "testing"))
        with (
            five_services(built_image, env) as running,
            httpx.Client(base_url=running["frontend"].url, timeout=10) as site,
            httpx.Client(base_url=running["stock-symbol"].url, timeout=10) as api,
        ):
            assert site.get("/").status_code == 200
            add_stock_through_the_form(site, "BOX")
            deadline = time.monotonic() + 30
            while (stock := api.get("/api/stocks/BOX").json())["logo"]["state"] == "pending":
                assert time.monotonic() < deadline, stock
                time.sleep(0.1)
            assert stock["logo"]["state"] == "ready", stock
            logo = site.get(stock["logo"]["url"])
            assert logo.status_code == 200
            assert logo.headers["content-type"] == "image/webp"
            page = site.get("/")
            assert page.status_code == 200
            assert "BOX" in page.text
