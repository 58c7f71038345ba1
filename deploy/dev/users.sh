#!/usr/bin/env bash
# Create the demo Unix users (idempotent): the researchers alice, bob, carol (and the
# spare test researchers dave and erin), and the hub admin `admin`.
#
# Two passwords, never the same, so that a researcher's password never signs in as admin:
# - researchers: $SCITEX_DEMO_PASSWORD when set, else the one stored in
#   $SCITEX_DEV_DIR/demo-password (generated on the first run);
# - the hub admin: $SCITEX_DEMO_ADMIN_PASSWORD when set, else the one stored in
#   $SCITEX_DEV_DIR/demo-admin-password (generated on the first run, and again if it
#   equals the researchers').
# Each file always holds the password its users have now (mode 0600), so tests can read
# them. Both are printed, each on its own line.
#
# Usage: users.sh
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RESEARCHERS=(alice bob carol dave erin)
ADMINS=(admin)
PASSWORD_FILE="$SCITEX_DEV_DIR/demo-password"
ADMIN_PASSWORD_FILE="$SCITEX_DEV_DIR/demo-admin-password"

need_root

gen_password() {
  local pw=""
  # Reading a fixed amount keeps pipefail happy (no SIGPIPE from an endless tr).
  while ((${#pw} < 20)); do
    pw+=$(head -c 128 /dev/urandom | LC_ALL=C tr -dc 'A-Za-z0-9')
  done
  printf '%s' "${pw:0:20}"
}

# Keep a file in step with what its users get (mode 0600); written only when it differs.
store() {
  local file=$1 value=$2
  if [[ ! -f $file || $(<"$file") != "$value" ]]; then
    (umask 077 && printf '%s\n' "$value" >"$file")
  fi
  chmod 0600 "$file"
}

mkdir -p "$SCITEX_DEV_DIR"
if [[ -n ${SCITEX_DEMO_PASSWORD:-} ]]; then
  password=$SCITEX_DEMO_PASSWORD
  source_note="from SCITEX_DEMO_PASSWORD"
elif [[ -s $PASSWORD_FILE ]]; then
  password=$(<"$PASSWORD_FILE")
  source_note="reused"
else
  password=$(gen_password)
  source_note="generated"
fi

if [[ -n ${SCITEX_DEMO_ADMIN_PASSWORD:-} ]]; then
  [[ $SCITEX_DEMO_ADMIN_PASSWORD != "$password" ]] ||
    die "SCITEX_DEMO_ADMIN_PASSWORD equals the researchers' password: a researcher's password must never sign in as admin; choose another"
  admin_password=$SCITEX_DEMO_ADMIN_PASSWORD
  admin_note="from SCITEX_DEMO_ADMIN_PASSWORD"
elif [[ -s $ADMIN_PASSWORD_FILE && $(<"$ADMIN_PASSWORD_FILE") != "$password" ]]; then
  admin_password=$(<"$ADMIN_PASSWORD_FILE")
  admin_note="reused"
else
  # First run, or a stored one that now equals the researchers' (SCITEX_DEMO_PASSWORD
  # chosen equal to it): a new one of its own.
  admin_password=$(gen_password)
  while [[ $admin_password == "$password" ]]; do admin_password=$(gen_password); done
  admin_note="generated"
fi
store "$PASSWORD_FILE" "$password"
store "$ADMIN_PASSWORD_FILE" "$admin_password"

for u in "${RESEARCHERS[@]}" "${ADMINS[@]}"; do
  if id -u "$u" >/dev/null 2>&1; then
    log "user $u exists"
  else
    useradd -m -s /bin/bash "$u"
    log "created user $u"
  fi
  home=$(getent passwd "$u" | cut -d: -f6)
  # Users must not read each other's files (the hub serves them per user).
  if [[ -d $home ]]; then
    chmod 0750 "$home"
  fi
done

# Set every time: cheap, it repairs a password changed by hand, and it moves an admin
# that had the researchers' password (older demos) to its own. chpasswd reads stdin:
# the passwords never appear on a command line.
{
  for u in "${RESEARCHERS[@]}"; do printf '%s:%s\n' "$u" "$password"; done
  for u in "${ADMINS[@]}"; do printf '%s:%s\n' "$u" "$admin_password"; done
} | chpasswd

log "demo users: researchers ${RESEARCHERS[*]}; hub admin ${ADMINS[*]}"
log "researchers' password ($source_note; in $PASSWORD_FILE): $password"
log "admin's password ($admin_note; in $ADMIN_PASSWORD_FILE): $admin_password"
