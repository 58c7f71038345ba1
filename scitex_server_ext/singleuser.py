"""Entry point of the notebook server inside a SLURM job.

The server binds and listens on its port first, then reports that port to the
hub's port callback with this server's own token, and serves on the very socket
it reported (:mod:`.server_app`): no other process on the node can take the port
between the report and the server. The token travels in the environment and an
HTTP header, never on a command line.
"""

from __future__ import annotations

import errno
import importlib.util
import json
import os
import random
import re
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from urllib.parse import urlparse, urlunparse

CALLBACK_PATH = "scitex/port"
_PORT_RANGE_RE = re.compile(r"^(\d{1,5})(?:-(\d{1,5}))?\Z")


def parse_port_range(text: str) -> tuple[int, int] | None:
    """``"LOW-HIGH"`` (or one port) -> ``(LOW, HIGH)``; ``""`` -> None (any port)."""
    text = text.strip()
    if not text:
        return None
    match = _PORT_RANGE_RE.match(text)
    if not match:
        raise ValueError(f"server_ports must look like 40000-40999, got {text!r}")
    low = int(match.group(1))
    high = int(match.group(2) or low)
    if not 1 <= low <= high <= 65535:
        raise ValueError(f"server_ports {text!r} is not a range of ports 1-65535 (LOW-HIGH)")
    return low, high


def _bind(port: int, ip: str) -> list[socket.socket]:
    from tornado.netutil import bind_sockets

    # bind_sockets listens at once; for "" (all interfaces) it binds IPv4 and IPv6,
    # the second on the port the first got.
    return bind_sockets(port, ip or None)


def listen_on_free_port(ip: str, ports: tuple[int, int] | None) -> list[socket.socket]:
    """Sockets already *listening* on one free port of ``ports`` (any port if None).

    Ports of the range are tried from a random one on, so servers starting together
    on a node rarely try the same one; a port someone else holds is skipped.
    """
    if ports is None:
        candidates = [0] * 5  # the OS picks; retried only if IPv6 finds it taken
    else:
        low, high = ports
        start = random.randint(low, high)  # noqa: S311 - spreading load, not a secret
        candidates = [*range(start, high + 1), *range(low, start)]
    for port in candidates:
        try:
            return _bind(port, ip)
        except OSError as e:
            if e.errno in (errno.EADDRINUSE, errno.EACCES):
                continue
            raise
    where = ip or "all interfaces"
    wanted = "" if ports is None else f" in {ports[0]}-{ports[1]}"
    raise OSError(errno.EADDRINUSE, f"cannot listen: no free port{wanted} on {where} (all taken)")


def report_listening(api_url: str, token: str, sockets: Sequence[socket.socket]) -> int:
    """Report the port of ``sockets`` to the hub; they must be listening already.

    Takes sockets, not a number: this server can only report a port it holds.
    """
    if not sockets:
        raise ValueError("no listening socket to report")
    ports = set()
    for sock in sockets:
        if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
            raise ValueError(f"socket {sock.getsockname()} is not listening; not reporting it")
        ports.add(int(sock.getsockname()[1]))
    if len(ports) != 1:
        raise ValueError(f"the listening sockets are on several ports {sorted(ports)}")
    [port] = ports
    _post_port(api_url, token, port)
    return port


def _post_port(api_url: str, token: str, port: int, attempts: int = 10) -> None:
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
        except Exception:  # noqa: S110, BLE001
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
    from .server_app import main as server_main

    # The server binds its port, reports it (SciTeXServerApp) and serves on it.
    sys.argv = ["jupyterhub-singleuser", *args]
    sys.exit(server_main())


if __name__ == "__main__":
    main()
