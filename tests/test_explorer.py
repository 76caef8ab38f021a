"""``explorer.html`` from ``geo-r eval``: its rows come from the scored records, it is one offline file, and in
headless Chromium sorting by error puts the worst miss first, filtering by continent cuts the rows and
clicking a row shows its reasoning."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from browser import chromium_page, is_local
from geo_r.demo.toy_data import PLACES, write_toy_dataset
from geo_r.eval.cli import main as eval_main
from geo_r.eval.explorer import reasoning_of
from geo_r.prompts import render_answer

N = 12
WORST = "worst"  # the id whose answer is on the antipode of its photo
HOSTILE = "</script><script>document.title='pwned'</script>"


def _eval_dir(tmp_path: Path) -> Path:
    """An evaluation of 12 toy photos: small errors growing with the index, one antipodal miss, one answer
    without coordinates, one answer whose reasoning tries to break out of the page's script element."""
    jsonl = write_toy_dataset(tmp_path / "toy", n=N, seed=3)
    records = [json.loads(x) for x in jsonl.read_text(encoding="utf-8").splitlines()]
    records[5]["id"] = WORST
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    preds = tmp_path / "preds.jsonl"
    with preds.open("w", encoding="utf-8") as fh:
        for i, r in enumerate(records):
            place = PLACES[i % len(PLACES)]
            lat, lon = place.lat + 0.1 * i, place.lon
            think = f"reasoning of photo {i}: the road signs"
            if r["id"] == WORST:
                lat, lon = -place.lat, place.lon - 180 if place.lon > 0 else place.lon + 180
            if i == 7:
                think = HOSTILE
            text = render_answer(place.country, place.region, place.city, lat, lon, think=think)
            if i == 9:
                text = "I cannot tell where this is."
            fh.write(json.dumps({"id": r["id"], "completion": text}) + "\n")
    out = tmp_path / "eval"
    argv = ["--predictions", str(preds), "--data_file_paths", str(jsonl), "--image_folders",
            str(jsonl.parent / "images"), "--output_dir", str(out), "--no_progress", "--run_name", "toy run"]
    assert eval_main(argv) == 0
    return out


@pytest.fixture(scope="module")
def eval_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _eval_dir(tmp_path_factory.mktemp("explorer"))


def _page_data(html: str) -> dict:
    match = re.search(r'<script id="data" type="application/json">(.*?)</script>', html, re.DOTALL)
    assert match, "no inline data"
    return json.loads(match.group(1))


def test_explorer_is_one_offline_file_with_every_row(eval_dir: Path) -> None:
    html = (eval_dir / "explorer.html").read_text(encoding="utf-8")
    data = _page_data(html)
    scores = [json.loads(x) for x in (eval_dir / "scores.jsonl").read_text().splitlines()]
    rows = data["rows"]
    assert [r["id"] for r in rows] == [s["id"] for s in scores]
    for row, s in zip(rows, scores, strict=True):
        assert row["km"] == (None if s["distance_km"] is None else round(s["distance_km"], 3))
        assert row["thumb"].startswith("data:image/jpeg;base64,")
    worst = next(r for r in rows if r["id"] == WORST)
    assert worst["km"] == max(r["km"] for r in rows if r["km"] is not None) and worst["km"] > 19_000
    assert rows[9]["status"] == "no answer tag" and rows[9]["km"] is None
    assert rows[7]["reasoning"] == HOSTILE  # carried as data, escaped so it cannot close the script element
    assert html.count("</script>") == 3  # land, data, the page's own script
    # nothing to fetch: no external scripts, styles, fonts or images
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "@import" not in html and "url(" not in html


def test_reasoning_of_completions() -> None:
    assert reasoning_of(render_answer("France", "IDF", "Paris", 48.8, 2.3, think="cafés")) == "cafés"
    assert reasoning_of("looks French <answer>Country: France</answer>") == "looks French"
    assert reasoning_of("no tags at all") == "" and reasoning_of(None) == ""


def test_explorer_in_chromium_sorts_filters_and_shows_reasoning(eval_dir: Path, tmp_path: Path) -> None:
    with chromium_page(tmp_path) as (page, requested):
        page.goto((eval_dir / "explorer.html").as_uri())
        page.wait_for_selector("body[data-ready='1']", timeout=20_000)
        assert page.title().startswith("Geo-R explorer") and "pwned" not in page.title()
        assert page.inner_text("#count").startswith(f"{N} of {N}")

        page.click("#head button[data-key='km']")  # first click: largest error first
        assert page.get_attribute("#spacer .row >> nth=0", "data-id") == WORST
        page.click("#head button[data-key='km']")  # second click: smallest first
        assert page.get_attribute("#spacer .row >> nth=0", "data-id") != WORST

        page.select_option("#f-cont", "Africa")
        shown = page.locator("#spacer .row .cont").all_inner_texts()
        assert 0 < len(shown) < N and set(shown) == {"Africa"}
        assert page.inner_text("#count").startswith(f"{len(shown)} of {N}")
        page.select_option("#f-cont", "")

        page.fill("#f-text", "toy_00007")
        page.click("#spacer .row >> nth=0")
        assert page.inner_text("#detail-reasoning") == HOSTILE
        page.fill("#f-text", "")
        page.click(f"#spacer .row[data-id='{WORST}']")
        assert page.inner_text("#detail-id") == WORST
        assert "reasoning of photo 5" in page.inner_text("#detail-reasoning")
        assert page.locator(f"#spacer .row.sel[data-id='{WORST}']").count() == 1
        # the highlighted line is drawn: red pixels on the map canvas
        red = page.evaluate(
            """() => { const c = document.getElementById('map'), d = c.getContext('2d')
                 .getImageData(0, 0, c.width, c.height).data; let n = 0;
                 for (let i = 0; i < d.length; i += 4) if (d[i] > 200 && d[i+1] < 60 && d[i+2] < 60) n++;
                 return n; }"""
        )
        assert red > 500
        page.screenshot(path=str(tmp_path / "explorer.png"))
    assert requested and all(is_local(u) for u in requested), [u for u in requested if not is_local(u)]
