"""A small toy geolocation set: synthetic photos of real cities, written as Geo-R jsonl + an image folder.

Each image carries a location cue a model can pick up: the sky/ground palette follows the climate band
(latitude) and a stripe pattern encodes the continent. It is what the tests and the quick CPU run train on;
it is not a benchmark. Also the ``geo-r toy-data`` subcommand.
"""

from __future__ import annotations

import argparse
import json
import random
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Place:
    """A real city with its region chain."""

    city: str
    region: str
    country: str
    country_code: str
    lat: float
    lon: float
    continent: str


PLACES: tuple[Place, ...] = (
    Place("Paris", "Ile-de-France", "France", "FR", 48.8566, 2.3522, "EU"),
    Place("Tokyo", "Tokyo", "Japan", "JP", 35.6762, 139.6503, "AS"),
    Place("Nairobi", "Nairobi Area", "Kenya", "KE", -1.2921, 36.8219, "AF"),
    Place("Rio de Janeiro", "Rio de Janeiro", "Brazil", "BR", -22.9068, -43.1729, "SA"),
    Place("Sydney", "New South Wales", "Australia", "AU", -33.8688, 151.2093, "OC"),
    Place("New York City", "New York", "United States", "US", 40.7128, -74.0060, "NA"),
    Place("Reykjavik", "Capital Region", "Iceland", "IS", 64.1466, -21.9426, "EU"),
    Place("Windhoek", "Khomas", "Namibia", "NA", -22.5609, 17.0658, "AF"),
    Place("Mumbai", "Maharashtra", "India", "IN", 19.0760, 72.8777, "AS"),
    Place("Cairo", "Cairo Governorate", "Egypt", "EG", 30.0444, 31.2357, "AF"),
    Place("Buenos Aires", "Buenos Aires F.D.", "Argentina", "AR", -34.6037, -58.3816, "SA"),
    Place("Vancouver", "British Columbia", "Canada", "CA", 49.2827, -123.1207, "NA"),
    Place("Moscow", "Moscow", "Russia", "RU", 55.7558, 37.6173, "EU"),
    Place("Lima", "Lima region", "Peru", "PE", -12.0464, -77.0428, "SA"),
    Place("Bangkok", "Bangkok", "Thailand", "TH", 13.7563, 100.5018, "AS"),
    Place("Cape Town", "Western Cape", "South Africa", "ZA", -33.9249, 18.4241, "AF"),
)

_CONTINENT_STRIPES = {"EU": 2, "AS": 3, "AF": 4, "SA": 5, "OC": 6, "NA": 7}


def _palette(lat: float) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """Sky and ground colours by climate band: tropical greens, temperate blues, polar whites."""
    a = abs(lat)
    if a < 23.5:
        return (90, 170, 230), (40, 150, 60)
    if a < 45:
        return (120, 180, 240), (190, 160, 90)
    if a < 60:
        return (150, 170, 200), (70, 110, 70)
    return (220, 230, 240), (235, 240, 245)


def draw_place(place: Place, size: tuple[int, int], rng: random.Random):
    """A PIL image of ``place``: palette by latitude, vertical stripes by continent, a little noise."""
    from PIL import Image, ImageDraw

    w, h = size
    sky, ground = _palette(place.lat)
    img = Image.new("RGB", (w, h), sky)
    draw = ImageDraw.Draw(img)
    horizon = int(h * rng.uniform(0.45, 0.65))
    draw.rectangle([0, horizon, w, h], fill=ground)
    n = _CONTINENT_STRIPES[place.continent]
    for i in range(n):
        x = int((i + 0.5) * w / n)
        draw.rectangle([x - 2, horizon - h // 4, x + 2, horizon], fill=(60, 60, 60))
    for _ in range(12):
        x, y = rng.randrange(w), rng.randrange(h)
        c = tuple(min(255, max(0, v + rng.randint(-25, 25))) for v in (sky if y < horizon else ground))
        draw.rectangle([x, y, x + 3, y + 3], fill=c)
    return img


def write_toy_dataset(out_dir: str | Path, n: int = 32, seed: int = 0, jitter_km: float = 20.0) -> Path:
    """Write ``n`` photos (cycling over PLACES, positions jittered by up to ~jitter_km) and ``train.jsonl``.

    Returns the jsonl path; images go to ``out_dir/images`` and are referenced relative to that folder.
    """
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    deg = jitter_km / 111.0
    jsonl = out / "train.jsonl"
    with jsonl.open("w", encoding="utf-8") as f:
        for i in range(n):
            place = PLACES[i % len(PLACES)]
            name = f"{i:05d}.jpg"
            size = (rng.choice([56, 84, 112]), rng.choice([56, 84, 112]))
            draw_place(place, size, rng).save(out / "images" / name, quality=90)
            rec = {
                "id": f"toy_{i:05d}",
                "image": name,
                "lat": round(place.lat + rng.uniform(-deg, deg), 6),
                "lon": round(place.lon + rng.uniform(-deg, deg), 6),
                "country": place.country,
                "country_code": place.country_code,
                "region": place.region,
                "city": place.city,
            }
            f.write(json.dumps(rec) + "\n")
    return jsonl


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``geo-r toy-data``."""
    parser.add_argument("--out", required=True, help="output folder (gets train.jsonl and images/)")
    parser.add_argument("--n", type=int, default=32, help="number of photos (cycles over 16 real cities)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (image layout and position jitter)")
    parser.add_argument("--jitter_km", type=float, default=20.0, help="random offset of each photo from its city, km")


def run(args: argparse.Namespace) -> int:
    """Write the toy set and say where it went."""
    path = write_toy_dataset(args.out, n=args.n, seed=args.seed, jitter_km=args.jitter_km)
    print(f"wrote {args.n} toy photos: {path} (images in {Path(args.out) / 'images'})")
    return 0
