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
#   MIMI_TEST_LOG           log filter of the daemons the tests start (default info), e.g.
#                           info,mimi_bridge=debug
#   MIMI_TEST_KEEP          set: the Matrix end-to-end test keeps its folder (Synapse, bridges)
#   MIMI_RANDOM_SEED        seed of the randomized three-provider test (tests/random_rooms.rs;
#                           default the CI seed, printed on failure); MIMI_RANDOM_ROUNDS its
#                           number of rounds (default 60)
#   MIMI_SYNAPSE_VENV       virtualenv holding Synapse (a real Matrix homeserver for the Matrix
#                           connector's tests) and the Standard Webhooks reference
#                           implementation; created with pip when missing
#                           (default ~/.cache/mimi-bridge/synapse-venv).
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

# ---- Synapse (a real Matrix homeserver) for the Matrix tests: a virtualenv from PyPI ----
SYNAPSE_VENV="${MIMI_SYNAPSE_VENV:-${HOME:-/root}/.cache/mimi-bridge/synapse-venv}"
export MIMI_SYNAPSE_VENV="$SYNAPSE_VENV"
synapse_ok() {
  "$SYNAPSE_VENV/bin/python" -c 'import synapse' >/dev/null 2>&1 \
    && [ -x "$SYNAPSE_VENV/bin/register_new_matrix_user" ]
}
apt_install() { # apt_install PKG...: try the cached lists first, `apt-get update` only if that fails
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q "$@" </dev/null >/dev/null \
    || { apt-get update -q </dev/null >/dev/null && apt-get install -y -q "$@" </dev/null >/dev/null; }
}
if ! synapse_ok; then
  echo "tests/run.sh: installing Synapse into $SYNAPSE_VENV"
  command -v python3 >/dev/null || apt_install python3 python3-venv \
    || { echo "tests/run.sh: python3 (>= 3.10) is required for the Matrix tests" >&2; exit 1; }
  rm -rf "$SYNAPSE_VENV"
  mkdir -p "$(dirname "$SYNAPSE_VENV")"
  # Debian ships venv's ensurepip in a package of its own.
  if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || ! python3 -m venv "$SYNAPSE_VENV" >/dev/null 2>&1; then
    rm -rf "$SYNAPSE_VENV"
    apt_install python3-venv || { echo "tests/run.sh: could not install python3-venv" >&2; exit 1; }
    python3 -m venv "$SYNAPSE_VENV"
  fi
  "$SYNAPSE_VENV/bin/pip" install -q --disable-pip-version-check 'matrix-synapse>=1.140,<2' </dev/null
  synapse_ok || { echo "tests/run.sh: Synapse did not install into $SYNAPSE_VENV" >&2; exit 1; }
fi

# The Standard Webhooks reference implementation, which the webhook signature tests check against.
if ! "$SYNAPSE_VENV/bin/python" -c 'import standardwebhooks' >/dev/null 2>&1; then
  "$SYNAPSE_VENV/bin/pip" install -q --disable-pip-version-check 'standardwebhooks>=1.0,<2' </dev/null
fi

# Library, binaries and integration tests; the benchmarks are compiled by clippy in CI and
# run on their own (`cargo bench`).
cargo test --workspace --lib --bins --tests "$@"
