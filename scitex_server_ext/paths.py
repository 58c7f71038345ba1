"""Safe paths: every path a handler takes is resolved and checked to lie inside the user's root.

jupyter-server's CVE-2026-35397 compared ``path.startswith(root)`` without a trailing
separator, so ``/data/alice2`` passed as inside ``/data/alice``. Here the comparison is
always made against ``root + os.sep`` after both sides are resolved (symlinks included).

Callers turn :class:`UnsafePath` into their own error with its ``status``: the projects
manager into a ``ProjectError`` (answered by ``handlers/base.py``), the contents manager
(``contents_guard``) into tornado's ``HTTPError``, which jupyter-server's contents API answers.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["UnsafePath", "is_inside", "resolve_inside"]


class UnsafePath(ValueError):
    """A path that is malformed or leads outside the user's root.

    ``status`` is the HTTP status a handler should answer with: 404 for paths that cannot
    name anything inside the root (NUL bytes, absolute paths), 403 for paths that resolve
    outside it (``..``, a sibling directory, a symlink out of the tree).
    """

    def __init__(self, reason: str, *, status: int = 403) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


def is_inside(root: str | os.PathLike[str], candidate: str | os.PathLike[str]) -> bool:
    """Whether ``candidate`` is ``root`` itself or below it (both already resolved).

    The comparison is on whole path components: ``/data/alice2`` is not inside ``/data/alice``.
    """
    root_s = os.fspath(root)
    cand_s = os.fspath(candidate)
    if cand_s == root_s:
        return True
    # rstrip keeps "/" as a root working: "/" + sep would be "//".
    prefix = root_s.rstrip(os.sep) + os.sep
    return cand_s.startswith(prefix)


def resolve_inside(root: str | os.PathLike[str], relative: str) -> Path:
    """Resolve ``relative`` under ``root`` and return the real absolute path.

    Symlinks are resolved in every component, including a final component that does not
    exist yet (its parent is resolved, the name is kept). An empty ``relative`` names the
    root itself. Raises :class:`UnsafePath` for NUL bytes, absolute paths and anything
    whose resolved location is not ``root`` or below ``root + os.sep``.

    ``relative`` is taken literally: URL decoding is the web framework's job, so
    ``"%2e%2e"`` is a file name here, while a decoded ``".."`` is refused when it climbs
    out of the root.
    """
    if "\0" in relative:
        raise UnsafePath("path contains a NUL byte", status=404)
    if os.path.isabs(relative):
        raise UnsafePath(
            "absolute paths are not accepted; give a path relative to your root", status=404
        )
    root_real = os.path.realpath(os.fspath(root))
    # realpath applies ".." after resolving the symlink before it, as the kernel does.
    target = os.path.realpath(os.path.join(root_real, relative))
    if not is_inside(root_real, target):
        raise UnsafePath("path leads outside your data directory")
    return Path(target)
