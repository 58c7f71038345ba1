#!/usr/bin/env bash
# Install what the dev cluster needs from Debian's apt repositories and npm:
# SLURM (slurmctld, slurmd, client), munge, Python build bits, and
# configurable-http-proxy and the tests' OpenID provider (npm oidc-provider)
# under $SCITEX_PREFIX. Idempotent and fast when all is
# present: nothing is downloaded and apt-get update is not run.
#
# Usage: install-system.sh [--print]
#   --print  list what would be installed, install nothing (exit 0)
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CHP_VERSION="${SCITEX_CHP_VERSION:-5}"
CHP_BIN="$SCITEX_PREFIX/node/node_modules/.bin/configurable-http-proxy"
CHP_LINK="$SCITEX_PREFIX/bin/configurable-http-proxy"
# The OpenID Connect provider the sign-in tests run (tests/fixtures/oidc).
OIDC_DIR="$SCITEX_PREFIX/oidc"
OIDC_PKG="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/tests/fixtures/oidc/package.json"
# The Compose Specification's JSON schema (tests/hub/test_compose.py checks
# deploy/docker-compose.prod.yml with it; Docker does not run here): the npm
# package dclint ships the official compose-spec.json.
COMPOSE_SCHEMA_DIR="$SCITEX_PREFIX/compose-schema"
COMPOSE_SCHEMA="$COMPOSE_SCHEMA_DIR/node_modules/dclint/schemas/compose.schema.json"
DCLINT_VERSION=3.1.0

# passwd (useradd, chpasswd) and util-linux (runuser) are Essential in Debian,
# named anyway so a slimmer base image still gets them.
PACKAGES=(
  slurmctld slurmd slurm-client munge
  python3-venv python3-dev
  git curl ca-certificates procps passwd util-linux iproute2 sudo
  nginx openssl gettext-base
  chromium
)

print_only=false
case "${1:-}" in
  "") ;;
  --print) print_only=true ;;
  -h | --help)
    sed -n '2,9s/^# \{0,1\}//p' "$0"
    exit 0
    ;;
  *) die "unknown argument: $1 (usage: $0 [--print])" ;;
esac

# npm comes with the machine's Node.js; fall back to Debian's when it is absent.
if ! command -v npm >/dev/null 2>&1; then
  PACKAGES+=(nodejs npm)
fi

# One dpkg-query for all packages keeps the all-present case well under a second.
missing_packages() {
  local installed
  installed=$(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "${PACKAGES[@]}" 2>/dev/null |
    awk '$2 == "installed" {print $1}') || true
  local p
  for p in "${PACKAGES[@]}"; do
    grep -qx -- "$p" <<<"$installed" || printf '%s\n' "$p"
  done
}

mapfile -t missing < <(missing_packages)
need_chp=false
[[ -x $CHP_BIN ]] || need_chp=true
need_schema=false
[[ -s $COMPOSE_SCHEMA ]] || need_schema=true
need_oidc=false
if [[ ! -d $OIDC_DIR/node_modules/oidc-provider ]] || ! cmp -s "$OIDC_PKG" "$OIDC_DIR/package.json"; then
  need_oidc=true
fi

if $print_only; then
  if ((${#missing[@]})); then
    echo "apt: ${missing[*]}"
  fi
  if $need_chp; then
    echo "npm: configurable-http-proxy@$CHP_VERSION -> $SCITEX_PREFIX/node"
  fi
  if $need_schema; then
    echo "npm: dclint@$DCLINT_VERSION (Compose schema) -> $COMPOSE_SCHEMA_DIR"
  fi
  if $need_oidc; then
    echo "npm: oidc-provider (tests/fixtures/oidc) -> $OIDC_DIR"
  fi
  if [[ $(readlink "$CHP_LINK" 2>/dev/null || true) != "$CHP_BIN" ]]; then
    echo "link: $CHP_LINK -> $CHP_BIN"
  fi
  exit 0
fi

need_root

if ((${#missing[@]})); then
  log "apt: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
else
  log "apt: all ${#PACKAGES[@]} packages present"
fi

if $need_chp; then
  log "npm: installing configurable-http-proxy@$CHP_VERSION into $SCITEX_PREFIX/node"
  mkdir -p "$SCITEX_PREFIX/node"
  npm install --prefix "$SCITEX_PREFIX/node" --no-audit --no-fund --loglevel=error \
    "configurable-http-proxy@$CHP_VERSION" >&2
  [[ -x $CHP_BIN ]] || die "npm finished but $CHP_BIN is missing"
fi

if $need_schema; then
  log "npm: installing dclint@$DCLINT_VERSION (the Compose schema) into $COMPOSE_SCHEMA_DIR"
  mkdir -p "$COMPOSE_SCHEMA_DIR"
  npm install --prefix "$COMPOSE_SCHEMA_DIR" --no-audit --no-fund --loglevel=error \
    --ignore-scripts "dclint@$DCLINT_VERSION" >&2
  [[ -s $COMPOSE_SCHEMA ]] || die "npm finished but $COMPOSE_SCHEMA is missing"
fi

if $need_oidc; then
  log "npm: installing oidc-provider (tests/fixtures/oidc/package.json) into $OIDC_DIR"
  mkdir -p "$OIDC_DIR"
  cp "$OIDC_PKG" "$OIDC_DIR/package.json"
  npm install --prefix "$OIDC_DIR" --no-audit --no-fund --loglevel=error --omit=dev >&2
  [[ -d $OIDC_DIR/node_modules/oidc-provider ]] || die "npm finished but oidc-provider is missing"
fi

if [[ $(readlink "$CHP_LINK" 2>/dev/null || true) != "$CHP_BIN" ]]; then
  mkdir -p "$SCITEX_PREFIX/bin"
  ln -sfn "$CHP_BIN" "$CHP_LINK"
  log "link: $CHP_LINK -> $CHP_BIN"
fi
log "configurable-http-proxy: $CHP_LINK"
