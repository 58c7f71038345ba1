#!/usr/bin/env bash
# Docker Engine for tests and `make demo-compose`, without systemd, and the
# images the Compose stack needs, built offline (no image registry is reachable).
#
# Usage: docker.sh install|start|stop|status|images
#   install  Debian's docker.io and docker-compose (apt), if absent
#   start    dockerd on the default socket (/var/run/docker.sock: a plain
#            `docker ps` sees it), --iptables=false; kept when already running
#   stop     stop dockerd (containers stop with it) and remove its docker0 link
#   status   dockerd's pid and `docker info` in one line; exit 0 only if it answers
#   images   build what is missing or out of date (an image records a digest of
#            its Dockerfile and the files it copies): the Debian base image (debootstrap minbase
#            from the mirror the machine's apt sources name, `docker import`),
#            then from it the hub image (deploy/hub/Dockerfile) and local
#            PostgreSQL 15, nginx and Gitea stand-in images (deploy/local-images/).
#            Prints each image's size and build time. SCITEX_DOCKER_REBUILD=1
#            rebuilds all but the base; deleting the cached root file system
#            tarball rebuilds the base too.
#
# Environment: SCITEX_DEV_DIR (/var/lib/scitex-dev; the rootfs cache lives in
# its docker/ directory), SCITEX_DOCKER_MIRROR (default: the first Debian mirror
# in the apt sources), SCITEX_VERSION (the hub image's tag, 0.1.0).
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
D="$SCITEX_DEV_DIR/docker"
LOG_DIR=/var/log/scitex-dev
LOG="$LOG_DIR/dockerd.log"
PID_FILE=/var/run/docker.pid
SOCKET=/var/run/docker.sock
ROOTFS_TAR="$D/debian-bookworm-minbase.tar"

BASE_IMAGE=scitex-local/debian:bookworm
HUB_IMAGE="scitex-hub:${SCITEX_VERSION:-0.1.0}"
PG_IMAGE=scitex-local/postgres:15
NGINX_IMAGE=scitex-local/nginx:1.22
GITEA_IMAGE=scitex-local/gitea-standin:latest

dockerd_pid() {
  local pid
  [[ -r $PID_FILE ]] || return 1
  pid=$(tr -dc '0-9' <"$PID_FILE")
  [[ -n $pid && $(cat "/proc/$pid/comm" 2>/dev/null) == dockerd ]] || return 1
  echo "$pid"
}

answers() { docker info --format '{{.ServerVersion}}' >/dev/null 2>&1; }

cmd_install() {
  need_root
  if command -v dockerd >/dev/null && command -v docker-compose >/dev/null; then
    return 0
  fi
  log "installing docker.io and docker-compose (apt)"
  local pkgs=(docker.io docker-compose debootstrap)
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${pkgs[@]}" >/dev/null \
    || {
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${pkgs[@]}" >/dev/null
    }
}

cmd_start() {
  need_root
  cmd_install
  local pid
  if pid=$(dockerd_pid) && answers; then
    log "dockerd already running (pid $pid)"
    return 0
  fi
  mkdir -p "$LOG_DIR"
  log "starting dockerd on $SOCKET (log: $LOG)"
  # --iptables=false and --ip-forward=false: the host's firewall and routing
  # stay as the SLURM and hub tests use them. Containers still reach each other
  # on a Compose network and the host's own addresses; ports are published by
  # the userland proxy. Image builds that fetch packages use the host's network
  # (docker build --network host), so containers need no route out.
  setsid dockerd --iptables=false --ip-forward=false --ip-masq=false \
    -H "unix://$SOCKET" --pidfile "$PID_FILE" </dev/null >>"$LOG" 2>&1 &
  local i
  for ((i = 0; i < 120; i++)); do
    answers && {
      log "dockerd is up ($(docker info --format '{{.ServerVersion}} {{.Driver}}'))"
      return 0
    }
    sleep 0.25
  done
  tail -n 30 "$LOG" >&2
  die "dockerd did not answer on $SOCKET within 30 s; see $LOG"
}

cmd_stop() {
  need_root
  local pid i
  if pid=$(dockerd_pid); then
    log "stopping dockerd (pid $pid)"
    kill -TERM "$pid"
    for ((i = 0; i < 300; i++)); do
      [[ -d /proc/$pid ]] || break
      sleep 0.1
    done
    [[ -d /proc/$pid ]] && {
      warn "dockerd (pid $pid) still runs after 30 s: SIGKILL"
      kill -KILL "$pid"
    }
  else
    log "dockerd not running"
  fi
  # dockerd leaves its default bridge behind.
  if ip link show docker0 >/dev/null 2>&1; then
    ip link del docker0 && log "removed the docker0 link"
  fi
}

cmd_status() {
  local pid
  if pid=$(dockerd_pid) && answers; then
    echo "dockerd running (pid $pid): $(docker info --format 'server {{.ServerVersion}}, {{.Driver}}, {{.Containers}} containers, {{.Images}} images')"
  else
    echo "dockerd not running"
    return 1
  fi
}

# The first Debian mirror the apt sources name (deb822 or one-line format).
debian_mirror() {
  if [[ -n ${SCITEX_DOCKER_MIRROR:-} ]]; then
    echo "$SCITEX_DOCKER_MIRROR"
    return
  fi
  local url
  url=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null \
    | grep -oE 'https?://[^ ]+/debian/?( |$)' | grep -v security | head -n 1 | tr -d ' ')
  echo "${url:-http://deb.debian.org/debian}"
}

# Certificate authorities the build host trusts beyond Debian's own set (a
# site's TLS-inspecting proxy): the images' builds fetch packages through it.
extra_cas() {
  local out=$1
  python3 - "$out" <<'EOF'
import glob, re, sys
pem = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)
def certs(text):
    return {m.group(0).strip() for m in pem.finditer(text)}
host = certs(open("/etc/ssl/certs/ca-certificates.crt").read())
known = set()
for f in glob.glob("/usr/share/ca-certificates/mozilla/*.crt"):
    known |= certs(open(f).read())
extra = sorted(host - known)
open(sys.argv[1], "w").write("\n".join(extra) + ("\n" if extra else ""))
print(len(extra))
EOF
}

# now_ms, elapsed_s START_MS
now_ms() { date +%s%3N; }
elapsed_s() { awk -v a="$1" -v b="$(now_ms)" 'BEGIN { printf "%.1f", (b - a) / 1000 }'; }
image_size() { docker image inspect --format '{{.Size}}' "$1" | awk '{ printf "%.0f MB", $1 / 1e6 }'; }
report() { printf '[scitex-dev docker] image %-36s %8s  built in %s s\n' "$1" "$(image_size "$1")" "$2" >&2; }
have_image() { docker image inspect "$1" >/dev/null 2>&1; }

build_base() {
  have_image "$BASE_IMAGE" && [[ -s $ROOTFS_TAR ]] && return 0
  local t0 root mirror n
  t0=$(now_ms)
  mkdir -p "$D"
  if [[ ! -s $ROOTFS_TAR ]]; then
    command -v debootstrap >/dev/null || cmd_install
    mirror=$(debian_mirror)
    root=$(mktemp -d "$D/rootfs.XXXXXX")
    log "debootstrap minbase bookworm from $mirror (about a minute; cached in $ROOTFS_TAR)"
    debootstrap --variant=minbase --include=ca-certificates bookworm "$root" "$mirror" \
      >"$D/debootstrap.log" 2>&1 || {
      tail -n 20 "$D/debootstrap.log" >&2
      rm -rf "$root"
      die "debootstrap failed; see $D/debootstrap.log"
    }
    n=$(extra_cas "$root/usr/local/share/ca-certificates/build-host-cas.crt")
    if ((n > 0)); then
      chroot "$root" update-ca-certificates >/dev/null 2>&1 || true
      log "base image trusts $n extra CA(s) of this host (usr/local/share/ca-certificates)"
    else
      rm -f "$root/usr/local/share/ca-certificates/build-host-cas.crt"
    fi
    # Image hygiene, as Debian's official images: no package lists or caches.
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
    tar -C "$root" -cf "$ROOTFS_TAR.tmp" --numeric-owner .
    mv -f "$ROOTFS_TAR.tmp" "$ROOTFS_TAR"
    rm -rf "$root"
  fi
  docker import --change 'CMD ["/bin/bash"]' --change 'ENV LANG=C.UTF-8' \
    "$ROOTFS_TAR" "$BASE_IMAGE" >/dev/null
  report "$BASE_IMAGE" "$(elapsed_s "$t0")"
}

# inputs_hash DOCKERFILE CONTEXT: a digest of what an image is built from: the
# Dockerfile, every file its COPY lines name (as they are on disk now, not as last
# committed) and the base image. An image whose label differs is rebuilt, so a test
# never runs yesterday's code; Docker's layer cache keeps an unchanged rebuild quick.
inputs_hash() {
  local dockerfile=$1 context=$2 sources=()
  mapfile -t sources < <(awk 'toupper($1) == "COPY" {
      for (i = 2; i < NF; i++) if ($i !~ /^--/) print $i }' "$dockerfile")
  {
    sha256sum "$dockerfile"
    docker image inspect --format '{{.Id}}' "$BASE_IMAGE" 2>/dev/null || true
    if ((${#sources[@]})); then
      (cd "$context" && find "${sources[@]}" -type f -not -path '*/__pycache__/*' \
        -not -path '*/node_modules/*' -print0 | sort -z | xargs -0 -r sha256sum)
    fi
  } | sha256sum | cut -c1-16
}

image_inputs() {
  docker image inspect --format '{{ index .Config.Labels "org.scitex.inputs" }}' "$1" 2>/dev/null || true
}

# build IMAGE DOCKERFILE CONTEXT: `docker build` from the local base image, with
# the host's network for apt, PyPI and npm; kept when its inputs have not changed.
build() {
  local image=$1 dockerfile=$2 context=$3 t0 inputs
  inputs=$(inputs_hash "$dockerfile" "$context")
  if [[ -z ${SCITEX_DOCKER_REBUILD:-} ]] && [[ $(image_inputs "$image") == "$inputs" ]]; then
    printf '[scitex-dev docker] image %-36s %8s  (up to date; SCITEX_DOCKER_REBUILD=1 rebuilds)\n' \
      "$image" "$(image_size "$image")" >&2
    return 0
  fi
  t0=$(now_ms)
  log "building $image ($dockerfile)"
  docker build -q --network host --build-arg "BASE_IMAGE=$BASE_IMAGE" \
    --label "org.scitex.inputs=$inputs" \
    -f "$dockerfile" -t "$image" "$context" >"$D/build-${image//[\/:]/_}.log" 2>&1 || {
    tail -n 30 "$D/build-${image//[\/:]/_}.log" >&2
    die "building $image failed; see $D/build-${image//[\/:]/_}.log"
  }
  report "$image" "$(elapsed_s "$t0")"
}

cmd_images() {
  need_root
  answers || die "dockerd is not running: $0 start"
  mkdir -p "$D"
  build_base
  local local_images="$REPO/deploy/local-images"
  build "$PG_IMAGE" "$local_images/postgres/Dockerfile" "$local_images/postgres"
  build "$NGINX_IMAGE" "$local_images/nginx/Dockerfile" "$local_images/nginx"
  build "$GITEA_IMAGE" "$local_images/gitea-standin/Dockerfile" "$REPO"
  build "$HUB_IMAGE" "$REPO/deploy/hub/Dockerfile" "$REPO"
}

case "${1:-}" in
  install) cmd_install ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  images) cmd_images ;;
  -h | --help) sed -n '2,21s/^# \{0,1\}//p' "$0" ;;
  *)
    sed -n '5,17s/^# \{0,1\}//p' "$0" >&2
    exit 2
    ;;
esac
