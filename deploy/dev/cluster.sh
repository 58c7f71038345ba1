#!/usr/bin/env bash
# A multi-node SLURM cluster on one machine, for development, tests and CI.
#
# The host is the login node (slurmctld; the hub and the proxy run there too);
# each compute node is a network namespace with its own address on a bridge,
# running its own slurmd. All share the one munged (the same key) and the
# filesystem (the data root). It is a second cluster beside slurm.sh's
# single-node one, which it never touches: own ClusterName, ports, config and
# state in $SCITEX_DEV_DIR/cluster/.
#
#   bridge scitexbr0 10.77.0.1/24 (host) -- veth scx-cN -- netns scitex-cN: eth0 10.77.0.1N
#   NodeName=cN NodeAddr=10.77.0.1N: names the host cannot resolve, on purpose
#
# Usage: cluster.sh start|stop|status|env|kill-node NODE|cut-link NODE|restore-node NODE
#   start         bridge, namespaces, config; start slurmctld and every slurmd; wait
#                 until every node takes jobs (what already runs is kept)
#   stop          stop the daemons, kill what jobs left in the namespaces, remove
#                 the namespaces, veths and the bridge (munged stays: it is shared)
#   status        exit 0 only if the network, slurmctld and every node are up
#   env           print `export SLURM_CONF=...`, for eval
#   kill-node N   SIGKILL node N's slurmd (its jobs keep running: a crashed node daemon)
#   cut-link N    take node N's link down (slurmd and jobs run, unreachable)
#   restore-node N  link up, slurmd started (or asked to register), wait until the
#                 node takes jobs again
#
# Environment: SCITEX_DEV_DIR (/var/lib/scitex-dev), SCITEX_CLUSTER_NODES (2, at most 9),
# SCITEX_CLUSTER_CTLD_PORT (6917), SCITEX_CLUSTER_SLURMD_PORT (6918),
# SCITEX_CLUSTER_SLURMD_TIMEOUT (10 s: how long a silent node stays up),
# SCITEX_CLUSTER_CGROUP (auto|yes|no), SCITEX_CLUSTER_START_TIMEOUT (30 s).
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=slurm-common.sh source-path=SCRIPTDIR
. "$(dirname "${BASH_SOURCE[0]}")/slurm-common.sh"

D="$SCITEX_DEV_DIR/cluster"
CONF="$D/slurm.conf"
CGROUP_CONF="$D/cgroup.conf"
CTLD_PID="$D/run/slurmctld.pid"
CTLD_LOG="$D/log/slurmctld.log"
CLUSTER=scitex-multi
BRIDGE=scitexbr0
NET=10.77.0
HOST_ADDR="$NET.1"
# One munged (slurm-common.sh) serves both clusters.

NODE_COUNT="${SCITEX_CLUSTER_NODES:-2}"
CTLD_PORT="${SCITEX_CLUSTER_CTLD_PORT:-6917}"
SLURMD_PORT="${SCITEX_CLUSTER_SLURMD_PORT:-6918}"
SLURMD_TIMEOUT="${SCITEX_CLUSTER_SLURMD_TIMEOUT:-10}"
CGROUP_MODE="${SCITEX_CLUSTER_CGROUP:-auto}"
START_TIMEOUT="${SCITEX_CLUSTER_START_TIMEOUT:-30}"

[[ $NODE_COUNT =~ ^[2-9]$ ]] || die "SCITEX_CLUSTER_NODES must be 2..9 (got '$NODE_COUNT')"
for port in "$CTLD_PORT" "$SLURMD_PORT"; do
  [[ $port =~ ^[0-9]{4,5}$ && $port != 6817 && $port != 6818 ]] ||
    die "cluster ports must be free numbers other than slurm.sh's 6817/6818 (got '$port')"
done

export SLURM_CONF="$CONF"

NODES=()
for ((i = 1; i <= NODE_COUNT; i++)); do NODES+=("c$i"); done
LAST_NODE="c$NODE_COUNT"
# stop removes every node an earlier start may have made, whatever the count now.
ALL_NODES=(c1 c2 c3 c4 c5 c6 c7 c8 c9)

node_index() { # c3 -> 3; dies on a name that is not one of ours
  local n=$1
  if ! [[ $n =~ ^c([1-9])$ ]] || ((BASH_REMATCH[1] > NODE_COUNT)); then
    die "no node '$n' in this cluster (nodes: ${NODES[*]})"
  fi
  echo "${BASH_REMATCH[1]}"
}
node_addr() { echo "$NET.1$(node_index "$1")"; }
node_ns() { echo "scitex-$1"; }
node_veth() { echo "scx-$1"; }
# Odd nodes "intel", even "amd": two features to pin profiles with --constraint.
node_feature() { (($(node_index "$1") % 2)) && echo intel || echo amd; }
slurmd_pidfile() { echo "$D/run/slurmd-$1.pid"; }
slurmd_log() { echo "$D/log/slurmd-$1.log"; }

# ---------------------------------------------------------------- network ----

ns_exists() { [[ -e /run/netns/$1 && $(ip netns list 2>/dev/null) =~ (^|$'\n')$1( |$'\n'|$) ]]; }

net_up() {
  command -v ip >/dev/null 2>&1 || die "ip (iproute2) is not installed"
  command -v nsenter >/dev/null 2>&1 || die "nsenter (util-linux) is not installed"
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    log "creating bridge $BRIDGE $HOST_ADDR/24"
    ip link add "$BRIDGE" type bridge || die "cannot create bridge $BRIDGE (no CAP_NET_ADMIN?)"
  fi
  # (Captured, not piped into grep -q: with pipefail, a SIGPIPE would read as "missing".)
  [[ $(ip -4 -o addr show dev "$BRIDGE") == *" $HOST_ADDR/24 "* ]] || ip addr add "$HOST_ADDR/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  local n ns veth addr
  for n in "${NODES[@]}"; do
    ns=$(node_ns "$n") veth=$(node_veth "$n") addr=$(node_addr "$n")
    if ! ns_exists "$ns"; then
      log "creating network namespace $ns ($n at $addr)"
      ip netns add "$ns" || die "cannot create network namespace $ns"
    fi
    if ! ip link show "$veth" >/dev/null 2>&1; then
      ip link add "$veth" type veth peer name eth0 netns "$ns"
    fi
    ip link set "$veth" master "$BRIDGE" up
    # Jupyter kernels talk to their server over the node's own loopback.
    ip -n "$ns" link set lo up
    [[ $(ip -n "$ns" -4 -o addr show dev eth0) == *" $addr/24 "* ]] || ip -n "$ns" addr add "$addr/24" dev eth0
    ip -n "$ns" link set eth0 up
    # No default route: a node reaches the 10.77.0.0/24 net and nothing else.
  done
}

# Processes whose network namespace is NS (pids, one a line).
pids_in_ns() {
  local target pid
  target=$(stat -L -c %i "/run/netns/$1" 2>/dev/null) || return 0
  for pid in /proc/[0-9]*; do
    pid=${pid#/proc/}
    [[ $(stat -L -c %i "/proc/$pid/ns/net" 2>/dev/null) == "$target" ]] && echo "$pid"
  done
  return 0
}

net_down() {
  local n ns pids i
  for n in "${ALL_NODES[@]}"; do
    ns=$(node_ns "$n")
    ns_exists "$ns" || continue
    # Jobs outlive slurmd (slurmstepd): whatever is left in a node goes with it.
    pids=$(pids_in_ns "$ns")
    if [[ -n $pids ]]; then
      log "killing $(wc -w <<<"$pids") process(es) left in $ns"
      # shellcheck disable=SC2086
      kill -KILL $pids 2>/dev/null || true
      for ((i = 0; i < 50; i++)); do
        [[ -z $(pids_in_ns "$ns") ]] && break
        sleep 0.1
      done
    fi
    log "removing network namespace $ns"
    ip netns del "$ns" || warn "cannot remove $ns"
  done
  # Deleting a namespace deletes its veth end, and so the pair.
  for n in "${ALL_NODES[@]}"; do
    ip link del "$(node_veth "$n")" 2>/dev/null || true
  done
  if ip link show "$BRIDGE" >/dev/null 2>&1; then
    log "removing bridge $BRIDGE"
    ip link del "$BRIDGE"
  fi
}

# ---------------------------------------------------------------- config ----

choose_plugins() {
  local reason
  case "$CGROUP_MODE" in
    yes) WHY="SCITEX_CLUSTER_CGROUP=yes" ;;
    no) WHY="SCITEX_CLUSTER_CGROUP=no" ;;
    auto)
      if reason=$(cgroup_probe); then
        WHY="cgroup v1 probe passed"
      else
        WHY="$reason" CGROUP_MODE=no
      fi
      ;;
    *) die "SCITEX_CLUSTER_CGROUP must be auto, yes or no (got '$CGROUP_MODE')" ;;
  esac
  if [[ $CGROUP_MODE == no ]]; then
    PROCTRACK=proctrack/linuxproc TASK=task/none
  else
    # Each slurmd keeps its jobs under slurm_<node> (Debian builds with
    # multiple-slurmd support): no clash with slurm.sh's slurm_localhost.
    PROCTRACK=proctrack/cgroup TASK=task/cgroup
  fi
}

gen_slurm_conf() {
  local host n nodes
  host=$(uname -n)
  host=${host%%.*}
  nodes=$(
    IFS=,
    echo "${NODES[*]}"
  )
  cat <<EOF
# Written by deploy/dev/cluster.sh: edits are overwritten. Dev/test cluster only.
# Plugins: $PROCTRACK + $TASK ($WHY)
ClusterName=$CLUSTER
# The login node: slurmctld checks its own short hostname against this; the
# nodes reach it at the bridge address.
SlurmctldHost=$host($HOST_ADDR)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
MailProg=/bin/true

StateSaveLocation=$D/state
# %n: one slurmd per node on this machine, each with its own spool, pid and log.
SlurmdSpoolDir=$D/spool/%n
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$D/run/slurmd-%n.pid
SlurmctldLogFile=$CTLD_LOG
SlurmdLogFile=$D/log/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info

ProctrackType=$PROCTRACK
TaskPlugin=$TASK
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none

SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=256
# Job ids apart from the single-node cluster's, so logs never mix them up.
FirstJobId=500000

KillWait=5
MinJobAge=300
# A node silent this long is marked down and its jobs end (NODE_FAIL): short,
# so node-loss tests are quick. Pings go out every SlurmdTimeout/3.
SlurmdTimeout=$SLURMD_TIMEOUT
MessageTimeout=5
# A node that was down comes back by itself when its slurmd registers again;
# jobs it still runs that the controller has ended are killed then.
ReturnToService=2

SlurmdParameters=config_overrides
EOF
  for n in "${NODES[@]}"; do
    echo "NodeName=$n NodeAddr=$(node_addr "$n") CPUs=8 RealMemory=8000 Feature=$(node_feature "$n") State=UNKNOWN"
  done
  cat <<EOF
PartitionName=compute Nodes=$nodes Default=YES MaxTime=08:00:00 State=UP
# One node only: a profile can pin its jobs by partition too.
PartitionName=edge Nodes=$LAST_NODE MaxTime=08:00:00 State=UP
EOF
}

gen_cgroup_conf() {
  cat <<EOF
# Written by deploy/dev/cluster.sh: edits are overwritten.
CgroupPlugin=cgroup/v1
CgroupMountpoint=/sys/fs/cgroup
ConstrainCores=no
ConstrainDevices=no
ConstrainRAMSpace=yes
ConstrainSwapSpace=no
AllowedRAMSpace=100
EOF
}

write_conf() {
  local n
  mkdir -p "$D/run" "$D/log" "$D/state"
  for n in "${NODES[@]}"; do mkdir -p "$D/spool/$n"; done
  chmod 0700 "$D/state"
  # slurmstepd runs the batch script from the spool as the user.
  chmod 0755 "$D/spool" "$D"/spool/*
  # Users (and their jobs) read slurm.conf: the whole path must be traversable.
  chmod 0755 "$SCITEX_DEV_DIR" "$D" "$D/run" "$D/log"
  choose_plugins
  CHANGED=false
  write_if_changed "$CONF" 0644 < <(gen_slurm_conf)
  write_if_changed "$CGROUP_CONF" 0644 < <(gen_cgroup_conf)
}

# --------------------------------------------------------------- daemons ----

tail_logs() {
  local f
  for f in "$CTLD_LOG" "$D"/log/slurmd-*.log; do
    [[ -r $f ]] || continue
    printf '\n==> %s (last 15 lines) <==\n' "$f" >&2
    tail -n 15 "$f" >&2
  done
}

# start_slurmd NODE: inside the node's network namespace. nsenter --net, not
# `ip netns exec`: that also remounts /sys, and the cgroup plugin then fails.
start_slurmd() {
  local n=$1 pid
  if pid=$(alive "$(slurmd_pidfile "$n")" slurmd); then
    return 0
  fi
  log "starting slurmd -N $n in $(node_ns "$n") ($(node_addr "$n"))"
  STARTED_AT[$n]=$(date +%s)
  nsenter --net="/run/netns/$(node_ns "$n")" slurmd -f "$CONF" -N "$n" \
    </dev/null >>"$(slurmd_log "$n")" 2>&1 9>&- || fail "slurmd -N $n did not start"
}
declare -A STARTED_AT=()

# start_or_nudge_slurmd NODE: start slurmd, or, when it runs but slurmctld has the
# node down (its link was cut), make it register now with a HUP, as restarting it
# would: slurmctld stops pinging a down node and asks it to register only every
# 20th ping round (up to a minute here).
start_or_nudge_slurmd() {
  local n=$1 pid
  if pid=$(alive "$(slurmd_pidfile "$n")" slurmd); then
    if ! node_usable "$n"; then
      log "asking slurmd of $n (pid $pid) to register again"
      kill -HUP "$pid"
    fi
  else
    start_slurmd "$n"
  fi
}

node_state() { sinfo -h -N -n "$1" -o %T 2>/dev/null | head -n 1 || true; }

node_usable() {
  local n=$1 started
  case "$(node_state "$n")" in
    idle | mixed | allocated | completing) ;;
    *) return 1 ;;
  esac
  # A restarted slurmctld reports a node as it saved it: when we started its
  # slurmd, wait for that slurmd to register.
  [[ -z ${STARTED_AT[$n]:-} ]] && return 0
  started=$(scontrol -o show node "$n" 2>/dev/null | grep -o 'SlurmdStartTime=[^ ]*' | cut -d= -f2 || true)
  [[ -n $started && $started != None ]] || return 1
  started=$(date -d "$started" +%s 2>/dev/null) || return 1
  ((started >= STARTED_AT[$n]))
}

wait_for_nodes() {
  local deadline n state pending
  local -A resumed=()
  deadline=$((SECONDS + START_TIMEOUT))
  while ((SECONDS < deadline)); do
    pending=()
    for n in "$@"; do
      node_usable "$n" && continue
      pending+=("$n")
      alive "$(slurmd_pidfile "$n")" slurmd >/dev/null || {
        sleep 0.5 # the pid file can lag the fork
        alive "$(slurmd_pidfile "$n")" slurmd >/dev/null || fail "slurmd of $n is not running"
      }
      state=$(node_state "$n")
      case "$state" in
        down | drain*) # a leftover from an earlier run (no '*': slurmd answers)
          if [[ -z ${resumed[$n]:-} ]]; then
            log "node $n is $state: resuming it"
            scontrol update nodename="$n" state=resume || true
            resumed[$n]=1
          fi
          ;;
      esac
    done
    ((${#pending[@]} == 0)) && return 0
    alive "$CTLD_PID" slurmctld >/dev/null || fail "slurmctld is not running"
    sleep 0.2
  done
  fail "nodes not usable after ${START_TIMEOUT}s: $(sinfo -h -N -o '%N=%T' 2>/dev/null | tr '\n' ' ')"
}

cmd_start() {
  local tool n started
  for tool in munge munged slurmctld slurmd sinfo; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found: run deploy/dev/install-system.sh first"
  done
  started=$SECONDS
  net_up
  local before
  before=$(cat "$CONF" 2>/dev/null || true)
  write_conf
  if $CHANGED && [[ -n $before ]] && alive "$CTLD_PID" slurmctld >/dev/null; then
    # Node lines, ports and plugins need a restart; a test cluster has no
    # jobs worth keeping across a config change.
    log "config changed: restarting the daemons"
    stop_daemons
  fi
  start_munged
  start_slurmctld "$CLUSTER, port $CTLD_PORT"
  for n in "${NODES[@]}"; do start_or_nudge_slurmd "$n"; done
  wait_for_nodes "${NODES[@]}"
  log "cluster $CLUSTER up in $((SECONDS - started)) s: $(sinfo -h -N -o '%N=%T' | sort -u | tr '\n' ' ')"
  log "export SLURM_CONF=$CONF"
}

stop_daemons() {
  local n
  for n in "${ALL_NODES[@]}"; do stop_daemon slurmd "$(slurmd_pidfile "$n")"; done
  stop_daemon slurmctld "$CTLD_PID"
}

cmd_stop() {
  stop_daemons
  net_down
  # The nodes' job cgroups, now empty (they would hold nothing after a reboot either).
  local c n
  for c in /sys/fs/cgroup/*; do
    for n in "${ALL_NODES[@]}"; do
      if [[ -d $c/slurm_$n ]]; then
        find "$c/slurm_$n" -depth -type d -exec rmdir {} + 2>/dev/null || true
      fi
    done
  done
  # No job outlived the namespaces: a saved one would only come back as a ghost
  # (or be requeued) at the next start. The cluster starts empty.
  rm -rf "${D:?}/state" "${D:?}/spool"
  log "cluster $CLUSTER stopped (munged left running: it is shared)"
}

cmd_status() {
  local ok=true n pid ns link
  if ip link show "$BRIDGE" >/dev/null 2>&1; then
    printf '%-10s %s\n' "bridge" "$BRIDGE $HOST_ADDR/24"
  else
    printf '%-10s missing\n' "bridge"
    ok=false
  fi
  if pid=$(alive "$CTLD_PID" slurmctld); then
    printf '%-10s running (pid %s, port %s)\n' slurmctld "$pid" "$CTLD_PORT"
  else
    printf '%-10s not running\n' slurmctld
    ok=false
  fi
  for n in "${NODES[@]}"; do
    ns=$(node_ns "$n")
    if ! ns_exists "$ns"; then
      printf '%-10s no namespace %s\n' "$n" "$ns"
      ok=false
    elif pid=$(alive "$(slurmd_pidfile "$n")" slurmd); then
      link=$(ip -br link show "$(node_veth "$n")" 2>/dev/null | awk '{print $2}')
      printf '%-10s %s in %s, slurmd pid %s, link %s\n' "$n" "$(node_addr "$n")" "$ns" "$pid" "$link"
      [[ $link == UP ]] || ok=false
    else
      printf '%-10s %s in %s, slurmd not running\n' "$n" "$(node_addr "$n")" "$ns"
      ok=false
    fi
  done
  printf 'SLURM_CONF=%s\n' "$CONF"
  if $ok; then
    sinfo -N -o '%N %P %T %f' || ok=false
    for n in "${NODES[@]}"; do node_usable "$n" || ok=false; done
  fi
  $ok
}

cmd_kill_node() {
  local n=$1 pid
  node_index "$n" >/dev/null
  pid=$(alive "$(slurmd_pidfile "$n")" slurmd) || die "slurmd of $n is not running"
  log "killing slurmd of $n (pid $pid); its jobs keep running"
  kill -KILL "$pid"
}

cmd_cut_link() {
  local n=$1
  node_index "$n" >/dev/null
  log "taking $n's link down ($(node_veth "$n"))"
  ip link set "$(node_veth "$n")" down
}

cmd_restore_node() {
  local n=$1
  node_index "$n" >/dev/null
  ns_exists "$(node_ns "$n")" || die "node $n has no namespace: run $0 start"
  ip link set "$(node_veth "$n")" up
  start_or_nudge_slurmd "$n"
  wait_for_nodes "$n"
  log "node $n is back: $(node_state "$n")"
}

take_lock() {
  need_root
  mkdir -p "$D"
  exec 9>"$D/.lock"
  flock -w 120 9 || die "another cluster.sh holds $D/.lock"
}

case "${1:-}" in
  start | stop | kill-node | cut-link | restore-node) take_lock ;;
esac
case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  env) printf 'export SLURM_CONF=%q\n' "$CONF" ;;
  kill-node | cut-link | restore-node)
    [[ -n ${2:-} ]] || die "usage: $0 $1 NODE"
    "cmd_${1//-/_}" "$2"
    ;;
  -h | --help) sed -n '2,29s/^# \{0,1\}//p' "$0" ;;
  *)
    sed -n '14,24s/^# \{0,1\}//p' "$0" >&2
    exit 2
    ;;
esac
