#!/usr/bin/env bash
# The demo hub: start (only what is not running), stop, status.
# `make demo` runs the install steps first (system packages, venv, SLURM, users).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

HUB_DIR="$SCITEX_DEV_DIR/hub"
VENV="$SCITEX_PREFIX/venv"
PID_FILE="$HUB_DIR/jupyterhub.pid"
LOG_FILE="$HUB_DIR/jupyterhub.log"
URL="http://127.0.0.1:8000"

hub_pid() {
  local pid
  [[ -f $PID_FILE ]] || return 1
  pid=$(<"$PID_FILE")
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

config_file() {
  "$VENV/bin/python" -c 'import jupyterhub_config, os; print(os.path.join(os.path.dirname(jupyterhub_config.__file__), "jupyterhub_config.py"))'
}

start() {
  need_root
  mkdir -p "$HUB_DIR"
  chmod 0700 "$HUB_DIR"
  local slurm_env
  slurm_env=$(bash "$(dirname "${BASH_SOURCE[0]}")/slurm.sh" env)
  eval "$slurm_env"
  if pid=$(hub_pid); then
    log "JupyterHub already running (pid $pid): kept, with its database and jobs"
  else
    if ! "$SCITEX_PREFIX/bin/apptainer" --version >/dev/null 2>&1; then
      log "Apptainer is not installed: notebook servers run in their SLURM job without a container"
    fi
    log "starting JupyterHub (log: $LOG_FILE)"
    (
      cd "$HUB_DIR"
      # setsid: the hub outlives this shell; `make demo-down` stops it.
      setsid env PATH="$SCITEX_PREFIX/bin:$VENV/bin:/usr/local/bin:/usr/bin:/bin" \
        SCITEX_CONFIG="${SCITEX_CONFIG:-}" \
        "$VENV/bin/jupyterhub" -f "$(config_file)" >>"$LOG_FILE" 2>&1 </dev/null &
    )
    local i
    for i in $(seq 1 120); do
      if curl -fsS -o /dev/null "$URL/hub/api" 2>/dev/null; then break; fi
      # The hub writes its pid file once started; no live pid after 10 s is a failure.
      if ((i > 20)) && ! hub_pid >/dev/null; then
        tail -n 30 "$LOG_FILE" >&2
        die "JupyterHub did not start; see $LOG_FILE"
      fi
      sleep 0.5
    done
    curl -fsS -o /dev/null "$URL/hub/api" || {
      tail -n 30 "$LOG_FILE" >&2
      die "JupyterHub did not answer on $URL; see $LOG_FILE"
    }
  fi
  printf '\n  SciTeX Hub demo is running: %s\n' "$URL"
  accounts
}

# Who signs in with which password. users.sh keeps each in its 0600 file; the admin's is
# never the researchers'.
accounts() {
  local password admin_password
  password="${SCITEX_DEMO_PASSWORD:-$(cat "$SCITEX_DEV_DIR/demo-password" 2>/dev/null || true)}"
  admin_password="${SCITEX_DEMO_ADMIN_PASSWORD:-$(cat "$SCITEX_DEV_DIR/demo-admin-password" 2>/dev/null || true)}"
  cat <<EOF
  Researchers: alice, bob (Demo University), carol (Other University)
  Researchers' password: ${password:-<run make users, or set SCITEX_DEMO_PASSWORD>}
  Hub admin: admin
  Admin's password: ${admin_password:-<run make users, or set SCITEX_DEMO_ADMIN_PASSWORD>}
  Hub log: $LOG_FILE        Stop everything: make demo-down

EOF
}

stop() {
  need_root
  local pid
  if pid=$(hub_pid); then
    log "stopping JupyterHub (pid $pid)"
    kill -TERM "$pid"
    for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  # The proxy is started by the hub but outlives it by design (cleanup_proxy off).
  if [[ -f $HUB_DIR/jupyterhub-proxy.pid ]]; then
    pid=$(<"$HUB_DIR/jupyterhub-proxy.pid")
    kill -TERM "$pid" 2>/dev/null || true
    rm -f "$HUB_DIR/jupyterhub-proxy.pid"
  fi
  # Users' servers are SLURM jobs of this hub: cancel them so nothing runs on.
  eval "$(bash "$(dirname "${BASH_SOURCE[0]}")/slurm.sh" env)"
  if command -v squeue >/dev/null && squeue -h >/dev/null 2>&1; then
    local jobs
    # Through the framed reader: a job name or comment a user chose cannot make root
    # cancel someone else's job (a newline in it would forge a line of plain squeue).
    jobs=$("$VENV/bin/python" -m scitex_spawner.hub_jobs demo) || {
      log "could not list the demo's notebook jobs; stopping SLURM ends them anyway"
      jobs=""
    }
    if [[ -n $jobs ]]; then
      log "cancelling the demo's notebook jobs: $(echo "$jobs" | tr '\n' ' ')"
      # shellcheck disable=SC2086
      scancel $jobs
    fi
  fi
  bash "$(dirname "${BASH_SOURCE[0]}")/slurm.sh" stop
}

status() {
  if pid=$(hub_pid); then echo "JupyterHub: running (pid $pid) on $URL"; else echo "JupyterHub: stopped"; fi
  bash "$(dirname "${BASH_SOURCE[0]}")/slurm.sh" status || true
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  accounts) accounts ;;
  *) die "usage: $0 start|stop|status|accounts" ;;
esac
