"""A service on a misconfigured AWS backend starts, reports not-ready, and says why in one line.

Each case starts a real service process against the moto server with one thing wrong, probes
its readiness several times, and checks the reason names the resource and its setting, the
process stays up, and the log has the reason once and no stack trace.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from stockday.aws.provision import provision
from stockday.runtime.settings import Settings
from tests.support.ports import free_port
from tests.support.servers import ServerProcess

PROBES = 5


@pytest.fixture(scope="module")
def provisioned(aws_emulator: ServerProcess) -> dict[str, str]:
    """A complete set of resources on the emulator; each case breaks one thing."""
    suffix = uuid.uuid4().hex[:8]
    env = {
        "STOCKDAY_BACKEND": "aws",
        "STOCKDAY_AWS_ENDPOINT_URL": aws_emulator.url,
        "STOCKDAY_AWS_REGION": "us-east-1",
        "STOCKDAY_AWS_TIMEOUT_SECONDS": "1",
        "STOCKDAY_DYNAMODB_TABLE": f"stocks-{suffix}",
        "STOCKDAY_S3_BUCKET": f"objects-{suffix}",
        "STOCKDAY_LOGO_JOBS_QUEUE": f"jobs-{suffix}",
        "STOCKDAY_LOGO_EVENTS_QUEUE": f"events-{suffix}",
    }
    settings = Settings.model_validate(
        {k.removeprefix("STOCKDAY_").lower(): v for k, v in env.items()}
    )
    provision(settings, say=lambda _: None)
    return env


def service_command(service: str, port: int) -> list[str]:
    if service == "stock-symbol":
        factory = "stockday.stock_symbol.app:app_factory"
        return [sys.executable, "-m", "uvicorn", "--factory", factory, "--port", str(port)]
    module = f"stockday.{service.replace('-', '_')}"
    return [sys.executable, "-m", module, "--health-port", str(port)]


NO_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": None,
    "AWS_SECRET_ACCESS_KEY": None,
    "AWS_SESSION_TOKEN": None,
    "AWS_PROFILE": None,
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/credentials",
    "AWS_CONFIG_FILE": "/nonexistent/config",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI": None,
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": None,
    "AWS_WEB_IDENTITY_TOKEN_FILE": None,
}


# What a setting of each kind names, as the reasons spell it.
RESOURCES = {"TABLE": "DynamoDB table", "QUEUE": "SQS queue", "BUCKET": "S3 bucket"}


def missing(case_id: str, service: str, setting: str, name: str) -> Any:
    """A case where `setting` names a resource that does not exist: the reason names the
    resource and the setting to fix."""
    resource = RESOURCES[setting.rsplit("_", 1)[1]]
    return pytest.param(service, {setting: name}, [f"{resource} '{name}'", setting], id=case_id)


CASES = [
    missing("missing-table", "stock-symbol", "STOCKDAY_DYNAMODB_TABLE", "no-such-table"),
    missing("missing-queue", "stock-symbol", "STOCKDAY_LOGO_JOBS_QUEUE", "no-such-queue"),
    missing("missing-bucket", "logo-resizer", "STOCKDAY_S3_BUCKET", "no-such-bucket"),
    missing("missing-events-queue", "queue-worker", "STOCKDAY_LOGO_EVENTS_QUEUE", "no-such-events"),
    pytest.param(
        "stock-symbol",
        {"STOCKDAY_AWS_REGION": "eu-west-3"},
        ["DynamoDB table", "STOCKDAY_AWS_REGION"],
        id="wrong-region",
    ),
    pytest.param(
        "stock-symbol",
        NO_CREDENTIALS,
        ["no AWS credentials"],
        id="no-credentials",
    ),
]


@pytest.mark.parametrize(("service", "broken", "expected"), CASES)
def test_misconfigured_service_stays_up_unready_and_says_why_once(
    provisioned: dict[str, str],
    tmp_path: Path,
    service: str,
    broken: dict[str, str | None],
    expected: list[str],
) -> None:
    env = {**os.environ, **provisioned, "STOCKDAY_LOG_LEVEL": "INFO"}
    for name, value in broken.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    port = free_port()
    log_path = tmp_path / f"{service}.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            service_command(service, port),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
        )
    try:
        reasons: list[str] = []
        probes = 0
        deadline = time.monotonic() + 30
        with httpx.Client(timeout=5) as client:
            while probes < PROBES and time.monotonic() < deadline:
                assert process.poll() is None, log_path.read_text()
                try:
                    answer = client.get(f"http://127.0.0.1:{port}/api/ready")
                except httpx.TransportError:
                    time.sleep(0.1)
                    continue
                assert answer.status_code == 503, answer.text
                reasons = answer.json()["reasons"]
                probes += 1
                time.sleep(0.2)
        assert probes == PROBES, log_path.read_text()
        matching = [r for r in reasons if all(part in r for part in expected)]
        assert matching, reasons
        assert process.poll() is None  # no crash, no crash loop
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    output = log_path.read_text()
    assert "Traceback" not in output, output
    for reason in reasons:
        said = [line for line in output.splitlines() if reason in line]
        # Once by the readiness log, at most once more by a consumer's receive loop: not once
        # per probe (there were several) or per poll.
        assert 1 <= len(said) <= 2, output
