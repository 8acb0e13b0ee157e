"""The container image's definition, checked without building it: lint, structure, environment.

hadolint on the Dockerfile, the rules of the final stage (non-root, no build tools, the entry
point), the build context, and the environment the Dockerfile builds (the same
`uv sync --frozen --no-dev --no-editable`), from which every service is started through the
image's entry point and probed. The image itself is built and run in test_built_image.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from stockday.runtime.container import DEFAULT_PORT, SERVICES
from tests.support.ports import free_port
from tests.support.servers import container_service, local_service_env

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


def stages(text: str) -> list[str]:
    """The Dockerfile's stages, each from its FROM line to the next."""
    return re.split(r"(?m)^(?=FROM )", text)[1:]


def test_hadolint_passes_with_no_rule_ignored() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    result = subprocess.run(
        [str(hadolint), "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "hadolint ignore" not in DOCKERFILE.read_text()


def test_final_stage_is_slim_non_root_and_runs_the_entry_point() -> None:
    text = DOCKERFILE.read_text()
    build, final = stages(text)
    assert " AS build" in build.splitlines()[0]
    assert final.startswith("FROM ${PYTHON_IMAGE}\n")
    assert "slim" in re.search(r"ARG PYTHON_IMAGE=(\S+)", text).group(1)  # type: ignore[union-attr]
    # Only the built environment crosses over: no uv, compilers or sources in the final stage.
    assert re.findall(r"(?m)^COPY .*", final) == ["COPY --from=build /opt/stockday /opt/stockday"]
    for tool in ("uv ", "apt-get", "gcc", "build-essential", "pip "):
        assert tool not in final
    assert re.search(r"(?m)^USER 10001:10001$", final)
    assert 'ENTRYPOINT ["python", "-m", "stockday.runtime.container"]' in final
    assert f"EXPOSE {DEFAULT_PORT}" in final
    assert "--no-dev" in build and "--frozen" in build


def test_build_context_holds_only_what_the_image_needs() -> None:
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert ignore[ignore.index("*")] == "*"
    allowed = {line[1:] for line in ignore if line.startswith("!")}
    assert allowed == {"pyproject.toml", "uv.lock", "README.md", "src/"}
    copied = re.findall(r"(?m)^COPY (?!--from)(.+) \S+$", DOCKERFILE.read_text())
    assert {name for line in copied for name in line.split()} == {
        "pyproject.toml",
        "uv.lock",
        "README.md",
        "src",
    }


def healthcheck_command() -> list[str]:
    """The exec-form command of the Dockerfile's HEALTHCHECK."""
    found = re.search(r"HEALTHCHECK [^\n]*\\\n\s+CMD (\[.*\])", DOCKERFILE.read_text())
    assert found, "no HEALTHCHECK ... CMD [...] in the Dockerfile"
    command: list[str] = json.loads(found.group(1))
    assert command[0] == "python"
    return command


@pytest.fixture(scope="module")
def image_environment(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The virtual environment the Dockerfile's build stage makes, made the same way here."""
    venv = tmp_path_factory.mktemp("image") / "stockday"
    uv = os.environ.get("UV") or shutil.which("uv") or str(Path.home() / ".local/bin/uv")
    env = {
        **os.environ,
        "UV_PROJECT_ENVIRONMENT": str(venv),
        "UV_PYTHON_DOWNLOADS": "never",
        "UV_LINK_MODE": "copy",
    }
    env.pop("VIRTUAL_ENV", None)
    subprocess.run(
        [
            uv,
            "sync",
            "--frozen",
            "--no-dev",
            "--no-editable",
            "--quiet",
            "--python",
            sys.executable,
        ],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=600,
    )
    return venv


def test_image_environment_has_no_development_packages(image_environment: Path) -> None:
    python = image_environment / "bin" / "python"
    probe = (
        "import importlib.util as u, json; "
        "print(json.dumps({m: u.find_spec(m) is not None for m in "
        "['stockday', 'uvicorn', 'boto3', 'pytest', 'moto', 'aws_cdk', 'mypy', 'playwright']}))"
    )
    found = subprocess.run(
        [str(python), "-c", probe], capture_output=True, text=True, check=True, cwd="/"
    ).stdout
    assert found.strip() == (
        '{"stockday": true, "uvicorn": true, "boto3": true, "pytest": false, "moto": false, '
        '"aws_cdk": false, "mypy": false, "playwright": false}'
    )
    # Installed as a package, not as a link back to this checkout.
    assert not list(image_environment.glob("lib/python*/site-packages/*.pth")) or all(
        str(ROOT) not in pth.read_text()
        for pth in image_environment.glob("lib/python*/site-packages/*.pth")
    )


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_starts_through_the_entry_point_and_stops_on_sigterm(
    service: str, image_environment: Path, tmp_path: Path
) -> None:
    port = free_port()
    env = local_service_env(tmp_path / "data")  # the image defaults to aws; embedded here
    # Nothing answers there: queue-worker, which can do nothing without stock-symbol, starts but
    # is not ready; the frontend is (it answers with a page that says stock-symbol is down).
    env["STOCKDAY_SYMBOL_URL"] = f"http://127.0.0.1:{free_port()}"
    needs_symbol = service == "queue-worker"
    log = tmp_path / f"{service}.log"
    python = str(image_environment / "bin" / "python")
    with container_service(python, [service], port, env, log) as process:
        ping = httpx.get(f"http://127.0.0.1:{port}/api/ping", timeout=5)
        # exec, not a child: the pid answering is the one the container runtime signals.
        assert ping.json()["pid"] == process.pid
        ready = httpx.get(f"http://127.0.0.1:{port}/api/ready", timeout=10)
        assert ready.status_code == (503 if needs_symbol else 200), ready.text
        if needs_symbol:
            assert "stock-symbol" in ready.text
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
        assert metrics.status_code == 200
        # The image's HEALTHCHECK, run as Docker would run it inside the container.
        check = subprocess.run(
            [python, *healthcheck_command()[1:]], env={**env, "PORT": str(port)}, timeout=10
        )
        assert check.returncode == 0
        process.send_signal(signal.SIGTERM)
        # uvicorn re-raises the signal once it has drained, so it may end "killed by SIGTERM".
        assert process.wait(timeout=20) in (0, -signal.SIGTERM), log.read_text()
    assert "Traceback" not in log.read_text()
