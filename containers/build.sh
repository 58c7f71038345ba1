#!/usr/bin/env bash
# containers/build.sh IMAGE [--offline] [--sandbox] [--wheel PATH] [--out DIR]
#
# Builds a SciTeX Hub Apptainer image (see docs/containers.md).
#   IMAGE         notebook | compute (scitex-notebook.def, scitex-compute.def),
#                 or test-sandbox (a near-empty image for the test-suite that
#                 borrows the host's /usr and a venv at run time)
#   --offline     no container registry: debootstrap Debian bookworm from the
#                 machine's apt mirror (cached), pip from PyPI inside it
#   --sandbox     leave a sandbox directory instead of a SIF
#   --wheel PATH  the project's wheel (default: built from this checkout)
#   --out DIR     where the image goes (default $SCITEX_DEV_DIR/images)
#
# Output: DIR/scitex-IMAGE_<version>_<yyyymmdd>.sif and a .sha256 beside it, a
# stable symlink DIR/scitex-IMAGE.sif to the newest, and the build time and size.
# Runs as root. Caches (debootstrap root filesystem, pip downloads) live under
# $SCITEX_DEV_DIR/cache, so a second build is faster.
#
# Environment: APPTAINER (the apptainer command), SCITEX_DEBIAN_MIRROR (offline:
# the Debian mirror; default: the one the machine's apt sources name),
# SCITEX_VERSION (image version; default: the project's version).
set -euo pipefail
umask 022

SCITEX_PREFIX="${SCITEX_PREFIX:-/opt/scitex}"
SCITEX_DEV_DIR="${SCITEX_DEV_DIR:-/var/lib/scitex-dev}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
CACHE="$SCITEX_DEV_DIR/cache"
SUITE=bookworm
# Debian packages of the offline base (shared by both images, so one cached
# root filesystem serves both): Python, venv (ensurepip), git for projects.
BASE_PACKAGES=python3,python3-venv,ca-certificates,git,procps,less

log() { printf '[containers/build] %s\n' "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}
usage() {
  sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

IMAGE="" OFFLINE=0 SANDBOX=0 WHEEL="" OUT="$SCITEX_DEV_DIR/images"
while (($#)); do
  case "$1" in
    --offline) OFFLINE=1 ;;
    --sandbox) SANDBOX=1 ;;
    --wheel)
      WHEEL="${2:?--wheel needs a path}"
      shift
      ;;
    --out)
      OUT="${2:?--out needs a directory}"
      shift
      ;;
    -h | --help) usage ;;
    -*) die "unknown option $1" ;;
    *)
      [[ -z $IMAGE ]] || die "one image at a time"
      IMAGE="$1"
      ;;
  esac
  shift
done
IMAGE="${IMAGE#scitex-}"
case "$IMAGE" in
  notebook | compute | test-sandbox) ;;
  "") usage ;;
  *) die "unknown image '$IMAGE' (notebook, compute or test-sandbox)" ;;
esac
[[ $EUID -eq 0 ]] || die "run as root (building images needs it)"

# --- apptainer -------------------------------------------------------------------
find_apptainer() {
  if [[ -n ${APPTAINER:-} ]]; then
    echo "$APPTAINER"
  elif command -v apptainer >/dev/null; then
    command -v apptainer
  elif [[ -x $SCITEX_PREFIX/bin/apptainer ]]; then
    echo "$SCITEX_PREFIX/bin/apptainer"
  elif [[ -x $REPO/deploy/dev/apptainer.sh ]]; then
    # Our own machines: install Debian sid's build under $SCITEX_PREFIX.
    bash "$REPO/deploy/dev/apptainer.sh" install >&2
    echo "$SCITEX_PREFIX/bin/apptainer"
  else
    die "apptainer not found: install it or set APPTAINER"
  fi
}
APPTAINER="$(find_apptainer)"
# Root without CAP_SYS_RESOURCE (these machines) cannot request the full
# capability set that a build's %post asks for: drop that one capability.
if (((0x$(awk '/^CapBnd/ {print $2}' /proc/self/status) >> 24 & 1) == 0)); then
  export APPTAINER_DROP_CAPS="${APPTAINER_DROP_CAPS:-CAP_SYS_RESOURCE}"
fi
export APPTAINER_CACHEDIR="${APPTAINER_CACHEDIR:-$CACHE/apptainer}"
export APPTAINER_TMPDIR="${APPTAINER_TMPDIR:-$SCITEX_DEV_DIR/build-tmp}"
mkdir -p "$OUT" "$CACHE" "$APPTAINER_CACHEDIR" "$APPTAINER_TMPDIR"

human() { numfmt --to=iec --suffix=B "$1"; }
T0=$SECONDS

# --- test-sandbox: a near-empty image for the test-suite --------------------------
# Nothing but mount points: at run time it binds the host's /usr (read-only) and
# the project's venv, so building it takes well under a second and needs no
# network. See docs/containers.md for the binds.
if [[ $IMAGE == test-sandbox ]]; then
  dest="$OUT/scitex-test-sandbox"
  tmp="$dest.tmp.$$"
  rm -rf "$tmp"
  # Merged-/usr hosts (Debian 12): /bin, /lib... are symlinks into /usr; the same
  # symlinks in the image make the bound /usr complete. Where one is a real
  # directory on the host, the spawner must bind it too.
  links=""
  for d in bin sbin lib lib32 lib64 libx32; do
    if [[ -L /$d ]]; then
      links+="    ln -s $(readlink "/$d") $d"$'\n'
    elif [[ -d /$d ]]; then
      links+="    mkdir -p $d"$'\n'
      log "note: /$d is a directory on this host: bind it too (--bind /$d:/$d:ro)"
    fi
  done
  # Built by apptainer from scratch so that /.singularity.d (environment
  # scripts, actions) is the standard one: without it APPTAINERENV_* and --env
  # are not applied. %setup only makes mount points and symlinks.
  def="$OUT/.scitex-test-sandbox.def"
  cat >"$def" <<EOF
Bootstrap: scratch

%labels
    org.scitex.image scitex-test-sandbox
    org.scitex.version test
    org.scitex.build-date $(date -u +%Y%m%d)

%setup
    umask 022
    cd "\${APPTAINER_ROOTFS}"
    mkdir -p usr etc/alternatives tmp var/tmp proc sys dev home root run data opt srv mnt .$SCITEX_PREFIX/venv
    # Apptainer fills passwd/group with the user's entry and binds hosts,
    # resolv.conf and localtime over these: they only need to exist.
    touch etc/passwd etc/group etc/hosts etc/resolv.conf etc/localtime
$links
%runscript
    exec "\$@"
EOF
  out=$("$APPTAINER" -s build --sandbox "$tmp" "$def" 2>&1) || {
    echo "$out" >&2
    die "apptainer build of the test sandbox failed"
  }
  rm -f "$def"
  chmod -R a+rX "$tmp"
  rm -rf "$dest"
  mv "$tmp" "$dest"
  log "built $dest in $((SECONDS - T0)) s ($(du -sh "$dest" | cut -f1))"
  echo "$dest"
  exit 0
fi

# --- notebook / compute -------------------------------------------------------------
DEF="$HERE/scitex-$IMAGE.def"
[[ -f $DEF ]] || die "missing $DEF"
VERSION="${SCITEX_VERSION:-$(sed -n 's/^version *= *"\(.*\)"/\1/p' "$REPO/pyproject.toml" | head -1)}"
VERSION="${VERSION:-0.0.0}"
DATE="$(date -u +%Y%m%d)"
NAME="scitex-${IMAGE}_${VERSION}_${DATE}"

WORK="$(mktemp -d "$APPTAINER_TMPDIR/ctx.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
CTX="$WORK/context"
mkdir -p "$CTX/wheels"

# The project's wheel: given, or built from this checkout (notebook only).
if [[ -n $WHEEL ]]; then
  for w in $WHEEL; do # a glob is allowed
    [[ -f $w ]] || die "no wheel at $w"
    cp "$w" "$CTX/wheels/"
  done
elif [[ $IMAGE == notebook ]]; then
  py=/usr/bin/python3
  [[ -x $SCITEX_PREFIX/venv/bin/python ]] && py="$SCITEX_PREFIX/venv/bin/python"
  log "building the project's wheel from $REPO with $py"
  nbi=()
  "$py" -c 'import hatchling' 2>/dev/null && nbi=(--no-build-isolation)
  "$py" -m pip wheel -q --no-deps "${nbi[@]}" -w "$CTX/wheels" "$REPO" >&2 ||
    die "could not build the project's wheel: pass --wheel PATH"
fi
# pip inside the build trusts what the build host trusts (a TLS-inspecting
# proxy's CA, for instance).
if [[ -f /etc/ssl/certs/ca-certificates.crt ]]; then
  cp /etc/ssl/certs/ca-certificates.crt "$CTX/ca-certificates.crt"
else
  : >"$CTX/ca-certificates.crt"
fi

BASE="docker://python:3.11-slim-bookworm"
BUILD_DEF="$DEF"
if ((OFFLINE)); then
  # --- the Debian root filesystem, debootstrapped once and cached ----------------
  mirror="${SCITEX_DEBIAN_MIRROR:-}"
  if [[ -z $mirror && -f $REPO/deploy/dev/apptainer.sh ]]; then
    mirror="$(bash "$REPO/deploy/dev/apptainer.sh" mirror)"
  fi
  mirror="${mirror:-http://deb.debian.org/debian}"
  # The key changes with anything that changes the result (ROOTFS_LAYOUT: how
  # this script post-processes it).
  ROOTFS_LAYOUT=2
  key="$(printf '%s\n' "$SUITE" "$mirror" "$BASE_PACKAGES" "$(uname -m)" "$ROOTFS_LAYOUT" | sha256sum | cut -c1-12)"
  ROOTFS="$CACHE/rootfs/$SUITE-minbase-$key"
  if [[ -f $ROOTFS/.scitex-complete ]]; then
    log "reusing the cached root filesystem $ROOTFS"
  else
    command -v debootstrap >/dev/null || {
      log "installing debootstrap from the machine's apt sources"
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap >/dev/null 2>&1 || {
        apt-get update -q >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap >/dev/null
      }
    }
    t=$SECONDS
    log "debootstrap --variant=minbase --include=$BASE_PACKAGES $SUITE from $mirror"
    rm -rf "$ROOTFS" "$ROOTFS.tmp"
    mkdir -p "$(dirname "$ROOTFS")"
    debootstrap --variant=minbase --include="$BASE_PACKAGES" "$SUITE" "$ROOTFS.tmp" "$mirror" \
      >"$WORK/debootstrap.log" 2>&1 || {
      tail -20 "$WORK/debootstrap.log" >&2
      die "debootstrap failed"
    }
    # Users cannot run apt in the container: drop the package lists and .debs.
    # Apptainer provides /dev at run time; device nodes in the image only make
    # unprivileged unpacking of the SIF fail ("failed to create character device").
    rm -rf "$ROOTFS.tmp"/var/lib/apt/lists/* "$ROOTFS.tmp"/var/cache/apt/*.bin \
      "$ROOTFS.tmp"/var/cache/apt/archives/*.deb "$ROOTFS.tmp"/debootstrap "$ROOTFS.tmp"/dev/*
    touch "$ROOTFS.tmp/.scitex-complete"
    mv "$ROOTFS.tmp" "$ROOTFS"
    log "debootstrap done in $((SECONDS - t)) s ($(du -sh "$ROOTFS" | cut -f1)), cached in $ROOTFS"
  fi
  BASE="debootstrap:$SUITE-minbase"
  # The same definition on top of that root filesystem: swap the header
  # (everything before the first %section) for a local image.
  BUILD_DEF="$WORK/scitex-$IMAGE.offline.def"
  {
    echo "Bootstrap: localimage"
    echo "From: $ROOTFS"
    echo
    awk 'found || /^%/ { found = 1; print }' "$DEF"
  } >"$BUILD_DEF"
fi

# Build arguments in a file: values may hold commas (version specifiers), which
# --build-arg would split.
cat >"$WORK/build-args" <<EOF
CONTEXT=$CTX
VERSION=$VERSION
BUILD_DATE=$DATE
BASE=$BASE
EOF

mkdir -p "$CACHE/pip"
if ((SANDBOX)); then
  TARGET="$OUT/$NAME"
  FLAGS=(--sandbox)
else
  TARGET="$OUT/$NAME.sif"
  FLAGS=()
fi
log "building $TARGET from $(basename "$DEF") (base $BASE)"
t=$SECONDS
# Built under a temporary name and moved into place: an image that a running
# job uses is never written into.
PARTIAL="$OUT/.$(basename "$TARGET").partial.$$"
"$APPTAINER" build -F "${FLAGS[@]}" \
  --build-arg-file "$WORK/build-args" \
  --bind "$CACHE/pip:/var/cache/scitex-pip" \
  "$PARTIAL" "$BUILD_DEF" >"$WORK/build.log" 2>&1 || {
  tail -40 "$WORK/build.log" >&2
  cp "$WORK/build.log" "$OUT/$NAME.build.log"
  rm -rf "$PARTIAL"
  die "apptainer build failed (log: $OUT/$NAME.build.log)"
}
cp "$WORK/build.log" "$OUT/$NAME.build.log"
BUILD_S=$((SECONDS - t))
if [[ -e $TARGET ]]; then
  log "replacing $TARGET (same version and day)"
  if ((SANDBOX)); then rm -rf "$TARGET"; fi
fi
mv -fT "$PARTIAL" "$TARGET"

if ((SANDBOX)); then
  chmod a+rx "$TARGET"
  SIZE="$(du -sb "$TARGET" | cut -f1)"
  ln -sfn "$NAME" "$OUT/scitex-$IMAGE.sandbox.new" && mv -T "$OUT/scitex-$IMAGE.sandbox.new" "$OUT/scitex-$IMAGE.sandbox"
  log "built sandbox $TARGET: apptainer build $BUILD_S s, total $((SECONDS - T0)) s, $(human "$SIZE")"
else
  chmod 644 "$TARGET"
  SIZE="$(stat -c %s "$TARGET")"
  (cd "$OUT" && sha256sum "$NAME.sif" >"$NAME.sif.sha256")
  # Atomic switch of the stable name; the dated file stays for running jobs.
  ln -sfn "$NAME.sif" "$OUT/scitex-$IMAGE.sif.new" && mv -T "$OUT/scitex-$IMAGE.sif.new" "$OUT/scitex-$IMAGE.sif"
  log "built $TARGET: apptainer build $BUILD_S s, total $((SECONDS - T0)) s, $(human "$SIZE")"
  log "sha256 $(cut -d' ' -f1 "$OUT/$NAME.sif.sha256")"
fi
echo "$TARGET"
