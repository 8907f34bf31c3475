#!/usr/bin/env bash
# The two set-up commands of python-coder (see README):
#   ./dev.sh serve   run the service (Docker engine if reachable, else the subprocess engine)
#   ./dev.sh test    run the test suite (Docker tests skip with a reason when no engine)
# Both create .venv on first use. Anything after the command is passed on
# (to `python-coder serve` or to pytest).
set -euo pipefail
cd "$(dirname "$0")"

PY=${PYTHON:-python3}
VENV=.venv

ensure_venv() {
  if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "python-coder needs Python 3.11+ (found: $("$PY" --version 2>&1)); set PYTHON=..." >&2
    exit 1
  fi
  local stamp="$VENV/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
  if [ ! -f "$stamp" ]; then
    echo ">> creating $VENV and installing python-coder with its dev tools" >&2
    [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -e '.[dev]'
    touch "$stamp"
  fi
}

docker_reachable() {
  "$VENV/bin/python" - <<'PY' 2>/dev/null
import sys, docker
try:
    docker.from_env(timeout=3).ping()
except Exception:
    sys.exit(1)
PY
}

image_present() {
  "$VENV/bin/python" - <<'PY' 2>/dev/null
import sys, docker
from service.settings import get_settings
try:
    docker.from_env(timeout=5).images.get(get_settings().image)
except Exception:
    sys.exit(1)
PY
}

ensure_runner() {
  # The subprocess engine (and its tests) need the local runner venv; cheap when present.
  "$VENV/bin/python-coder" build-runner --local
  if docker_reachable && ! image_present; then
    echo ">> Docker is reachable but the runner image is missing: building it" >&2
    "$VENV/bin/python-coder" build-runner \
      || "$VENV/bin/python-coder" build-runner --offline --bootstrap-base
  fi
}

cmd=${1:-}
shift || true
case "$cmd" in
  serve)
    ensure_venv
    ensure_runner
    exec "$VENV/bin/python-coder" serve "$@"
    ;;
  test)
    ensure_venv
    "$VENV/bin/python-coder" build-runner --local
    exec "$VENV/bin/python" -m pytest "$@"
    ;;
  *)
    echo "usage: ./dev.sh serve [serve options] | ./dev.sh test [pytest options]" >&2
    exit 2
    ;;
esac
