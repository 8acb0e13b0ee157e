"""The Kubernetes overlays of deploy/k8s as the deploy tests read them: each rendered once per
session with `kubectl kustomize`, and each stage's env file read independently of the
infrastructure's own reader."""

from __future__ import annotations

import functools
import shutil
import subprocess
from pathlib import Path

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"


@functools.cache
def render(overlay: str) -> str:
    """The overlay's manifests as `kubectl kustomize` prints them (rendered once per session)."""
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl (with its built-in kustomize) is needed to render deploy/k8s"
    result = subprocess.run(
        [kubectl, "kustomize", str(K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def env_file(stage: str) -> dict[str, str]:
    """The stage's env file, ``NAME=value`` lines with # comments skipped."""
    values = {}
    for line in (K8S / "overlays" / stage / "stockday.env").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value
    return values
