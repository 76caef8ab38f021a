"""Hard-sample mining (``geo-r mine-hard``): the spatial rule against brute force, cases with known answers,
the file-to-file job (id matching, bad prediction lines, verbatim copies) and the command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from geo_r.cli import main
from geo_r.data import load_records
from geo_r.data.mining import MiningInputError, chord_for_km, mine_hard, mine_hard_files, within_radius
from geo_r.geo import haversine_km
from geo_r.prompts import render_answer

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "mp16_coordinates_100k.csv"

PARIS, VERSAILLES, LONDON, BRUSSELS = (48.8566, 2.3522), (48.8049, 2.1204), (51.5074, -0.1278), (50.8503, 4.3517)
TOKYO, NAIROBI = (35.6762, 139.6503), (-1.2921, 36.8219)


def brute_force(lat, lon, clat, clon, radius_km):
    """Every point against every center with haversine: the definition the KD-tree must reproduce."""
    if len(clat) == 0:
        return np.zeros(len(lat), dtype=bool)
    d = haversine_km(np.asarray(lat)[:, None], np.asarray(lon)[:, None], np.asarray(clat)[None, :], np.asarray(clon)[None, :])
    return (d <= radius_km).any(axis=1)


def test_chord_matches_great_circle_distance() -> None:
    assert chord_for_km(0) == 0.0 and chord_for_km(-5) == 0.0
    assert chord_for_km(1e9) == pytest.approx(2.0)  # capped at the antipode
    chords = [chord_for_km(d) for d in (1, 10, 200, 2500, 20_000)]
    assert chords == sorted(chords)


@pytest.mark.parametrize("radius_km", [0.5, 25.0, 200.0, 750.0, 5000.0])
def test_within_radius_equals_brute_force(radius_km: float) -> None:
    rng = np.random.default_rng(int(radius_km * 10))
    lat = np.degrees(np.arcsin(rng.uniform(-1, 1, 3000)))
    lon = rng.uniform(-180, 180, 3000)
    # clustered centers, five exactly on sample points, some on the antimeridian and near the poles
    clat = np.concatenate([lat[:40] + rng.normal(0, 1, 40), lat[40:45], [0.0, 89.9, -89.9]]).clip(-90, 90)
    clon = np.concatenate([lon[:40] + rng.normal(0, 1, 40), lon[40:45], [180.0, 0.0, 45.0]])
    clon = (clon + 180.0) % 360.0 - 180.0
    got = within_radius(lat, lon, clat, clon, radius_km)
    expected = brute_force(lat, lon, clat, clon, radius_km)
    # a point exactly on the boundary may go either way by float rounding; none should differ otherwise
    d = haversine_km(lat[:, None], lon[:, None], clat[None, :], clon[None, :]).min(axis=1)
    disagree = got != expected
    assert np.all(np.abs(d[disagree] - radius_km) < 1e-6)
    assert got[40:45].all() and got.sum() >= 5


def test_antimeridian_and_pole_neighbours() -> None:
    lat, lon = np.array([0.0, 89.95, 0.0]), np.array([-179.9, -120.0, 179.0])
    centers_lat, centers_lon = np.array([0.0, 89.95]), np.array([179.9, 60.0])
    # 22 km across the date line; 11 km across the pole; 0.9 degree (100 km) from the first center
    assert within_radius(lat, lon, centers_lat, centers_lon, 50.0).tolist() == [True, True, False]
    assert within_radius(lat, lon, centers_lat, centers_lon, 150.0).tolist() == [True, True, True]
    assert within_radius(lat, lon, [], [], 1000.0).tolist() == [False, False, False]


def test_geo_r_rule_on_a_known_case() -> None:
    points = [PARIS, VERSAILLES, BRUSSELS, LONDON, TOKYO, NAIROBI]
    lat = np.array([p[0] for p in points])
    lon = np.array([p[1] for p in points])
    # Paris answered 5 km off (a hotspot); Tokyo answered in Osaka, 400 km off (not one); Nairobi twice, once
    # 3000 km off and once 40 km off (any close answer makes a hotspot); the others are not predicted.
    pred_index = np.array([0, 4, 5, 5])
    pred_lat = np.array([48.90, 34.69, 25.0, -1.0])
    pred_lon = np.array([2.40, 135.50, 55.0, 37.0])
    result = mine_hard(lat, lon, pred_index, pred_lat, pred_lon, hotspot_km=200, radius_km=200)
    assert result.hotspot.tolist() == [True, False, False, False, False, True]
    # Versailles (17 km from Paris) goes with it; Brussels (264 km) and London (344 km) stay
    assert result.keep.tolist() == [False, False, True, True, True, False]
    wider = mine_hard(lat, lon, pred_index, pred_lat, pred_lon, hotspot_km=200, radius_km=300)
    assert wider.keep.tolist() == [False, False, False, True, True, False]
    strict = mine_hard(lat, lon, pred_index, pred_lat, pred_lon, hotspot_km=1, radius_km=300)
    assert not strict.hotspot.any() and strict.keep.all()


def test_mine_hard_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="radius_km"):
        mine_hard([0.0], [0.0], [0], [0.0], [0.0], radius_km=float("nan"))
    with pytest.raises(ValueError, match="hotspot_km"):
        mine_hard([0.0], [0.0], [0], [0.0], [0.0], hotspot_km=-1)
    with pytest.raises(ValueError, match="outside"):
        mine_hard([0.0], [0.0], [3], [0.0], [0.0])


# -------------------------------------------------------------------------------------------- files and CLI


def _write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def _data(tmp_path: Path) -> tuple[Path, Path]:
    """A jsonl in the contract (with a blank line and a bad record) and a Geo-R-style JSON array."""
    a = _write_jsonl(
        tmp_path / "a.jsonl",
        [
            {"id": "paris", "image": "p.jpg", "lat": PARIS[0], "lon": PARIS[1], "country": "France", "note": "é"},
            {"id": "versailles", "image": "v.jpg", "lat": VERSAILLES[0], "lon": VERSAILLES[1]},
            "",
            {"id": "broken", "image": "b.jpg", "lat": 95, "lon": 0},
            {"id": "london", "image": "l.jpg", "lat": LONDON[0], "lon": LONDON[1]},
        ],
    )
    b = tmp_path / "b.json"
    b.write_text(json.dumps([
        {"id": "tokyo", "image": "t.jpg", "problem": "Where?", "solution": list(TOKYO)},
        {"id": "nairobi", "image": "n.jpg", "problem": "Where?", "solution": list(NAIROBI)},
    ], indent=1), encoding="utf-8")  # fmt: skip
    return a, b


def _predictions(tmp_path: Path) -> Path:
    return _write_jsonl(
        tmp_path / "predictions.jsonl",
        [
            {"id": "paris", "completion": render_answer("France", "Ile-de-France", "Paris", 48.86, 2.34)},
            {"id": "tokyo", "completion": "I think this is Japan but cannot say where."},
            {"id": "nairobi", "pred_lat": -1.3, "pred_lon": 36.9},  # explicit coordinates, no completion
            {"id": "atlantis", "completion": "<answer>Coordinates: (0, 0)</answer>"},
            "{not json",
            [1, 2],
        ],
    )


def test_mine_hard_files_end_to_end(tmp_path: Path) -> None:
    a, b = _data(tmp_path)
    out_a, out_b = tmp_path / "hard" / "a.jsonl", tmp_path / "hard" / "b.jsonl"
    report = mine_hard_files(f"{a}:{b}", _predictions(tmp_path), f"{out_a}:{out_b}")
    assert report.samples == 5 and report.invalid == 1 and "a.jsonl:4: lat 95" in report.invalid_examples[0]
    assert report.predictions == {"lines": 6, "matched": 3, "unknown_id": 1, "unparsed": 1, "bad_line": 2}
    assert report.predicted_samples == 2 and report.hotspots == 2  # paris and nairobi
    assert report.dropped == 3 and report.hard == 2 and report.written == 2
    # the jsonl record is copied byte for byte; the JSON array's record becomes one jsonl line
    a_lines = a.read_text(encoding="utf-8").splitlines()
    assert out_a.read_text(encoding="utf-8").splitlines() == [a_lines[4]]
    assert [json.loads(x)["id"] for x in out_b.read_text(encoding="utf-8").splitlines()] == ["tokyo"]
    # outputs pair with the inputs' image folders, as the data files did
    records, _ = load_records(f"{out_a}:{out_b}", f"{tmp_path}:{tmp_path}", check_images=False)
    assert [(r.id, r.lat) for r in records] == [("london", LONDON[0]), ("tokyo", TOKYO[0])]
    text = report.format_text()
    assert "Hotspots (answered within 200 km): 2 (40.0 %)" in text and "hard: 2 (40.0 %)" in text


def test_max_samples_is_a_seeded_subset(tmp_path: Path) -> None:
    rows = [{"id": f"s{i}", "image": "x.jpg", "lat": -60.0 + i, "lon": 10.0 * (i % 30) - 145} for i in range(100)]
    data = _write_jsonl(tmp_path / "d.jsonl", rows)
    preds = _write_jsonl(tmp_path / "p.jsonl", [{"id": "s0", "pred_lat": -60.0, "pred_lon": -145.0}])
    first = mine_hard_files(str(data), preds, str(tmp_path / "h1.jsonl"), max_samples=10, seed=3)
    mine_hard_files(str(data), preds, str(tmp_path / "h2.jsonl"), max_samples=10, seed=3)
    other = mine_hard_files(str(data), preds, str(tmp_path / "h3.jsonl"), max_samples=10, seed=4)
    assert first.hard == 99 and first.written == 10 and other.written == 10
    h1, h2, h3 = ((tmp_path / f"h{i}.jsonl").read_text() for i in (1, 2, 3))
    assert h1 == h2 and h1 != h3
    ids = [int(json.loads(x)["id"][1:]) for x in h1.splitlines()]
    assert ids == sorted(ids) and 0 not in ids  # file order kept, the hotspot never chosen


def test_a_prediction_of_a_repeated_id_is_checked_against_each_record(tmp_path: Path) -> None:
    rows = [{"id": "x", "image": "1.jpg", "lat": PARIS[0], "lon": PARIS[1]},
            {"id": "x", "image": "2.jpg", "lat": TOKYO[0], "lon": TOKYO[1]},
            {"id": "y", "image": "3.jpg", "lat": TOKYO[0] + 0.5, "lon": TOKYO[1]}]  # fmt: skip
    data = _write_jsonl(tmp_path / "d.jsonl", rows)
    preds = _write_jsonl(tmp_path / "p.jsonl", [{"id": "x", "pred_lat": 48.9, "pred_lon": 2.3}])
    report = mine_hard_files(str(data), preds, str(tmp_path / "h.jsonl"))
    # near the Paris record's truth only: the Tokyo record with the same id is no hotspot, so y stays
    assert report.duplicate_ids == 1 and report.hotspots == 1 and report.hard == 2
    assert "1 duplicate id(s)" in report.format_text()
    assert [json.loads(x)["image"] for x in (tmp_path / "h.jsonl").read_text().splitlines()] == ["2.jpg", "3.jpg"]


def test_mine_hard_files_input_errors(tmp_path: Path) -> None:
    a, b = _data(tmp_path)
    preds = _predictions(tmp_path)
    with pytest.raises(MiningInputError, match="2 data file"):
        mine_hard_files(f"{a}:{b}", preds, str(tmp_path / "one.jsonl"))
    with pytest.raises(MiningInputError, match="is one of the inputs"):
        mine_hard_files(str(a), preds, str(a))
    with pytest.raises(MiningInputError, match="is one of the inputs"):
        mine_hard_files(str(a), preds, str(preds))
    with pytest.raises(MiningInputError, match="predictions file not found"):
        mine_hard_files(str(a), tmp_path / "none.jsonl", str(tmp_path / "o.jsonl"))


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, _ = _data(tmp_path)
    preds = _predictions(tmp_path)
    out, summary = tmp_path / "hard.jsonl", tmp_path / "summary.json"
    code = main(["mine-hard", "--data_file_paths", str(a), "--predictions", str(preds), "--out", str(out),
                 "--radius_km", "10", "--summary_json", str(summary)])  # fmt: skip
    assert code == 0
    assert "Dropped (within 10 km of a hotspot, hotspots included): 1" in capsys.readouterr().out
    assert [json.loads(x)["id"] for x in out.read_text().splitlines()] == ["versailles", "london"]
    assert json.loads(summary.read_text())["hard"] == 2
    assert main(["mine-hard", "--data_file_paths", str(tmp_path / "x.jsonl"), "--predictions", str(preds),
                 "--out", str(out)]) == 1  # fmt: skip
    assert "data file not found" in capsys.readouterr().err
    assert main(["mine-hard", "--data_file_paths", str(a), "--predictions", str(preds), "--out", str(out),
                 "--radius_km", "-1"]) == 1  # fmt: skip
    assert "radius_km must be" in capsys.readouterr().err


@pytest.mark.skipif(not SHARED.is_file(), reason=f"real MP16 coordinates not found at {SHARED} (../shared is not part of a checkout)")
def test_quick_bench_runs_and_agrees_with_the_baseline(tmp_path: Path) -> None:
    """Smoke run of bench/bench_mining.py --quick (no timing asserted): the KD-tree and the all-pairs baseline
    give identical masks, and the CLI's counts add up."""
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "bench_mining.py"), "--quick", "--n", "3000", "--naive_n", "300", "--out", str(out)],
        capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"}, cwd=REPO,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["n"] == 3000 and result["spatial"]["masks_identical"] is True
    cli = result["cli_summary"]
    assert cli["samples"] == 3000 and cli["hard"] + cli["dropped"] == 3000 and cli["written"] == cli["hard"]
    assert cli["hotspots"] == result["hotspots"]  # near answers (0-150 km) are exactly the hotspots
    # how it was made: bench/provenance.py's command, versions and machine
    assert "bench/bench_mining.py --quick" in result["command"] and result["packages"]["numpy"]
    assert result["machine"]["cpu_count"] and result["machine"]["omp_num_threads"] == "1"
