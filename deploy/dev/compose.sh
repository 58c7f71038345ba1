#!/usr/bin/env bash
# `make demo-compose`: the production Compose file (plus docker-compose.local.yml)
# on this machine, beside the dev SLURM, following docs/admin-guide.md section 3 in
# a copy of deploy/ under $SCITEX_DEV_DIR/compose (the repository stays clean).
#
# Usage: compose.sh up|down|status
#   up     copy deploy/, .env and the site file from the examples with this host's
#          edits (compose_site.py), make-secrets.sh, a test CA and certificate,
#          `docker-compose up -d`, wait for https://127.0.0.1:8443; then sign in as
#          alice and start her server, and print the time to it (first ready server)
#   down   `docker-compose down` (containers and networks; volumes kept unless
#          SCITEX_COMPOSE_VOLUMES=remove), then stop alice's demo job if any
#   status `docker-compose ps`
# Needs: deploy/dev/docker.sh start + images, deploy/dev/slurm.sh start, users.sh.
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
D="$SCITEX_DEV_DIR/compose"
DEPLOY="$D/deploy"
URL=https://127.0.0.1:8443
CA="$D/tls/ca.pem"
PY="$SCITEX_PREFIX/venv/bin/python"

compose() {
  (cd "$DEPLOY" && docker-compose -p scitex -f docker-compose.prod.yml -f docker-compose.local.yml "$@")
}

# A CA of our own and a certificate for 127.0.0.1 and localhost signed by it: the
# site's certificate in production (secrets/tls_cert, tls_key).
make_tls() {
  local tls=$D/tls
  [[ -s $tls/server.pem && -s $CA ]] && return
  mkdir -p "$tls"
  chmod 0700 "$tls"
  (
    umask 077
    openssl req -x509 -newkey rsa:2048 -nodes -days 30 -sha256 -keyout "$tls/ca-key.pem" \
      -out "$CA" -subj "/CN=SciTeX demo-compose CA" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -sha256 -keyout "$tls/server-key.pem" \
      -out "$tls/server.csr" -subj "/CN=localhost" 2>/dev/null
    printf '%s\n' "basicConstraints=CA:FALSE" "extendedKeyUsage=serverAuth" \
      "subjectAltName=DNS:localhost,IP:127.0.0.1" >"$tls/server.ext"
    openssl x509 -req -in "$tls/server.csr" -CA "$CA" -CAkey "$tls/ca-key.pem" -CAcreateserial \
      -days 30 -sha256 -extfile "$tls/server.ext" -out "$tls/server.pem" 2>/dev/null
  )
  chmod 0644 "$CA"
  chmod 0755 "$tls"
}

prepare() {
  mkdir -p "$D"
  # The deployment files as shipped (a site's checkout of deploy/); our edits only in
  # .env and hub/scitex.yaml, secrets made by the shipped script.
  mkdir -p "$DEPLOY"
  (cd "$REPO/deploy" && tar --exclude=./dev --exclude=./secrets --exclude=./.env \
    --exclude=./hub/scitex.yaml -cf - .) | tar -C "$DEPLOY" -xf -
  mkdir -p "$D/data"
  [[ -s $DEPLOY/.env ]] || "$PY" "$REPO/deploy/dev/compose_site.py" env "$DEPLOY" "$D/data" "$SCITEX_SLURM_DIR"
  "$PY" "$REPO/deploy/dev/compose_site.py" site "$DEPLOY" "$D/data" "$SCITEX_SLURM_DIR"
  bash "$DEPLOY/hub/make-secrets.sh" "$DEPLOY/secrets" >/dev/null
  make_tls
  install -m 0600 "$D/tls/server.pem" "$DEPLOY/secrets/tls_cert"
  install -m 0600 "$D/tls/server-key.pem" "$DEPLOY/secrets/tls_key"
}

wait_https() {
  local i
  for ((i = 0; i < 240; i++)); do
    curl -fsS --cacert "$CA" -o /dev/null "$URL/hub/health" 2>/dev/null && return 0
    sleep 0.5
  done
  compose ps >&2 || true
  compose logs --tail 30 >&2 || true
  die "the stack did not answer on $URL/hub/health"
}

cmd_up() {
  need_root
  local t0 elapsed
  t0=$(date +%s%3N)
  docker info >/dev/null 2>&1 || die "dockerd is not running: bash deploy/dev/docker.sh start"
  prepare
  log "docker-compose -p scitex up -d (in $DEPLOY)"
  compose up -d
  wait_https
  # The first ready server: alice signs in through nginx and starts hers.
  elapsed=$(SCITEX_COMPOSE_URL=$URL SCITEX_COMPOSE_CA=$CA SCITEX_T0_MS=$t0 \
    "$PY" "$REPO/deploy/dev/compose_first_server.py") || die "alice's server did not start"
  cat <<EOF

  SciTeX Hub (Compose) is running: $URL
  Test CA (trust it, e.g. curl --cacert): $CA
  $elapsed
  Accounts: as make demo (alice, bob, carol; admin), passwords in $SCITEX_DEV_DIR/demo-password
  and demo-admin-password. Deployment files: $DEPLOY. Stop: make demo-compose-down

EOF
}

cmd_down() {
  need_root
  [[ -d $DEPLOY ]] || {
    log "nothing to stop ($DEPLOY is absent)"
    return 0
  }
  if [[ ${SCITEX_COMPOSE_VOLUMES:-} == remove ]]; then
    compose down -v
  else
    compose down
  fi
  # The notebook servers are SLURM jobs, outside Compose: stop this hub's jobs.
  local ids
  ids=$(squeue -h -o '%i %k' 2>/dev/null | awk '$2 ~ /scitex-prod/ { print $1 }' || true)
  [[ -z $ids ]] || scancel $ids || true
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) compose ps ;;
  *)
    sed -n '6,14s/^# \{0,1\}//p' "$0" >&2
    exit 2
    ;;
esac
