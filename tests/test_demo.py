"""The CPU demo: the toy world's contract, and a reduced demo run whose stages all produce their outputs.

The full learning check (GRPO beats SFT over 3 seeds) is ``bench/bench_demo_learning.py``, not a test.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from geo_r.demo.pipeline import DemoConfig, format_table, mean_reward, run_demo
from geo_r.demo.world import BAND_EDGES, CONTINENT_TOWERS, IMAGE_SIZE, world_places, write_world
from geo_r.geo.regions import reverse_geocode
from geo_r.prompts import render_answer


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_world_places_have_real_chains_and_distinct_cues() -> None:
    places = world_places()
    assert len(places) == 36
    chains = reverse_geocode([p.lat for p in places], [p.lon for p in places])
    for place, chain in zip(places, chains, strict=True):
        assert place.country_code == chain.country_code
        assert place.region == chain.region
        assert place.continent in CONTINENT_TOWERS
        assert 0 <= place.band <= len(BAND_EDGES)
    # Every place is told apart by its cues (band, hemisphere, continent, country colours, script, landmark).
    keys = {(p.band, p.lat >= 0, p.continent, p.colours, p.script, p.landmark) for p in places}
    assert len(keys) == len(places)
    # Cities of one country always differ by landmark.
    by_country: dict[str, list[str]] = {}
    for p in places:
        by_country.setdefault(p.country_code, []).append(p.landmark)
    assert all(len(set(v)) == len(v) for v in by_country.values())
    # Each country has exactly one best-known city, its first.
    best = [p.country_code for p in places if p.best_known]
    assert sorted(best) == sorted(by_country)


def test_teacher_answers_name_the_truth_or_a_famous_country(tmp_path: Path) -> None:
    from geo_r.demo.world import TEACHER_CONFUSIONS
    from geo_r.geo.parse import parse_prediction

    best = {p.country_code: p for p in world_places() if p.best_known}
    assert set(TEACHER_CONFUSIONS.values()) <= set(best) and set(TEACHER_CONFUSIONS) <= set(best)
    for accuracy in (0.0, 1.0):
        paths = write_world(tmp_path / str(accuracy), train_per_place=2, heldout_per_place=1, jitter_km=0.0,
                            decimals=1, teacher_accuracy=accuracy)
        for r in _read(paths["train"]):
            pred = parse_prediction(r["conversations"][0]["value"])
            famous = TEACHER_CONFUSIONS.get(r["country_code"]) if accuracy == 0.0 else None
            if famous is None:  # the truth, chain and coordinates
                assert (pred.country, pred.city, pred.lat, pred.lon) == (r["country"], r["city"], r["lat"], r["lon"])
            else:  # the famous country's best-known city
                named = best[famous]
                assert (pred.country, pred.city) == (named.country, named.city)
                assert (pred.lat, pred.lon) == (round(named.lat, 1), round(named.lon, 1))
        assert all("conversations" not in r for r in _read(paths["heldout"]))
    # In between, about `accuracy` of the confused countries' photos are named right.
    paths = write_world(tmp_path / "mid", train_per_place=20, heldout_per_place=1, jitter_km=0.0, decimals=1,
                        teacher_accuracy=0.4)
    confused = [r for r in _read(paths["train"]) if r["country_code"] in TEACHER_CONFUSIONS]
    right = sum(parse_prediction(r["conversations"][0]["value"]).country == r["country"] for r in confused)
    assert 0.3 < right / len(confused) < 0.5


def test_write_world_splits_are_disjoint_and_deterministic(tmp_path: Path) -> None:
    a = write_world(tmp_path / "a", train_per_place=2, heldout_per_place=1, seed=3, jitter_km=8.0)
    b = write_world(tmp_path / "b", train_per_place=2, heldout_per_place=1, seed=3, jitter_km=8.0)
    train, held = _read(a["train"]), _read(a["heldout"])
    assert len(train) == 72 and len(held) == 36
    assert {r["id"] for r in train}.isdisjoint({r["id"] for r in held})
    assert train == _read(b["train"]) and held == _read(b["heldout"])
    assert (a["images"] / train[0]["image"]).read_bytes() == (b["images"] / train[0]["image"]).read_bytes()
    from PIL import Image

    with Image.open(a["images"] / held[0]["image"]) as im:
        assert im.size == (IMAGE_SIZE, IMAGE_SIZE)
    # Held-out photos are new drawings, not copies of training photos of the same place.
    train_bytes = {(a["images"] / r["image"]).read_bytes() for r in train}
    assert all((a["images"] / r["image"]).read_bytes() not in train_bytes for r in held)
    # Photos lie within the jitter of their city.
    from geo_r.geo.distance import haversine_km

    places = {p.city: p for p in world_places()}
    for r in train + held:
        p = places[r["city"]]
        assert haversine_km(r["lat"], r["lon"], p.lat, p.lon) <= 8.0 + 1e-6


def test_write_world_rejects_bad_sizes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        write_world(tmp_path, train_per_place=0)
    with pytest.raises(ValueError, match="jitter_km"):
        write_world(tmp_path, jitter_km=float("nan"))
    with pytest.raises(ValueError, match="decimals"):
        write_world(tmp_path, decimals=7)
    with pytest.raises(ValueError, match="teacher_accuracy"):
        write_world(tmp_path, teacher_accuracy=1.5)


def test_demo_world_labels_each_city_with_one_coordinate(tmp_path: Path) -> None:
    paths = write_world(tmp_path, train_per_place=2, heldout_per_place=1, jitter_km=0.0, decimals=1)
    places = {p.city: p for p in world_places()}
    for r in _read(paths["train"]) + _read(paths["heldout"]):
        p = places[r["city"]]
        assert (r["lat"], r["lon"]) == (round(p.lat, 1), round(p.lon, 1))


def test_mean_reward_scores_true_answers_high_and_garbage_zero(tmp_path: Path) -> None:
    paths = write_world(tmp_path / "w", train_per_place=1, heldout_per_place=1)
    held = _read(paths["heldout"])
    good = tmp_path / "good.jsonl"
    bad = tmp_path / "bad.jsonl"
    good.write_text("".join(json.dumps({"id": r["id"], "completion": render_answer(
        r["country"], r["region"], r["city"], r["lat"], r["lon"])}) + "\n" for r in held))
    bad.write_text("".join(json.dumps({"id": r["id"], "completion": "no idea"}) + "\n" for r in held))
    cfg = DemoConfig()
    assert mean_reward(cfg, good, paths["heldout"]) > 2.9  # format 1 + distance 1 + region 1 (of 3)
    assert mean_reward(cfg, bad, paths["heldout"]) == 0.0


def test_format_table_has_the_three_rows() -> None:
    row = {"parse_rate": 50.0, "acc@25km": 1.0, "acc@200km": 2.0, "acc@750km": 3.0, "acc@2500km": 4.0,
           "median_km": 1234.5, "mean_reward": 0.5}
    table = format_table({"untrained": row, "sft": row, "grpo": row}).splitlines()
    assert len(table) == 5
    assert [line.split("|")[1].strip() for line in table[2:]] == ["untrained", "after SFT", "after GRPO"]
    assert "50.0%" in table[2] and "1,234" in table[2] and "0.500" in table[2]


def test_reduced_demo_runs_every_stage_and_sft_beats_untrained(tmp_path: Path) -> None:
    cfg = DemoConfig(
        out_dir=str(tmp_path / "demo"),
        heldout_per_place=1,
        sft_steps=150,  # half the recipe's SFT: enough to parse (much shorter runs do not yet)
        grpo_steps=2,
        grpo_batch_size=8,
        num_generations=4,
        max_completion_length=64,
        eval_max_new_tokens=80,
    )
    summary = run_demo(cfg, show_progress=False)
    out = Path(cfg.out_dir)
    assert (out / "model" / "model.safetensors").is_file()
    assert (out / "world" / "train.jsonl").is_file() and (out / "world" / "heldout.jsonl").is_file()
    assert (out / "sft" / "model.safetensors").is_file()
    assert (out / "grpo" / "model.safetensors").is_file()
    state = json.loads((out / "grpo" / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    assert any("rewards/distance/mean" in e for e in state["log_history"])
    for stage in ("untrained", "sft", "grpo"):
        for name in ("metrics.json", "predictions.jsonl", "report.md", "map.png", "error_cdf.png"):
            assert (out / "eval" / stage / name).is_file(), f"{stage}/{name} missing"
        assert len(_read(out / "eval" / stage / "predictions.jsonl")) == 36
    rows = summary["rows"]
    assert list(rows) == ["untrained", "sft", "grpo"]
    assert json.loads((out / "demo_summary.json").read_text())["rows"] == rows
    # The SFT warm-up teaches the answer contract: more parsed answers and more reward than the random model.
    assert rows["sft"]["parse_rate"] > rows["untrained"]["parse_rate"]
    assert rows["sft"]["mean_reward"] > rows["untrained"]["mean_reward"] + 0.2


def test_demo_cli_refuses_a_bad_teacher_accuracy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from geo_r.demo.cli import add_arguments, run

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--out_dir", str(tmp_path / "demo"), "--teacher_accuracy", "1.5"])
    assert run(args) == 2
    assert "--teacher_accuracy must be -1" in capsys.readouterr().out
    assert not (tmp_path / "demo").exists()  # refused before building anything
