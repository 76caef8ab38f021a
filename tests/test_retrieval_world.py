"""The retrieval world (geo_r.demo.retrieval_world): the properties the retrieval demo's table relies on."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from geo_r.demo.retrieval_world import (
    IMAGE_SIZE,
    PHOTO_HEIGHT,
    RetrievalWorldConfig,
    write_retrieval_world,
)

# A small world: every city, 2 sites each, few photos; seconds to write.
SMALL = RetrievalWorldConfig(sites_per_city=2, gallery_only_sites=1, gallery_per_site=2, uncovered_per_site=2,
                             heldout_per_site=1, uncovered_cities=3, near_duplicates=4)


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_retrieval_world(tmp_path_factory.mktemp("rw") / "a", SMALL, seed=3)


def _files(paths: dict[str, Path]) -> dict[str, bytes]:
    out = {name: paths[name].read_bytes() for name in ("gallery", "train", "heldout", "sites")}
    out.update({f"images/{p.name}": p.read_bytes() for p in sorted(paths["images"].iterdir())})
    return out


def test_same_seed_same_bytes_other_seed_differs(world: dict[str, Path], tmp_path: Path) -> None:
    again = write_retrieval_world(tmp_path / "b", SMALL, seed=3)
    assert _files(again) == _files(world)
    other = write_retrieval_world(tmp_path / "c", SMALL, seed=4)
    assert other["sites"].read_bytes() != world["sites"].read_bytes()


def test_roles_of_sites_and_cities(world: dict[str, Path]) -> None:
    sites = {s["id"]: s for s in json.loads(world["sites"].read_text(encoding="utf-8"))}
    gallery, train, heldout = (_read(world[n]) for n in ("gallery", "train", "heldout"))
    gallery_sites = {r["site"] for r in gallery}
    train_sites = {r["site"] for r in train}
    # gallery-only sites: gallery photos, never a training photo
    gallery_only = {sid for sid, s in sites.items() if s["gallery"] and not s["trained"]}
    assert gallery_only and gallery_only <= gallery_sites and not gallery_only & train_sites
    # uncovered cities: training photos, never a gallery photo; exactly the configured number of cities
    uncovered = {sid for sid, s in sites.items() if not s["gallery"]}
    assert uncovered and uncovered <= train_sites and not uncovered & gallery_sites
    assert len({sites[sid]["city"] for sid in uncovered}) == SMALL.uncovered_cities
    kinds = {r["id"]: r["kind"] for r in heldout}
    for r in heldout:
        s = sites[r["site"]]
        expected = ("near_duplicate" if r["duplicate_of"] else "uncovered_city" if not s["gallery"]
                    else "gallery_site" if s["trained"] else "gallery_only_site")
        assert kinds[r["id"]] == expected
        assert (r["lat"], r["lon"]) == (s["lat"], s["lon"])  # every photo of a site is taken there
    assert sum(k == "near_duplicate" for k in kinds.values()) == SMALL.near_duplicates
    # held-out photos are new files, never a training or gallery image
    assert not {r["image"] for r in heldout} & {r["image"] for r in gallery + train}
    # private sites: every gallery photo is by the owner
    for r in gallery:
        if sites[r["site"]]["private"]:
            assert r["author"] == sites[r["site"]]["owner"]


def test_near_duplicates_are_reposts_not_copies(world: dict[str, Path]) -> None:
    from PIL import Image

    gallery = {r["id"]: r for r in _read(world["gallery"])}
    images = world["images"]
    dups = [r for r in _read(world["heldout"]) if r["kind"] == "near_duplicate"]
    assert dups
    for r in dups:
        original = gallery[r["duplicate_of"]]
        assert r["author"] is None and r["site"] == original["site"]
        assert (images / r["image"]).read_bytes() != (images / original["image"]).read_bytes()
        with Image.open(images / r["image"]) as a, Image.open(images / original["image"]) as b:
            assert a.size == b.size == (IMAGE_SIZE, PHOTO_HEIGHT)
            pa, pb = (np.asarray(im.convert("L"), dtype=np.int16) for im in (a, b))
            mean_abs = float(np.abs(pa - pb).mean())
        assert 0 < mean_abs < 20  # visibly the same photo, not the same bytes


def test_photos_of_a_site_share_its_facade(world: dict[str, Path]) -> None:
    from PIL import Image

    from geo_r.demo.retrieval_world import PANEL_COLOURS, PANELS

    sites = {s["id"]: s for s in json.loads(world["sites"].read_text(encoding="utf-8"))}
    width = IMAGE_SIZE // PANELS
    by_site: dict[str, list[dict]] = defaultdict(list)
    for r in _read(world["gallery"]) + _read(world["train"]) + _read(world["heldout"]):
        by_site[r["site"]].append(r)
    for sid, records in by_site.items():
        for r in records:
            with Image.open(world["images"] / r["image"]) as im:
                rgb = im.convert("RGB")
            for k, colour_index in enumerate(sites[sid]["facade"]):
                # right of the panel's window, near the bottom: the facade colour, up to exposure and jitter
                pixel = rgb.getpixel((k * width + 23, PHOTO_HEIGHT - 4))
                nearest = min(range(len(PANEL_COLOURS)),
                              key=lambda i: sum((a - b) ** 2 for a, b in zip(PANEL_COLOURS[i], pixel, strict=True)))
                assert nearest == colour_index, (r["id"], k, pixel)
    # two sites of one city never share a facade
    by_city: dict[str, list[tuple[int, ...]]] = defaultdict(list)
    for s in sites.values():
        by_city[s["city"]].append(tuple(s["facade"]))
    assert all(len(set(codes)) == len(codes) for codes in by_city.values())


def test_files_satisfy_the_data_contract(world: dict[str, Path]) -> None:
    from geo_r.data import load_records

    for name in ("gallery", "train", "heldout"):
        records, report = load_records(str(world[name]), str(world["images"]))
        assert len(records) == len(_read(world[name])) and not report.n_errors
        assert all(r.country_code and r.city and r.country for r in records)


def test_bad_config_is_refused() -> None:
    with pytest.raises(ValueError, match="gallery_only_sites"):
        RetrievalWorldConfig(sites_per_city=2, gallery_only_sites=2)
    with pytest.raises(ValueError, match="uncovered_cities"):
        RetrievalWorldConfig(uncovered_cities=13)
