#!/usr/bin/env bash
# A PostgreSQL server for the database-tool tests: Debian's postgresql package, a cluster
# "pycoder" on 127.0.0.1:55432, a database owned by a writer role (the tests build their tables
# with it) and a least-privilege read-only role (docs/data-tools.md). Idempotent and quick when
# everything is there. Prints the export lines for the tests on stdout.
set -euo pipefail
# Only the export lines go to stdout (the caller evals them); everything the tools print
# (apt, pg_ctlcluster's "Removed stale pid file", psql notices) goes to stderr. The caller reads
# stdout through a pipe until it closes, so nothing but the final echo may hold it: the setup
# runs with it closed, or the postgres daemons that apt and pg_ctlcluster start would inherit
# it and the caller would wait forever.
exec 3>&1 1>&2
setup() {
PORT=${PYCODER_PG_PORT:-55432}
CLUSTER=pycoder

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v pg_createcluster >/dev/null 2>&1; then
  as_root apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq postgresql >/dev/null
fi
VERSION=$(ls /usr/lib/postgresql | sort -n | tail -1)

cluster_state() { pg_lsclusters -h | awk -v v="$VERSION" -v c="$CLUSTER" '$1==v && $2==c {print $4}'; }
if [ -z "$(cluster_state)" ]; then
  as_root pg_createcluster "$VERSION" "$CLUSTER" -p "$PORT" >/dev/null
  echo "listen_addresses = '127.0.0.1'" \
    | as_root tee "/etc/postgresql/$VERSION/$CLUSTER/conf.d/loopback.conf" >/dev/null
fi
if [ "$(cluster_state)" != online ]; then
  # The server outlives this script: it must hold none of the caller's pipes.
  as_root "$(dirname "$0")/detached.sh" pg_ctlcluster "$VERSION" "$CLUSTER" start
fi

psql_admin() { as_root runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -p "$PORT" "$@"; }
psql_admin -d postgres >/dev/null <<'SQL'
SELECT 'CREATE ROLE pycoder_owner LOGIN PASSWORD ''pycoder_owner'''
  WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pycoder_owner') \gexec
SELECT 'CREATE ROLE pycoder_reader LOGIN PASSWORD ''pycoder_reader'''
  WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pycoder_reader') \gexec
SELECT 'CREATE ROLE pycoder_super LOGIN SUPERUSER PASSWORD ''pycoder_super'''
  WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pycoder_super') \gexec
SELECT 'CREATE DATABASE pycoder_test OWNER pycoder_owner'
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'pycoder_test') \gexec
SQL
# The reader: connect, look, read; nothing else (docs/data-tools.md explains each line).
psql_admin -d pycoder_test >/dev/null <<'SQL'
REVOKE ALL ON DATABASE pycoder_test FROM PUBLIC;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT CONNECT ON DATABASE pycoder_test TO pycoder_reader;
GRANT USAGE ON SCHEMA public TO pycoder_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO pycoder_reader;
ALTER DEFAULT PRIVILEGES FOR ROLE pycoder_owner IN SCHEMA public
  GRANT SELECT ON TABLES TO pycoder_reader;
ALTER ROLE pycoder_reader SET default_transaction_read_only = on;
ALTER ROLE pycoder_reader SET statement_timeout = '60s';
ALTER ROLE pycoder_reader CONNECTION LIMIT 20;
SQL
}
setup 3>&- </dev/null

echo >&3 "export PYTHON_CODE_TEST_POSTGRES_URL=postgresql+psycopg://pycoder_owner:pycoder_owner@127.0.0.1:$PORT/pycoder_test"
echo >&3 "export PYTHON_CODE_TEST_POSTGRES_READER_URL=postgresql+psycopg://pycoder_reader:pycoder_reader@127.0.0.1:$PORT/pycoder_test"
# A superuser, only to show that the gateway refuses such logins (loopback test cluster).
echo >&3 "export PYTHON_CODE_TEST_POSTGRES_SUPERUSER_URL=postgresql+psycopg://pycoder_super:pycoder_super@127.0.0.1:$PORT/pycoder_test"
