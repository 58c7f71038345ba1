#!/usr/bin/env bash
# nginx with TLS in front of a hub, for tests and the dev machine: the production
# server block (deploy/nginx/scitex.conf.template) inside a whole nginx
# configuration whose pid, logs and temp files live in one directory of ours.
# A test CA and a server certificate for 127.0.0.1 and localhost are made with
# openssl on first start; clients trust DIR/tls/ca.pem.
#
# Usage: nginx.sh start HUB_PORT | stop | status | env
#   start HUB_PORT  proxy https://127.0.0.1:$SCITEX_NGINX_PORT to configurable-http-proxy
#                   on 127.0.0.1:HUB_PORT (restarts nginx if it already runs)
#   env             print SCITEX_NGINX_URL=... and SCITEX_NGINX_CA=... (for eval)
# Environment: SCITEX_NGINX_DIR ($SCITEX_DEV_DIR/nginx), SCITEX_NGINX_PORT (8443),
#              SCITEX_NGINX_HTTP_PORT (8080).
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DIR="${SCITEX_NGINX_DIR:-$SCITEX_DEV_DIR/nginx}"
PORT="${SCITEX_NGINX_PORT:-8443}"
HTTP_PORT="${SCITEX_NGINX_HTTP_PORT:-8080}"
NGINX="${SCITEX_NGINX_BIN:-$(command -v nginx || echo /usr/sbin/nginx)}"

usage() { sed -n '2,15s/^# \{0,1\}//p' "$0"; }

# A CA and a server certificate signed by it. The CA key never leaves DIR/tls
# (0600); it exists only so tests can trust one certificate and not all.
make_certs() {
  local tls=$DIR/tls
  [[ -s $tls/server.pem && -s $tls/server-key.pem && -s $tls/ca.pem ]] && return
  command -v openssl >/dev/null || die "openssl is not installed (deploy/dev/install-system.sh)"
  mkdir -p "$tls"
  chmod 0700 "$tls"
  (
    umask 077
    openssl req -x509 -newkey rsa:2048 -nodes -days 30 -sha256 \
      -keyout "$tls/ca-key.pem" -out "$tls/ca.pem" -subj "/CN=SciTeX test CA" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
      2>/dev/null
    openssl req -newkey rsa:2048 -nodes -sha256 -keyout "$tls/server-key.pem" \
      -out "$tls/server.csr" -subj "/CN=localhost" 2>/dev/null
    printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
      "extendedKeyUsage=serverAuth" "subjectAltName=DNS:localhost,IP:127.0.0.1" >"$tls/server.ext"
    openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca-key.pem" \
      -CAcreateserial -days 30 -sha256 -extfile "$tls/server.ext" -out "$tls/server.pem" 2>/dev/null
  )
  # Public parts are readable, so a test running as another user can trust the CA.
  chmod 0644 "$tls/ca.pem" "$tls/server.pem"
  chmod 0755 "$tls"
  log "test CA and server certificate in $tls"
}

# Fill in only our SCITEX_* placeholders: nginx's own $variables stay.
render() {
  # shellcheck disable=SC2016 # the list names variables for envsubst, unexpanded
  envsubst "$(printf '${%s} ' SCITEX_NGINX_DIR SCITEX_SERVER_NAME SCITEX_PUBLIC_URL \
    SCITEX_HTTPS_LISTEN SCITEX_HTTP_LISTEN SCITEX_TLS_CERT SCITEX_TLS_KEY \
    SCITEX_HUB_UPSTREAM SCITEX_EXTRA_CONF_DIR)" <"$1" >"$2"
}

pid() {
  local p
  [[ -f $DIR/nginx.pid ]] || return 1
  p=$(<"$DIR/nginx.pid")
  [[ -n $p ]] && kill -0 "$p" 2>/dev/null && echo "$p"
}

stop() {
  local p
  if p=$(pid); then
    "$NGINX" -p "$DIR" -c "$DIR/nginx.conf" -s quit 2>/dev/null || kill -TERM "$p"
    for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    log "nginx stopped"
  fi
}

start() {
  local hub_port=${1:-}
  [[ $hub_port =~ ^[0-9]{1,5}$ ]] || die "usage: $0 start HUB_PORT"
  [[ -x $NGINX ]] || die "nginx is not installed (deploy/dev/install-system.sh installs it)"
  command -v envsubst >/dev/null || die "envsubst is not installed (gettext-base)"
  mkdir -p "$DIR/tmp" "$DIR/conf.d"
  make_certs
  export SCITEX_NGINX_DIR=$DIR SCITEX_SERVER_NAME="localhost 127.0.0.1"
  export SCITEX_PUBLIC_URL="https://localhost:$PORT"
  export SCITEX_HTTPS_LISTEN="127.0.0.1:$PORT" SCITEX_HTTP_LISTEN="127.0.0.1:$HTTP_PORT"
  export SCITEX_TLS_CERT=$DIR/tls/server.pem SCITEX_TLS_KEY=$DIR/tls/server-key.pem
  export SCITEX_HUB_UPSTREAM="127.0.0.1:$hub_port" SCITEX_EXTRA_CONF_DIR=$DIR/conf.d
  render "$REPO/deploy/nginx/scitex.conf.template" "$DIR/scitex.conf"
  render "$REPO/deploy/nginx/nginx-test.conf.template" "$DIR/nginx.conf"
  "$NGINX" -t -q -p "$DIR" -c "$DIR/nginx.conf" || die "nginx rejects $DIR/nginx.conf"
  stop
  "$NGINX" -p "$DIR" -c "$DIR/nginx.conf" || die "nginx did not start; see $DIR/error.log"
  log "nginx on https://127.0.0.1:$PORT -> 127.0.0.1:$hub_port (CA: $DIR/tls/ca.pem)"
  print_env
}

print_env() {
  printf 'SCITEX_NGINX_URL=https://127.0.0.1:%s\nSCITEX_NGINX_CA=%s\n' "$PORT" "$DIR/tls/ca.pem"
}

case "${1:-}" in
  start) start "${2:-}" ;;
  stop) stop ;;
  status) if p=$(pid); then echo "nginx running (pid $p) on https://127.0.0.1:$PORT"; else echo "nginx: stopped"; exit 1; fi ;;
  env) print_env ;;
  -h | --help) usage ;;
  *) usage >&2; exit 2 ;;
esac
