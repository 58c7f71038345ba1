"""A git credential helper that hands out the Gitea token, and only to the configured Gitea.

Git runs it as ``<python> -I -S <this file> get`` (see
:func:`scitex_server_ext.git.credential_helper_command`), configured per command with
``-c credential.helper=...``, so the token is never written to ``.git/config``, never appears
in an argv and never in a URL. It reads everything from the environment of the git process:

``SCITEX_GITEA_URL``
    the Gitea base URL; credentials are given only when git asks for exactly this scheme,
    host and port.
``SCITEX_GITEA_TOKEN``
    the user's Gitea access token (sent as the HTTP basic password, which Gitea accepts).
``SCITEX_GITEA_USER``
    the user name sent with it (Gitea identifies the user by the token; the name is informational).

This module imports only the standard library: it is started by git for every authenticated
request, and ``-S`` (no ``site``) keeps that start fast.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import TextIO
from urllib.parse import urlsplit

URL_ENV = "SCITEX_GITEA_URL"
TOKEN_ENV = "SCITEX_GITEA_TOKEN"  # noqa: S105 - the variable's name, not a secret
USER_ENV = "SCITEX_GITEA_USER"

_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(url: str) -> tuple[str, str] | None:
    """``(protocol, host[:port])`` as git's credential protocol spells it, or None."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if scheme not in _DEFAULT_PORTS or not host or parts.username or parts.password:
        return None
    if ":" in host:  # IPv6 literal: git writes it in brackets
        host = f"[{host}]"
    # Git sends the port only when the URL names one; a default port named explicitly
    # is the same origin, so compare without it.
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        host = f"{host}:{port}"
    return scheme, host


def _requested_origin(fields: Mapping[str, str]) -> tuple[str, str] | None:
    protocol = fields.get("protocol", "").lower()
    host = fields.get("host", "").lower()
    if protocol not in _DEFAULT_PORTS or not host:
        return None
    return _origin(f"{protocol}://{host}/")


def read_request(stream: TextIO) -> dict[str, str]:
    """Parse git's ``key=value`` lines up to the first empty line."""
    fields: dict[str, str] = {}
    for line in stream:
        line = line.rstrip("\n")
        if not line:
            break
        key, sep, value = line.partition("=")
        if sep:
            fields[key] = value
    return fields


def answer(action: str, fields: Mapping[str, str], environ: Mapping[str, str]) -> str:
    """What the helper prints for ``action`` (``get``, ``store`` or ``erase``).

    Only ``get`` produces output; ``store`` and ``erase`` are ignored because the token lives in
    the environment and must not be persisted anywhere.
    """
    if action != "get":
        return ""
    token = environ.get(TOKEN_ENV, "")
    configured = _origin(environ.get(URL_ENV, ""))
    if not token or configured is None:
        return ""
    if _requested_origin(fields) != configured:
        return ""
    # A newline in either value would let it inject further credential fields.
    user = environ.get(USER_ENV, "") or "scitex"
    if "\n" in token or "\n" in user or "\0" in token or "\0" in user:
        return ""
    return f"username={user}\npassword={token}\n"


def main(
    argv: list[str] | None = None,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    argv = sys.argv[1:] if argv is None else argv
    stdin = sys.stdin if stdin is None else stdin
    stdout = sys.stdout if stdout is None else stdout
    environ = os.environ if environ is None else environ
    action = argv[-1] if argv else ""
    fields = read_request(stdin)
    out = answer(action, fields, environ)
    if out:
        stdout.write(out)
        stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
