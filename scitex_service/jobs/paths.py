"""Where a compute job's script is, checked by the service (which may run as root)
without following any link of the user's.

The project must be the real directory ``<data_dir>/<projects_dir>/<project>`` and the
script a regular file below it: the job binds that directory and runs that path, so
both must mean what was checked. Every level is opened from the user's data directory
with ``O_NOFOLLOW`` (:mod:`scitex_safefs`): root never stats through a link she planted,
nor through one swapped in while it looks.
"""

from __future__ import annotations

import contextlib
import os
import stat

import scitex_safefs as safefs

__all__ = ["locate_script"]


def _link_hint(parent_fd: int, name: str, script: str, project_path: str) -> str:
    """What the message says about a script that is a symlink (its text only, not followed)."""
    target = os.readlink(name, dir_fd=parent_fd)
    if os.path.isabs(target):
        inside = target.startswith(project_path + "/")
        lexical = os.path.relpath(target, project_path) if inside else "../"
    else:
        lexical = os.path.normpath(os.path.join(os.path.dirname(script), target))
    if lexical.startswith("../") or lexical == "..":
        return f"The script {script!r} leads outside the project"
    return f"The script {script!r} is a symlink; give the file's own path ({lexical})"


def locate_script(data_dir: str, projects_dir: str, project: str, script: str, user: str) -> None:
    """Raise ValueError (the message for the user) unless ``script`` is a regular file in
    the real project directory. Blocking."""
    project_rel = f"{projects_dir}/{project}"
    with contextlib.ExitStack() as stack:
        try:
            top = safefs.open_tree(data_dir)
            stack.callback(os.close, top)
            project_fd = safefs.open_beneath(top, project_rel)
        except FileNotFoundError:
            raise ValueError(f"{user} has no project {project!r}") from None
        except safefs.UnsafePath as e:
            why = f" ({e.relative} is a {e.kind})" if e.relative else ""
            raise ValueError(f"{user} has no project {project!r}{why}") from None
        stack.callback(os.close, project_fd)
        parts = safefs.components(script)
        try:
            parent = (
                safefs.open_beneath(project_fd, "/".join(parts[:-1]))
                if len(parts) > 1
                else os.dup(project_fd)
            )
        except FileNotFoundError:
            raise ValueError(f"No file {script!r} in project {project!r}") from None
        except safefs.UnsafePath as e:
            raise ValueError(
                f"The script {script!r} leads through {e.relative}, a {e.kind}; give the "
                "file's own path"
            ) from None
        stack.callback(os.close, parent)
        try:
            st = os.stat(parts[-1], dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            raise ValueError(f"No file {script!r} in project {project!r}") from None
        if stat.S_ISLNK(st.st_mode):
            path = os.path.join(data_dir, project_rel)
            raise ValueError(_link_hint(parent, parts[-1], script, path))
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(f"No file {script!r} in project {project!r}")
