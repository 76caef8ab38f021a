"""Pause Python's cyclic garbage collector while building many small objects that hold no cycles.

Loading records and building the dataset create millions of dicts and lists. Each allocation burst
triggers collections, and once hundreds of thousands of records exist, every full collection walks all
of them to find nothing (records and prompts hold no reference cycles). Measured on 500k jsonl lines
(2-core CPU, same process, alternating): ``load_records`` 6.1 s -> 4.4 s, ``build_grpo_dataset``
5.4 s -> 1.9 s. Reference counting still frees everything as usual.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Disable the cyclic collector inside the block; restore its previous state afterwards."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
