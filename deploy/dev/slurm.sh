#!/usr/bin/env bash
# A real single-node SLURM (munged, slurmctld, slurmd) for development, tests
# and CI, run without systemd. Everything SLURM keeps lives in
# $SCITEX_DEV_DIR/slurm/ (config, state, spool, logs, pid files).
#
# Usage: slurm.sh start|status|stop|restart|conf|env
#   start    write the config, start the daemons that are not running, wait
#            until the node takes jobs (running daemons and jobs are kept)
#   status   daemon pids and sinfo; exit 0 only if all run and the node is usable
#   stop     stop slurmd, slurmctld, munged (jobs' state stays on disk)
#   restart  stop, then start
#   conf     (re)write slurm.conf and cgroup.conf when their content changes
#   env      print `export SLURM_CONF=...`, for eval
#
# Environment: SCITEX_DEV_DIR (/var/lib/scitex-dev), SCITEX_SLURMD_TIMEOUT (30),
# SCITEX_SLURM_CGROUP (auto|yes|no: proctrack/task cgroup plugins, auto probes),
# SCITEX_SLURM_START_TIMEOUT (30 s to wait for the node).
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=slurm-common.sh source-path=SCRIPTDIR
. "$(dirname "${BASH_SOURCE[0]}")/slurm-common.sh"

D="$SCITEX_SLURM_DIR"
CONF="$D/slurm.conf"
CGROUP_CONF="$D/cgroup.conf"
# Written when auto mode saw slurmd fail with the cgroup plugins; delete it to
# try cgroup again.
CGROUP_FAILED="$D/cgroup.failed"
CTLD_PID="$D/run/slurmctld.pid"
SLURMD_PID="$D/run/slurmd.pid"
CTLD_LOG="$D/log/slurmctld.log"
SLURMD_LOG="$D/log/slurmd.log"
NODE=localhost

SLURMD_TIMEOUT="${SCITEX_SLURMD_TIMEOUT:-30}"
CGROUP_MODE="${SCITEX_SLURM_CGROUP:-auto}"
START_TIMEOUT="${SCITEX_SLURM_START_TIMEOUT:-30}"

export SLURM_CONF="$CONF"

# ---------------------------------------------------------------- config ----

# Sets PROCTRACK, TASK and WHY from SCITEX_SLURM_CGROUP and the probe.
choose_plugins() {
  local reason
  case "$CGROUP_MODE" in
    yes) WHY="SCITEX_SLURM_CGROUP=yes" ;;
    no) WHY="SCITEX_SLURM_CGROUP=no" ;;
    auto)
      if [[ -e $CGROUP_FAILED ]]; then
        WHY="slurmd failed with cgroup before (see $CGROUP_FAILED)"
        CGROUP_MODE=no
      elif reason=$(cgroup_probe); then
        WHY="cgroup v1 probe passed"
      else
        WHY="$reason"
        CGROUP_MODE=no
      fi
      ;;
    *) die "SCITEX_SLURM_CGROUP must be auto, yes or no (got '$CGROUP_MODE')" ;;
  esac
  if [[ $CGROUP_MODE == no ]]; then
    PROCTRACK=proctrack/linuxproc TASK=task/none
  else
    PROCTRACK=proctrack/cgroup TASK=task/cgroup
  fi
}

gen_slurm_conf() {
  local host
  # slurmctld compares SlurmctldHost with its own short hostname; the address
  # in parentheses spares a DNS entry for it.
  host=$(uname -n)
  host=${host%%.*}
  cat <<EOF
# Written by deploy/dev/slurm.sh: edits are overwritten. Dev/test cluster only.
# Plugins: $PROCTRACK + $TASK ($WHY)
ClusterName=scitex-dev
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
MailProg=/bin/true

StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$SLURMD_PID
SlurmctldLogFile=$CTLD_LOG
SlurmdLogFile=$SLURMD_LOG
SlurmctldDebug=info
SlurmdDebug=info

ProctrackType=$PROCTRACK
TaskPlugin=$TASK
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none

# Schedule a batch job as soon as it is submitted (sbatch -> RUNNING < 1 s).
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Jobs without --mem must not take the whole node's memory.
DefMemPerCPU=256

KillWait=5
# Finished jobs stay visible to scontrol show job for 5 minutes.
MinJobAge=300
SlurmdTimeout=$SLURMD_TIMEOUT
# A node that was down comes back by itself when its slurmd registers.
ReturnToService=2

# More CPUs and memory than the machine has, trusted over the hardware
# (config_overrides), so a small machine runs many small jobs at once.
SlurmdParameters=config_overrides
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=16 RealMemory=16000 State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=08:00:00 State=UP
PartitionName=batch Nodes=$NODE MaxTime=1-00:00:00 State=UP
EOF
}

gen_cgroup_conf() {
  # ConstrainCores stays off: the node declares 16 CPUs that do not all exist.
  # No swap accounting here, so only RAM is constrained (--mem is enforced).
  cat <<EOF
# Written by deploy/dev/slurm.sh: edits are overwritten.
CgroupPlugin=cgroup/v1
CgroupMountpoint=/sys/fs/cgroup
ConstrainCores=no
ConstrainDevices=no
ConstrainRAMSpace=yes
ConstrainSwapSpace=no
AllowedRAMSpace=100
EOF
}

cmd_conf() {
  need_root
  mkdir -p "$D/run" "$D/log" "$D/spool" "$D/state"
  # slurmstepd runs the batch script from the spool as the user: keep it 0755.
  chmod 0700 "$D/state"
  chmod 0755 "$D/spool"
  # Demo users read slurm.conf: the whole path must be traversable.
  chmod 0755 "$SCITEX_DEV_DIR" "$D" "$D/run" "$D/log"
  choose_plugins
  CHANGED=false
  write_if_changed "$CONF" 0644 < <(gen_slurm_conf)
  write_if_changed "$CGROUP_CONF" 0644 < <(gen_cgroup_conf)
  log "plugins: $PROCTRACK + $TASK ($WHY)"
}

# --------------------------------------------------------------- daemons ----

tail_logs() {
  local f
  for f in "$MUNGE_LOG" "$CTLD_LOG" "$SLURMD_LOG"; do
    [[ -r $f ]] || continue
    printf '\n==> %s (last 25 lines) <==\n' "$f" >&2
    tail -n 25 "$f" >&2
  done
}

start_slurmd() {
  local pid
  if pid=$(alive "$SLURMD_PID" slurmd); then
    log "slurmd already running (pid $pid)"
    return 0
  fi
  log "starting slurmd -N $NODE"
  SLURMD_STARTED_AT=$(date +%s)
  # Non-zero when a plugin fails to load (it does so before daemonizing).
  slurmd -f "$CONF" -N "$NODE" </dev/null >>"$SLURMD_LOG" 2>&1 9>&-
}

# Node state as sinfo prints it (idle, mixed, down*, drained, ...), or "".
node_state() {
  sinfo -h -N -n "$NODE" -o %T 2>/dev/null | head -n 1 || true
}

node_usable() {
  case "$(node_state)" in
    idle | mixed | allocated | completing) ;;
    *) return 1 ;;
  esac
  # A restarted slurmctld reports the node as it saved it, before the new
  # slurmd has registered: when we started slurmd, wait for its registration.
  [[ -z ${SLURMD_STARTED_AT:-} ]] && return 0
  local started
  started=$(scontrol -o show node "$NODE" 2>/dev/null | grep -o 'SlurmdStartTime=[^ ]*' | cut -d= -f2 || true)
  [[ -n $started && $started != None ]] || return 1
  started=$(date -d "$started" +%s 2>/dev/null) || return 1
  ((started >= SLURMD_STARTED_AT))
}

# auto mode only: slurmd failed with the cgroup plugins although the probe
# passed. Remember it, rewrite the config without them, restart slurmctld
# (plugin changes need a restart) and start slurmd again.
cgroup_fallback() {
  [[ ${SCITEX_SLURM_CGROUP:-auto} == auto ]] || return 1
  grep -q '^ProctrackType=proctrack/cgroup' "$CONF" || return 1
  {
    echo "# $(date -Is): slurmd failed with proctrack/cgroup + task/cgroup:"
    tail -n 20 "$SLURMD_LOG" | grep -iE 'error|fatal' || true
  } >"$CGROUP_FAILED"
  cat "$CGROUP_FAILED" >&2
  warn "falling back to proctrack/linuxproc + task/none (delete $CGROUP_FAILED to retry cgroup)"
  stop_daemon slurmctld "$CTLD_PID"
  cmd_conf
  start_slurmctld "single node"
  start_slurmd || fail "slurmd did not start with proctrack/linuxproc either"
}

wait_for_node() {
  local deadline state resumed=false fell_back=false
  deadline=$((SECONDS + START_TIMEOUT))
  while ((SECONDS < deadline)); do
    node_usable && return 0
    if ! alive "$SLURMD_PID" slurmd >/dev/null; then
      sleep 0.5 # the pid file can lag the fork by a moment
      if ! alive "$SLURMD_PID" slurmd >/dev/null; then
        # It may also die after daemonizing (a cgroup it cannot create).
        if ! $fell_back && cgroup_fallback; then
          fell_back=true
          continue
        fi
        fail "slurmd is not running"
      fi
    fi
    alive "$CTLD_PID" slurmctld >/dev/null || fail "slurmctld is not running"
    state=$(node_state)
    # down/drain (no '*': slurmd answers) is a leftover from an earlier run.
    case "$state" in
      down | drain*)
        if ! $resumed; then
          log "node $NODE is $state: resuming it"
          scontrol update nodename="$NODE" state=resume || true
          resumed=true
        fi
        ;;
    esac
    sleep 0.2
  done
  fail "node $NODE is not usable after ${START_TIMEOUT}s (state: '$(node_state)')"
}

cmd_start() {
  need_root
  for tool in munged slurmctld slurmd sinfo; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found: run deploy/dev/install-system.sh first"
  done
  # Settings that `scontrol reconfigure` cannot change need the daemons
  # restarted (running jobs survive: slurmstepd outlives slurmd).
  local restart_keys='^(SlurmctldHost|SlurmUser|ProctrackType|TaskPlugin|StateSaveLocation|SlurmdSpoolDir)='
  local before after
  before=$(grep -E "$restart_keys" "$CONF" 2>/dev/null || true)
  cmd_conf
  after=$(grep -E "$restart_keys" "$CONF")
  local was_running=false
  if alive "$CTLD_PID" slurmctld >/dev/null && $CHANGED; then
    if [[ $before != "$after" ]]; then
      log "config change needs a restart of slurmctld and slurmd"
      stop_daemon slurmd "$SLURMD_PID"
      stop_daemon slurmctld "$CTLD_PID"
    else
      was_running=true
    fi
  fi
  start_munged
  start_slurmctld "single node"
  start_slurmd || cgroup_fallback || fail "slurmd did not start"
  if $was_running; then
    # Daemons that run keep their jobs; reconfigure reloads the rest.
    log "config changed: scontrol reconfigure"
    scontrol reconfigure || warn "scontrol reconfigure failed; try: $0 restart"
  fi
  wait_for_node
  log "SLURM is up: node $NODE $(node_state); export SLURM_CONF=$CONF"
}

cmd_stop() {
  need_root
  # slurmstepd (the running jobs) outlives slurmd; slurmctld saves its state.
  stop_daemon slurmd "$SLURMD_PID"
  stop_daemon slurmctld "$CTLD_PID"
  stop_daemon munged "$MUNGE_PID"
}

cmd_status() {
  local ok=true name pidfile pid
  for name in munged slurmctld slurmd; do
    case $name in
      munged) pidfile=$MUNGE_PID ;;
      slurmctld) pidfile=$CTLD_PID ;;
      slurmd) pidfile=$SLURMD_PID ;;
    esac
    if pid=$(alive "$pidfile" "$name"); then
      printf '%-10s running (pid %s)\n' "$name" "$pid"
    else
      printf '%-10s not running\n' "$name"
      ok=false
    fi
  done
  if [[ -r $CONF ]]; then
    printf 'SLURM_CONF=%s\n' "$CONF"
    sed -n 's/^# Plugins: /plugins: /p' "$CONF"
  else
    printf 'SLURM_CONF=%s (missing: run %s conf)\n' "$CONF" "$0"
    ok=false
  fi
  if $ok; then
    sinfo || ok=false
    node_usable || {
      echo "node $NODE is not usable (state: '$(node_state)')"
      ok=false
    }
  fi
  $ok
}

# start/stop/conf from two shells at once (make demo beside make test) must
# not race: one runs at a time.
take_lock() {
  need_root
  mkdir -p "$D"
  exec 9>"$D/.lock"
  flock -w 120 9 || die "another slurm.sh holds $D/.lock"
  # The daemons are started with fd 9 closed, else they would hold the lock.
}

case "${1:-}" in
  start | stop | restart | conf) take_lock ;;
esac
case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  restart)
    cmd_stop
    cmd_start
    ;;
  status) cmd_status ;;
  conf) cmd_conf ;;
  env) printf 'export SLURM_CONF=%q\n' "$CONF" ;;
  -h | --help) sed -n '2,18s/^# \{0,1\}//p' "$0" ;;
  *)
    sed -n '6,13s/^# \{0,1\}//p' "$0" >&2
    exit 2
    ;;
esac
