"""Geography without the network: distances, completion parsing, region chains and place names.

``haversine_km`` / ``geoscore`` (:mod:`.distance`) and ``parse_prediction`` (:mod:`.parse`) are imported
eagerly: they are light and every reward and metric needs them. Region chains (:mod:`.regions`) and name
helpers (:mod:`.names`) pull in scipy and pycountry, so they load on first access
(``from geo_r.geo import reverse_geocode`` works as usual; ``import geo_r.geo`` stays cheap).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .distance import EARTH_RADIUS_KM, geoscore, haversine_km
from .parse import Prediction, extract_answer, find_coordinate_pairs, parse_prediction

if TYPE_CHECKING:
    from .names import (
        RegionKey,
        country_code,
        country_name,
        normalize_city,
        normalize_name,
        region_key,
        same_city,
        same_country,
        same_region,
    )
    from .regions import RegionChain, reverse_geocode

_LAZY = {
    "RegionChain": "regions",
    "reverse_geocode": "regions",
    "RegionKey": "names",
    "country_code": "names",
    "country_name": "names",
    "normalize_city": "names",
    "normalize_name": "names",
    "region_key": "names",
    "same_city": "names",
    "same_country": "names",
    "same_region": "names",
}

__all__ = [
    "EARTH_RADIUS_KM",
    "Prediction",
    "extract_answer",
    "find_coordinate_pairs",
    "geoscore",
    "haversine_km",
    "parse_prediction",
    # lazy (see _LAZY)
    "RegionChain",
    "RegionKey",
    "country_code",
    "country_name",
    "normalize_city",
    "normalize_name",
    "region_key",
    "reverse_geocode",
    "same_city",
    "same_country",
    "same_region",
]


def __getattr__(name: str) -> Any:
    """Load a region-chain or name helper on first use (module-level lazy attribute, PEP 562)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """Module attributes including the lazily loaded ones."""
    return sorted(set(globals()) | set(_LAZY))
