"""Files written all at once or not at all: a temporary file beside the target, renamed over it on success.

Used for everything a reader (a resumed run, vLLM, LLaMA-Factory) may open while we write: metrics,
merged predictions, processor configs, SFT exports. A crash leaves the old file (or none), never half a file.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO


@contextmanager
def atomic_write(path: str | os.PathLike[str], *, fsync: bool = False) -> Iterator[TextIO]:
    """Yield a text file that replaces ``path`` when the block ends without an exception (else is removed)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
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
