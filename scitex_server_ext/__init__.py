"""SciTeX notebook-side extension: session, quota, projects and compute jobs.

Runs inside each user's notebook server (in the container); it never imports
``scitex_spawner``, which runs in the hub.
"""

from .app import SciTeXExtension

__version__ = "0.1.0"


def _jupyter_server_extension_points() -> list[dict[str, object]]:
    return [{"module": "scitex_server_ext", "app": SciTeXExtension}]


__all__ = ["SciTeXExtension", "__version__"]
