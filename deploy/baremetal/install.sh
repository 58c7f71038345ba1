#!/usr/bin/env bash
# Install SciTeX Hub on a login node (or a lab server) without containers:
#   - a Python venv from the system Python with this package (and PostgreSQL,
#     LDAP and OIDC support), world-readable so jobs may use its Python;
#   - configurable-http-proxy from npm;
#   - the site file <config-dir>/scitex.yaml from a template (kept if present);
#   - secrets in files, mode 0600: the proxy token, the crypt key, the cookie
#     secret and, for PostgreSQL, a pgpass file (kept if present);
#   - systemd units scitex-proxy.service and scitex-hub.service.
# Running it again upgrades the package and keeps the configuration and secrets.
#
# Usage: install.sh [options]
#   --prefix DIR            software (default /opt/scitex-hub)
#   --config-dir DIR        site file and secrets (default /etc/scitex)
#   --state-dir DIR         hub state and, by default, data (default /var/lib/scitex)
#   --data-root DIR         users' data (default <state-dir>/data; a shared filesystem on a cluster)
#   --python PATH           the Python to build the venv from (default /usr/bin/python3)
#   --source DIR|SPEC       what to pip install (default: this repository)
#   --db-url URL            JupyterHub's database (default SQLite in <state-dir>/hub);
#                           PostgreSQL: postgresql+psycopg://USER@HOST:5432/DB (no password)
#   --db-password-file F    the PostgreSQL password, copied into <config-dir>/secrets/pgpass
#   --slurm-conf PATH       slurm.conf, when not /etc/slurm/slurm.conf
#   --partition NAME        partition of the default profile (default: SLURM's default)
#   --hub-id ID             tag of this hub's jobs (default scitex)
#   --no-systemd            do not install the units into /etc/systemd/system
#                           (they are still written to <prefix>/share/systemd)
#   -h, --help
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$REPO/deploy/baremetal"
PREFIX=/opt/scitex-hub
CONFIG_DIR=/etc/scitex
STATE_DIR=/var/lib/scitex
DATA_ROOT=
PYTHON=/usr/bin/python3
SOURCE="$REPO"
DB_URL=
DB_PASSWORD_FILE=
SLURM_CONF=
PARTITION=
HUB_ID=scitex
SYSTEMD=true
SYSTEMD_DIR=/etc/systemd/system
CHP_VERSION="${SCITEX_CHP_VERSION:-5}"

log() { printf '[scitex-install] %s\n' "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}
usage() { sed -n '2,30s/^# \{0,1\}//p' "$0"; }

while (($#)); do
  case "$1" in
    --prefix) PREFIX=${2:?--prefix needs a value}; shift 2 ;;
    --config-dir) CONFIG_DIR=${2:?--config-dir needs a value}; shift 2 ;;
    --state-dir) STATE_DIR=${2:?--state-dir needs a value}; shift 2 ;;
    --data-root) DATA_ROOT=${2:?--data-root needs a value}; shift 2 ;;
    --python) PYTHON=${2:?--python needs a value}; shift 2 ;;
    --source) SOURCE=${2:?--source needs a value}; shift 2 ;;
    --db-url) DB_URL=${2:?--db-url needs a value}; shift 2 ;;
    --db-password-file) DB_PASSWORD_FILE=${2:?--db-password-file needs a value}; shift 2 ;;
    --slurm-conf) SLURM_CONF=${2:?--slurm-conf needs a value}; shift 2 ;;
    --partition) PARTITION=${2:?--partition needs a value}; shift 2 ;;
    --hub-id) HUB_ID=${2:?--hub-id needs a value}; shift 2 ;;
    --no-systemd) SYSTEMD=false; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown option: $1 (see --help)" ;;
  esac
done

# ---- checks before anything is written --------------------------------------------------

[[ $EUID -eq 0 ]] || die "run as root: the hub runs as root to start jobs as each user"
for dir in "$PREFIX" "$CONFIG_DIR" "$STATE_DIR" ${DATA_ROOT:+"$DATA_ROOT"}; do
  [[ $dir == /* ]] || die "$dir: give an absolute path"
done
DATA_ROOT=${DATA_ROOT:-$STATE_DIR/data}
[[ -x $PYTHON ]] || die "$PYTHON not found (--python)"
"$PYTHON" -c 'import sys, venv; sys.exit(sys.version_info < (3, 10))' 2>/dev/null ||
  die "$PYTHON must be Python >= 3.10 with the venv module (Debian: apt-get install python3-venv)"
command -v npm >/dev/null || die "npm is needed for configurable-http-proxy (Debian: apt-get install npm)"
[[ $HUB_ID =~ ^[A-Za-z0-9_.-]{1,32}$ ]] || die "--hub-id: letters, digits, _ . - (at most 32)"
# A password in the URL would land in a world-readable file: pgpass instead.
if [[ $DB_URL =~ ://[^/@]*:[^/@]*@ ]]; then
  die "--db-url must not hold a password: use USER@HOST and --db-password-file"
fi
if [[ -n $DB_PASSWORD_FILE ]]; then
  [[ -r $DB_PASSWORD_FILE ]] || die "--db-password-file $DB_PASSWORD_FILE is not readable"
fi
if [[ -n $SLURM_CONF ]]; then
  [[ -r $SLURM_CONF ]] || die "--slurm-conf $SLURM_CONF is not readable"
fi
if [[ -z $PARTITION ]] && command -v sinfo >/dev/null; then
  # SLURM's default partition (sinfo marks it with *), else the first.
  parts=$(env ${SLURM_CONF:+SLURM_CONF="$SLURM_CONF"} sinfo -h -o '%P' 2>/dev/null || true)
  PARTITION=$(grep -m1 '\*$' <<<"$parts" | tr -d '*' || true)
  [[ -n $PARTITION ]] || PARTITION=$(head -n1 <<<"$parts")
fi
PARTITION=${PARTITION:-debug}
if [[ -n $SLURM_CONF ]]; then
  SLURM_CONF_LINE="  conf: \"$SLURM_CONF\""
else
  SLURM_CONF_LINE="  # conf: /etc/slurm/slurm.conf"
fi

# ---- software ----------------------------------------------------------------------------------

# Jobs (a lab server without containers) run the notebook server with this
# venv's Python as the user: it must be readable by everyone.
umask 022
mkdir -p "$PREFIX/bin" "$PREFIX/share/systemd" "$PREFIX/share/doc"
if [[ ! -x $PREFIX/venv/bin/python ]]; then
  log "venv: $PREFIX/venv (from $PYTHON)"
  "$PYTHON" -m venv "$PREFIX/venv"
fi
log "pip: installing $SOURCE with PostgreSQL, LDAP and OIDC support"
"$PREFIX/venv/bin/python" -m pip install -q --upgrade pip >&2
"$PREFIX/venv/bin/python" -m pip install -q --upgrade "${SOURCE}[postgres]" \
  "jupyterhub-ldapauthenticator>=2,<3" "oauthenticator>=17,<18" >&2

CHP_BIN="$PREFIX/node/node_modules/.bin/configurable-http-proxy"
if [[ ! -x $CHP_BIN ]]; then
  log "npm: configurable-http-proxy@$CHP_VERSION into $PREFIX/node"
  mkdir -p "$PREFIX/node"
  npm install --prefix "$PREFIX/node" --no-audit --no-fund --loglevel=error \
    "configurable-http-proxy@$CHP_VERSION" >&2
fi
ln -sfn "$CHP_BIN" "$PREFIX/bin/configurable-http-proxy"

# Templates: @NAME@ placeholders, filled by Python (no shell quoting of values).
render() {
  local template=$1 target=$2 mode=$3
  TEMPLATE=$template TARGET=$target PREFIX=$PREFIX CONFIG_DIR=$CONFIG_DIR STATE_DIR=$STATE_DIR \
    DATA_ROOT=$DATA_ROOT DB_URL=$DB_URL PARTITION=$PARTITION HUB_ID=$HUB_ID \
    SLURM_CONF_LINE=$SLURM_CONF_LINE "$PYTHON" - <<'EOF'
import os, re
text = open(os.environ["TEMPLATE"]).read()
def value(m):
    return os.environ[m.group(1)]
out = re.sub(r"@([A-Z_]+)@", value, text)
with open(os.environ["TARGET"] + ".new", "w") as f:
    f.write(out)
EOF
  chmod "$mode" "$target.new"
  mv -f "$target.new" "$target"
}

render "$HERE/scitex-hub" "$PREFIX/bin/scitex-hub" 0755
render "$HERE/scitex-proxy" "$PREFIX/bin/scitex-proxy" 0755
render "$HERE/scitex-hub.service" "$PREFIX/share/systemd/scitex-hub.service" 0644
render "$HERE/scitex-proxy.service" "$PREFIX/share/systemd/scitex-proxy.service" 0644
if [[ -f $REPO/docs/admin-guide.md ]]; then
  install -m 0644 "$REPO/docs/admin-guide.md" "$PREFIX/share/doc/admin-guide.md"
fi
chmod -R a+rX "$PREFIX"

# ---- configuration and secrets ------------------------------------------------------------

mkdir -p "$CONFIG_DIR" "$STATE_DIR/hub" "$DATA_ROOT"
chmod 0755 "$CONFIG_DIR" "$DATA_ROOT"
chmod 0700 "$STATE_DIR/hub"
DB_URL=${DB_URL:-sqlite:///$STATE_DIR/hub/jupyterhub.sqlite}
if [[ -f $CONFIG_DIR/scitex.yaml ]]; then
  log "site file: $CONFIG_DIR/scitex.yaml kept"
else
  # Readable by the proxy's unprivileged user; it holds no secrets.
  render "$HERE/scitex.yaml.template" "$CONFIG_DIR/scitex.yaml" 0644
  log "site file: $CONFIG_DIR/scitex.yaml written (edit institutions and profiles)"
fi

(
  umask 077
  mkdir -p "$CONFIG_DIR/secrets"
  chmod 0700 "$CONFIG_DIR/secrets"
  secret_file() {
    # NAME BYTES: a random hex value in a 0600 file, made once.
    [[ -s $CONFIG_DIR/secrets/$1 ]] || openssl rand -hex "$2" >"$CONFIG_DIR/secrets/$1"
    chmod 0600 "$CONFIG_DIR/secrets/$1"
  }
  command -v openssl >/dev/null || die "openssl is needed to make the secrets"
  secret_file configproxy_auth_token 32
  secret_file jupyterhub_crypt_key 32
  # The cookie secret where JupyterHub looks for it (hub.state_dir).
  [[ -s $STATE_DIR/hub/jupyterhub_cookie_secret ]] ||
    openssl rand -hex 32 >"$STATE_DIR/hub/jupyterhub_cookie_secret"
  chmod 0600 "$STATE_DIR/hub/jupyterhub_cookie_secret"
  if [[ -n $DB_PASSWORD_FILE ]]; then
    # pgpass escapes : and \ in the password.
    printf '*:*:*:*:%s\n' "$(tr -d '\n' <"$DB_PASSWORD_FILE" | sed 's/[\\:]/\\&/g')" \
      >"$CONFIG_DIR/secrets/pgpass"
    chmod 0600 "$CONFIG_DIR/secrets/pgpass"
  fi
  token=$(<"$CONFIG_DIR/secrets/configproxy_auth_token")
  {
    printf 'JUPYTERHUB_CRYPT_KEY=%s\n' "$(<"$CONFIG_DIR/secrets/jupyterhub_crypt_key")"
    printf 'CONFIGPROXY_AUTH_TOKEN=%s\n' "$token"
    if [[ -s $CONFIG_DIR/secrets/pgpass ]]; then
      printf 'PGPASSFILE=%s\n' "$CONFIG_DIR/secrets/pgpass"
    fi
  } >"$CONFIG_DIR/secrets/hub.env"
  printf 'CONFIGPROXY_AUTH_TOKEN=%s\n' "$token" >"$CONFIG_DIR/secrets/proxy.env"
  chmod 0600 "$CONFIG_DIR/secrets/hub.env" "$CONFIG_DIR/secrets/proxy.env"
)
log "secrets: $CONFIG_DIR/secrets (0700; files 0600)"

# The site file must be valid before a service is (re)started with it.
SCITEX_CONFIG="$CONFIG_DIR/scitex.yaml" "$PREFIX/venv/bin/python" -c \
  'from jupyterhub_config.settings import load_settings; load_settings()' ||
  die "$CONFIG_DIR/scitex.yaml is not valid (the message above names the key)"

# ---- services ------------------------------------------------------------------------------------

if $SYSTEMD; then
  install -m 0644 "$PREFIX/share/systemd/scitex-proxy.service" "$SYSTEMD_DIR/scitex-proxy.service"
  install -m 0644 "$PREFIX/share/systemd/scitex-hub.service" "$SYSTEMD_DIR/scitex-hub.service"
  if [[ -d /run/systemd/system ]]; then
    systemctl daemon-reload
  fi
  log "units: $SYSTEMD_DIR/scitex-proxy.service, scitex-hub.service"
  next="systemctl enable --now scitex-proxy scitex-hub"
else
  log "units: not installed (--no-systemd); see $PREFIX/share/systemd/"
  next="start $PREFIX/bin/scitex-proxy and $PREFIX/bin/scitex-hub with the environment of the units"
fi

cat >&2 <<EOF

  SciTeX Hub is installed in $PREFIX.
  1. Edit $CONFIG_DIR/scitex.yaml: who may sign in (institutions), profiles,
     and for a cluster hub.hub_connect_url, data_root, container.
  2. Put nginx with TLS in front of $PREFIX's proxy (deploy/nginx/scitex.conf.template).
  3. $next

EOF
