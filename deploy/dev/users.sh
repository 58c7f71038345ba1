#!/usr/bin/env bash
# Create the demo Unix users (idempotent): alice, bob, carol, admin, plus the
# spare test users dave and erin, all with one demo password.
#
# The password is $SCITEX_DEMO_PASSWORD when set, else the one stored in
# $SCITEX_DEV_DIR/demo-password (generated on the first run). The file always
# holds the password the users have now (mode 0600), so tests can read it.
#
# Usage: users.sh
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

USERS=(alice bob carol admin dave erin)
PASSWORD_FILE="$SCITEX_DEV_DIR/demo-password"

need_root

gen_password() {
  local pw=""
  # Reading a fixed amount keeps pipefail happy (no SIGPIPE from an endless tr).
  while ((${#pw} < 20)); do
    pw+=$(head -c 128 /dev/urandom | LC_ALL=C tr -dc 'A-Za-z0-9')
  done
  printf '%s' "${pw:0:20}"
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
# Keep the file in step with what the users get; written only when it differs.
if [[ ! -f $PASSWORD_FILE || $(<"$PASSWORD_FILE") != "$password" ]]; then
  (umask 077 && printf '%s\n' "$password" >"$PASSWORD_FILE")
fi
chmod 0600 "$PASSWORD_FILE"

for u in "${USERS[@]}"; do
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

# Set every time: cheap, and it repairs a password changed by hand.
for u in "${USERS[@]}"; do
  printf '%s:%s\n' "$u" "$password"
done | chpasswd

log "demo users: ${USERS[*]}"
log "demo password ($source_note; in $PASSWORD_FILE): $password"
