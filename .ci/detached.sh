#!/usr/bin/env bash
# Runs a command that starts a long-lived server (dockerd, postgres) with no descriptor of the
# caller's beyond stdin/stdout/stderr: CI reads its steps' output through pipes until they close,
# and a daemon holding a stray copy of one would keep that reader waiting forever.
for fd in /proc/self/fd/*; do
  n=${fd##*/}
  if [ "$n" -gt 2 ]; then eval "exec $n>&-" 2>/dev/null || true; fi
done
exec "$@"
