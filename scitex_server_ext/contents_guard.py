"""Saves through the contents API that respect the storage quota and never leave a half file.

One file: every write path below (save, chunk, checkpoint, copy) shares one protocol,
reserve, write to a temporary file, rename, commit or cancel, so they are read together.

:class:`QuotaContentsManager` is jupyter-server's default contents manager
(``AsyncLargeFileManager``) with its write paths replaced:

- Every save (file, notebook, upload, base64 or text) is checked first: when the
  growth it brings (new size minus the old file's allocated size, rounded to blocks)
  would take the tree past the limit, it is refused with HTTP 507 and nothing is written.
- Every write goes to a temporary file beside the target, is flushed and fsynced, and
  only then renamed over the target. A write that fails part-way (ENOSPC on a full
  filesystem, EDQUOT on a filesystem quota) leaves the old file as it was. (The stock
  writer truncates the target first and restores a backup only on some errors: an
  ENOSPC raised when the buffer is flushed leaves the file truncated.)
- Chunked uploads (``chunk`` 1, 2, ..., -1) are staged in a hidden file beside the target
  and renamed over it when the last chunk arrives; a refused or failed chunk removes the
  staged part, so the old file stays intact (stock appends to the target itself).
- The real target (symlinks resolved) must lie inside the server's root, with a trailing
  separator (see :mod:`scitex_server_ext.paths`).

Enabled by configuration (``jupyter_server_config.d``)::

    {"ServerApp": {"contents_manager_class":
        "scitex_server_ext.contents_guard.QuotaContentsManager"}}

The scitex extension then hands it the quota tracker. Without the extension the manager
still writes atomically, with no quota check.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import logging
import os
import secrets
import shutil
import stat
from collections.abc import Callable
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import IO, Any

import nbformat
from anyio.to_thread import run_sync
from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager
from tornado import web
from traitlets import Instance, default

from scitex_quota.scan import scan_tree

from .paths import UnsafePath, resolve_inside
from .quota.base import UsageUnavailable
from .quota.tracker import QuotaExceeded, QuotaTracker, Reservation

__all__ = ["QuotaContentsManager", "atomic_write", "attach_quota"]

_STAGING_SUFFIX = ".scitex-upload"


def atomic_write(target: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Replace ``target`` with what ``write`` writes, all or nothing.

    The data goes to a temporary file in the same directory (same filesystem, so the
    rename is atomic), is fsynced, gets the old file's permission bits, and is renamed
    over ``target``. On any error the temporary file is removed and ``target`` is
    untouched. Blocking: run it in a worker thread.
    """
    try:
        old_mode: int | None = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        old_mode = None
    # NAME_MAX is 255: keep room for the prefix and the random suffix.
    tmp = target.with_name(f".~{target.name[:200]}.{secrets.token_hex(4)}.tmp")
    # 0o666 is filtered by the umask, as for any new file the server creates.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
    try:
        with open(fd, "wb", closefd=True) as f:
            write(f)
            f.flush()
            # ENOSPC/EDQUOT may only show here on filesystems that allocate late.
            os.fsync(f.fileno())
        if old_mode is not None:
            os.chmod(tmp, old_mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _resolve_under(root_dir: str, os_path: str) -> Path:
    root = os.path.abspath(root_dir)
    relative = os.path.relpath(os.path.abspath(os_path), root)
    return resolve_inside(root, "" if relative == "." else relative)


def _allocated_on_disk(path: Path) -> int:
    """Allocated bytes of a regular file at ``path`` (0 when absent or not a file)."""
    try:
        st = os.lstat(path)
    except OSError:
        return 0
    return st.st_blocks * 512 if stat.S_ISREG(st.st_mode) else 0


def _staging_path(target: Path) -> Path:
    return target.with_name(f".~{target.name[:200]}{_STAGING_SUFFIX}")


def _append(staging: Path, data: bytes, fresh: bool) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    flags |= os.O_TRUNC if fresh else os.O_APPEND
    fd = os.open(staging, flags, 0o666)
    with open(fd, "wb", closefd=True) as f:
        f.write(data)


def _publish(staging: Path, target: Path) -> None:
    """Rename a complete staged upload over its target, as :func:`atomic_write` does."""
    fd = os.open(staging, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    with contextlib.suppress(FileNotFoundError):
        os.chmod(staging, stat.S_IMODE(os.stat(target).st_mode))
    os.replace(staging, target)


def _discard(path: Path) -> int:
    """Remove ``path`` if present; return the bytes it had allocated."""
    size = _allocated_on_disk(path)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    return size


def _decode(content: Any, format: str | None) -> bytes:
    if format not in {"text", "base64"}:
        raise web.HTTPError(400, "Must specify format of file contents as 'text' or 'base64'")
    try:
        if format == "text":
            return str(content).encode("utf-8")
        return base64.b64decode(str(content).encode("ascii"))
    except Exception as e:
        raise web.HTTPError(400, f"Encoding error saving file: {e}") from e


def _os_error(e: OSError) -> web.HTTPError:
    """An HTTP error for a failed write. Messages carry no paths (tornado %-formats them)."""
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        what = (
            "The filesystem quota is exhausted"
            if e.errno == errno.EDQUOT
            else "The filesystem is full"
        )
        return web.HTTPError(
            507,
            f"{what} ({os.strerror(e.errno)}). Nothing was written; the previous "
            "version of the file is intact.",
            reason="Insufficient Storage",
        )
    if e.errno in (errno.ENOENT, errno.ENOTDIR):
        return web.HTTPError(404, "No such directory", reason="Not Found")
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return web.HTTPError(
            403, f"Permission denied: {os.strerror(e.errno)}", reason="Permission denied"
        )
    detail = os.strerror(e.errno) if e.errno else type(e).__name__
    return web.HTTPError(500, f"Unexpected error while saving file: {detail}")


class QuotaContentsManager(AsyncLargeFileManager):
    """``AsyncLargeFileManager`` whose writes are quota-checked and atomic."""

    quota_tracker = Instance(
        QuotaTracker,
        allow_none=True,
        help="""The quota tracker of this server, set by the scitex extension when it
        loads. ``None``: saves are not checked against a quota (still atomic).""",
    )

    @default("delete_to_trash")
    def _default_delete_to_trash(self) -> bool:
        # A delete must free quota. jupyter-server's default sends files to a trash that
        # stays in the measured tree (in a container $HOME is /data; on the data mount
        # itself it is .Trash-<uid>), and fails the delete when $HOME is on another
        # filesystem. A site can still set FileContentsManager.delete_to_trash = True.
        return False

    # -- targets and reservations --------------------------------------------------

    async def _write_target(self, os_path: str) -> Path:
        """The real file a write to ``os_path`` lands in; 403 when that is outside the root."""
        try:
            # Resolving symlinks stats every component: off the event loop.
            return await run_sync(_resolve_under, self.root_dir, os_path)
        except UnsafePath as e:
            raise web.HTTPError(
                e.status, f"Refusing to write: {e.reason}", reason=e.reason
            ) from None

    def _tracker_for(self, target: Path) -> QuotaTracker | None:
        tracker = self.quota_tracker
        return tracker if tracker is not None and tracker.counts(target) else None

    async def _reserve(
        self,
        tracker: QuotaTracker | None,
        target: Path,
        delta: int,
        check: int | None = None,
        growth: int | None = None,
    ) -> Reservation | None:
        if tracker is None:
            return None
        try:
            return await tracker.reserve(target, delta, check=check, growth=growth)
        except QuotaExceeded as e:
            raise web.HTTPError(507, str(e), reason="Storage quota exceeded") from None
        except UsageUnavailable as e:
            raise web.HTTPError(
                503, f"{e}; save again in a moment", reason="Quota unknown"
            ) from None

    async def _replace(self, os_path: str, write: Callable[[IO[bytes]], object], size: int) -> None:
        target = await self._write_target(os_path)
        tracker = self._tracker_for(target)
        reservation: Reservation | None = None
        if tracker is not None:
            old = await run_sync(_allocated_on_disk, target)
            # allocated() stats the filesystem on its first call: off the event loop.
            new = await run_sync(tracker.allocated, size)
            reservation = await self._reserve(tracker, target, new - old)
        try:
            await run_sync(atomic_write, target, write)
        except BaseException as e:
            if reservation is not None:
                reservation.cancel()
            if isinstance(e, OSError):
                raise _os_error(e) from e
            raise
        if reservation is not None:
            reservation.commit()

    # -- whole-file saves (called by AsyncFileContentsManager.save) ----------------

    async def _save_file(self, os_path: str, content: Any, format: str | None) -> None:
        data = _decode(content, format)
        await self._replace(os_path, lambda f: f.write(data), len(data))

    async def _save_notebook(
        self, os_path: str, nb: Any, capture_validation_error: Any = None
    ) -> None:
        # Serialized first: the quota check needs the size before anything is written.
        text = await run_sync(
            partial(
                nbformat.writes,
                version=nbformat.NO_CONVERT,
                capture_validation_error=capture_validation_error,
            ),
            nb,
        )
        if not text.endswith("\n"):
            text += "\n"  # as nbformat.write does
        data = text.encode("utf-8")
        await self._replace(os_path, lambda f: f.write(data), len(data))

    # -- chunked uploads ------------------------------------------------------------

    async def save(self, model: dict[str, Any], path: str = "") -> dict[str, Any]:
        chunk = model.get("chunk")
        if chunk is None:
            return await super().save(model, path)
        if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk == 0 or chunk < -1:
            raise web.HTTPError(400, "chunk must be 1, 2, ... for parts and -1 for the last")
        return await self._save_chunk(model, path.strip("/"), chunk)

    async def _save_chunk(self, model: dict[str, Any], path: str, chunk: int) -> dict[str, Any]:
        if chunk == 1:
            self.run_pre_save_hooks(model=model, path=path)
        if "type" not in model:
            raise web.HTTPError(400, "No file type provided")
        if model["type"] != "file":
            raise web.HTTPError(
                400, f'File type "{model["type"]}" is not supported for large file transfer'
            )
        if "content" not in model:
            raise web.HTTPError(400, "No file content provided")
        os_path = self._get_os_path(path)
        target = await self._write_target(os_path)
        staging = _staging_path(target)
        data = _decode(model["content"], model.get("format"))
        tracker = self._tracker_for(target)

        if chunk == 1:
            # A stale part from an abandoned upload: its bytes leave the tree.
            removed = await run_sync(_discard, staging)
            if tracker is not None and removed:
                tracker.record(staging, -removed)
        elif not await run_sync(staging.exists):
            raise web.HTTPError(
                400,
                "No upload in progress for this file (its first chunk was refused or never "
                "arrived); upload it again",
            )

        reservation: Reservation | None = None
        old = 0
        try:
            if tracker is not None:
                staged_alloc = await run_sync(_allocated_on_disk, staging)
                staged_len = (await run_sync(os.lstat, staging)).st_size if chunk != 1 else 0
                old = await run_sync(_allocated_on_disk, target)
                after = await run_sync(tracker.allocated, staged_len + len(data))
                grow = after - staged_alloc
                # Checked as the final state: the staged file replaces the old one.
                reservation = await self._reserve(
                    tracker, target, grow, check=grow - old, growth=after - old
                )
            await run_sync(_append, staging, data, chunk == 1)
            if chunk == -1:
                await run_sync(_publish, staging, target)
        except BaseException as e:
            if reservation is not None:
                reservation.cancel()
            removed = await run_sync(_discard, staging)
            if tracker is not None and removed:
                tracker.record(staging, -removed)
            if isinstance(e, OSError):
                raise _os_error(e) from e
            raise
        if reservation is not None:
            reservation.commit()
        if tracker is not None and chunk == -1 and old:
            tracker.record(target, -old)

        if chunk == -1 or await run_sync(target.exists):
            result: dict[str, Any] = await self.get(path, content=False)
        else:
            result = await run_sync(_staged_model, path, staging)
        if chunk == -1:
            self.run_post_save_hooks(model=result, os_path=os_path)
        self.emit(data={"action": "save", "path": path})
        return result

    # -- checkpoints and directory copies -------------------------------------------

    def _checkpoint_file(self, checkpoint_id: str, path: str) -> Path | None:
        locate = getattr(self.checkpoints, "checkpoint_path", None)
        if locate is None:
            return None
        return Path(locate(checkpoint_id, path.strip("/")))

    async def create_checkpoint(self, path: str) -> dict[str, Any]:
        src = Path(await run_sync(os.path.realpath, self._get_os_path(path.strip("/"))))
        dest = self._checkpoint_file("checkpoint", path)
        tracker = self._tracker_for(src)
        reservation: Reservation | None = None
        if tracker is not None:
            delta = await run_sync(_allocated_on_disk, src)
            if dest is not None:
                delta -= await run_sync(_allocated_on_disk, dest)
            reservation = await self._reserve(tracker, src, delta)
        try:
            result: dict[str, Any] = await super().create_checkpoint(path)
        except BaseException:
            if reservation is not None:
                reservation.cancel()
            raise
        if reservation is not None:
            reservation.commit()
        return result

    async def restore_checkpoint(self, checkpoint_id: str, path: str) -> None:
        source = self._checkpoint_file(checkpoint_id, path)
        if source is None or not await run_sync(source.is_file):
            await super().restore_checkpoint(checkpoint_id, path)
            return
        size = (await run_sync(os.stat, source)).st_size

        def copy(f: IO[bytes]) -> None:
            with open(source, "rb") as src:
                shutil.copyfileobj(src, f)

        # Stock copies over the file in place; a full disk would leave it truncated.
        await self._replace(self._get_os_path(path.strip("/")), copy, size)

    async def _copy_dir(
        self, from_path: str, to_path_original: str, to_name: str, to_path: str
    ) -> dict[str, Any]:
        src = self._get_os_path(from_path.strip("/"))
        dest_dir = await self._write_target(self._get_os_path(to_path_original.strip("/")))
        dest = dest_dir / to_name
        tracker = self._tracker_for(dest)
        reservation: Reservation | None = None
        if tracker is not None:
            size = (await run_sync(partial(scan_tree, src, projects_dir=""))).used_bytes
            reservation = await self._reserve(tracker, dest, size)
        try:
            result: dict[str, Any] = await super()._copy_dir(
                from_path=from_path,
                to_path_original=to_path_original,
                to_name=to_name,
                to_path=to_path,
            )
        except BaseException:
            if reservation is not None:
                reservation.cancel()
            raise
        if reservation is not None:
            reservation.commit()
        return result


def _staged_model(path: str, staging: Path) -> dict[str, Any]:
    """The model of a file that exists so far only as a staged upload."""
    st = os.lstat(staging)
    stamp = datetime.fromtimestamp(st.st_mtime, tz=timezone.utc)
    return {
        "name": path.rsplit("/", 1)[-1],
        "path": path,
        "type": "file",
        "writable": True,
        "created": stamp,
        "last_modified": stamp,
        "mimetype": None,
        "content": None,
        "format": None,
        "size": st.st_size,
        "hash": None,
        "hash_algorithm": None,
    }


def attach_quota(contents_manager: object, tracker: QuotaTracker, log: logging.Logger) -> bool:
    """Hand ``tracker`` to the server's contents manager; warn when it cannot enforce."""
    if isinstance(contents_manager, QuotaContentsManager):
        contents_manager.quota_tracker = tracker
        return True
    log.warning(
        "Saves are NOT checked against the storage quota: ServerApp.contents_manager_class "
        "is %s.%s; set it to scitex_server_ext.contents_guard.QuotaContentsManager",
        type(contents_manager).__module__,
        type(contents_manager).__qualname__,
    )
    return False
