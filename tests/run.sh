#!/usr/bin/env bash
# The project's test command: prepares what the tests need on a fresh machine, then runs them.
#
#   bash tests/run.sh            # everything
#   bash tests/run.sh store      # extra arguments go to `cargo test` (here: a name filter)
#
# Environment:
#   MIMI_TEST_POSTGRES_URL  Postgres server for the store tests
#                           (default postgres://postgres@127.0.0.1:5432/postgres; the user must be
#                           allowed to CREATE DATABASE: each test makes and drops its own).
set -euo pipefail
cd "$(dirname "$0")/.."

PG_URL="${MIMI_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
export MIMI_TEST_POSTGRES_URL="$PG_URL"

command -v cargo >/dev/null || { echo "tests/run.sh: cargo is required (https://rustup.rs)" >&2; exit 1; }

# host and port out of the URL: scheme://[user[:pw]@]host[:port]/db
hostport="${PG_URL#*://}"; hostport="${hostport##*@}"; hostport="${hostport%%/*}"
pg_host="${hostport%%:*}"; pg_port="${hostport##*:}"; [ "$pg_port" = "$hostport" ] && pg_port=5432

pg_up() { (exec 3<>"/dev/tcp/$pg_host/$pg_port") 2>/dev/null; }

if ! pg_up; then
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    echo "tests/run.sh: starting the local PostgreSQL cluster"
    for v in /etc/postgresql/*; do
      pg_ctlcluster --skip-systemctl-redirect "$(basename "$v")" main start || true
    done
    for _ in $(seq 1 30); do pg_up && break; sleep 1; done
  fi
fi
if ! pg_up; then
  echo "tests/run.sh: no PostgreSQL at $pg_host:$pg_port." >&2
  echo "  Start one (Debian: apt-get install postgresql), or set MIMI_TEST_POSTGRES_URL." >&2
  exit 1
fi

# Library, binaries and integration tests; the benchmarks are compiled by clippy in CI and
# run on their own (`cargo bench`).
cargo test --workspace --lib --bins --tests "$@"
