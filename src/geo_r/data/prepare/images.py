"""Find each row's image in the image folder, so rows without one are skipped here and not at training time.

Only existence is checked (one ``stat`` per row; opening millions of images is ``geo-r validate``'s job).
A name is tried as written, then with ``/`` replaced by ``_`` where the format stores flattened names
(MP16-Pro's tar shards). A name that is still missing is then looked up by file name anywhere under the
folder (the default; ``search=False`` turns it off), because the datasets' documented layouts nest images:
OSV-5M's shards unzip in place into ``images/test/00/<id>.jpg``, ``01/...``; Im2GPS3k and YFCC4k unzip into
one folder (``im2gps3ktest/``, ``yfcc4k/``) that ``--images`` may name or contain. The folder is walked once,
on the first miss (about 150 bytes of memory per file). A file name found in two folders is left out of the
index (which one a row means is unknowable); such names are counted and reported with their folders.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path


class ImageResolver:
    """``resolve(name)`` -> the path to write (relative to the folder, POSIX), or None when it is missing."""

    def __init__(self, folder: Path | None, *, flatten_slashes: bool = False, search: bool = True) -> None:
        self.folder = Path(os.path.abspath(folder)) if folder is not None else None
        self.flatten_slashes = flatten_slashes
        self.search = search
        self._index: dict[str, str] | None = None
        self._ambiguous: dict[str, list[str]] = {}  # file name -> every relative path that has it
        self.counts: Counter[str] = Counter()  # "as_written", "flattened", "searched", "missing", "ambiguous"

    @property
    def checking(self) -> bool:
        """Whether images are checked at all (an image folder was given)."""
        return self.folder is not None

    def resolve(self, name: str) -> str | None:
        """The found path for ``name``; ``name`` itself when no folder is checked."""
        if self.folder is None:
            return name
        if (self.folder / name).is_file():
            self.counts["as_written"] += 1
            return name
        if self.flatten_slashes and "/" in name:
            flat = name.replace("/", "_")
            if (self.folder / flat).is_file():
                self.counts["flattened"] += 1
                return flat
        if self.search:
            base = os.path.basename(name)
            hit = self._lookup().get(base)
            if hit is None and self.flatten_slashes:
                hit = self._lookup().get(name.replace("/", "_"))
            if hit is not None:
                self.counts["searched"] += 1
                return hit
            if base in self._ambiguous or name.replace("/", "_") in self._ambiguous:
                self.counts["ambiguous"] += 1
        self.counts["missing"] += 1
        return None

    @property
    def duplicates(self) -> dict[str, list[str]]:
        """File names found in more than one folder of the walked tree -> their relative paths (walk order)."""
        return self._ambiguous

    def _lookup(self) -> dict[str, str]:
        """File name -> relative path of every file under the folder (names found twice are left out)."""
        if self._index is None:
            assert self.folder is not None
            index: dict[str, str] = {}
            for folder, dirs, files in os.walk(self.folder):
                dirs.sort()
                rel = os.path.relpath(folder, self.folder)
                for name in sorted(files):
                    path = name if rel == "." else f"{Path(rel).as_posix()}/{name}"
                    if name in self._ambiguous:
                        self._ambiguous[name].append(path)
                    elif name in index:
                        self._ambiguous[name] = [index.pop(name), path]
                    else:
                        index[name] = path
            self._index = index
        return self._index
