"""Retrieval candidates: a photo's gallery neighbours merged into a few numbered places, and the rules that use them.

A neighbours file (``geo-r retrieve``) lists, per query photo, the most similar gallery photos with their
coordinates and cosine similarity. :func:`cluster_neighbours` merges them into at most K candidates:

* **greedy by score**: neighbours are visited best first; one joins the nearest existing candidate whose
  *seed* (its first, best-scoring photo) lies within the radius (default 1 km), else it starts a new
  candidate while fewer than K exist, else it is dropped. Distances are to the seed, never to other members,
  so a candidate never chains along a street: every member is within the radius of the seed, and seeds are
  more than the radius apart;
* a candidate's **coordinates are its seed's**, the best-matching photo's own location, not the members'
  mean: a mean of two sites can fall between them (in a river, a car park) where no photo was taken, and
  a model that names candidate k can then copy coordinates that are a real photo's;
* candidates are numbered 1..K in seed order, so candidate 1 is the best neighbour (the retrieval top-1);
* ``photos`` counts a candidate's members and ``score`` is its best similarity (the seed's).

The rules of the answer's ``Candidate: k`` line live here too, beside the data they read:
:func:`candidate_target` (the SFT answer: copy candidate k's coordinates when it lies within
:data:`COPY_KM` of the truth, name k when within :data:`NAME_KM`, else ``none``) and
:func:`check_candidate` (does an answer agree with the candidate it names?). Pure functions, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .distance import EARTH_RADIUS_KM, haversine_km

if TYPE_CHECKING:
    from .parse import Prediction
    from .regions import RegionChain

DEFAULT_NUM_CANDIDATES = 10
"""Candidates per prompt (``--num_candidates``): GeoRanker scores 10-15, G3 prompts with 5-15 neighbours."""
DEFAULT_RADIUS_KM = 1.0
"""Neighbours within this many km of a candidate's seed merge into it (``--candidate_radius_km``)."""
COPY_KM = 1.0
"""SFT targets copy a candidate's coordinates when it lies within this many km of the truth."""
NAME_KM = 25.0
"""``Candidate: k`` claims the photo was taken within this many km of candidate k (the benchmarks' city level):
SFT targets name k when it lies this close to the truth, and the ``candidate`` reward calls such a claim right."""
MAX_NAME_CHARS = 100
CANDIDATE_FIELDS: tuple[str, ...] = ("lat", "lon", "country", "region", "city", "photos", "score", "radius_km")
"""The keys of :meth:`Candidate.to_dict` (and of the GRPO dataset's ``candidates`` column)."""


@dataclass(frozen=True, slots=True)
class Neighbour:
    """One gallery photo retrieved for a query: its id (may be empty), location and cosine similarity."""

    id: str
    lat: float
    lon: float
    score: float


@dataclass(frozen=True, slots=True)
class Candidate:
    """A numbered place offered to the model: coordinates, region chain (None where unknown) and support."""

    lat: float
    lon: float
    country: str | None = None
    region: str | None = None
    city: str | None = None
    photos: int = 1
    score: float | None = None  # best similarity among its photos; None when the source gave none
    radius_km: float = DEFAULT_RADIUS_KM

    def chain_names(self) -> list[str]:
        """The known chain levels, top-down (``["Japan", "Tokyo", "Shinjuku"]``)."""
        return [n for n in (self.country, self.region, self.city) if n]

    def to_dict(self) -> dict[str, Any]:
        """The candidate as a JSON / Arrow row with every key of :data:`CANDIDATE_FIELDS`."""
        return {name: getattr(self, name) for name in CANDIDATE_FIELDS}

    def with_chain(self, country: str | None, region: str | None, city: str | None) -> Candidate:
        """A copy whose missing chain levels are filled from the given names."""
        return Candidate(
            self.lat, self.lon, self.country or _name(country), self.region or _name(region),
            self.city or _name(city), self.photos, self.score, self.radius_km,
        )


def _name(value: Any) -> str | None:
    """A chain name on one line, or None when absent or blank."""
    if not isinstance(value, str):
        return None
    text = " ".join(value.split())
    return text or None


def _number(value: Any) -> float | None:
    """A finite float from a JSON number (never a boolean); None otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def check_point(lat: Any, lon: Any) -> str | None:
    """Why ``(lat, lon)`` is not a valid coordinate pair (a message), or None when it is."""
    la, lo = _number(lat), _number(lon)
    if la is None:
        return f"lat must be a finite number, found {lat!r}"
    if lo is None:
        return f"lon must be a finite number, found {lon!r}"
    if abs(la) > 90.0:
        return f"lat {lat!r} is out of range [-90, 90]"
    if abs(lo) > 180.0:
        return f"lon {lon!r} is out of range [-180, 180]"
    return None


def parse_candidates(value: Any, default_radius_km: float = DEFAULT_RADIUS_KM) -> tuple[Candidate, ...]:
    """A record's own ``candidates`` field (a list of objects with ``lat``, ``lon`` and optional ``country``,
    ``region``, ``city``, ``photos``, ``score``, ``radius_km``; other keys are ignored) as candidates, in order.
    Raises ValueError naming the first bad element and field (the caller adds the file and line)."""
    if not isinstance(value, list):
        raise ValueError(f"candidates must be a list of objects, found {type(value).__name__}")
    out = []
    for i, item in enumerate(value):
        where = f"candidates[{i}]"
        if not isinstance(item, Mapping):
            raise ValueError(f"{where} must be an object with lat and lon, found {type(item).__name__}")
        problem = check_point(item.get("lat"), item.get("lon"))
        if problem is not None:
            raise ValueError(f"{where}: {problem}")
        names = {}
        for key in ("country", "region", "city"):
            raw = item.get(key)
            if raw is not None and not isinstance(raw, str):
                raise ValueError(f"{where}.{key} must be a string, found {type(raw).__name__}")
            name = _name(raw)
            if name is not None and ("<" in name or ">" in name or len(name) > MAX_NAME_CHARS):
                raise ValueError(f"{where}.{key} {name[:40]!r} must be a plain name (no < or >, at most "
                                 f"{MAX_NAME_CHARS} characters)")
            names[key] = name
        photos = item.get("photos", 1)
        if isinstance(photos, bool) or not isinstance(photos, int) or photos < 1:
            raise ValueError(f"{where}.photos must be a positive integer, found {photos!r}")
        score = item.get("score")
        if score is not None and _number(score) is None:
            raise ValueError(f"{where}.score must be a finite number, found {score!r}")
        radius = item.get("radius_km", default_radius_km)
        if _number(radius) is None or float(radius) <= 0:
            raise ValueError(f"{where}.radius_km must be a positive number of km, found {radius!r}")
        out.append(Candidate(float(item["lat"]), float(item["lon"]), names["country"], names["region"],
                             names["city"], int(photos), None if score is None else float(score), float(radius)))
    return tuple(out)


def candidate_from_row(row: Any) -> Candidate | None:
    """A candidate from one element of the GRPO dataset's ``candidates`` column (a dict with
    :data:`CANDIDATE_FIELDS`), leniently: None for anything that is not a valid candidate. Never raises."""
    if not isinstance(row, Mapping) or check_point(row.get("lat"), row.get("lon")) is not None:
        return None
    radius = _number(row.get("radius_km"))
    photos = row.get("photos")
    return Candidate(
        float(row["lat"]), float(row["lon"]), _name(row.get("country")), _name(row.get("region")),
        _name(row.get("city")),
        photos if isinstance(photos, int) and not isinstance(photos, bool) and photos > 0 else 1,
        _number(row.get("score")),
        radius if radius is not None and radius > 0 else DEFAULT_RADIUS_KM,
    )


def candidates_from_column(value: Any) -> tuple[Candidate, ...] | None:
    """One row's ``candidates`` column value as candidates; None when the row has none (None, empty, not a
    list, or any element unreadable: numbering would shift). Never raises."""
    if not isinstance(value, list | tuple) or not value:
        return None
    out = tuple(candidate_from_row(v) for v in value)
    return None if any(c is None for c in out) else out  # type: ignore[return-value]


# ------------------------------------------------------------------------------------------------- clustering


def _unit(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    la, lo = np.radians(lat), np.radians(lon)
    return np.column_stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)])


def cluster_neighbours(
    neighbours: Sequence[Neighbour],
    num_candidates: int = DEFAULT_NUM_CANDIDATES,
    radius_km: float = DEFAULT_RADIUS_KM,
) -> list[Candidate]:
    """At most ``num_candidates`` candidates from ``neighbours`` (greedy by score within ``radius_km`` of each
    seed; see the module docstring). Chains are left empty (fill them with :meth:`Candidate.with_chain`)."""
    if num_candidates < 1:
        raise ValueError(f"num_candidates must be >= 1, got {num_candidates}")
    if not (math.isfinite(radius_km) and radius_km >= 0):
        raise ValueError(f"candidate radius must be a number of km >= 0, got {radius_km}")
    if not neighbours:
        return []
    order = sorted(range(len(neighbours)), key=lambda i: -neighbours[i].score)  # stable: ties keep file order
    xyz = _unit(np.array([n.lat for n in neighbours]), np.array([n.lon for n in neighbours]))
    # Squared chord lengths between all pairs, computed once: a chord of c on the unit sphere is 2 R asin(c / 2)
    # km of great circle. The greedy pass below then only compares numbers (no numpy call per neighbour).
    d2 = (np.square(xyz[:, None, :] - xyz[None, :, :]).sum(axis=-1)).tolist()
    max_d2 = (2.0 * math.sin(min(radius_km / EARTH_RADIUS_KM, math.pi) / 2.0)) ** 2
    seeds: list[int] = []
    photos: list[int] = []
    for i in order:
        row = d2[i]
        best, nearest = max_d2, -1
        for j, seed in enumerate(seeds):
            if row[seed] <= best and (nearest < 0 or row[seed] < best):
                best, nearest = row[seed], j
        if nearest >= 0:
            photos[nearest] += 1
        elif len(seeds) < num_candidates:
            seeds.append(i)
            photos.append(1)
    return [
        Candidate(neighbours[s].lat, neighbours[s].lon, photos=p, score=neighbours[s].score, radius_km=radius_km)
        for s, p in zip(seeds, photos, strict=True)
    ]


# ------------------------------------------------------------------------------------------- answer rules


def nearest_candidate(candidates: Sequence[Candidate], lat: float, lon: float) -> tuple[int, float] | None:
    """``(k, km)``: the 1-based number of the candidate nearest to (lat, lon) (the first on ties) and its
    haversine distance; None without candidates."""
    if not candidates:
        return None
    d = np.atleast_1d(haversine_km(lat, lon, [c.lat for c in candidates], [c.lon for c in candidates]))
    k = int(np.argmin(d))
    return k + 1, float(d[k])


def candidate_target(candidates: Sequence[Candidate], lat: float, lon: float) -> tuple[int, float, float]:
    """The SFT answer's ``(candidate, lat, lon)`` for a photo taken at (lat, lon): the nearest candidate k and
    its own coordinates when it lies within :data:`COPY_KM`; k with the true coordinates within
    :data:`NAME_KM`; else ``0`` (``Candidate: none``) with the true coordinates."""
    found = nearest_candidate(candidates, lat, lon)
    if found is None or found[1] > NAME_KM:
        return 0, lat, lon
    k, d = found
    if d <= COPY_KM:
        return k, candidates[k - 1].lat, candidates[k - 1].lon
    return k, lat, lon


def agreement_radius_km(candidate: Candidate) -> float:
    """How far an answer naming ``candidate`` may place the photo from it: the larger of :data:`NAME_KM`
    (what naming claims, and how far the SFT targets go) and the candidate's cluster radius."""
    return max(NAME_KM, candidate.radius_km)


@dataclass(frozen=True, slots=True)
class CandidateCheck:
    """How an answer that names candidate ``k`` agrees with it.

    ``offered``: k is one of the prompt's candidates. ``distance_km``: from the answer's coordinates to the
    candidate (None without coordinates); ``near``: within :func:`agreement_radius_km`. ``country`` /
    ``region`` / ``city``: the answer's named level could be the place of a point within that radius of the
    candidate (its name matches the candidate's chain, or a GeoNames place of that name lies within the radius
    plus the border tolerance of :func:`geo_r.geo.consistency.match_names`); None when the level is not named.
    """

    k: int
    offered: bool
    distance_km: float | None = None
    near: bool = False
    country: bool | None = None
    region: bool | None = None
    city: bool | None = None

    @property
    def consistent(self) -> bool:
        """The candidate exists, the answer's coordinates lie near it and no named level contradicts it."""
        return (self.offered and self.near and self.country is not False and self.region is not False
                and self.city is not False)


def candidate_reference(candidate: Candidate, derived: RegionChain) -> RegionChain:
    """The chain an answer naming ``candidate`` is compared with: its own names where it has them, the
    offline reverse-geocoded chain of its point (``derived``) elsewhere, and ``derived``'s distance to its
    nearest place (which sets the border tolerance of :func:`geo_r.geo.consistency.match_names`)."""
    from .names import country_code, country_name
    from .regions import RegionChain

    cc = country_code(candidate.country) or derived.country_code
    return RegionChain(
        country_code=cc,
        country=candidate.country or country_name(cc) or derived.country,
        region=candidate.region or derived.region,
        admin2=derived.admin2,
        city=candidate.city or derived.city,
        distance_km=derived.distance_km,
    )


def check_candidate(
    pred: Prediction, candidates: Sequence[Candidate], derived: RegionChain | None = None
) -> CandidateCheck | None:
    """How ``pred`` agrees with the candidate it names; None when it names none (no ``Candidate:`` line, or
    ``Candidate: none``). ``derived`` is ``reverse_geocode(candidate.lat, candidate.lon)[0]`` of the named
    candidate when the caller has it (batched); it is computed here otherwise."""
    k = pred.candidate
    if k is None or k < 1:
        return None
    if k > len(candidates):
        return CandidateCheck(k, offered=False)
    cand = candidates[k - 1]
    if not pred.has_coordinates:
        return CandidateCheck(k, offered=True)
    d = float(haversine_km(pred.lat, pred.lon, cand.lat, cand.lon))  # type: ignore[arg-type]
    radius = agreement_radius_km(cand)
    if derived is None:
        from .regions import reverse_geocode

        derived = reverse_geocode(cand.lat, cand.lon)[0]
    from .consistency import match_names

    reference = candidate_reference(cand, derived)
    named = match_names(pred.country, pred.region, pred.city, reference, cand.lat, cand.lon, within_km=radius)
    return CandidateCheck(k, True, d, d <= radius, named.country, named.region, named.city)
