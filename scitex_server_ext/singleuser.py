"""Entry point of the notebook server inside a SLURM job.

Picks a free port on this node, reports it to the hub's port callback with
this server's own token, then becomes ``jupyterhub-singleuser`` on that port.
The token travels in the environment and an HTTP header, never on a command
line.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlparse, urlunparse

CALLBACK_PATH = "scitex/port"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("", 0))
        return int(sock.getsockname()[1])


def report_port(api_url: str, token: str, port: int, attempts: int = 10) -> None:
    """POST ``{"port": port}`` to the hub; retry while the hub is unreachable."""
    url = api_url.rstrip("/") + "/" + CALLBACK_PATH
    body = json.dumps({"port": port}).encode()
    for attempt in range(attempts):
        request = urllib.request.Request(  # noqa: S310 - the hub's own API URL
            url,
            data=body,
            method="POST",
            headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30):  # noqa: S310
                return
        except urllib.error.HTTPError as e:
            # The hub answered: retrying will not change its mind.
            raise SystemExit(
                f"scitex-singleuser: the hub refused port {port}: {e.code} {e.reason}"
            ) from None
        except OSError as e:
            if attempt == attempts - 1:
                raise SystemExit(f"scitex-singleuser: cannot reach the hub at {url}: {e}") from None
            time.sleep(min(2**attempt, 10))


def with_port(service_url: str, port: int) -> str:
    parts = urlparse(service_url)
    host = parts.hostname or "0.0.0.0"  # noqa: S104 - the node's server listens for the hub
    if ":" in host:
        host = f"[{host}]"
    return urlunparse(parts._replace(netloc=f"{host}:{port}"))


# Optional modules that cost much at import and that a notebook server does not use.
# rfc3987-syntax (pulled in through jupyter-events -> jsonschema[format-nongpl])
# compiles a Lark grammar when imported: about 0.8 s of every start, to check the
# "iri" string formats no Jupyter event schema uses. jsonschema skips those checks
# when the module is absent. SCITEX_FULL_IMPORTS=1 keeps them (and JupyterLab's
# node call below).
SKIPPED_MODULES = ("rfc3987_syntax",)


def path_without(executable: str, path: str) -> str:
    """``path`` without the directories that hold an executable ``executable``."""
    return os.pathsep.join(
        directory
        for directory in path.split(os.pathsep)
        if not (directory and os.access(os.path.join(directory, executable), os.X_OK))
    )


@contextmanager
def executable_hidden(executable: str) -> Iterator[None]:
    """Run the block with ``executable`` off ``PATH``; restore ``PATH`` after."""
    saved = os.environ.get("PATH")
    os.environ["PATH"] = path_without(executable, saved or os.defpath)
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("PATH", None)
        else:
            os.environ["PATH"] = saved


def import_jupyterlab_without_node() -> None:
    """Import JupyterLab's server app without its ``node yarn config`` run.

    ``jupyterlab.labapp`` computes a version string at import, and on the way asks
    ``node`` for yarn's registry setting when node is on PATH: a subprocess of about
    0.25 s in every start, whose answer that version string never uses. Without node
    JupyterLab skips it. The extension manager, which does use the registry, asks
    again later with the real PATH.
    """
    if importlib.util.find_spec("jupyterlab") is None:
        return
    with executable_hidden("node"):
        try:
            import jupyterlab.labapp  # noqa: F401
        except Exception:  # noqa: S110
            # Not ours to report: the server imports the extension again itself and
            # logs why it cannot load it.
            pass


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    token = os.environ.get("JUPYTERHUB_API_TOKEN", "")
    api_url = os.environ.get("JUPYTERHUB_API_URL", "")
    if not token or not api_url:
        raise SystemExit(
            "scitex-singleuser: JUPYTERHUB_API_TOKEN and JUPYTERHUB_API_URL are needed"
        )
    if os.environ.get("SCITEX_FULL_IMPORTS") != "1":
        for name in SKIPPED_MODULES:
            # None in sys.modules makes `import name` raise ImportError.
            sys.modules.setdefault(name, None)  # type: ignore[arg-type]
        import_jupyterlab_without_node()
    # Import the server before taking a port, so the port is free for as short a
    # time as possible; the same interpreter then runs it (no second start-up).
    from jupyterhub.singleuser import main as singleuser_main

    port = free_port()
    report_port(api_url, token, port)
    service_url = os.environ.get("JUPYTERHUB_SERVICE_URL")
    if service_url:
        os.environ["JUPYTERHUB_SERVICE_URL"] = with_port(service_url, port)
    else:
        args = [*args, f"--port={port}"]
    sys.argv = ["jupyterhub-singleuser", *args]
    sys.exit(singleuser_main())


if __name__ == "__main__":
    main()
