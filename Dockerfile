# The python-coder gateway: FastAPI on port 8000, starting runner containers as siblings
# through the Docker API (mount /var/run/docker.sock; see compose.yaml and docs/deploy.md).
#
# Online:     docker build -t python-coder-gateway .
# Air-gapped: .ci/gateway-wheelhouse.sh   (on the host: wheels into .cache/gateway-wheelhouse)
#             docker build --build-arg BASE_IMAGE=python-coder-base:bookworm \
#                          --build-arg WHEELHOUSE=.cache/gateway-wheelhouse -t python-coder-gateway .
# With wheels in WHEELHOUSE, pip installs with --no-index: nothing in the build needs a network.
ARG BASE_IMAGE=python:3.11-slim

# --- dependencies: rebuilt only when pyproject.toml (or the wheelhouse) changes ---------------
FROM ${BASE_IMAGE} AS deps
# The glob matches nothing when the wheelhouse is absent, which COPY accepts next to
# pyproject.toml: the online build then installs from the package index.
ARG WHEELHOUSE=.cache/gateway-wheelhous[e]
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
# A venv: Debian's python (the bootstrapped base) is "externally managed" and refuses
# system-wide pip installs; the same path works on python:3.11-slim.
RUN python3 -m venv /opt/venv
COPY pyproject.toml ${WHEELHOUSE} /build/
RUN set -eu; \
    /opt/venv/bin/python -c "import tomllib; p = tomllib.load(open('/build/pyproject.toml', 'rb')); print('\n'.join(p['project']['dependencies'] + p['build-system']['requires']))" > /build/requirements.txt; \
    if ls /build/*.whl >/dev/null 2>&1; then \
        echo "installing from the wheelhouse (offline)"; \
        /opt/venv/bin/pip install --no-index --find-links /build -r /build/requirements.txt; \
    else \
        /opt/venv/bin/pip install --upgrade pip && /opt/venv/bin/pip install -r /build/requirements.txt; \
    fi; \
    # test suites of the dependencies are never imported by the gateway (~70 MB)
    find /opt/venv/lib/python3.11/site-packages -depth -type d -name tests \
        -path '*/site-packages/*/*' -exec rm -rf {} +; \
    /opt/venv/bin/python -m compileall -q /opt/venv/lib >/dev/null || true

# --- the gateway ----------------------------------------------------------------------------
FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title="python-coder gateway" \
      org.opencontainers.image.description="Runs Python against uploaded files in single-use, no-network runner containers"
# PYTHON_CODE_HOST=0.0.0.0: a container is reached through its own interfaces. Without API
# keys the gateway then refuses to start unless PYTHON_CODE_ALLOW_UNAUTHENTICATED=true, which
# compose.yaml sets while it publishes the port on the host's loopback only.
ENV PATH=/opt/venv/bin:$PATH \
    VIRTUAL_ENV=/opt/venv \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHON_CODE_HOST=0.0.0.0 \
    PYTHON_CODE_PORT=8000 \
    PYTHON_CODE_ENGINE=docker \
    PYTHON_CODE_EXECUTION_DIR=/data/code_execution \
    PYTHON_CODE_AUDIT_LOG_PATH=/data/audit.jsonl
RUN useradd --system --uid 10001 --user-group --home-dir /app --shell /usr/sbin/nologin coder \
    && mkdir -p /app /data \
    && chown coder:coder /app /data
COPY --from=deps /opt/venv /opt/venv
WORKDIR /app
COPY pyproject.toml README.md ./
COPY service ./service
COPY security ./security
COPY files ./files
COPY sandboxing ./sandboxing
COPY runner_image ./runner_image
RUN pip install --no-index --no-deps --no-build-isolation --quiet . \
    && rm -rf build ./*.egg-info \
    && python -m compileall -q service security files sandboxing runner_image >/dev/null
USER coder
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PYTHON_CODE_PORT', '8000'), timeout=4)"]
CMD ["python-coder", "serve"]
