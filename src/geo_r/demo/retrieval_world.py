"""The toy world with a retrieval gallery: places where looking up similar photos knows more than reading cues.

The demo's world (:mod:`geo_r.demo.world`) teaches cues that stop at the city: every photo of Paris looks
like Paris. This world keeps those 36 cities and their cues, drawn by the same code, and adds what makes
retrieval worth having on real photo collections:

- **Sites.** Each city has ``sites_per_city`` fixed sites, 2 to ``site_radius_km`` km from its centre and at
  least ``min_site_separation_km`` apart, each at its own coordinates (rounded to ``decimals`` places; every
  photo of a site is taken there). A photo is the city's usual picture (:func:`geo_r.demo.world.draw_photo`,
  unchanged) above a street strip showing the site's facade: four coloured panels whose colours are the
  site's own (an arbitrary code, unrelated to where the site is). Photos of one site resemble each other;
  nothing in a photo says which of its city's sites it shows except that arbitrary facade, so a model reading
  cues stops at the city, while a gallery search finds other photos of the same facade and their coordinates.
- **Gallery-only sites.** In each city with gallery photos, ``gallery_only_sites`` of its sites have gallery
  photos but no training photo: a retrieval-free model never sees them, so it cannot have memorised them.
- **Photographers with a style.** ``authors`` photographers, each with a signature (a coloured frame and a
  slight colour cast over the whole photo), record's ``author`` field. A site has an owner; a share
  ``private_site_share`` of sites was photographed only by its owner (their gallery photos all share the
  owner's style). A held-out photo is by the site's owner with probability ``owner_query_share``: under the
  standard protocol the owner's own gallery shots of the spot answer it; the leakage-aware protocol drops them
  (``same_author``), as it must for YFCC4k queries against MP16.
- **Near-duplicates.** ``near_duplicates`` held-out photos are gallery photos re-posted: cropped by a few
  pixels, resized back and re-encoded as JPEG, with no author. Their bytes differ from the original, so only
  the ``near_duplicate`` rule (cosine at or above ``--near_dup_threshold``) removes them.
- **Cities with no gallery photo.** ``uncovered_cities`` cities have training photos but no gallery photo:
  for their held-out photos every candidate is wrong and ``Candidate: none`` is the right answer.

Files under ``out_dir``: ``gallery.jsonl`` (the photos ``geo-r index`` embeds), ``train.jsonl`` (the SFT and
GRPO photos: the gallery's photos of trained sites plus the uncovered cities' photos; the same records, the
same image files), ``heldout.jsonl`` (new photos of every site, and the near-duplicates), ``images/`` and
``sites.json`` (every site: city, coordinates, facade, owner, private, gallery, trained). Every record carries
the data contract's fields plus ``author`` (null for re-posts), ``site`` (the site's id) and, on held-out
photos, ``kind`` (``gallery_site``, ``gallery_only_site``, ``uncovered_city`` or ``near_duplicate``) and
``duplicate_of`` (the gallery id a near-duplicate copies, else empty). Record chains are the city's chain
(what a person labels a photo taken a few km from the centre with).

Deterministic for a given seed; the demo's own world (:func:`geo_r.demo.world.write_world`) is untouched.
"""

from __future__ import annotations

import io
import json
import math
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from geo_r.demo.world import IMAGE_SIZE, WorldPlace, draw_photo, world_places

STRIP_HEIGHT = 28  # one row of merged 28 x 28 patch tokens on Qwen2.5-VL (patch 14, merge 2)
PHOTO_HEIGHT = IMAGE_SIZE + STRIP_HEIGHT  # 112 x 140: 20 image tokens
MIN_ZOOM_PX = 4  # every shot zooms in at least this much: two shots of a site are never the same framing
PANELS = 4  # facade panels of 28 px: one token each
# Facade panel colours: saturated and far apart, so a random vision tower tells codes apart.
PANEL_COLOURS: tuple[tuple[int, int, int], ...] = (
    (230, 30, 30), (30, 200, 40), (30, 60, 230), (245, 230, 30),
    (240, 120, 20), (150, 40, 200), (20, 210, 210), (250, 250, 250), (15, 15, 15),
)
# Photographers' signature colours (frame + colour cast).
AUTHOR_COLOURS: tuple[tuple[int, int, int], ...] = (
    (255, 0, 128), (0, 255, 160), (255, 160, 0), (90, 0, 255), (0, 140, 255), (180, 255, 0),
    (255, 60, 60), (0, 90, 60), (120, 60, 0), (200, 200, 255), (60, 60, 60), (255, 220, 180),
)
HELDOUT_KINDS: tuple[str, ...] = ("gallery_site", "gallery_only_site", "uncovered_city", "near_duplicate")


@dataclass(frozen=True)
class RetrievalWorldConfig:
    """The retrieval world's knobs (see the module docstring); the defaults are the bench's world."""

    sites_per_city: int = 3
    gallery_only_sites: int = 1  # of each covered city's sites: gallery photos, no training photo
    site_radius_km: float = 8.0
    min_site_separation_km: float = 3.0
    gallery_per_site: int = 4  # photos per site in the gallery (and in train.jsonl for trained sites)
    uncovered_per_site: int = 4  # training photos per site of an uncovered city
    heldout_per_site: int = 1
    uncovered_cities: int = 6
    authors: int = 8
    private_site_share: float = 0.25
    owner_query_share: float = 0.5
    near_duplicates: int = 12
    decimals: int = 3
    zoom_px: int = 12  # a shot frames its site's scene with a window of 112 - zoom_px to 112 pixels
    brightness: float = 0.08  # a shot's exposure: brightness factor within 1 +- this
    signature_px: int = 10  # side of the photographer's signature square (0: unsigned photos)

    def __post_init__(self) -> None:
        if self.sites_per_city < 1 or not 0 <= self.gallery_only_sites < self.sites_per_city:
            raise ValueError("sites_per_city must be >= 1 and gallery_only_sites in [0, sites_per_city)")
        if min(self.gallery_per_site, self.uncovered_per_site, self.heldout_per_site) < 1:
            raise ValueError("gallery_per_site, uncovered_per_site and heldout_per_site must be >= 1")
        if not 0 <= self.uncovered_cities <= 12:
            raise ValueError("uncovered_cities must be between 0 and 12 (one per country at most, never the "
                             "country's best-known city)")
        if not 1 <= self.authors <= len(AUTHOR_COLOURS):
            raise ValueError(f"authors must be between 1 and {len(AUTHOR_COLOURS)}")
        if not (0 <= self.private_site_share <= 1 and 0 <= self.owner_query_share <= 1):
            raise ValueError("private_site_share and owner_query_share must be in [0, 1]")
        if not (0 <= self.zoom_px < IMAGE_SIZE // 2 and 0 <= self.brightness < 1 and 0 <= self.signature_px <= 20):
            raise ValueError("zoom_px must be in [0, 56), brightness in [0, 1), signature_px in [0, 20]")
        if self.near_duplicates < 0 or not 0 <= self.decimals <= 6:
            raise ValueError("near_duplicates must be >= 0 and decimals between 0 and 6")
        if not 2.0 < self.site_radius_km <= 20.0 or self.min_site_separation_km <= 1.0:
            raise ValueError("site_radius_km must be in (2, 20] and min_site_separation_km > 1 (sites must be "
                             "told apart at 1 km)")


@dataclass(frozen=True)
class Site:
    """A fixed site of a city: its coordinates, facade code, owner and where its photos go."""

    id: str
    city_index: int
    lat: float
    lon: float
    facade: tuple[int, ...]  # PANEL_COLOURS index per panel
    owner: str
    private: bool  # gallery photos by the owner only
    gallery: bool  # has gallery photos (False: an uncovered city's site)
    trained: bool  # has training photos


def author_name(i: int) -> str:
    """The ``author`` value of photographer ``i``."""
    return f"photographer_{i:02d}"


def _km_between(a: tuple[float, float], b: tuple[float, float]) -> float:
    from geo_r.geo.distance import haversine_km

    return float(haversine_km(a[0], a[1], b[0], b[1]))


def _site_point(place: WorldPlace, rng: random.Random, cfg: RetrievalWorldConfig,
                taken: list[tuple[float, float]]) -> tuple[float, float]:
    """A point 2 to ``site_radius_km`` km from the city centre, ``min_site_separation_km`` from the others."""
    for _ in range(1000):
        r = rng.uniform(2.0, cfg.site_radius_km)
        theta = rng.uniform(0, 2 * math.pi)
        lat = place.lat + r * math.cos(theta) / 111.32
        lon = place.lon + r * math.sin(theta) / (111.32 * math.cos(math.radians(place.lat)))
        point = (round(lat, cfg.decimals), round(lon, cfg.decimals))
        if all(_km_between(point, t) >= cfg.min_site_separation_km for t in taken):
            return point
    raise RuntimeError(f"cannot place {cfg.sites_per_city} sites {cfg.min_site_separation_km} km apart within "
                       f"{cfg.site_radius_km} km of {place.city}")


def _facade(rng: random.Random, used: list[tuple[int, ...]]) -> tuple[int, ...]:
    """A panel code differing from every code of the same city in at least 3 of the 4 panels."""
    for _ in range(10000):
        code = tuple(rng.randrange(len(PANEL_COLOURS)) for _ in range(PANELS))
        if all(sum(a != b for a, b in zip(code, u, strict=True)) >= 3 for u in used):
            return code
    raise RuntimeError("cannot draw distinct facades")  # pragma: no cover - 9^4 codes for a handful of sites


def uncovered_city_indices(places: tuple[WorldPlace, ...], n: int, seed: int) -> list[int]:
    """``n`` cities with no gallery photo: at most one per country, never a country's best-known city (so every
    country keeps gallery photos), drawn with the world's seed."""
    rng = random.Random(f"geo-r-retrieval-world:uncovered:{seed}")
    by_country: dict[str, list[int]] = {}
    for i, p in enumerate(places):
        if not p.best_known:
            by_country.setdefault(p.country_code, []).append(i)
    countries = sorted(by_country)
    rng.shuffle(countries)
    return sorted(rng.choice(by_country[c]) for c in countries[:n])


def make_sites(places: tuple[WorldPlace, ...], cfg: RetrievalWorldConfig, seed: int) -> list[Site]:
    """Every city's sites with coordinates, facades, owners and roles (deterministic for ``seed``)."""
    rng = random.Random(f"geo-r-retrieval-world:sites:{seed}")
    uncovered = set(uncovered_city_indices(places, cfg.uncovered_cities, seed))
    sites: list[Site] = []
    for i, place in enumerate(places):
        points: list[tuple[float, float]] = []
        codes: list[tuple[int, ...]] = []
        gallery_only = set(rng.sample(range(cfg.sites_per_city), cfg.gallery_only_sites))
        for s in range(cfg.sites_per_city):
            points.append(_site_point(place, rng, cfg, points))
            codes.append(_facade(rng, codes))
            covered = i not in uncovered
            sites.append(Site(
                id=f"{place.country_code}-{i:02d}-{s}",
                city_index=i,
                lat=points[-1][0],
                lon=points[-1][1],
                facade=codes[-1],
                owner=author_name(rng.randrange(cfg.authors)),
                private=rng.random() < cfg.private_site_share,
                gallery=covered,
                trained=not covered or s not in gallery_only,
            ))
    return sites


def _author_index(name: str | None) -> int | None:
    return None if name is None else int(name.rsplit("_", 1)[1])


def draw_site_photo(place: WorldPlace, site: Site, author: str | None, rng: random.Random,
                    cfg: RetrievalWorldConfig, seed: int = 0) -> Any:
    """One shot of ``site``: a 112 x 140 photo.

    The top 112 x 112 is the site's scene, the demo world's picture of its city
    (:func:`geo_r.demo.world.draw_photo`, every cue of the city) drawn once per site, so two shots of one site
    show the same scene; each shot frames it differently (a pan and zoom of up to ``zoom_px`` pixels), with its
    own exposure (brightness within ``brightness``) and a few specks. Below it a street strip shows the site's
    facade (:data:`PANELS` panels in the site's colours, a window at a random height in each). The
    photographer signs the photo with a square of their colour in the top right corner.
    """
    from PIL import Image, ImageDraw, ImageEnhance

    scene = draw_photo(place, random.Random(f"geo-r-retrieval-world:scene:{seed}:{site.id}"))
    z = rng.randint(IMAGE_SIZE - cfg.zoom_px, IMAGE_SIZE - MIN_ZOOM_PX)
    x, y = rng.randint(0, IMAGE_SIZE - z), rng.randint(0, IMAGE_SIZE - z)
    top = scene.crop((x, y, x + z, y + z)).resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BILINEAR)
    img = Image.new("RGB", (IMAGE_SIZE, PHOTO_HEIGHT), (90, 90, 90))
    img.paste(top, (0, 0))
    draw = ImageDraw.Draw(img)
    width = IMAGE_SIZE // PANELS
    for k, colour_index in enumerate(site.facade):
        colour = tuple(min(255, max(0, c + rng.randint(-10, 10))) for c in PANEL_COLOURS[colour_index])
        draw.rectangle([k * width, IMAGE_SIZE, (k + 1) * width - 1, PHOTO_HEIGHT - 1], fill=colour)
        wy = IMAGE_SIZE + rng.randint(4, 14)
        draw.rectangle([k * width + 9, wy, k * width + 18, wy + 8], fill=(40, 40, 50))
    for _ in range(10):
        px, py = rng.randrange(IMAGE_SIZE), rng.randrange(IMAGE_SIZE)
        draw.rectangle([px, py, px + 2, py + 2], fill=(rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    img = ImageEnhance.Brightness(img).enhance(rng.uniform(1 - cfg.brightness, 1 + cfg.brightness))
    index = _author_index(author)
    if index is not None and cfg.signature_px > 0:
        w = cfg.signature_px
        ImageDraw.Draw(img).rectangle([IMAGE_SIZE - w - 3, 2, IMAGE_SIZE - 3, w + 1], fill=AUTHOR_COLOURS[index])
    return img


def repost(image: Any, rng: random.Random) -> bytes:
    """A near-duplicate of ``image``, as a re-post is: shrunk to 85-95 % (a thumbnail), scaled back up, and
    re-encoded as JPEG (quality 75-90)."""
    from PIL import Image

    w, h = image.size
    scale = rng.uniform(0.85, 0.95)
    copy = image.resize((round(w * scale), round(h * scale)), Image.Resampling.BILINEAR)
    copy = copy.resize((w, h), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    copy.save(buf, format="JPEG", quality=rng.randint(75, 90))
    return buf.getvalue()


def _record(rid: str, image: str, site: Site, place: WorldPlace, author: str | None) -> dict[str, Any]:
    return {
        "id": rid, "image": image, "lat": site.lat, "lon": site.lon,
        "country": place.country, "country_code": place.country_code, "region": place.region, "city": place.city,
        "author": author, "site": site.id,
    }


def _gallery_author(site: Site, rng: random.Random, cfg: RetrievalWorldConfig) -> str:
    """A private site's photos are its owner's; any other site's are by anyone."""
    return site.owner if site.private else author_name(rng.randrange(cfg.authors))


def _query_author(site: Site, rng: random.Random, cfg: RetrievalWorldConfig) -> str:
    """The site's owner with probability ``owner_query_share``, else another photographer."""
    others = [author_name(i) for i in range(cfg.authors) if author_name(i) != site.owner]
    if not others or rng.random() < cfg.owner_query_share:
        return site.owner
    return rng.choice(others)


def _write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    with path.open("w", encoding="utf-8") as f:
        for rec in records:
            f.write(json.dumps(rec) + "\n")
    return path


def write_retrieval_world(out_dir: str | Path, cfg: RetrievalWorldConfig | None = None,
                          seed: int = 0) -> dict[str, Path]:
    """Write ``gallery.jsonl``, ``train.jsonl``, ``heldout.jsonl``, ``images/`` and ``sites.json`` under
    ``out_dir`` (see the module docstring); returns their paths (keys ``gallery``, ``train``, ``heldout``,
    ``images``, ``sites``). Deterministic for ``seed``."""
    cfg = cfg or RetrievalWorldConfig()
    out = Path(out_dir)
    images = out / "images"
    images.mkdir(parents=True, exist_ok=True)
    places = world_places()
    sites = make_sites(places, cfg, seed)
    gallery: list[dict[str, Any]] = []
    train: list[dict[str, Any]] = []
    rng = random.Random(f"geo-r-retrieval-world:gallery:{seed}")
    for site in sites:
        place = places[site.city_index]
        count = cfg.gallery_per_site if site.gallery else cfg.uncovered_per_site
        for k in range(count):
            rid = f"g_{site.id}_{k}" if site.gallery else f"t_{site.id}_{k}"
            author = _gallery_author(site, rng, cfg)
            draw_site_photo(place, site, author, rng, cfg, seed).save(images / f"{rid}.png")
            record = _record(rid, f"{rid}.png", site, place, author)
            if site.gallery:
                gallery.append(record)
            if site.trained:
                train.append(record)
    heldout: list[dict[str, Any]] = []
    rng = random.Random(f"geo-r-retrieval-world:heldout:{seed}")  # disjoint from the gallery's stream
    for site in sites:
        place = places[site.city_index]
        kind = ("uncovered_city" if not site.gallery else "gallery_site" if site.trained else "gallery_only_site")
        for k in range(cfg.heldout_per_site):
            rid = f"q_{site.id}_{k}"
            author = _query_author(site, rng, cfg)
            draw_site_photo(place, site, author, rng, cfg, seed).save(images / f"{rid}.png")
            heldout.append(_record(rid, f"{rid}.png", site, place, author) | {"kind": kind, "duplicate_of": ""})
    from PIL import Image

    by_site = {s.id: s for s in sites}
    for k, original in enumerate(rng.sample(gallery, min(cfg.near_duplicates, len(gallery)))):
        rid = f"q_dup_{k:03d}"
        with Image.open(images / original["image"]) as im:
            data = repost(im.convert("RGB"), rng)
        (images / f"{rid}.jpg").write_bytes(data)
        site = by_site[original["site"]]
        heldout.append(_record(rid, f"{rid}.jpg", site, places[site.city_index], None)
                       | {"kind": "near_duplicate", "duplicate_of": original["id"]})
    for records in (gallery, train, heldout):
        random.Random(f"geo-r-retrieval-world:order:{seed}:{len(records)}").shuffle(records)
    site_rows = [asdict(s) | {"city": places[s.city_index].city, "country_code": places[s.city_index].country_code}
                 for s in sites]
    (out / "sites.json").write_text(json.dumps(site_rows, indent=1), encoding="utf-8")
    return {
        "gallery": _write_jsonl(out / "gallery.jsonl", gallery),
        "train": _write_jsonl(out / "train.jsonl", train),
        "heldout": _write_jsonl(out / "heldout.jsonl", heldout),
        "images": images,
        "sites": out / "sites.json",
    }
