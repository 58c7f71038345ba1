"""File work inside a tree someone else controls, without following their symlinks.

Root (the hub, its service) prepares and measures users' data directories. A user can
put a symbolic link wherever she can write, and swap a directory for one at any moment:
a path that root opens, chmods or chowns by name is followed through such a link to a
place outside her tree (``/``, another user's directory). So nothing here takes a path
below a trusted directory: each component is opened relative to its parent's descriptor
with ``O_NOFOLLOW | O_DIRECTORY``, and the work is done on descriptors (``fchown``,
``fchmod``, ``mkdir``/``openat`` with ``dir_fd``). A link (or a file) where a directory
is expected is refused with :class:`UnsafePath`, which names the place and what to do.

Used by both sides (the hub's spawner and service, and ``scitex_quota``, which the
notebook server imports too): standard library only.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat

__all__ = [
    "DIR_FLAGS",
    "UnsafePath",
    "components",
    "ensure_dir_at",
    "ensure_dirs_beneath",
    "make_user_tree",
    "open_beneath",
    "open_dir",
    "open_file_beneath",
    "open_file_in_tree",
    "open_subdir",
    "open_tree",
]

#: Flags for every directory opened below a trusted one.
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafePath(OSError):
    """A component of a user's tree is not the directory it must be.

    ``relative`` is the offending path relative to the tree's top (``.scitex/logs``);
    ``kind`` says what it is instead (``symbolic link``, ``file``, ...).
    """

    def __init__(self, relative: str, kind: str) -> None:
        self.relative = relative
        self.kind = kind
        super().__init__(errno.ELOOP, f"{relative or 'the data directory'} is a {kind}")

    def advice(self, host_top: str, shown_top: str | None = None) -> str:
        """What the user reads: where it is (as she sees it and on the cluster), what to do."""
        if not self.relative:
            return f"Your data directory {host_top} is a {self.kind}; ask your administrator."
        host = os.path.join(host_top, self.relative)
        where = os.path.join(shown_top, self.relative) if shown_top else host
        also = f" ({host} on the cluster)" if shown_top and shown_top != host_top else ""
        remove = f"rm {host}" if self.kind == "symbolic link" else f"mv {host} {host}.old"
        return (
            f"{where} in your data directory{also} is a {self.kind} where the hub needs a "
            f"directory; remove it ({remove}) and start again."
        )


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "symbolic link"
    if stat.S_ISREG(mode):
        return "file"
    return "special file"


def components(relative: str) -> list[str]:
    """The names of a relative path; refuses ``..``, ``.``, empty names and absolute paths."""
    if relative.startswith("/"):
        raise ValueError(f"{relative!r} must be relative")
    parts = relative.split("/")
    for part in parts:
        if part in ("", ".", "..") or "\0" in part:
            raise ValueError(f"{relative!r} has an empty, '.' or '..' component")
    return parts


def open_dir(path: str) -> int:
    """Open a trusted directory (one root created: ``<data_root>/<institution>``) by path."""
    return os.open(path, DIR_FLAGS & ~os.O_NOFOLLOW)


def open_subdir(dir_fd: int, name: str, relative: str = "") -> int:
    """Open ``name`` in ``dir_fd`` as a directory, never through a link.

    Raises :class:`UnsafePath` (``relative`` names it) when it is not a directory,
    FileNotFoundError when it is missing.
    """
    try:
        return os.open(name, DIR_FLAGS, dir_fd=dir_fd)
    except NotADirectoryError:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        raise UnsafePath(relative or name, _kind(st.st_mode)) from None
    except OSError as e:
        # Linux says ELOOP for a link under O_NOFOLLOW without O_DIRECTORY; be sure.
        if e.errno == errno.ELOOP:
            raise UnsafePath(relative or name, "symbolic link") from None
        raise


def open_beneath(dir_fd: int, relative: str) -> int:
    """Walk ``relative`` down from ``dir_fd``, a component at a time; the last one's fd."""
    parts = components(relative)
    fd = os.dup(dir_fd)
    try:
        for i, part in enumerate(parts):
            child = open_subdir(fd, part, "/".join(parts[: i + 1]))
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_file_beneath(dir_fd: int, relative: str, flags: int = os.O_RDONLY) -> int:
    """Open the file ``relative`` below ``dir_fd``: directories walked as in
    :func:`open_beneath`, the file itself with ``O_NOFOLLOW`` (and ``O_NONBLOCK``, so a
    FIFO planted there does not hang the reader)."""
    parts = components(relative)
    parent = open_beneath(dir_fd, "/".join(parts[:-1])) if len(parts) > 1 else os.dup(dir_fd)
    try:
        return os.open(
            parts[-1], flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=parent
        )
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise UnsafePath(relative, "symbolic link") from None
        raise
    finally:
        os.close(parent)


def ensure_dir_at(
    dir_fd: int, name: str, uid: int, gid: int, mode: int = 0o700, relative: str = ""
) -> int:
    """``name`` in ``dir_fd`` as a directory owned by ``uid:gid`` with ``mode``, created if
    missing; returns its open descriptor (the caller closes it).

    Created with ``mkdir(dir_fd=...)``, opened with ``O_NOFOLLOW | O_DIRECTORY`` and
    changed through the descriptor (``fchown``, ``fchmod``): a link or file there, planted
    before or swapped in between the steps, is refused with :class:`UnsafePath` and
    nothing it points to is touched.
    """
    components(name)
    with contextlib.suppress(FileExistsError):
        os.mkdir(name, mode, dir_fd=dir_fd)
    fd = open_subdir(dir_fd, name, relative or name)
    try:
        st = os.fstat(fd)
        if (st.st_uid, st.st_gid) != (uid, gid):
            os.fchown(fd, uid, gid)
        if stat.S_IMODE(st.st_mode) != mode:
            os.fchmod(fd, mode)
    except BaseException:
        os.close(fd)
        raise
    return fd


def ensure_dirs_beneath(top_fd: int, relative: str, uid: int, gid: int, mode: int = 0o700) -> None:
    """:func:`ensure_dir_at` for each level of ``relative`` below ``top_fd``, each level
    opened relative to the one above. A refused level stops the walk before anything
    below it; the levels above it, already made the user's, are inside her tree."""
    parts = components(relative)
    fd = os.dup(top_fd)
    try:
        for i, part in enumerate(parts):
            child = ensure_dir_at(fd, part, uid, gid, mode, "/".join(parts[: i + 1]))
            os.close(fd)
            fd = child
    finally:
        os.close(fd)


def make_user_tree(path: str, subdir: str, uid: int, gid: int, mode: int = 0o700) -> None:
    """A user's data directory ``path`` (``<data_root>/<institution>/<user>``) and
    ``subdir`` below it, every level a directory of ``uid:gid`` with ``mode``.

    The levels above ``path`` belong to root and are trusted (created by path, mode
    0755, when missing). ``path`` itself and every level of ``subdir`` are made with
    :func:`ensure_dir_at`, each relative to the one above. :class:`UnsafePath` names
    the refused level relative to ``path`` (``""``: ``path`` itself).
    """
    parent_path, name = os.path.split(path.rstrip("/"))
    os.makedirs(parent_path, mode=0o755, exist_ok=True)
    parent = open_dir(parent_path)
    try:
        top = ensure_dir_at(parent, name, uid, gid, mode)
    except UnsafePath as e:
        raise UnsafePath("", e.kind) from None
    finally:
        os.close(parent)
    try:
        if subdir:
            ensure_dirs_beneath(top, subdir, uid, gid, mode)
    finally:
        os.close(top)


def open_tree(top: str) -> int:
    """Open a user's tree ``top`` (``<data_root>/<inst>/<user>``): its parent is trusted
    (root's), ``top`` itself is opened with ``O_NOFOLLOW`` (``UnsafePath.relative == ""``)."""
    parent_path, name = os.path.split(top.rstrip("/"))
    parent = open_dir(parent_path)
    try:
        return open_subdir(parent, name, "")
    finally:
        os.close(parent)


def open_file_in_tree(top: str, relative: str, flags: int = os.O_RDONLY) -> int:
    """Open the file ``relative`` in a user's tree ``top`` (:func:`open_tree`), every level
    as in :func:`open_file_beneath`. ``UnsafePath.relative`` is relative to ``top``."""
    top_fd = open_tree(top)
    try:
        return open_file_beneath(top_fd, relative, flags)
    finally:
        os.close(top_fd)
