#!/usr/bin/env bash
# A real OpenLDAP directory (slapd) for sign-in tests and an LDAP demo, without
# systemd and without the Debian package's own database: config, data, pid and
# passwords live in $SCITEX_DEV_DIR/ldap. Idempotent: a running slapd with the
# same config is kept; entries that exist are kept.
#
# Usage: ldap.sh start|stop|status
#   start   install slapd and ldap-utils if missing (apt, no prompts), write the
#           config, start slapd on 127.0.0.1, load the test people and groups
#   stop    stop this slapd (the data stays)
#   status  exit 0 if slapd answers; print the URL and base DN
#
# Environment: SCITEX_LDAP_PORT (3890).
#
# The directory (base dc=scitex,dc=test; every person has the password in
# $SCITEX_DEV_DIR/ldap/user-password):
#   ou=people: ldapann (mail ann@demo-u.edu), ldapoli (mail oli@other-u.edu),
#              ldapnobody (mail nobody@nowhere.test), and two people named like
#              accounts the hub refuses: daemon (a Unix system account, UID below
#              auth.min_uid) and root (mail daemon@ / root@demo-u.edu)
#   ou=groups: demo-researchers {ldapann, daemon, root}, other-researchers {ldapoli},
#              visitors {ldapnobody}  (groupOfNames, `member` holds user DNs)
# None of ldapann, ldapoli, ldapnobody are Unix accounts: a sign-in proves the
# directory is used. daemon and root map to demo-u by their group: only the
# user-name rules refuse them.
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

LDIR="$SCITEX_DEV_DIR/ldap"
PORT="${SCITEX_LDAP_PORT:-3890}"
URL="ldap://127.0.0.1:$PORT/"
BASE="dc=scitex,dc=test"
ROOT_DN="cn=admin,$BASE"
CONF="$LDIR/slapd.conf"
DATA="$LDIR/data"
RUN="$LDIR/run"
PID_FILE="$RUN/slapd.pid"
ROOT_PW_FILE="$LDIR/admin-password"
USER_PW_FILE="$LDIR/user-password"
SLAPD=/usr/sbin/slapd
PEOPLE=(ldapann:ann@demo-u.edu ldapoli:oli@other-u.edu ldapnobody:nobody@nowhere.test
  daemon:daemon@demo-u.edu root:root@demo-u.edu)
# group:member,member...
LDAP_GROUPS=(demo-researchers:ldapann,daemon,root other-researchers:ldapoli visitors:ldapnobody)

gen_password() {
  local pw=""
  while ((${#pw} < 20)); do
    pw+=$(head -c 128 /dev/urandom | LC_ALL=C tr -dc 'A-Za-z0-9')
  done
  # No trailing newline: slappasswd -T and ldapadd -y use the whole file.
  printf '%s' "${pw:0:20}"
}

install() {
  if [[ -x $SLAPD ]] && command -v ldapadd >/dev/null 2>&1; then
    return
  fi
  need_root
  log "installing slapd and ldap-utils (apt)"
  # Without this, slapd's postinst asks for a domain and an admin password and
  # builds a database in /var/lib/ldap that we do not use.
  echo "slapd slapd/no_configuration boolean true" | debconf-set-selections
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends slapd ldap-utils >/dev/null 2>&1 ||
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends slapd ldap-utils >/dev/null; }
  [[ -x $SLAPD ]] || die "apt finished but $SLAPD is missing"
}

pid_of_slapd() {
  local pid
  [[ -s $PID_FILE ]] || return 1
  pid=$(<"$PID_FILE")
  [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
  # A stale pid file may name a recycled pid: check it is our slapd.
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$CONF" || return 1
  echo "$pid"
}

answers() {
  ldapsearch -x -H "$URL" -b "$BASE" -s base -LLL dn >/dev/null 2>&1
}

write_config() {
  local hash tmp
  hash=$(slappasswd -T "$ROOT_PW_FILE")
  tmp=$(mktemp "$LDIR/slapd.conf.XXXXXX")
  cat >"$tmp" <<EOF
# Written by deploy/dev/ldap.sh; changes are overwritten.
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/nis.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile $PID_FILE
argsfile $RUN/slapd.args
loglevel stats

database mdb
maxsize 67108864
suffix "$BASE"
rootdn "$ROOT_DN"
rootpw $hash
directory $DATA
index objectClass,uid,member eq

# Passwords are for binding only; everything else is readable (test data).
access to attrs=userPassword by self write by anonymous auth by * none
access to * by * read
EOF
  # The salted hash differs on every run: compare without the rootpw line, so
  # an unchanged config does not restart slapd.
  if [[ -f $CONF && ! $ROOT_PW_FILE -nt $CONF ]] && diff -q <(grep -v '^rootpw ' "$CONF") <(grep -v '^rootpw ' "$tmp") >/dev/null; then
    rm -f "$tmp"
    return 1
  fi
  chmod 0640 "$tmp"
  chown root:openldap "$tmp"
  mv "$tmp" "$CONF"
  return 0
}

entries_ldif() {
  local hash
  hash=$(slappasswd -T "$USER_PW_FILE")
  cat <<EOF
dn: $BASE
objectClass: top
objectClass: dcObject
objectClass: organization
o: SciTeX test directory
dc: scitex

dn: ou=people,$BASE
objectClass: organizationalUnit
ou: people

dn: ou=groups,$BASE
objectClass: organizationalUnit
ou: groups

EOF
  local who mail
  for who in "${PEOPLE[@]}"; do
    mail=${who#*:}
    who=${who%%:*}
    cat <<EOF
dn: uid=$who,ou=people,$BASE
objectClass: inetOrgPerson
uid: $who
cn: $who
sn: $who
mail: $mail
userPassword: $hash

EOF
  done
  local group
  for group in "${LDAP_GROUPS[@]}"; do
    printf 'dn: cn=%s,ou=groups,%s\nobjectClass: groupOfNames\ncn: %s\n' \
      "${group%%:*}" "$BASE" "${group%%:*}"
    members_ldif "$group"
    echo
  done
}

# The member lines of one LDAP_GROUPS entry.
members_ldif() {
  local who members
  IFS=, read -ra members <<<"${1#*:}"
  for who in "${members[@]}"; do
    printf 'member: uid=%s,ou=people,%s\n' "$who" "$BASE"
  done
}

load_entries() {
  local out rc=0 who
  # -c: go on past entries that exist (68); any other error is reported below.
  out=$(entries_ldif | ldapadd -c -x -H "$URL" -D "$ROOT_DN" -y "$ROOT_PW_FILE" 2>&1) || rc=$?
  if ((rc != 0 && rc != 68)); then
    printf '%s\n' "$out" >&2
    die "ldapadd failed ($rc)"
  fi
  local n
  n=$(ldapsearch -x -H "$URL" -b "$BASE" -LLL '(|(objectClass=inetOrgPerson)(objectClass=groupOfNames))' dn |
    grep -c '^dn:') || true
  local want=$((${#PEOPLE[@]} + ${#LDAP_GROUPS[@]}))
  ((n == want)) || die "expected ${#PEOPLE[@]} people and ${#LDAP_GROUPS[@]} groups in $BASE, found $n entries"
  # Set every time, like users.sh: cheap, and repairs a regenerated password file.
  local hash
  hash=$(slappasswd -T "$USER_PW_FILE")
  for who in "${PEOPLE[@]}"; do
    printf 'dn: uid=%s,ou=people,%s\nchangetype: modify\nreplace: userPassword\nuserPassword: %s\n\n' \
      "${who%%:*}" "$BASE" "$hash"
  done | ldapmodify -x -H "$URL" -D "$ROOT_DN" -y "$ROOT_PW_FILE" >/dev/null
  # Members too: a directory loaded by an older version of this script gets new ones.
  local group
  for group in "${LDAP_GROUPS[@]}"; do
    printf 'dn: cn=%s,ou=groups,%s\nchangetype: modify\nreplace: member\n' "${group%%:*}" "$BASE"
    members_ldif "$group"
    echo
  done | ldapmodify -x -H "$URL" -D "$ROOT_DN" -y "$ROOT_PW_FILE" >/dev/null
}

start() {
  need_root
  install
  mkdir -p "$DATA" "$RUN"
  [[ -s $ROOT_PW_FILE ]] || (umask 077 && gen_password >"$ROOT_PW_FILE")
  [[ -s $USER_PW_FILE ]] || (umask 077 && gen_password >"$USER_PW_FILE")
  chmod 0600 "$ROOT_PW_FILE" "$USER_PW_FILE"
  # slapd runs as openldap: it reads the config, writes only data/ and run/.
  chown -R openldap:openldap "$DATA" "$RUN"
  chown root:openldap "$LDIR"
  chmod 0750 "$LDIR"

  local changed=false pid
  if write_config; then changed=true; fi
  if pid=$(pid_of_slapd); then
    if $changed; then
      log "config changed: restarting slapd ($pid)"
      stop
    elif answers; then
      log "slapd already running on $URL (pid $pid)"
      load_entries
      return
    else
      log "slapd ($pid) does not answer: restarting"
      stop
    fi
  fi
  log "starting slapd on $URL"
  # slapd forks into the background once it listens; it drops to openldap.
  "$SLAPD" -f "$CONF" -h "$URL" -u openldap -g openldap ||
    die "slapd did not start (try: $SLAPD -f $CONF -h $URL -d 1)"
  local i
  for ((i = 0; i < 100; i++)); do
    answers && break
    # Before the base entry exists, the server answers "No such object" (32).
    ldapsearch -x -H "$URL" -b "" -s base -LLL namingContexts >/dev/null 2>&1 && break
    sleep 0.1
  done
  pid_of_slapd >/dev/null || die "slapd exited (see its log: run it with -d 1)"
  load_entries
  log "slapd on $URL, base $BASE, people's password in $USER_PW_FILE"
}

stop() {
  local pid i
  pid=$(pid_of_slapd) || {
    log "slapd is not running"
    return 0
  }
  kill "$pid"
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$pid" 2>/dev/null && die "slapd ($pid) did not stop"
  rm -f "$PID_FILE"
  log "slapd stopped"
}

status() {
  local pid
  if pid=$(pid_of_slapd) && answers; then
    echo "slapd running (pid $pid) on $URL, base $BASE"
    return 0
  fi
  echo "slapd is not running on $URL"
  return 1
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  -h | --help) sed -n '2,21s/^# \{0,1\}//p' "$0" ;;
  *) die "usage: $0 start|stop|status" ;;
esac
