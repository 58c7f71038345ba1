#!/usr/bin/env bash
# The test suite, as `make test` runs it (after install, SLURM and users are up).
# Two pytest runs: the hub side (pytest-asyncio) and the notebook-server
# extension (pytest-jupyter), whose plugins do not mix in one process.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PY="$SCITEX_PREFIX/venv/bin/python"
eval "$(bash "$REPO/deploy/dev/slurm.sh" env)"
export PATH="$SCITEX_PREFIX/bin:$SCITEX_PREFIX/venv/bin:$PATH"
cd "$REPO"
# The end-to-end hubs run on PostgreSQL, as in production: each gets a fresh
# database on this server (tests/e2e/hubprocess.py). SCITEX_TEST_DB_URL= (empty): SQLite.
bash "$REPO/deploy/dev/postgres.sh" start
SCITEX_TEST_DB_URL="${SCITEX_TEST_DB_URL-$(bash "$REPO/deploy/dev/postgres.sh" url)}"
export SCITEX_TEST_DB_URL

status=0
log "hub side and end to end: tests/hub tests/e2e (hub database: ${SCITEX_TEST_DB_URL%%:*})"
"$PY" -m pytest -p no:jupyter_server -p no:cacheprovider tests/hub tests/e2e || status=$?
# The demo's database is SQLite: the walking skeleton runs on it too.
log "walking skeleton on SQLite: tests/e2e/test_skeleton.py"
SCITEX_TEST_DB_URL= "$PY" -m pytest -p no:jupyter_server -p no:cacheprovider tests/e2e/test_skeleton.py || status=$?
log "notebook-server extension: tests/ext"
"$PY" -m pytest -p no:asyncio -p no:cacheprovider tests/ext || status=$?
exit "$status"
