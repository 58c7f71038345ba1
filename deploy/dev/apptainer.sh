#!/usr/bin/env bash
# deploy/dev/apptainer.sh {install|check|path|mirror}
#
# Apptainer for the dev cluster and CI. Bookworm has no apptainer package, so we
# take Debian sid's build and make it run on bookworm without touching the
# system: extract it (plus sid's libc6, which it needs: GLIBC_2.38) into
# $SCITEX_PREFIX/apptainer, point its ELF interpreter/rpath at that libc, and use
# Apptainer's relocatable layout (it finds usr/etc/apptainer/apptainer.conf
# relative to its binary). /etc/apt stays untouched: a private APT config.
#
#   install  install (idempotent; well under 1 s when already installed)
#   check    run a trivial container as root and as a normal user
#            (SCITEX_CHECK_USER, else alice if it exists, else nobody)
#   path     print the stable command path ($SCITEX_PREFIX/bin/apptainer)
#   mirror   print the Debian mirror the machine's apt sources name
#            (containers/build.sh uses it for debootstrap)
#
# A production site installs Apptainer from its distribution or from Apptainer's
# releases instead; everything else in the project only needs `apptainer` on PATH
# or the path in the spawner's config.
set -euo pipefail
# shellcheck source=lib.sh disable=SC1091
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

APPTAINER_ROOT="$SCITEX_PREFIX/apptainer"
APPTAINER_REAL="$APPTAINER_ROOT/usr/bin/apptainer"
APPTAINER_LINK="$SCITEX_PREFIX/bin/apptainer"
APPTAINER_CONF="$APPTAINER_ROOT/usr/etc/apptainer/apptainer.conf"
STAMP="$APPTAINER_ROOT/.scitex-installed"
# Bump when the layout below changes, so `install` redoes an older install.
LAYOUT_VERSION=1
# Where the private sid APT state and downloads live (not /etc/apt, not /var/lib/apt).
APT_SID_DIR="$SCITEX_DEV_DIR/cache/apt-sid"

case "$(uname -m)" in
  x86_64) MULTIARCH=x86_64-linux-gnu LDSO=ld-linux-x86-64.so.2 ;;
  aarch64) MULTIARCH=aarch64-linux-gnu LDSO=ld-linux-aarch64.so.1 ;;
  *) MULTIARCH="" LDSO="" ;;
esac

# --- the Debian mirror named by the machine's apt sources -----------------------
# Reads one-line .list files and deb822 .sources files; prints the first URI whose
# suite is the machine's codename (so not -security/-updates). SCITEX_DEBIAN_MIRROR
# overrides it.
debian_mirror() {
  if [[ -n ${SCITEX_DEBIAN_MIRROR:-} ]]; then
    echo "${SCITEX_DEBIAN_MIRROR%/}"
    return
  fi
  local codename files=() f uri=""
  # shellcheck disable=SC1091
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
  local etc="${SCITEX_APT_ETC:-/etc/apt}" # another directory: for testing
  [[ -f $etc/sources.list ]] && files+=("$etc/sources.list")
  for f in "$etc"/sources.list.d/*.list "$etc"/sources.list.d/*.sources; do
    [[ -f $f ]] && files+=("$f")
  done
  for f in "${files[@]}"; do
    if [[ $f == *.sources ]]; then
      uri=$(awk -v suite="$codename" '
        function flush() {
          if (types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " suite " ") && enabled != "no" && uris != "") {
            split(uris, u, " "); print u[1]; found = 1; exit
          }
          types = ""; uris = ""; suites = ""; enabled = ""
        }
        /^[[:space:]]*#/ { next }
        /^[[:space:]]*$/ { flush(); next }
        { key = tolower($1); sub(/:$/, "", key); $1 = ""; sub(/^ +/, "")
          if (key == "types") types = $0; else if (key == "uris") uris = $0
          else if (key == "suites") suites = $0; else if (key == "enabled") enabled = tolower($0) }
        END { if (!found) flush() }' "$f")
    else
      uri=$(sed -e 's/#.*//' -e 's/\[[^]]*\]//' "$f" |
        awk -v suite="$codename" '$1 == "deb" && $3 == suite { print $2; exit }')
    fi
    if [[ -n $uri ]]; then
      echo "${uri%/}"
      return
    fi
  done
  echo "http://deb.debian.org/debian"
}

apt_sid() {
  # Private APT config: sid on the same mirror host, own lists and cache.
  apt-get -q \
    -o Dir::Etc::sourcelist="$APT_SID_DIR/sources.list" \
    -o Dir::Etc::sourceparts=/dev/null \
    -o Dir::State::Lists="$APT_SID_DIR/lists" \
    -o Dir::Cache="$APT_SID_DIR/cache" \
    -o APT::Sandbox::User=root \
    "$@"
}

installed_ok() {
  [[ -f $STAMP ]] && grep -qx "layout=$LAYOUT_VERSION" "$STAMP" &&
    [[ -x $APPTAINER_REAL ]] && [[ $(readlink "$APPTAINER_LINK" 2>/dev/null) == "$APPTAINER_REAL" ]] &&
    "$APPTAINER_REAL" version >/dev/null 2>&1
}

install_host_packages() {
  # patchelf: to retarget the binaries; squashfs-tools: mksquashfs (building SIFs)
  # and unsquashfs (normal users running a SIF without FUSE); the two libraries
  # sid's apptainer links against (bookworm's versions satisfy its minimums).
  local want=(patchelf squashfs-tools libseccomp2 libsqlite3-0 ca-certificates) missing=() p
  # squashfuse only helps when normal users can open /dev/fuse; if it is present
  # and /dev/fuse is not usable, Apptainer fails on a SIF instead of falling back
  # to unsquashing it (checked here: /dev/fuse is 0600 on these machines).
  if [[ ${SCITEX_APPTAINER_SQUASHFUSE:-auto} == yes ]] ||
    { [[ ${SCITEX_APPTAINER_SQUASHFUSE:-auto} == auto ]] && fuse_usable; }; then
    want+=(squashfuse fuse2fs)
  fi
  for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
  done
  if ((${#missing[@]})); then
    log "installing from the machine's apt sources: ${missing[*]}"
    # A fresh machine may have no package lists yet: update once and retry.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1 || {
      apt-get update -q >/dev/null
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
    }
  fi
}

fuse_usable() {
  # World read/write /dev/fuse (the usual 0666): unprivileged FUSE mounts work.
  [[ -c /dev/fuse ]] && [[ $(($(stat -c '0%a' /dev/fuse) & 6)) -eq 6 ]]
}

do_install() {
  need_root
  [[ -n $MULTIARCH ]] || die "unsupported architecture $(uname -m)"
  if installed_ok; then
    log "already installed: $APPTAINER_LINK -> $APPTAINER_REAL ($("$APPTAINER_REAL" version))"
    return
  fi
  local t0=$SECONDS mirror dl
  install_host_packages

  mirror=$(debian_mirror)
  log "downloading apptainer and libc6 from Debian sid at $mirror (private APT config in $APT_SID_DIR)"
  mkdir -p "$APT_SID_DIR/lists/partial" "$APT_SID_DIR/cache/archives/partial"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror sid main" \
    >"$APT_SID_DIR/sources.list"
  apt_sid update >/dev/null
  dl="$APT_SID_DIR/debs"
  rm -rf "$dl" && mkdir -p "$dl"
  (cd "$dl" && apt_sid download apptainer libc6 >/dev/null)
  local debs=("$dl"/apptainer_*.deb "$dl"/libc6_*.deb)
  [[ -f ${debs[0]} && -f ${debs[1]} ]] || die "apt-get download apptainer libc6 from sid failed"
  log "extracting $(basename "${debs[0]}") and $(basename "${debs[1]}") into $APPTAINER_ROOT"

  # Rebuilt from scratch each time: the stamp is written last, so a half-done
  # install is redone by the next `install`.
  rm -rf "$APPTAINER_ROOT"
  mkdir -p "$APPTAINER_ROOT"
  dpkg -x "${debs[0]}" "$APPTAINER_ROOT"
  dpkg -x "${debs[1]}" "$APPTAINER_ROOT"

  # sid's binaries need GLIBC_2.38: load them with sid's loader and libc, then
  # bookworm's libraries (libseccomp, libsqlite3) for everything else.
  local libdir="$APPTAINER_ROOT/usr/lib/$MULTIARCH" b
  [[ -e $libdir/$LDSO ]] || die "sid's libc6 has no $libdir/$LDSO"
  for b in "$APPTAINER_REAL" "$libdir/apptainer/bin/starter"; do
    patchelf --set-interpreter "$libdir/$LDSO" --force-rpath \
      --set-rpath "$libdir:/lib/$MULTIARCH:/usr/lib/$MULTIARCH" "$b"
  done

  # Relocatable layout: config under usr/etc, starter looks in usr/lib/{etc,var}.
  mkdir -p "$APPTAINER_ROOT/usr/etc" "$APPTAINER_ROOT/usr/var/lib/apptainer/mnt/session"
  cp -a "$APPTAINER_ROOT/etc/apptainer" "$APPTAINER_ROOT/usr/etc/"
  ln -sfn ../etc "$APPTAINER_ROOT/usr/lib/etc"
  ln -sfn ../var "$APPTAINER_ROOT/usr/lib/var"
  # Root here lacks CAP_SYS_RESOURCE, so root's default "full" capability set
  # cannot be requested: give root containers the file-based set instead.
  sed -i 's/^root default capabilities = .*/root default capabilities = file/' "$APPTAINER_CONF"
  grep -q '^root default capabilities = file$' "$APPTAINER_CONF" ||
    die "could not set 'root default capabilities = file' in $APPTAINER_CONF"

  mkdir -p "$SCITEX_PREFIX/bin"
  ln -sfn "$APPTAINER_REAL" "$APPTAINER_LINK"
  chmod -R a+rX "$APPTAINER_ROOT"
  chmod a+rx "$SCITEX_PREFIX" "$SCITEX_PREFIX/bin"

  "$APPTAINER_REAL" version >/dev/null || die "the patched apptainer does not run"
  {
    echo "layout=$LAYOUT_VERSION"
    echo "apptainer=$(dpkg-deb -f "${debs[0]}" Version)"
    echo "libc6=$(dpkg-deb -f "${debs[1]}" Version)"
    echo "mirror=$mirror"
  } >"$STAMP"
  log "installed apptainer $("$APPTAINER_REAL" version) (sid libc6 $(dpkg-deb -f "${debs[1]}" Version)) in $((SECONDS - t0)) s: $APPTAINER_LINK"
}

check_user() {
  if [[ -n ${SCITEX_CHECK_USER:-} ]]; then
    echo "$SCITEX_CHECK_USER"
  elif id alice >/dev/null 2>&1; then
    echo alice
  else
    echo nobody
  fi
}

do_check() {
  need_root
  installed_ok || die "apptainer is not installed: run $0 install"
  local user tmp out fail=0
  user=$(check_user)
  id "$user" >/dev/null 2>&1 || die "check user $user does not exist"
  tmp=$(mktemp -d /tmp/scitex-apptainer-check.XXXXXX)
  # shellcheck disable=SC2064
  trap "rm -rf '$tmp'" EXIT
  chmod 755 "$tmp"
  # A near-empty sandbox that borrows the host's /usr (merged-/usr Debian).
  local sb="$tmp/sandbox" d
  mkdir -p "$sb"/{usr,etc,tmp,proc,sys,dev,home,root,run,var/tmp,data}
  for d in bin sbin lib lib64; do [[ -L /$d ]] && ln -s "usr/$d" "$sb/$d"; done
  touch "$sb"/etc/{passwd,group,hosts,localtime,resolv.conf}
  local run=("$APPTAINER_LINK" -s exec --cleanenv --bind /usr:/usr:ro)

  if out=$("${run[@]}" "$sb" /usr/bin/id -un 2>&1) && [[ $out == root ]]; then
    log "ok: root runs a sandbox"
  else
    log "FAILED: root cannot run a container: $out"
    fail=1
  fi
  if out=$(runuser -u "$user" -- "${run[@]}" "$sb" /usr/bin/id -un 2>&1) && [[ $out == "$user" ]]; then
    log "ok: $user (a normal user) runs a sandbox"
  else
    log "FAILED: normal user $user cannot run a container (user namespaces?): $out"
    fail=1
  fi
  # A SIF: building one needs mksquashfs; a normal user mounts it with squashfuse
  # when /dev/fuse is usable, else Apptainer unpacks it to a temporary sandbox.
  if out=$("$APPTAINER_LINK" -s build "$tmp/check.sif" "$sb" 2>&1); then
    chmod 644 "$tmp/check.sif"
    if out=$(runuser -u "$user" -- "${run[@]}" "$tmp/check.sif" /usr/bin/id -un 2>&1) && [[ $out == "$user" ]]; then
      log "ok: $user runs a SIF ($(fuse_usable && echo 'squashfuse' || echo 'unpacked to a temporary sandbox; /dev/fuse is not usable'))"
    else
      log "FAILED: $user cannot run a SIF: $out"
      command -v squashfuse_ll >/dev/null && ! fuse_usable &&
        log "  squashfuse is installed but /dev/fuse is $(stat -c %a /dev/fuse): remove squashfuse or pass --unsquash"
      fail=1
    fi
  else
    log "FAILED: root cannot build a SIF (mksquashfs?): $out"
    fail=1
  fi
  ((fail == 0)) || die "apptainer check failed"
  log "apptainer check passed ($("$APPTAINER_LINK" version))"
}

case "${1:-}" in
  install) do_install ;;
  check) do_check ;;
  path)
    installed_ok || die "apptainer is not installed: run $0 install"
    echo "$APPTAINER_LINK"
    ;;
  mirror) debian_mirror ;;
  *)
    echo "usage: $0 {install|check|path|mirror}" >&2
    exit 2
    ;;
esac
