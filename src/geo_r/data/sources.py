"""Pair ``--data_file_paths`` with ``--image_folders`` (colon-separated, as in VLM-R1) and check both exist.

Rules (VLM-R1 compatible where VLM-R1 defines them):

* one image folder per data file, paired by position: ``a.jsonl:b.jsonl`` with ``imgs_a/:imgs_b/``;
* a single image folder serves every data file (``a.jsonl:b.jsonl`` with ``imgs/``);
* an empty folder (``""``, or an empty item such as ``imgs_a/:``) means "the directory of the data file",
  so a dataset folder holding ``train.jsonl`` and ``images/`` works without naming it twice (VLM-R1 joins
  an empty folder onto the working directory instead);
* any other count of folders is an error, as is a data file or image folder that does not exist.

Relative folders are taken from the working directory; image paths that are absolute in a record are
used as they are. Lists of strings are accepted too, for paths that contain a colon.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from geo_r.data.report import DataConfigError


@dataclass(frozen=True, slots=True)
class DataSource:
    """One data file and the absolute folder its image paths are relative to."""

    data_file: str  # as the user wrote it (used in messages)
    path: str  # absolute
    image_folder: str  # absolute


def split_paths(value: str | Sequence[str] | None) -> list[str]:
    """``"a:b"`` -> ``["a", "b"]``; a list is returned as a list; None -> ``[]``."""
    if value is None:
        return []
    if isinstance(value, str):
        return value.split(":")
    return [str(v) for v in value]


def pair_sources(
    data_file_paths: str | Sequence[str], image_folders: str | Sequence[str] | None = None
) -> list[DataSource]:
    """The data files with their image folders, or one :class:`DataConfigError` listing every problem."""
    files = split_paths(data_file_paths)
    folders = split_paths(image_folders) or [""]
    errors: list[str] = []
    if not files or any(not f.strip() for f in files):
        raise DataConfigError(
            f"data_file_paths {data_file_paths!r} holds an empty path (colon-separated list)"
        )
    if len(folders) == 1:
        folders = folders * len(files)
    elif len(folders) != len(files):
        raise DataConfigError(
            f"{len(files)} data file(s) but {len(folders)} image folder(s): give one image folder per data "
            "file (colon-separated, in the same order) or a single folder for all of them "
            f"(data_file_paths={':'.join(files)!r}, image_folders={':'.join(folders)!r})"
        )
    sources = []
    for data_file, folder in zip(files, folders, strict=True):
        path = os.path.abspath(data_file)
        if not os.path.isfile(path):
            errors.append(f"data file not found: {data_file}")
        if folder.strip():
            image_folder = os.path.abspath(folder)
            if not os.path.isdir(image_folder):
                errors.append(f"image folder not found: {folder} (paired with {data_file})")
        else:
            image_folder = os.path.dirname(path)
        sources.append(DataSource(data_file=data_file, path=path, image_folder=image_folder))
    if errors:
        raise DataConfigError("; ".join(errors))
    return sources
