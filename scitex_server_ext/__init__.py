"""SciTeX notebook-side extension: session, quota, projects and compute jobs.

Runs inside each user's notebook server (in the container); it never imports
``scitex_spawner``, which runs in the hub.

Imports are lazy: ``python -m scitex_server_ext.singleuser`` starts every
notebook job and must not pay for importing jupyter_server twice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import SciTeXExtension

__version__ = "0.1.0"


def _jupyter_server_extension_points() -> list[dict[str, object]]:
    from .app import SciTeXExtension

    return [{"module": "scitex_server_ext", "app": SciTeXExtension}]


def __getattr__(name: str) -> Any:
    if name == "SciTeXExtension":
        from .app import SciTeXExtension

        return SciTeXExtension
    raise AttributeError(name)


__all__ = ["SciTeXExtension", "__version__"]
