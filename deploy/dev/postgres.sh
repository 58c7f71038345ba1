#!/usr/bin/env bash
# A real PostgreSQL for tests and the production-like demo, without systemd.
# Data, socket, log and password live in $SCITEX_DEV_DIR/postgres.
#
# Usage: postgres.sh start|stop|status|url|createdb NAME
#   url       print the SQLAlchemy URL of the `scitex` database
#   createdb  create (or empty) a database NAME owned by the scitex role; print its URL
# Environment: SCITEX_PG_PORT (5433).
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PGDIR="$SCITEX_DEV_DIR/postgres"
DATA="$PGDIR/data"
PORT="${SCITEX_PG_PORT:-5433}"
PASSWORD_FILE="$PGDIR/scitex-password"

pg_bin() {
  local dir
  for dir in /usr/lib/postgresql/*/bin; do
    [[ -x $dir/pg_ctl ]] && { echo "$dir"; return; }
  done
  return 1
}

install() {
  if ! pg_bin >/dev/null; then
    log "installing postgresql (apt)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql >/dev/null \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql >/dev/null; }
  fi
}

psql_admin() {
  runuser -u postgres -- env PGOPTIONS="-c client_min_messages=warning" "$(pg_bin)/psql" -h "$PGDIR" -p "$PORT" -X -q -v ON_ERROR_STOP=1 "$@"
}

url_for() {
  printf 'postgresql+psycopg://scitex:%s@127.0.0.1:%s/%s\n' "$(cat "$PASSWORD_FILE")" "$PORT" "$1"
}

running() {
  [[ -f $DATA/postmaster.pid ]] && runuser -u postgres -- "$(pg_bin)/pg_ctl" -D "$DATA" status >/dev/null 2>&1
}

start() {
  need_root
  install
  local bin
  bin=$(pg_bin)
  mkdir -p "$PGDIR"
  chown postgres:postgres "$PGDIR"
  chmod 0700 "$PGDIR"
  if [[ ! -f $DATA/PG_VERSION ]]; then
    log "initdb $DATA"
    runuser -u postgres -- "$bin/initdb" -D "$DATA" --auth-local=peer \
      --auth-host=scram-sha-256 --username=postgres >/dev/null
    # Local socket connections by the postgres OS user need no password.
    printf 'local all postgres peer\nhost all all 127.0.0.1/32 scram-sha-256\n' >"$DATA/pg_hba.conf"
  fi
  if running; then
    log "PostgreSQL already running on port $PORT"
  else
    log "starting PostgreSQL on 127.0.0.1:$PORT"
    runuser -u postgres -- "$bin/pg_ctl" -D "$DATA" -l "$PGDIR/postgres.log" -w \
      -o "-p $PORT -k $PGDIR -c listen_addresses=127.0.0.1" start >/dev/null \
      || { tail -n 20 "$PGDIR/postgres.log" >&2; die "PostgreSQL did not start"; }
  fi
  if [[ ! -s $PASSWORD_FILE ]]; then
    head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$PASSWORD_FILE"
    chmod 0600 "$PASSWORD_FILE"
  fi
  # The password goes through psql's stdin, never its command line.
  psql_admin -d postgres <<EOF
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'scitex') THEN
    CREATE ROLE scitex LOGIN CREATEDB;
  END IF;
END \$\$;
ALTER ROLE scitex PASSWORD '$(cat "$PASSWORD_FILE")';
EOF
  createdb_quiet scitex
}

createdb_quiet() {
  local name=$1
  [[ $name =~ ^[a-z_][a-z0-9_]{0,62}$ ]] || die "database name '$name' is not allowed"
  if ! psql_admin -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname='$name'" | grep -q 1; then
    psql_admin -d postgres -c "CREATE DATABASE $name OWNER scitex" >/dev/null
  fi
}

case "${1:-}" in
  start) start ;;
  stop)
    if running; then runuser -u postgres -- "$(pg_bin)/pg_ctl" -D "$DATA" -m fast stop >/dev/null; fi
    ;;
  status) running && echo "PostgreSQL running on 127.0.0.1:$PORT" ;;
  url) url_for scitex ;;
  createdb)
    [[ -n ${2:-} ]] || die "usage: $0 createdb NAME"
    # A fresh, empty database each time: tests start from nothing.
    [[ $2 =~ ^[a-z_][a-z0-9_]{0,62}$ ]] || die "database name '$2' is not allowed"
    psql_admin -d postgres -c "DROP DATABASE IF EXISTS $2 WITH (FORCE)" >/dev/null
    createdb_quiet "$2"
    url_for "$2"
    ;;
  *) die "usage: $0 start|stop|status|url|createdb NAME" ;;
esac
