#!/usr/bin/env bash
# Download the gateway image's dependencies as wheels on the host, for an air-gapped build.
#
#   .ci/gateway-wheelhouse.sh [DIR]      (default .cache/gateway-wheelhouse)
#
# The Dockerfile installs from this directory with `pip install --no-index` when it holds
# wheels (build arg WHEELHOUSE), so nothing inside the build needs a network. Wheels are for
# CPython 3.11 on manylinux x86_64, the interpreter of both python:3.11-slim and the
# bootstrapped python-coder-base:bookworm image.
set -euo pipefail
cd "$(dirname "$0")/.."
dest="${1:-.cache/gateway-wheelhouse}"
py="${PYTHON:-python3}"
mkdir -p "$dest"
reqs="$(mktemp)"
trap 'rm -f "$reqs"' EXIT
"$py" - > "$reqs" <<'PY'
import tomllib
with open("pyproject.toml", "rb") as fh:
    project = tomllib.load(fh)
for dep in project["project"]["dependencies"]:
    print(dep)
for dep in project["build-system"]["requires"]:
    print(dep)
print("pip")
PY
stamp="$dest/.requirements"
if [[ -f "$stamp" ]] && cmp -s "$reqs" "$stamp" && compgen -G "$dest/*.whl" >/dev/null; then
    echo "gateway wheelhouse up to date: $dest"
    exit 0
fi
"$py" -m pip download --disable-pip-version-check --quiet \
    --only-binary=:all: --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 \
    --platform manylinux_2_17_x86_64 --platform linux_x86_64 \
    --python-version 3.11 --implementation cp --abi cp311 --abi abi3 --abi none \
    -d "$dest" -r "$reqs" 2> >(grep -v "is ignored: it is neither" >&2)
cp "$reqs" "$stamp"
echo "gateway wheelhouse ready: $dest ($(ls "$dest"/*.whl | wc -l) wheels, $(du -sh "$dest" | cut -f1))"
