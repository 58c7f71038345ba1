"""The notebook server's app: it listens before it tells the hub its port.

Stock start-up picks a port (bind, close), and binds it again later. On a node
shared by several users another user's process can take the port in between,
and the hub, told that port, would route ``/user/<name>/`` to that process on
the hub's own origin. Here the listening socket is bound (and listening) first,
then its port is reported to the hub, and the server serves on that very socket.

:class:`SciTeXServerApp` is jupyter_server's ``ServerApp`` with its two port hooks
overridden; :class:`SciTeXSingleUser` starts JupyterHub's single-user extension on
it (``ExtensionApp.serverapp_class``, the supported way to choose the server class).
"""

from __future__ import annotations

import os
import socket
from typing import Any

from jupyter_server.serverapp import ServerApp
from jupyterhub.singleuser.extension import JupyterHubSingleUser
from traitlets import Unicode, validate

from .singleuser import listen_on_free_port, parse_port_range, report_listening, with_port


class SciTeXServerApp(ServerApp):
    """A ``ServerApp`` that serves on a socket it bound before reporting its port."""

    server_ports = Unicode(
        "",
        help="""Ports this notebook server may listen on, as ``LOW-HIGH`` (both included).

        Empty: any free port the operating system gives. A site whose firewall lets
        the hub reach compute nodes only on some ports names them here (through
        ``notebook.args``: ``--SciTeXServerApp.server_ports=40000-40999``). The
        server binds a free port of the range, listens, and only then reports it
        to the hub; with every port of the range taken it exits with an error.""",
        config=True,
    )

    @validate("server_ports")
    def _check_server_ports(self, proposal: Any) -> str:
        value = str(proposal["value"]).strip()
        parse_port_range(value)  # raises ValueError with the reason
        return value

    listening: list[socket.socket]

    def _find_http_port(self) -> None:
        """Bind and listen first, then report the port to the hub (never the reverse)."""
        token = os.environ.get("JUPYTERHUB_API_TOKEN", "")
        api_url = os.environ.get("JUPYTERHUB_API_URL", "")
        try:
            self.listening = listen_on_free_port(self.ip, parse_port_range(self.server_ports))
        except OSError as e:
            self.log.critical("scitex-singleuser: %s", e)
            self.exit(1)
        self.port = int(self.listening[0].getsockname()[1])
        service_url = os.environ.get("JUPYTERHUB_SERVICE_URL")
        if service_url:
            # For the server's own children (terminals, kernels) that read it.
            os.environ["JUPYTERHUB_SERVICE_URL"] = with_port(service_url, self.port)
        # Raises SystemExit (with the reason) if the hub refuses or cannot be reached.
        report_listening(api_url, token, self.listening)

    def _bind_http_server_tcp(self) -> bool:
        """Serve on the sockets already listening (the reported port), bind nothing new."""
        self.http_server.add_sockets(self.listening)
        return True


class SciTeXSingleUser(JupyterHubSingleUser):
    """JupyterHub's single-user extension, started on :class:`SciTeXServerApp`.

    Only a launcher: the extension the server loads is JupyterHub's own (this class
    names JupyterHub's package as its extension package), so JupyterHub's
    authentication and config handling are unchanged.
    """

    serverapp_class = SciTeXServerApp

    @classmethod
    def get_extension_package(cls) -> str:
        return "jupyterhub"


main = SciTeXSingleUser.launch_instance
