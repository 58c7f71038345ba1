# shellcheck shell=bash
# What both dev SLURM clusters need (slurm.sh: the single node; cluster.sh: the
# multi-node one): process checks, daemon stop, config writes, the cgroup probe,
# slurmctld's start, and the one munged they share. Sourced after lib.sh; callers
# define tail_logs() (the logs worth showing when a start fails) and CONF, CTLD_PID,
# CTLD_LOG.

# munged keeps Debian's default paths: clients (libmunge in sbatch, slurmstepd)
# look for the socket there.
MUNGE_RUN=/run/munge
MUNGE_PID="$MUNGE_RUN/munged.pid"
MUNGE_KEY=/etc/munge/munge.key
# shellcheck disable=SC2034 # read by the callers' log tails
MUNGE_LOG=/var/log/munge/munged.log

# running PID: the process exists and is not a zombie (PID 1 here reaps slowly,
# so an exited daemon lingers as Z for a second or two).
running() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) } # the field after "(comm) " is the state
  [[ ${stat%% *} != Z ]]
}

# alive PIDFILE COMM: print the pid and succeed when the pid file names a
# running process with that command name (a stale file or a reused pid does
# not count).
alive() {
  local pid
  [[ -r $1 ]] || return 1
  pid=$(tr -dc '0-9' <"$1")
  [[ -n $pid ]] && running "$pid" || return 1
  [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$2" ]] || return 1
  echo "$pid"
}

# stop_daemon NAME PIDFILE: SIGTERM, wait up to 15 s, then SIGKILL.
stop_daemon() {
  local name=$1 pidfile=$2 pid i
  if ! pid=$(alive "$pidfile" "$name"); then
    log "$name not running"
    return 0
  fi
  log "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 300; i++)); do
    running "$pid" || return 0
    sleep 0.05
  done
  warn "$name (pid $pid) ignored SIGTERM: SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
}

# write_if_changed FILE MODE < content: only a real change rewrites the file
# (and sets CHANGED=true), so running daemons are reconfigured only then.
write_if_changed() {
  local file=$1 mode=$2 tmp
  tmp=$(mktemp "$file.XXXXXX")
  cat >"$tmp"
  if [[ -f $file ]] && cmp -s "$tmp" "$file"; then
    rm -f "$tmp"
    return 0
  fi
  chmod "$mode" "$tmp"
  mv -f "$tmp" "$file"
  # shellcheck disable=SC2034 # read by the callers
  CHANGED=true
  log "wrote $file"
}

# Can SLURM 22.05's cgroup plugins work here? They need cgroup v1 (its cgroup/v2
# plugin wants systemd) with the freezer (proctrack) and memory (task, --mem)
# controllers mounted and writable. Prints the reason when not.
cgroup_probe() {
  local root=/sys/fs/cgroup c d
  if [[ $(stat -f -c %T "$root" 2>/dev/null || true) == cgroup2fs ]]; then
    echo "only cgroup v2 is mounted (SLURM 22.05's cgroup/v2 needs systemd)"
    return 1
  fi
  for c in freezer memory; do
    if ! mountpoint -q "$root/$c"; then
      echo "cgroup v1 controller '$c' is not mounted"
      return 1
    fi
    d="$root/$c/scitex-probe.$$"
    if ! mkdir "$d" 2>/dev/null; then
      echo "cannot create a cgroup under $root/$c"
      return 1
    fi
    if [[ $c == memory ]] && ! echo 268435456 >"$d/memory.limit_in_bytes" 2>/dev/null; then
      rmdir "$d"
      echo "cannot set memory.limit_in_bytes"
      return 1
    fi
    rmdir "$d"
  done
}

munge_answers() {
  munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1
}

ensure_munge_key() {
  [[ -s $MUNGE_KEY ]] && return 0
  log "creating munge key $MUNGE_KEY"
  install -d -o munge -g munge -m 0700 /etc/munge
  if command -v mungekey >/dev/null 2>&1; then
    mungekey --create --keyfile="$MUNGE_KEY" --force
  else
    dd if=/dev/urandom of="$MUNGE_KEY" bs=1024 count=1 status=none
  fi
  chown munge:munge "$MUNGE_KEY"
  chmod 0400 "$MUNGE_KEY"
}

# start_munged: the one munged of this machine, unless one already answers.
start_munged() {
  local pid dir i
  if pid=$(alive "$MUNGE_PID" munged); then
    log "munged already running (pid $pid)"
    return 0
  fi
  if munge_answers; then
    return 0
  fi
  ensure_munge_key
  install -d -o munge -g munge -m 0755 "$MUNGE_RUN"
  for dir in /var/lib/munge /var/log/munge; do
    [[ -d $dir ]] || install -d -o munge -g munge -m 0700 "$dir"
  done
  log "starting munged"
  # munged refuses to run as root; it daemonizes and writes its pid file. fd 9
  # (the callers' lock) is closed so the daemon does not hold it.
  runuser -u munge -- /usr/sbin/munged --pid-file="$MUNGE_PID" </dev/null >/dev/null 2>&1 9>&- ||
    fail "munged did not start"
  for ((i = 0; i < 50; i++)); do
    munge_answers && return 0
    sleep 0.1
  done
  fail "munged does not answer on $MUNGE_RUN/munge.socket.2"
}

# fail MESSAGE: say it, show the caller's logs, stop.
fail() {
  log "ERROR: $*"
  tail_logs
  exit 1
}

# start_slurmctld [WHAT]: the caller's slurmctld (CONF, CTLD_PID, CTLD_LOG), unless it runs.
start_slurmctld() {
  local pid
  if pid=$(alive "$CTLD_PID" slurmctld); then
    log "slurmctld already running (pid $pid)"
    return 0
  fi
  log "starting slurmctld${1:+ ($1)}"
  slurmctld -f "$CONF" </dev/null >>"$CTLD_LOG" 2>&1 9>&- || fail "slurmctld did not start"
}
