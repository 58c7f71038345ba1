#!/bin/sh
# The stand-in on 0.0.0.0:3000. Its users, tokens and organisations live in memory
# (a restart forgets them; the hub provisions them again at sign-in); the
# repositories are files in /var/lib/gitea/repos (the gitea-data volume).
# The admin is gitea-admin with the password of the gitea_admin_password secret;
# at each start it gets a new token, written to GITEA_STANDIN_TOKEN_FILE (the
# demo mounts the hub's gitea_admin_token secret file there, as an admin would
# paste the token Gitea's `generate-access-token` prints).
set -eu
exec /opt/standin/venv/bin/python -m tests.fakes.gitea --host 0.0.0.0 --port 3000 \
  --root /var/lib/gitea/repos \
  --admin-password-file "${GITEA_STANDIN_PASSWORD_FILE:-/run/secrets/gitea_admin_password}" \
  --admin-token-file "${GITEA_STANDIN_TOKEN_FILE:-/var/lib/gitea/admin-token}"
