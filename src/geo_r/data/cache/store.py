"""The cache folder on disk: built once under a lock, committed by a rename, opened memory-mapped by every rank.

``<root>/grpo-<key>/`` holds ``rows.arrow``, ``texts.arrow`` and ``manifest.json``. A build writes into a fresh
``<root>/.grpo-<key>.tmp-XXXX/`` and renames it into place only when every file is written and synced, so an
interrupted build (a crash, a kill, a full disk) never leaves a folder a later run would use; the next builder,
holding the lock, deletes such leftovers. The lock is an exclusive ``flock`` on ``<root>/.grpo-<key>.lock``:
the first process of a node (or of a job, when ``root`` is on a shared file system that supports locks) builds,
the others block on the lock without any collective timeout, then open what it built. Processes that should not
build when they can avoid it (``prefer_builder=False``: every rank but each node's first) wait up to two minutes
for the lock file to appear before they compete for it. When the builder fails on bad data, it leaves
``.grpo-<key>.failed`` with the error, and processes that were waiting for it raise the same error at once
instead of repeating minutes of checks; a later run ignores a marker older than itself and tries again.
On a file system without locks (some Lustre or NFS mounts) each node's first process builds on its own and the
other processes poll for the finished folder; the first complete folder to be committed is the one every
process uses.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from geo_r.atomic_io import atomic_write, make_temp_dir, write_json_atomic

logger = logging.getLogger(__name__)

MANIFEST_FILE = "manifest.json"
_WAIT_FOR_BUILDER_S = 120.0


class CacheBuildFailed(RuntimeError):
    """Another process failed to build the cache this process was waiting for; the message is its error."""


def cache_folder(root: str | os.PathLike[str], key: str) -> Path:
    """Where the cache of ``key`` lives under ``root``."""
    return Path(root) / f"grpo-{key}"


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The manifest of a complete cache folder, else None."""
    try:
        return json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[bool]:
    """Hold an exclusive flock on ``path`` (True), or go on unlocked where the file system has no locks (False)."""
    import fcntl

    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.info("waiting for another process that is building the training-data cache (%s)", path)
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as exc:
            if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                raise
            logger.warning("%s: no file locks on this file system (%s); building without one", path, exc)
            yield False
            return
        yield True
    finally:
        os.close(fd)


def open_or_build(
    root: str | os.PathLike[str],
    key: str,
    build: Callable[[Path], dict[str, Any]],
    *,
    prefer_builder: bool = True,
    rebuild: bool = False,
) -> tuple[Path, dict[str, Any], bool]:
    """``(folder, manifest, built)``: the complete cache of ``key`` under ``root``, built by ``build(tmp_folder)``
    (which writes the data files and returns the manifest) when no complete one exists, or when ``rebuild``."""
    started = time.time()
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = cache_folder(root, key)
    if not rebuild and (manifest := read_manifest(final)) is not None:
        return final, manifest, False
    lock = root / f".grpo-{key}.lock"
    failed = root / f".grpo-{key}.failed"
    if rebuild and not prefer_builder:  # the builder rebuilds; wait for a cache newer than this process's start
        return _wait_for_cache(final, failed, started, newer=True)
    if not prefer_builder:
        deadline = time.monotonic() + _WAIT_FOR_BUILDER_S
        while time.monotonic() < deadline and not lock.exists() and read_manifest(final) is None:
            time.sleep(0.2)
    with _locked(lock) as locked:
        if not locked and not prefer_builder:  # no locks here: leave the building to each node's first process
            return _wait_for_cache(final, failed, started, newer=False)
        if failed.exists():
            if failed.stat().st_mtime >= started:
                raise CacheBuildFailed(failed.read_text(encoding="utf-8", errors="replace"))
            failed.unlink(missing_ok=True)
        manifest = read_manifest(final)
        if manifest is not None and (not rebuild or manifest.get("created_unix", 0) >= started):
            return final, manifest, False  # (a rebuild another node's first process just made counts)
        if locked:  # a builder that died left these: we hold its lock now (without locks one may be running)
            for leftover in root.glob(f".grpo-{key}.tmp-*"):
                logger.warning("removing an incomplete training-data cache left by an interrupted build: %s",
                               leftover)
                shutil.rmtree(leftover, ignore_errors=True)
        tmp = make_temp_dir(root, f".grpo-{key}.tmp-")
        try:
            manifest = {**build(tmp), "created_unix": time.time()}
            write_json_atomic(tmp / MANIFEST_FILE, manifest)
            _sync_folder(tmp)
            if final.exists() and not rebuild:  # another node's builder, without a lock, got there first
                shutil.rmtree(tmp, ignore_errors=True)
                return final, read_manifest(final) or manifest, True
            if final.exists():  # --rebuild_data_cache
                _remove(final)
            try:
                os.rename(tmp, final)
            except OSError:
                if read_manifest(final) is None:
                    raise
                shutil.rmtree(tmp, ignore_errors=True)  # a lock-less builder elsewhere committed the same data
                return final, read_manifest(final) or manifest, True
            _sync_dir(root)
        except Exception as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            with contextlib.suppress(OSError), atomic_write(failed) as fh:
                fh.write(str(exc))
            raise
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return final, manifest, True


def _wait_for_cache(final: Path, failed: Path, started: float, *, newer: bool) -> tuple[Path, dict[str, Any], bool]:
    """Poll until another process has built ``final`` (after ``started`` when ``newer``), or failed to."""
    while True:
        manifest = read_manifest(final)
        if manifest is not None and (not newer or manifest.get("created_unix", 0) >= started):
            return final, manifest, False
        if failed.exists() and failed.stat().st_mtime >= started:
            raise CacheBuildFailed(failed.read_text(encoding="utf-8", errors="replace"))
        time.sleep(0.5)


def prune_superseded(root: str | os.PathLike[str], key: str, lineage: str) -> list[Path]:
    """Delete the caches under ``root`` built from the same files and options as ``key`` but from older contents
    (same ``lineage``, another key), unless a process is building one now. Returns the folders removed."""
    import fcntl

    removed = []
    for folder in Path(root).glob("grpo-*"):
        manifest = read_manifest(folder)
        if manifest is None or manifest.get("lineage") != lineage or manifest.get("key") == key:
            continue
        lock = Path(root) / f".{folder.name}.lock"
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue
        try:
            _remove(folder)
            removed.append(folder)
        finally:
            os.close(fd)
        lock.unlink(missing_ok=True)
    return removed


def _remove(folder: Path) -> None:
    """Take ``folder`` out of use at once (a rename), then delete it."""
    trash = folder.with_name(f".{folder.name}.old-{os.getpid()}")
    os.rename(folder, trash)
    shutil.rmtree(trash, ignore_errors=True)


def _sync_folder(folder: Path) -> None:
    """fsync every file of ``folder`` and the folder itself, so the rename commits complete files."""
    for path in folder.iterdir():
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    _sync_dir(folder)


def _sync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
