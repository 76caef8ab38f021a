"""The demo's toy world: synthetic photos of 36 real cities whose appearance carries learnable location cues.

Every place is a real city (coordinates from GeoNames); its country / region / city chain comes from the
geo core's offline reverse geocoder (:func:`geo_r.geo.regions.reverse_geocode`), so the ``region``
reward and the evaluation read the same labels the model is taught. Eight countries have four cities each
(the first is the country's best-known city), four have one. A photo of a place shows:

- sky and ground colours by climate band (``|lat|``: tropical, subtropical, temperate, cool, polar);
- the sun on the left in the northern hemisphere, on the right in the southern one;
- a skyline whose number of towers encodes the continent (2 to 7);
- the ground painted in the country's two colours (a large, easy cue), with a plate of glyphs in the
  country's script (Latin bars, Cyrillic hooks, CJK boxes, Arabic curves, Devanagari top bars);
- a landmark whose shape and colour (red tower, blue dome, yellow pyramid, purple arch) tells cities of the
  same country apart.

Layout, sizes, brightness and clutter are random per photo, and each photo is taken up to ``jitter_km``
from its city. Train and held-out photos are drawn from disjoint random streams (same places, new photos),
so held-out scores measure reading the cues, not remembering pixels.

With ``teacher_accuracy`` set, training photos also carry an SFT answer (a ``conversations`` gpt turn) from
a simulated teacher, the way Geo-R's warm-up imitates answers distilled from a larger model. The teacher
over-predicts famous countries (:data:`TEACHER_CONFUSIONS`: Canada and Australia -> United States, Japan
and India -> China, Russia -> France, Argentina -> Brazil, Kenya -> Egypt): a photo from those countries
is named right with probability ``teacher_accuracy``, else as the famous country's best-known city. The
records' ``lat``/``lon`` and chain fields stay the photo's truth, which GRPO's rewards and the evaluation
use. Also used by ``geo-r demo``.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

IMAGE_SIZE = 112  # 112 x 112 = 12544 pixels: 16 image tokens on Qwen2.5-VL (patch 14, merge 2)
DEFAULT_JITTER_KM = 8.0

# (city, lat, lon, continent, script), grouped by country; the first city of a country is its best-known one
# (the one the simulated SFT teacher falls back on). The chain is derived offline from the coordinates.
CITIES: tuple[tuple[str, float, float, str, str], ...] = (
    ("New York City", 40.7128, -74.0060, "NA", "latin"),
    ("Los Angeles", 34.0522, -118.2437, "NA", "latin"),
    ("Anchorage", 61.2181, -149.9003, "NA", "latin"),
    ("Miami", 25.7617, -80.1918, "NA", "latin"),
    ("Toronto", 43.6532, -79.3832, "NA", "latin"),
    ("Vancouver", 49.2827, -123.1207, "NA", "latin"),
    ("Montreal", 45.5017, -73.5673, "NA", "latin"),
    ("Calgary", 51.0447, -114.0719, "NA", "latin"),
    ("Rio de Janeiro", -22.9068, -43.1729, "SA", "latin"),
    ("Manaus", -3.1190, -60.0217, "SA", "latin"),
    ("Sao Paulo", -23.5505, -46.6333, "SA", "latin"),
    ("Recife", -8.0476, -34.8770, "SA", "latin"),
    ("Moscow", 55.7558, 37.6173, "EU", "cyrillic"),
    ("Saint Petersburg", 59.9311, 30.3609, "EU", "cyrillic"),
    ("Kazan", 55.7887, 49.1221, "EU", "cyrillic"),
    ("Murmansk", 68.9585, 33.0827, "EU", "cyrillic"),
    ("Tokyo", 35.6762, 139.6503, "AS", "cjk"),
    ("Sapporo", 43.0618, 141.3545, "AS", "cjk"),
    ("Osaka", 34.6937, 135.5023, "AS", "cjk"),
    ("Fukuoka", 33.5904, 130.4017, "AS", "cjk"),
    ("Beijing", 39.9042, 116.4074, "AS", "cjk"),
    ("Shanghai", 31.2304, 121.4737, "AS", "cjk"),
    ("Guangzhou", 23.1291, 113.2644, "AS", "cjk"),
    ("Chengdu", 30.5728, 104.0668, "AS", "cjk"),
    ("New Delhi", 28.6139, 77.2090, "AS", "devanagari"),
    ("Mumbai", 19.0760, 72.8777, "AS", "devanagari"),
    ("Kolkata", 22.5726, 88.3639, "AS", "devanagari"),
    ("Chennai", 13.0827, 80.2707, "AS", "devanagari"),
    ("Sydney", -33.8688, 151.2093, "OC", "latin"),
    ("Perth", -31.9505, 115.8605, "OC", "latin"),
    ("Darwin", -12.4634, 130.8456, "OC", "latin"),
    ("Melbourne", -37.8136, 144.9631, "OC", "latin"),
    ("Paris", 48.8566, 2.3522, "EU", "latin"),
    ("Cairo", 30.0444, 31.2357, "AF", "arabic"),
    ("Nairobi", -1.2921, 36.8219, "AF", "latin"),
    ("Buenos Aires", -34.6037, -58.3816, "SA", "latin"),
)
# The simulated SFT teacher over-predicts famous countries, as VLM teachers do: photos from the key
# country are named as the value country's best-known city unless the teacher gets them right.
TEACHER_CONFUSIONS: dict[str, str] = {
    "CA": "US", "AU": "US", "JP": "CN", "IN": "CN", "RU": "FR", "AR": "BR", "KE": "EG",
}
CONTINENT_TOWERS: dict[str, int] = {"EU": 2, "AS": 3, "AF": 4, "SA": 5, "OC": 6, "NA": 7}
LANDMARKS: tuple[str, ...] = ("tower", "dome", "pyramid", "arch")
# Each landmark kind has its own colour too: a cue a tiny vision tower reads as easily as the ground colours.
LANDMARK_COLOURS: dict[str, tuple[int, int, int]] = {
    "tower": (200, 60, 40), "dome": (40, 90, 210), "pyramid": (235, 200, 40), "arch": (150, 50, 170),
}
# Sky and ground colours per climate band, from the equator to the poles.
BAND_EDGES: tuple[float, ...] = (15.0, 30.0, 45.0, 60.0)
BAND_PALETTES: tuple[tuple[tuple[int, int, int], tuple[int, int, int]], ...] = (
    ((80, 160, 225), (30, 140, 50)),  # tropical: deep blue sky, green forest
    ((230, 200, 150), (210, 170, 100)),  # subtropical / arid: hazy sky, sand
    ((120, 180, 240), (150, 160, 80)),  # temperate: blue sky, olive fields
    ((150, 165, 190), (60, 100, 70)),  # cool: grey sky, dark conifers
    ((215, 225, 240), (240, 245, 250)),  # polar: pale sky, snow
)


@dataclass(frozen=True)
class WorldPlace:
    """A city of the toy world: its chain, coordinates and the cues its photos carry."""

    city: str
    region: str
    country: str
    country_code: str
    lat: float
    lon: float
    continent: str
    script: str
    landmark: str
    colours: tuple[tuple[int, int, int], tuple[int, int, int]]
    best_known: bool  # the country's first (best-known) city: the one the simulated teacher names

    @property
    def band(self) -> int:
        """Climate band index (0 tropical ... 4 polar) from ``|lat|``."""
        return sum(abs(self.lat) >= edge for edge in BAND_EDGES)


def _country_colours(code: str) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """Two saturated colours derived from the country code (a stable hash, so every build agrees)."""
    digest = hashlib.sha256(code.encode("ascii")).digest()

    def colour(h: float) -> tuple[int, int, int]:
        import colorsys

        r, g, b = colorsys.hsv_to_rgb(h % 1.0, 0.85, 0.95)
        return int(r * 255), int(g * 255), int(b * 255)

    h1 = digest[0] / 256.0
    h2 = h1 + 0.25 + 0.5 * digest[1] / 256.0
    return colour(h1), colour(h2)


def world_places() -> tuple[WorldPlace, ...]:
    """The 36 places with chains from the offline reverse geocoder and per-country cue assignments."""
    from geo_r.geo.regions import reverse_geocode

    chains = reverse_geocode([c[1] for c in CITIES], [c[2] for c in CITIES])
    places: list[WorldPlace] = []
    seen_in_country: dict[str, int] = {}
    for (name, lat, lon, continent, script), chain in zip(CITIES, chains, strict=True):
        if not chain.valid or chain.country is None or chain.country_code is None:
            raise RuntimeError(f"reverse geocoding gave no country for {name} ({lat}, {lon})")
        k = seen_in_country.get(chain.country_code, 0)
        seen_in_country[chain.country_code] = k + 1
        places.append(
            WorldPlace(
                city=chain.city or name,
                region=chain.region or chain.admin2 or name,
                country=chain.country,
                country_code=chain.country_code,
                lat=lat,
                lon=lon,
                continent=continent,
                script=script,
                landmark=LANDMARKS[k % len(LANDMARKS)],
                colours=_country_colours(chain.country_code),
                best_known=k == 0,
            )
        )
    return tuple(places)


def _jitter(c: tuple[int, int, int], rng: random.Random, amount: int) -> tuple[int, int, int]:
    return tuple(min(255, max(0, v + rng.randint(-amount, amount))) for v in c)  # type: ignore[return-value]


def _draw_glyphs(draw: Any, script: str, box: tuple[int, int, int, int], ink: tuple[int, int, int],
                 rng: random.Random) -> None:
    """Three glyphs of ``script`` inside ``box`` (x0, y0, x1, y1) on the sign."""
    x0, y0, x1, y1 = box
    w = (x1 - x0) / 3
    for i in range(3):
        gx0, gx1 = int(x0 + i * w + 1), int(x0 + (i + 1) * w - 1)
        gy0, gy1 = y0, y1
        gm = (gx0 + gx1) // 2
        if script == "latin":
            draw.line([gx0, gy0, gx0, gy1], fill=ink, width=1)
            draw.line([gx1, gy0, gx1, gy1], fill=ink, width=1)
        elif script == "cyrillic":
            draw.line([gx0, gy1, gm, gy0, gx1, gy1], fill=ink, width=1)
            draw.line([gx0, gy1, gx1, gy1], fill=ink, width=1)
        elif script == "cjk":
            draw.rectangle([gx0, gy0, gx1, gy1], outline=ink)
            draw.line([gx0, (gy0 + gy1) // 2, gx1, (gy0 + gy1) // 2], fill=ink)
        elif script == "arabic":
            draw.arc([gx0, gy0, gx1, gy1], 0, 180, fill=ink)
            draw.point([gm, gy0], fill=ink)
        elif script == "devanagari":
            draw.line([gx0 - 1, gy0, gx1 + 1, gy0], fill=ink, width=2)
            draw.line([gm, gy0, gm, gy1], fill=ink)
        else:  # thai
            draw.ellipse([gx0, gy0, gm, (gy0 + gy1) // 2], outline=ink)
            draw.line([gm, gy0, gm, gy1], fill=ink)
    _ = rng


def _draw_landmark(draw: Any, kind: str, x: int, base: int, h: int, colour: tuple[int, int, int]) -> None:
    """A landmark of ``kind`` standing on the horizon at ``x``, ``h`` pixels tall."""
    half = max(4, h // 3)
    if kind == "tower":
        draw.rectangle([x - 2, base - h, x + 2, base], fill=colour)
        draw.polygon([(x - 5, base - h), (x + 5, base - h), (x, base - h - 6)], fill=colour)
    elif kind == "dome":
        draw.rectangle([x - half, base - h // 2, x + half, base], fill=colour)
        draw.pieslice([x - half, base - h // 2 - half, x + half, base - h // 2 + half], 180, 360, fill=colour)
    elif kind == "pyramid":
        draw.polygon([(x - half - 4, base), (x + half + 4, base), (x, base - h)], fill=colour)
    else:  # arch
        draw.rectangle([x - half, base - h, x + half, base], fill=colour)
        draw.rectangle([x - half + 3, base - h + 5, x + half - 3, base], fill=(20, 20, 20))


def draw_photo(place: WorldPlace, rng: random.Random, size: int = IMAGE_SIZE) -> Any:
    """A PIL image of ``place`` with random layout, brightness and clutter (all the cues of the module doc)."""
    from PIL import Image, ImageDraw

    sky, ground = BAND_PALETTES[place.band]
    sky, ground = _jitter(sky, rng, 12), _jitter(ground, rng, 12)
    img = Image.new("RGB", (size, size), sky)
    draw = ImageDraw.Draw(img)
    horizon = int(size * rng.uniform(0.4, 0.5))
    draw.rectangle([0, horizon, size, size], fill=ground)
    # sun: left half in the north, right half in the south
    sx = int(size * (rng.uniform(0.08, 0.3) if place.lat >= 0 else rng.uniform(0.7, 0.92)))
    sy = int(size * rng.uniform(0.08, 0.2))
    draw.ellipse([sx - 6, sy - 6, sx + 6, sy + 6], fill=(255, 230, 90))
    # skyline: towers = continent
    n = CONTINENT_TOWERS[place.continent]
    grey = _jitter((70, 70, 80), rng, 15)
    for i in range(n):
        x = int((i + 0.5) * size / n)
        h = int(size * rng.uniform(0.12, 0.22))
        draw.rectangle([x - 3, horizon - h, x + 3, horizon], fill=grey)
    # landmark: tells cities of one country apart
    lx = int(size * rng.uniform(0.3, 0.7))
    colour = _jitter(LANDMARK_COLOURS[place.landmark], rng, 10)
    _draw_landmark(draw, place.landmark, lx, horizon, int(size * rng.uniform(0.25, 0.33)), colour)
    # sign: the country's colours fill the ground as a two-band field, with script glyphs on a plate
    c1, c2 = place.colours
    mid = (horizon + size) // 2
    draw.rectangle([0, horizon + 2, size, mid], fill=_jitter(c1, rng, 8))
    draw.rectangle([0, mid, size, size], fill=_jitter(c2, rng, 8))
    sw, sh = 44, 14
    x0 = int(rng.uniform(2, size - sw - 2))
    y0 = int(rng.uniform(horizon + 4, max(horizon + 5, size - sh - 2)))
    draw.rectangle([x0, y0, x0 + sw, y0 + sh], fill=(245, 245, 235))
    _draw_glyphs(draw, place.script, (x0 + 3, y0 + 3, x0 + sw - 3, y0 + sh - 3), (10, 10, 10), rng)
    # clutter
    for _ in range(10):
        x, y = rng.randrange(size), rng.randrange(size)
        base = sky if y < horizon else ground
        draw.rectangle([x, y, x + 2, y + 2], fill=_jitter(base, rng, 30))
    return img


def _offset(lat: float, lon: float, km: float, rng: random.Random, decimals: int = 6) -> tuple[float, float]:
    """A point uniformly inside a disc of radius ``km`` around (lat, lon), rounded to ``decimals`` places."""
    r = km * math.sqrt(rng.random())
    theta = rng.uniform(0, 2 * math.pi)
    dlat = r * math.cos(theta) / 111.32
    dlon = r * math.sin(theta) / (111.32 * max(0.05, math.cos(math.radians(lat))))
    return round(lat + dlat, decimals), round(lon + dlon, decimals)


def teacher_answer(place: WorldPlace, places: tuple[WorldPlace, ...], rng: random.Random, accuracy: float,
                   decimals: int) -> str:
    """The simulated teacher's SFT answer for a photo of ``place``: right, or a famous country's best-known city.

    A photo from a country in :data:`TEACHER_CONFUSIONS` is named right with probability ``accuracy``, else
    as the best-known city of the famous country the teacher confuses it with (chain and coordinates);
    photos from any other country are always named right.
    """
    from geo_r.prompts import render_answer

    named = place
    famous = TEACHER_CONFUSIONS.get(place.country_code)
    if famous is not None and rng.random() >= accuracy:
        named = next(p for p in places if p.country_code == famous and p.best_known)
    return render_answer(named.country, named.region, named.city, round(named.lat, decimals),
                         round(named.lon, decimals))


def _write_split(out: Path, split: str, places: tuple[WorldPlace, ...], per_place: int, seed: int,
                 jitter_km: float, decimals: int, teacher_accuracy: float | None) -> Path:
    images = out / "images"
    images.mkdir(parents=True, exist_ok=True)
    # Disjoint random streams per split: a held-out photo is never a re-draw of a training photo.
    rng = random.Random(f"geo-r-world:{split}:{seed}")
    teacher_rng = random.Random(f"geo-r-teacher:{split}:{seed}")  # the photos do not depend on the teacher
    path = out / f"{split}.jsonl"
    records = []
    for k in range(per_place):
        for i, place in enumerate(places):
            rid = f"{split}_{k:03d}_{i:02d}"
            lat, lon = _offset(place.lat, place.lon, jitter_km, rng, decimals)
            draw_photo(place, rng).save(images / f"{rid}.png")
            record: dict[str, Any] = {
                "id": rid,
                "image": f"{rid}.png",
                "lat": lat,
                "lon": lon,
                "country": place.country,
                "country_code": place.country_code,
                "region": place.region,
                "city": place.city,
            }
            if teacher_accuracy is not None:
                answer = teacher_answer(place, places, teacher_rng, teacher_accuracy, decimals)
                record["conversations"] = [{"from": "gpt", "value": answer}]
            records.append(record)
    rng.shuffle(records)
    with path.open("w", encoding="utf-8") as f:
        for rec in records:
            f.write(json.dumps(rec) + "\n")
    return path


def write_world(
    out_dir: str | Path,
    train_per_place: int = 8,
    heldout_per_place: int = 2,
    seed: int = 0,
    jitter_km: float = DEFAULT_JITTER_KM,
    decimals: int = 6,
    teacher_accuracy: float | None = None,
) -> dict[str, Path]:
    """Write ``train.jsonl`` and ``heldout.jsonl`` (+ ``images/`` and ``places.json``) under ``out_dir``.

    Photo coordinates are rounded to ``decimals`` places: the demo uses ``jitter_km=0, decimals=1``, so every
    photo of a city carries the same label (``48.900000, 2.400000``), which a tiny model can learn in minutes;
    random jitter makes the trailing digits noise that SFT cannot learn and sampling then garbles.

    With ``teacher_accuracy`` set, every training record also carries the simulated teacher's SFT answer
    (:func:`teacher_answer`) as its ``conversations`` gpt turn; held-out records never do.

    Returns ``{"train": path, "heldout": path, "images": folder}``. Deterministic for a given ``seed``.
    """
    if train_per_place < 1 or heldout_per_place < 1:
        raise ValueError("train_per_place and heldout_per_place must be at least 1")
    if not 0 <= decimals <= 6:
        raise ValueError(f"decimals must be between 0 and 6, got {decimals}")
    if not (math.isfinite(jitter_km) and jitter_km >= 0):
        raise ValueError(f"jitter_km must be a finite number >= 0, got {jitter_km}")
    if teacher_accuracy is not None and not 0.0 <= teacher_accuracy <= 1.0:
        raise ValueError(f"teacher_accuracy must be between 0 and 1, got {teacher_accuracy}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    places = world_places()
    train = _write_split(out, "train", places, train_per_place, seed, jitter_km, decimals,
                         teacher_accuracy)
    heldout = _write_split(out, "heldout", places, heldout_per_place, seed, jitter_km, decimals, None)
    (out / "places.json").write_text(
        json.dumps([p.__dict__ | {"band": p.band} for p in places], indent=1), encoding="utf-8"
    )
    return {"train": train, "heldout": heldout, "images": out / "images"}
