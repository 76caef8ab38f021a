"""Shared pytest fixtures: an offline tiny Qwen-VL checkpoint and deterministic test images.

The environment is pinned before anything imports huggingface_hub / tokenizers: no hub access, one
OpenMP thread (the machine has 2 shared cores and the matrices are tiny), no tokenizer threads.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

from collections.abc import Callable, Sequence  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from zero3_cpu import zero3_on_cpu  # noqa: E402, F401  (the fixture ZeRO-3 tests use: skip, or fail in CI, without g++)

ImageMaker = Callable[..., list[Path]]


@pytest.fixture(scope="session")
def tiny_model_builder(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``build(family="qwen2_5_vl", size="tiny", seed=0) -> Path``, built once per session per argument set.

    Folders are named ``tiny-<family>-...`` under pytest's tmp dir: no "Qwen2.5-VL"-style text that
    could let path-sniffing code pass by accident.
    """
    from geo_r.demo.tiny_model import build_tiny_model

    cache: dict[tuple[str, str, int], Path] = {}

    def build(family: str = "qwen2_5_vl", size: str = "tiny", seed: int = 0) -> Path:
        key = (family, size, seed)
        if key not in cache:
            folder = tmp_path_factory.mktemp(f"ckpt-{family.replace('qwen', 'fam')}-{size}-{seed}")
            cache[key] = build_tiny_model(folder, family=family, size=size, seed=seed)
        return cache[key]

    return build


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_model_builder: Callable[..., Path]) -> Path:
    """The default tiny checkpoint: Qwen2.5-VL family, ``tiny`` size, seed 0."""
    return tiny_model_builder("qwen2_5_vl")


def _write_images(
    directory: str | os.PathLike, n: int, sizes: Sequence[tuple[int, int]] = ((84, 70),)
) -> list[Path]:
    import numpy as np
    from PIL import Image

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        width, height = sizes[i % len(sizes)]
        rng = np.random.RandomState(i)
        # sky/ground gradient plus a few rectangles: JPEG-friendly, different per index, same every run
        pixels = np.zeros((height, width, 3), dtype=np.uint8)
        pixels[..., 0] = np.linspace(40, 200, height, dtype=np.uint8)[:, None]
        pixels[..., 1] = np.linspace(80, 160, width, dtype=np.uint8)[None, :]
        pixels[..., 2] = (i * 37) % 256
        for _ in range(3):
            y0, x0 = rng.randint(0, max(1, height - 8)), rng.randint(0, max(1, width - 8))
            pixels[y0 : y0 + rng.randint(4, 20), x0 : x0 + rng.randint(4, 20)] = rng.randint(0, 256, 3)
        path = out / f"{i:03d}.jpg"
        Image.fromarray(pixels).save(path, format="JPEG", quality=90)
        paths.append(path)
    return paths


@pytest.fixture(scope="session")
def make_images() -> ImageMaker:
    """``make_images(dir, n, sizes=((84, 70),)) -> [paths]``: n deterministic RGB JPEGs, sizes (w, h) cycled."""
    return _write_images


@pytest.fixture
def free_port() -> int:
    """A TCP port free on this machine right now, for a torchrun rendezvous (fixed ports collide between runs)."""
    from geo_r.runtime.distributed import free_port as _free_port

    return _free_port()
