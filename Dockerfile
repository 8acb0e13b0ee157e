# syntax=docker/dockerfile:1
# One image for the five services: `docker run IMAGE frontend` (or stock-symbol, stock-price,
# logo-resizer, queue-worker). Built once per commit, tagged with the git SHA, promoted as is.

ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# Build stage: resolve the locked dependencies into a virtual environment with uv.
FROM ${PYTHON_IMAGE} AS build
COPY --from=ghcr.io/astral-sh/uv:0.13.9 /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/stockday
WORKDIR /src
# Dependencies first, in their own layer: a code change does not reinstall them.
COPY pyproject.toml uv.lock README.md ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-project
COPY src ./src
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable

# Final stage: the interpreter, the environment and nothing else (no uv, no compilers).
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="stockday" \
      org.opencontainers.image.description="Stock-of-the-Day services (one image, five entry points)"
RUN groupadd --system --gid 10001 stockday \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin stockday
COPY --from=build /opt/stockday /opt/stockday
ENV PATH=/opt/stockday/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    STOCKDAY_BACKEND=aws \
    STOCKDAY_DATA_DIR=/tmp/stockday
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=2 \
    CMD ["python", "-c", "import os, sys, urllib.request; url = 'http://127.0.0.1:%s/api/ping' % os.environ.get('PORT', '8080'); sys.exit(urllib.request.urlopen(url, timeout=2).status != 200)"]
ENTRYPOINT ["python", "-m", "stockday.runtime.container"]
CMD ["frontend"]
