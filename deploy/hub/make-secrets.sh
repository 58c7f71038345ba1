#!/usr/bin/env bash
# Make the secret files docker-compose.prod.yml mounts, in DIR (default
# deploy/secrets), each mode 0600 in a 0700 directory. Existing files are kept, so
# running it again is safe; no value is ever printed.
#
# Usage: make-secrets.sh [DIR]
# Not made here: tls_cert and tls_key (the site's certificate chain and key);
# gitea_admin_token and oidc_client_secret are made empty, to fill in
# (docs/admin-guide.md).
set -euo pipefail

DIR=${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/secrets}
umask 077
mkdir -p "$DIR"
chmod 0700 "$DIR"

random_hex() { openssl rand -hex "$1"; }

make() {
  local name=$1 bytes=$2
  if [[ -s $DIR/$name ]]; then
    echo "kept   $DIR/$name"
  else
    random_hex "$bytes" >"$DIR/$name"
    echo "made   $DIR/$name"
  fi
  chmod 0600 "$DIR/$name"
}

command -v openssl >/dev/null || { echo "make-secrets.sh: openssl is needed" >&2; exit 1; }
make postgres_password 24
make hub_db_password 24
make gitea_db_password 24
make gitea_secret_key 32
make gitea_internal_token 48
make jupyterhub_crypt_key 32        # JUPYTERHUB_CRYPT_KEY: 32 bytes, hex
make gitea_admin_password 24        # set it as the Gitea admin's password
make jupyterhub_cookie_secret 32
make configproxy_auth_token 32
# Compose needs these files to exist; the admin fills them in: the token once
# Gitea has an admin, the client secret from the identity provider.
for name in gitea_admin_token oidc_client_secret; do
  [[ -e $DIR/$name ]] || : >"$DIR/$name"
  chmod 0600 "$DIR/$name"
done

# Compose mounts secret files with the host's owner and mode, and the services read
# them as their own users: the official postgres image as uid 999, Gitea rootless as
# uid 1000 (the hub runs as root). The database init reads gitea_db_password too.
if [[ $EUID -eq 0 ]]; then
  chown 999:999 "$DIR/postgres_password" "$DIR/hub_db_password"
  chown 999:1000 "$DIR/gitea_db_password"
  chmod 0640 "$DIR/gitea_db_password"
  chown 1000:1000 "$DIR/gitea_secret_key" "$DIR/gitea_internal_token"
fi

missing=()
for name in tls_cert tls_key; do [[ -s $DIR/$name ]] || missing+=("$name"); done
if ((${#missing[@]})); then
  echo "still needed in $DIR: ${missing[*]} (the site's certificate chain and private key)"
fi
empty=()
for name in gitea_admin_token oidc_client_secret; do [[ -s $DIR/$name ]] || empty+=("$name"); done
if ((${#empty[@]})); then
  echo "to fill in: ${empty[*]} (docs/admin-guide.md section 3; the hub needs the Gitea token before it starts)"
fi
