#!/usr/bin/env bash
# gVisor for the docker engine: Debian's runsc package, registered as the Docker runtime
# "runsc" in /etc/docker/daemon.json. On these hosts runsc needs --network=none (the
# sandboxes have no network anyway). A running dockerd reloads its runtimes on SIGHUP.
# Idempotent: quick when runsc is installed and registered.
set -euo pipefail

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v runsc >/dev/null 2>&1; then
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq runsc >/dev/null
fi

as_root mkdir -p /etc/docker
as_root python3 - "$(command -v runsc)" <<'PY'
import json, pathlib, sys

path = pathlib.Path("/etc/docker/daemon.json")
config = json.loads(path.read_text()) if path.exists() and path.read_text().strip() else {}
wanted = {"path": sys.argv[1], "runtimeArgs": ["--network=none", "--oci-seccomp"]}
if config.get("runtimes", {}).get("runsc") != wanted:
    config.setdefault("runtimes", {})["runsc"] = wanted
    path.write_text(json.dumps(config, indent=2) + "\n")
    print("registered runsc in", path)
PY

if pid=$(pidof dockerd 2>/dev/null); then
  as_root kill -HUP $pid
  for _ in $(seq 1 20); do
    docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -q runsc && break
    sleep 0.5
  done
fi
echo "runsc: $(runsc --version 2>/dev/null | head -1)"
