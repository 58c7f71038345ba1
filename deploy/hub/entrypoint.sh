#!/bin/sh
# Entry point of the hub image: secrets from /run/secrets into the places
# JupyterHub reads them, then the hub.
#
#   serve        (default) run JupyterHub with the site file $SCITEX_CONFIG
#   upgrade-db   upgrade the database schemas, JupyterHub's and ours (after a new image;
#                back up first)
#   check        validate the site file and reach SLURM and munge, then exit
#   <command>    anything else is run as is (a shell for debugging)
set -eu

SECRETS=${SCITEX_SECRETS:-/run/secrets}
STATE=${SCITEX_STATE_DIR:-/srv/scitex/state}
VENV=/opt/scitex/venv
CONFIG_PY=$("$VENV/bin/python" -c 'import jupyterhub_config, os; print(os.path.join(os.path.dirname(jupyterhub_config.__file__), "jupyterhub_config.py"))')

umask 077
mkdir -p "$STATE"

secret() {
  # A secret's value, without a trailing newline; fail loudly if it is missing.
  [ -s "$SECRETS/$1" ] || { echo "scitex-hub: secret $1 is missing or empty in $SECRETS" >&2; exit 1; }
  tr -d '\n' <"$SECRETS/$1"
}

# PostgreSQL's password goes to a 0600 pgpass file (libpq reads PGPASSFILE), so it
# is in neither the site file, the environment nor a command line. `:` and `\`
# are escaped as pgpass wants.
if [ -f "$SECRETS/hub_db_password" ]; then
  printf '*:*:*:*:%s\n' "$(secret hub_db_password | sed 's/[\\:]/\\&/g')" >"$STATE/pgpass"
  chmod 0600 "$STATE/pgpass"
  export PGPASSFILE="$STATE/pgpass"
fi

# The cookie secret as a 0600 file in the state directory (hub.state_dir), where the
# site file's configuration looks for it; the crypt key and the proxy token are
# only read from the environment by JupyterHub.
if [ -f "$SECRETS/jupyterhub_cookie_secret" ]; then
  secret jupyterhub_cookie_secret >"$STATE/jupyterhub_cookie_secret"
  chmod 0600 "$STATE/jupyterhub_cookie_secret"
fi
JUPYTERHUB_CRYPT_KEY=$(secret jupyterhub_crypt_key)
CONFIGPROXY_AUTH_TOKEN=$(secret configproxy_auth_token)
export JUPYTERHUB_CRYPT_KEY CONFIGPROXY_AUTH_TOKEN

# Back to the usual mask for the hub itself: the institution directories it makes
# under data_root must be traversable by the users (their own directory is 0700
# by explicit mode).
umask 022

case "${1:-serve}" in
  serve)
    exec "$VENV/bin/jupyterhub" -f "$CONFIG_PY"
    ;;
  upgrade-db)
    # JupyterHub's schema, then SciTeX Hub's own tables.
    "$VENV/bin/jupyterhub" upgrade-db -f "$CONFIG_PY"
    if "$VENV/bin/python" -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("scitex_hub.db") is None)'; then
      exec "$VENV/bin/python" -m jupyterhub_config.db upgrade
    fi
    ;;
  check)
    "$VENV/bin/python" -c 'from jupyterhub_config.settings import load_settings; s = load_settings(); print("site file OK:", len(s.institutions), "institutions,", len(s.profiles), "profiles")'
    munge -n | unmunge >/dev/null && echo "munge OK (socket from the host)"
    sinfo --summarize
    ;;
  *)
    exec "$@"
    ;;
esac
