"""SciTeX Hub, hub side: the SLURM spawner, profiles, institutions and the shared queue watcher."""

from .spawner import SciTeXSpawner

__version__ = "0.1.0"
__all__ = ["SciTeXSpawner", "__version__"]
