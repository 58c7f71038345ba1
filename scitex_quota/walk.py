"""The Python walk of a user's tree, from directory descriptors only.

Every directory is opened relative to its parent's descriptor with ``O_NOFOLLOW |
O_DIRECTORY`` (the rule for root in users' trees: see :mod:`scitex_safefs`), and its
entries are stat'ed relative to it (``fstatat``). No path is ever built, so there is no
``PATH_MAX`` limit: a tree nested deeper than 4096 bytes of path is counted like any
other. A directory swapped for a symlink during the walk is not followed: it counts as
an error, and a measurement with errors is *incomplete* (a lower bound), never silently
lower.

Descriptors: a walk keeps those of the directories on its current path open, at most
:data:`MAX_OPEN_DIRS` of them (plus the unit's own); going back up to a directory whose
descriptor was closed re-opens the chain from the nearest open one, name by name, and
checks each by device and inode, so a directory moved meanwhile is noticed (an error)
rather than walked in the wrong place.
"""

from __future__ import annotations

import errno
import os
import stat
import threading
from dataclasses import dataclass, field

from scitex_safefs import DIR_FLAGS

__all__ = ["MAX_OPEN_DIRS", "ScanCancelled", "Tally", "read_dir", "walk"]

#: Directory descriptors one walk holds at most on its current path.
MAX_OPEN_DIRS = 48

# Gone between listing and opening: deleted, not hidden; nothing to count.
_VANISHED = (errno.ENOENT,)


class ScanCancelled(Exception):
    """The walk was stopped through its cancel event."""


@dataclass
class Tally:
    blocks: int = 0
    files: int = 0
    errors: int = 0
    # Inodes with more than one link, counted once over the whole walk (as du does).
    linked: dict[tuple[int, int], int] = field(default_factory=dict)


def read_dir(fd: int, dev: int, tally: Tally) -> list[str]:
    """Count the entries of the open directory ``fd``; its subdirectories (same device)."""
    subdirs: list[str] = []
    with os.scandir(fd) as entries:
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError as e:
                if e.errno not in _VANISHED:
                    tally.errors += 1
                continue
            tally.files += 1
            if stat.S_ISDIR(st.st_mode):
                # Another filesystem mounted here is not charged (du -x).
                if st.st_dev != dev:
                    continue
                tally.blocks += st.st_blocks
                subdirs.append(entry.name)
            elif st.st_nlink > 1:
                tally.linked[(st.st_dev, st.st_ino)] = st.st_blocks
            else:
                tally.blocks += st.st_blocks
    return subdirs


@dataclass
class _Frame:
    name: str
    ident: tuple[int, int]
    pending: list[str]
    fd: int  # -1 while closed


def _open_child(parent_fd: int, name: str, tally: Tally) -> int | None:
    try:
        return os.open(name, DIR_FLAGS, dir_fd=parent_fd)
    except OSError as e:
        # ENOTDIR/ELOOP: swapped for a link or a file since it was listed.
        if e.errno not in _VANISHED:
            tally.errors += 1
        return None


class _Walk:
    def __init__(self, dev: int, cancel: threading.Event | None) -> None:
        self.dev = dev
        self.cancel = cancel
        self.tally = Tally()
        self.frames: list[_Frame] = []
        # frames[0] and frames[low:] have open descriptors; frames[1:low] are closed.
        self.low = 1

    def enter(self, fd: int, name: str) -> None:
        st = os.fstat(fd)
        try:
            pending = read_dir(fd, self.dev, self.tally)
        except OSError:
            self.tally.errors += 1
            pending = []
        self.frames.append(_Frame(name, (st.st_dev, st.st_ino), pending, fd))
        self.trim()

    def trim(self) -> None:
        while len(self.frames) - self.low > MAX_OPEN_DIRS:
            frame = self.frames[self.low]
            os.close(frame.fd)
            frame.fd = -1
            self.low += 1

    def reopen(self) -> None:
        """Open the closed chain ``frames[1:]`` again from ``frames[0]``, name by name."""
        frames = self.frames
        keep_from = max(1, len(frames) - MAX_OPEN_DIRS)
        for j in range(1, len(frames)):
            parent = frames[j - 1]
            fd = _open_child(parent.fd, frames[j].name, self.tally)
            if fd is not None:
                st = os.fstat(fd)
                if (st.st_dev, st.st_ino) != frames[j].ident:
                    # Moved or replaced while we were below it: what is there now is
                    # not the directory whose entries are pending.
                    os.close(fd)
                    fd = None
                    self.tally.errors += 1
            if j - 1 >= 1 and j - 1 < keep_from:
                os.close(parent.fd)
                parent.fd = -1
            if fd is None:
                # Its pending entries (and those of the frames below it) are lost.
                for frame in frames[j:]:
                    if frame.fd >= 0:
                        os.close(frame.fd)
                del frames[j:]
                break
            frames[j].fd = fd
        self.low = 1
        while self.low < len(frames) and frames[self.low].fd < 0:
            self.low += 1
        self.trim()

    def run(self, parent_fd: int, name: str) -> Tally:
        fd = _open_child(parent_fd, name, self.tally)
        if fd is None:
            return self.tally
        try:
            self.enter(fd, name)
            while self.frames:
                if self.cancel is not None and self.cancel.is_set():
                    raise ScanCancelled(name)
                top = self.frames[-1]
                if top.pending:
                    child_name = top.pending.pop()
                    child = _open_child(top.fd, child_name, self.tally)
                    if child is not None:
                        if os.fstat(child).st_dev != self.dev:
                            os.close(child)  # mounted since it was listed
                        else:
                            self.enter(child, child_name)
                    continue
                self.frames.pop()
                os.close(top.fd)
                self.low = min(self.low, max(1, len(self.frames)))
                if len(self.frames) > 1 and self.frames[-1].fd < 0:
                    self.reopen()
        finally:
            for frame in self.frames:
                if frame.fd >= 0:
                    os.close(frame.fd)
            self.frames = []
        return self.tally


def walk(parent_fd: int, name: str, dev: int, cancel: threading.Event | None = None) -> Tally:
    """Blocks below ``name`` in ``parent_fd`` (not the directory's own), on device ``dev``."""
    return _Walk(dev, cancel).run(parent_fd, name)
