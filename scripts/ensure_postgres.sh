#!/usr/bin/env bash
# Make sure the test PostgreSQL (127.0.0.1:5432, trust auth, database "test") is up.
# Starts the local cluster if it is down; fails loudly if it still cannot be reached.
set -euo pipefail
HOST=127.0.0.1 PORT=5432

ready() { pg_isready -h "$HOST" -p "$PORT" -q 2>/dev/null; }

if ! command -v pg_isready >/dev/null; then
  echo "error: pg_isready not found: install PostgreSQL (the tests need a server at $HOST:$PORT)" >&2
  exit 1
fi
if ! ready; then
  echo "PostgreSQL is down; starting it"
  if [ -d /etc/postgresql ]; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
  fi
  for _ in $(seq 1 30); do ready && break; sleep 1; done
fi
if ! ready || ! psql -h "$HOST" -p "$PORT" -U postgres -d test -tAc 'select 1' >/dev/null; then
  echo "error: PostgreSQL is not reachable at $HOST:$PORT (database test, user postgres)" >&2
  exit 1
fi
echo "PostgreSQL is up at $HOST:$PORT"
