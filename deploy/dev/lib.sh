# shellcheck shell=bash
# Shared defaults and helpers for the dev-cluster scripts in deploy/dev/.
# Sourced, never run: `. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"`.

# Software (npm installs, symlinks in bin/) and state (SLURM config, spool, logs,
# the demo's two passwords: demo-password for researchers, demo-admin-password for the
# hub admin, both 0600) live in two fixed places so every tool agrees on them.
SCITEX_PREFIX="${SCITEX_PREFIX:-/opt/scitex}"
SCITEX_DEV_DIR="${SCITEX_DEV_DIR:-/var/lib/scitex-dev}"
SCITEX_SLURM_DIR="$SCITEX_DEV_DIR/slurm"
export SCITEX_PREFIX SCITEX_DEV_DIR SCITEX_SLURM_DIR

# Daemons and files we create must be readable by the demo users (they read
# slurm.conf); secrets are chmod-ed explicitly.
umask 022

# The tag in every log line says which script spoke.
SCITEX_LOG_TAG="${SCITEX_LOG_TAG:-$(basename "${0:-scitex}" .sh)}"

log() { printf '[scitex-dev %s] %s\n' "$SCITEX_LOG_TAG" "$*" >&2; }
warn() { log "WARNING: $*"; }
die() {
  log "ERROR: $*"
  exit 1
}

need_root() {
  [[ $EUID -eq 0 ]] || die "must run as root (run it with sudo, or as root in CI)"
}
