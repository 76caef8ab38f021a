"""Files written safely: all at once or not at all, or appended line by line so that a kill loses nothing written.

:func:`atomic_write` writes a temporary file beside the target and renames it over the target on success:
for everything a reader (a resumed run, vLLM, LLaMA-Factory) may open while we write (metrics, merged
predictions, processor configs, SFT exports, index shards). A crash leaves the old file (or none), never half
a file. :class:`JsonlAppender` appends JSON lines batch by batch, flushed and fsynced (eval's predictions,
retrieve's neighbours): a rerun cuts a half-written last line (:func:`cut_partial_line`) and continues.

``tempfile.mkstemp`` and ``mkdtemp`` create their files 0600 and folders 0700 whatever the umask, so a file renamed
into place would be unreadable to a team that shares results through group permissions. :func:`umask_mode`
gives back what ``open()`` / ``mkdir`` would have used, and every file and folder written here gets it.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


def current_umask() -> int:
    """This process's umask, read from ``/proc/self/status`` (no race), else by setting and restoring it."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # the fallback: not thread-safe for a moment, but only off Linux
    os.umask(mask)
    return mask


def umask_mode(directory: bool = False) -> int:
    """The mode ``open()`` (0666) or ``mkdir`` (0777) would give a new file or folder under the current umask."""
    return (0o777 if directory else 0o666) & ~current_umask()


def make_temp_dir(parent: str | os.PathLike[str], prefix: str) -> Path:
    """A new folder in ``parent`` (created if needed), with the mode a plain ``mkdir`` would give it."""
    Path(parent).mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(dir=parent, prefix=prefix))
    os.chmod(path, umask_mode(directory=True))
    return path


@contextmanager
def atomic_write(path: str | os.PathLike[str], *, fsync: bool = False, binary: bool = False) -> Iterator[IO[Any]]:
    """Yield a file (text, or bytes with ``binary``) that replaces ``path`` when the block ends without an
    exception (else is removed); ``fsync`` makes the content durable before the rename. The file gets the mode
    a plain ``open(path, "w")`` would give it under the current umask."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, umask_mode())
        with os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8") as fh:
            yield fh
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: str | os.PathLike[str], data: Any, **dumps_kwargs: Any) -> Path:
    """``json.dumps(data, indent=2, ensure_ascii=False, **dumps_kwargs)`` + newline, written atomically."""
    dumps_kwargs = {"indent": 2, "ensure_ascii": False, **dumps_kwargs}
    with atomic_write(path) as fh:
        fh.write(json.dumps(data, **dumps_kwargs) + "\n")
    return Path(path)


def cut_partial_line(path: str | os.PathLike[str]) -> int:
    """Cut a partial last line (no trailing newline: a write interrupted by a kill) off ``path``; returns the
    number of bytes removed (0 when the file is missing, empty or ends with a newline). Reads only the tail."""
    p = Path(path)
    if not p.is_file():
        return 0
    with open(p, "rb+") as fh:
        size = fh.seek(0, os.SEEK_END)
        if size == 0:
            return 0
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            return 0
        block = 1 << 16
        pos = size
        keep = 0
        while pos > 0:
            start = max(0, pos - block)
            fh.seek(start)
            chunk = fh.read(pos - start)
            idx = chunk.rfind(b"\n")
            if idx >= 0:
                keep = start + idx + 1
                break
            pos = start
        fh.truncate(keep)
    return size - keep


class JsonlAppender:
    """Append JSON lines to a file durably, one batch at a time (a context manager). Opening it cuts a partial
    last line left by a kill (:func:`cut_partial_line`; :attr:`cut_bytes` says how much), so no line is ever
    glued to a broken one."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.cut_bytes = cut_partial_line(self.path)
        self._fh = open(self.path, "a", encoding="utf-8")

    def append(self, lines: Iterable[Mapping[str, Any]]) -> int:
        """Write the lines, then flush and fsync, so they survive a kill; returns how many were written."""
        text = "".join(json.dumps(dict(line), ensure_ascii=False, allow_nan=False) + "\n" for line in lines)
        if not text:
            return 0
        self._fh.write(text)
        self._fh.flush()
        os.fsync(self._fh.fileno())
        return text.count("\n")

    def close(self) -> None:
        """Close the file."""
        self._fh.close()

    def __enter__(self) -> JsonlAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
