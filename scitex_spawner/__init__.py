"""SciTeX Hub's spawner side: the SLURM spawner, its port callback, options form and spawn
records, and the authenticators' institution mapping.

Importing the package imports nothing heavy (no JupyterHub, no batchspawner):
``SciTeXSpawner`` loads on first use. JupyterHub finds it through the entry point
``scitex = "scitex_spawner.spawner:SciTeXSpawner"``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .spawner import SciTeXSpawner

__version__ = "0.1.0"
__all__ = ["SciTeXSpawner", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "SciTeXSpawner":
        from .spawner import SciTeXSpawner

        return SciTeXSpawner
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
