"""``region``: region-chain reward: the predicted country / region / city against the true chain, gated top-down,
plus self-consistency of the predicted coordinates with the predicted names. Values in [0, 1].

Geo-R itself has no such reward (its reward is distance x format); it adds the coarse, name-level credit
that hierarchical rewards (GLOBE, GeoAgent, Geo-ADAPT) give, offline and without an LLM judge.

Accuracy (0.8 in all), gated: a level counts only when every level above it counts.
  country right  +0.30 | region right  +0.25 | city right  +0.25
Self-consistency (0.2 in all), gated the same way: the predicted coordinates lie in the predicted
  country  +0.10 | region  +0.05 | near the predicted city  +0.05

Each accuracy step (>= 0.25) outweighs all of consistency (0.2), so answers order lexicographically:
right city > right region only > right country only > wrong country, and among equally right answers,
consistent > inconsistent. The weights are module constants (RewardArguments has no region fields).

"Right" and "lies in" use :func:`geo_r.geo.consistency.match_names`: a name matches the label after
normalisation and aliases ("USA" = "United States", "Bayern" = "Bavaria"), or lies near the point within a
border tolerance (nearest-place labels cross borders), and a city matches within 25 km (the benchmarks'
city level). The true chain comes from the dataset columns ``country_code``, ``country``, ``region`` and
``city`` where present, else from ``lat``/``lon`` by offline reverse geocoding (one batched query per call
for every uncached point, and a cache of TRUTH_CACHE_SIZE points). All predicted coordinates of a call are
reverse-geocoded in one query too. A true chain with no region label (GeoNames has none for some islands)
awards the region level exactly when the city level is right.

Worked example, truth = the Louvre (48.8606, 2.3376: France / Ile-de-France / Paris):
  France / Île-de-France / Paris / (48.8566, 2.3522)        0.30+0.25+0.25 + 0.10+0.05+0.05 = 1.00
  France / Île-de-France / Paris / (51.5074, -0.1278)       0.80 + 0 (London coordinates)      = 0.80
  France / Auvergne-Rhône-Alpes / Lyon / (45.7640, 4.8357)  0.30 + 0.20                         = 0.50
  France / Bavaria / Munich / (48.1351, 11.5820)            0.30 + 0 (Munich is not in France)  = 0.30
  Belgium / Brussels / Brussels / (50.8503, 4.3517)         0 + 0.20                            = 0.20
  no country, region, city or coordinates                                                       = 0.00
A row without any usable ground truth (no chain columns, coordinates missing or invalid) gets None, the
same convention as ``distance``: TRL leaves it out, since the answer is not at fault.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from geo_r.geo.consistency import Consistency, match_names
from geo_r.geo.names import country_code, country_name
from geo_r.geo.parse import Prediction, parse_prediction
from geo_r.geo.regions import EMPTY_CHAIN, RegionChain, reverse_geocode
from geo_r.rewards.args import RewardArguments
from geo_r.rewards.common import RewardFunc, column, completion_text, log_metric, true_coordinates
from geo_r.rewards.registry import register

COUNTRY_WEIGHT = 0.30
REGION_WEIGHT = 0.25
CITY_WEIGHT = 0.25
CONSISTENT_COUNTRY_WEIGHT = 0.10
CONSISTENT_REGION_WEIGHT = 0.05
CONSISTENT_CITY_WEIGHT = 0.05
TRUTH_CACHE_SIZE = 100_000
"""How many true points' derived chains one reward function keeps (about 200 bytes each)."""


@dataclass(frozen=True)
class RegionScore:
    """Gated per-level results of one completion; ``total`` is the reward."""

    country: bool = False
    region: bool = False
    city: bool = False
    consistent_country: bool = False
    consistent_region: bool = False
    consistent_city: bool = False

    @property
    def total(self) -> float:
        """The weighted sum, in [0, 1] (rounded to 1e-9 so 0.75 prints as 0.75)."""
        return round(
            COUNTRY_WEIGHT * self.country
            + REGION_WEIGHT * self.region
            + CITY_WEIGHT * self.city
            + CONSISTENT_COUNTRY_WEIGHT * self.consistent_country
            + CONSISTENT_REGION_WEIGHT * self.consistent_region
            + CONSISTENT_CITY_WEIGHT * self.consistent_city,
            9,
        )


def _gate(result: Consistency, region_unlabelled: bool = False) -> tuple[bool, bool, bool]:
    """Top-down gating: a level counts only if every level above it counts (see module docstring)."""
    country = result.country is True
    city_ok = result.city is True
    region = country and (result.region is True or (region_unlabelled and city_ok))
    return country, region, region and city_ok


def score_prediction(
    pred: Prediction,
    truth: RegionChain,
    truth_lat: float | None = None,
    truth_lon: float | None = None,
    pred_chain: RegionChain | None = None,
) -> RegionScore:
    """Score one parsed prediction against a true chain (and the true point, when known).

    ``pred_chain`` is ``reverse_geocode(pred.lat, pred.lon)[0]``; it is computed here when not given.
    """
    accuracy = match_names(pred.country, pred.region, pred.city, truth, truth_lat, truth_lon)
    country, region, city = _gate(accuracy, region_unlabelled=truth.region is None)
    if pred.has_coordinates:
        if pred_chain is None:
            pred_chain = reverse_geocode(pred.lat, pred.lon)[0]
        consistency = match_names(pred.country, pred.region, pred.city, pred_chain, pred.lat, pred.lon)
        c_country, c_region, c_city = _gate(consistency, region_unlabelled=pred_chain.region is None)
    else:
        c_country = c_region = c_city = False
    return RegionScore(country, region, city, c_country, c_region, c_city)


def _label(value: Any) -> str | None:
    """A dataset label as a clean string; None for missing, NaN (pandas' reading of "NA") or blank values."""
    return value.strip() if isinstance(value, str) and value.strip() else None


def true_chain(
    derived: RegionChain, code: Any = None, country: Any = None, region: Any = None, city: Any = None
) -> RegionChain:
    """The true chain of a row: dataset labels where given, else the chain derived from its coordinates."""
    code_label, country_label = _label(code), _label(country)
    cc = country_code(code_label) or country_code(country_label) or derived.country_code
    return RegionChain(
        country_code=cc,
        country=country_label or country_name(cc) or derived.country,
        region=_label(region) or derived.region,
        admin2=derived.admin2,
        city=_label(city) or derived.city,
        distance_km=derived.distance_km,
    )


class _ChainCache:
    """Bounded (lat, lon) -> derived chain cache, filled by one batched reverse geocoding per call."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._data: OrderedDict[tuple[float, float], RegionChain] = OrderedDict()

    def lookup(self, points: Sequence[tuple[float, float] | None]) -> list[RegionChain]:
        missing = sorted({p for p in points if p is not None and p not in self._data})
        if missing:
            chains = reverse_geocode([p[0] for p in missing], [p[1] for p in missing])
            for p, chain in zip(missing, chains, strict=True):
                self._data[p] = chain
            while len(self._data) > self.size:
                self._data.popitem(last=False)
        return [self._data.get(p, EMPTY_CHAIN) if p is not None else EMPTY_CHAIN for p in points]


@register("region")
def make_region_reward(args: RewardArguments) -> RewardFunc:
    """Build ``region`` (no RewardArguments field applies; the weights are the module constants)."""
    cache = _ChainCache(TRUTH_CACHE_SIZE)

    def region_reward(prompts: Any, completions: Any, completion_ids: Any = None, **kwargs: Any) -> list[float | None]:
        n = len(completions)
        preds = [parse_prediction(completion_text(c)) for c in completions]
        points = [true_coordinates(a, b) for a, b in zip(column(kwargs, "lat", n), column(kwargs, "lon", n), strict=True)]
        derived = cache.lookup(points)
        labels = zip(
            column(kwargs, "country_code", n), column(kwargs, "country", n),
            column(kwargs, "region", n), column(kwargs, "city", n), strict=True,
        )
        truths = [true_chain(d, *row) for d, row in zip(derived, labels, strict=True)]
        with_coords = [i for i, p in enumerate(preds) if p.has_coordinates]
        pred_chains: list[RegionChain | None] = [None] * n
        if with_coords:
            found = reverse_geocode([preds[i].lat for i in with_coords], [preds[i].lon for i in with_coords])
            for i, chain in zip(with_coords, found, strict=True):
                pred_chains[i] = chain

        out: list[float | None] = []
        scores: list[RegionScore] = []
        for pred, truth, point, pred_chain in zip(preds, truths, points, pred_chains, strict=True):
            if truth.country_code is None and truth.country is None:
                out.append(None)  # nothing to compare with: not the answer's fault
                continue
            if pred.country is None and pred.region is None and pred.city is None and not pred.has_coordinates:
                score = RegionScore()
            else:
                lat, lon = point if point is not None else (None, None)
                score = score_prediction(pred, truth, lat, lon, pred_chain)
            scores.append(score)
            out.append(score.total)
        if scores:
            for field in ("country", "region", "city"):
                log_metric(kwargs, f"rewards/region/{field}_acc", sum(getattr(s, field) for s in scores) / len(scores))
            log_metric(kwargs, "rewards/region/consistent", sum(s.consistent_country for s in scores) / len(scores))
        return out

    return region_reward
