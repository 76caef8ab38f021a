"""Files written all at once or not at all: a temporary file beside the target, renamed over it on success.

Used for everything a reader (a resumed run, vLLM, LLaMA-Factory) may open while we write: metrics,
merged predictions, processor configs, SFT exports. A crash leaves the old file (or none), never half a file.

``tempfile.mkstemp`` and ``mkdtemp`` create their files 0600 and folders 0700 whatever the umask, so a file renamed
into place would be unreadable to a team that shares results through group permissions. :func:`umask_mode`
gives back what ``open()`` / ``mkdir`` would have used, and every file and folder written here gets it.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO


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
def atomic_write(path: str | os.PathLike[str], *, fsync: bool = False) -> Iterator[TextIO]:
    """Yield a text file that replaces ``path`` when the block ends without an exception (else is removed).

    The file gets the mode a plain ``open(path, "w")`` would give it under the current umask."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, umask_mode())
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
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
