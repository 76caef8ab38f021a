"""``explorer.html`` from ``geo-r eval``: its rows come from the scored records, it opens offline with only its
``explorer_files/`` beside it, and in headless Chromium sorting by error puts the worst miss first, filtering by
continent cuts the rows and clicking a row shows its reasoning. At OSV-5M's test size (210k rows, a page an
inline explorer could not load) it opens and sorts."""

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
    assert match, "no inline metadata"
    return json.loads(match.group(1))


def read_explorer(page: Path) -> tuple[dict, list[dict]]:
    """The page's metadata and its rows, read back from the row files the way the page reads them."""
    meta = _page_data(page.read_text(encoding="utf-8"))
    rows: list[dict] = []
    for chunk in meta["chunks"]:
        text = (page.parent / chunk).read_text(encoding="utf-8")
        match = re.fullmatch(r"geoRExplorerChunk\((\d+),(.*)\);\n", text, re.DOTALL)
        assert match and int(match.group(1)) == len(rows)
        rows += [dict(zip(meta["fields"], values, strict=True)) for values in json.loads(match.group(2))]
    assert len(rows) == meta["n"]
    return meta, rows


def _slice(row: dict, key: str) -> str:
    return row["completion"][row[key][0]:row[key][1]] if row[key] else ""


def test_explorer_rows_and_thumbnails_are_files_beside_the_page(eval_dir: Path) -> None:
    html = (eval_dir / "explorer.html").read_text(encoding="utf-8")
    meta, rows = read_explorer(eval_dir / "explorer.html")
    scores = [json.loads(x) for x in (eval_dir / "scores.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == [s["id"] for s in scores]
    for row, s in zip(rows, scores, strict=True):
        assert row["km"] == (None if s["distance_km"] is None else round(s["distance_km"], 3))
        thumb = eval_dir / row["thumb"]
        assert row["thumb"].startswith("explorer_files/") and thumb.read_bytes()[:2] == b"\xff\xd8"  # a JPEG
    worst = next(r for r in rows if r["id"] == WORST)
    assert worst["km"] == max(r["km"] for r in rows if r["km"] is not None) and worst["km"] > 19_000
    assert rows[9]["status"] == "no answer tag" and rows[9]["km"] is None
    assert _slice(rows[7], "reasoning") == HOSTILE  # carried as data in a .js file, never inside the page
    # the completion is stored once; answer and reasoning are slices of it
    assert reasoning_of(rows[3]["completion"]) == _slice(rows[3], "reasoning") and "Country:" in _slice(rows[3], "answer")
    assert "completion" in meta["fields"] and not {"answer", "reasoning"} - set(meta["fields"])
    assert html.count("</script>") == 3  # land, metadata, the page's own script
    # nothing to fetch from a network: no external scripts, styles, fonts or images
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "@import" not in html and "url(" not in html
    assert not any(".." in chunk or chunk.startswith("/") for chunk in meta["chunks"])


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


OSV5M_TEST_ROWS = 210_000


def _synthetic_rows(n: int, photo: str):
    """OSV-5M-test-sized page rows, made directly (not scored: this checks the page, not scoring): ~330-character
    completions as a real model writes them, one photo for all rows (its thumbnail is made once and shared)."""
    import random

    rng = random.Random(0)
    think = "The road markings, the vegetation and the architecture suggest this region; signs use the Latin script."
    for i in range(n):
        lat, lon = rng.uniform(-60, 70), rng.uniform(-180, 180)
        plat, plon = max(-90.0, min(90.0, lat + rng.gauss(0, 8))), ((lon + rng.gauss(0, 15) + 180) % 360) - 180
        text = render_answer("France", "Occitanie", "Toulouse", plat, plon, think=think)
        yield {"id": f"osv_{i:07d}", "photo": photo, "lat": lat, "lon": lon, "truth": ["France", None, "Albi"],
               "plat": plat, "plon": plon, "pred": ["France", "Occitanie", "Toulouse"],
               "km": round(abs(plat - lat) * 111.2 + i % 7, 3), "cont": "Europe" if i % 3 else "Africa",
               "status": "parsed", "completion": text, "answer": [text.index("Country"), len(text) - 10],
               "reasoning": [text.index(think), text.index(think) + len(think)]}


@pytest.mark.slow
def test_a_210k_row_explorer_opens_and_sorts_in_chromium(tmp_path: Path) -> None:
    from geo_r.eval.explorer import write_explorer_rows
    from photo_fixtures import camera_jpeg

    photo = camera_jpeg(tmp_path / "photo.jpg", (640, 480), seed=1)
    page = write_explorer_rows(tmp_path / "eval" / "explorer.html", _synthetic_rows(OSV5M_TEST_ROWS, str(photo)),
                               n_rows=OSV5M_TEST_ROWS, title="OSV-5M test size", progress="off")
    meta = _page_data(page.read_text(encoding="utf-8"))
    sizes = [(page.parent / c).stat().st_size for c in meta["chunks"]]
    assert meta["n"] == OSV5M_TEST_ROWS and len(sizes) == 21 and max(sizes) < 20e6  # no string near V8's limit
    assert len(list((page.parent / "explorer_files").rglob("*.jpg"))) == 1  # one photo, one thumbnail
    worst = max(range(OSV5M_TEST_ROWS), key=lambda i: (_km(i), -i))
    with chromium_page(tmp_path) as (browser, requested):
        browser.goto(page.as_uri())
        browser.wait_for_selector("body[data-ready='1']", timeout=180_000)
        assert browser.inner_text("#count").startswith("210,000 of 210,000")
        browser.click("#head button[data-key='km']", timeout=60_000)  # largest error first
        assert browser.get_attribute("#spacer .row >> nth=0", "data-id") == f"osv_{worst:07d}"
        browser.click("#head button[data-key='km']", timeout=60_000)
        first = browser.get_attribute("#spacer .row >> nth=0", "data-id")
        assert _km(int(first[4:])) == min(_km(i) for i in range(OSV5M_TEST_ROWS))
        browser.click("#spacer .row >> nth=0")
        assert "Latin script" in browser.inner_text("#detail-reasoning")
        assert browser.locator("#spacer .row img").first.get_attribute("src").startswith("explorer_files/")
    assert requested and all(is_local(u) for u in requested)


_KM: list[float] = []


def _km(i: int) -> float:
    """The km of synthetic row ``i`` (the same rows again, computed once)."""
    if not _KM:
        _KM.extend(row["km"] for row in _synthetic_rows(OSV5M_TEST_ROWS, ""))
    return _KM[i]


def test_rewriting_keeps_one_run_folder_and_a_failed_rewrite_keeps_the_old_page(tmp_path: Path) -> None:
    from geo_r.eval.explorer import write_explorer_rows

    page = tmp_path / "explorer.html"
    rows = list(_synthetic_rows(25, ""))
    for row in rows:
        row.pop("photo")
    write_explorer_rows(page, iter(rows[:20]), n_rows=20, title="first", progress="off")
    write_explorer_rows(page, iter(rows), n_rows=25, title="second", progress="off")
    assert len(list((tmp_path / "explorer_files").iterdir())) == 1
    assert read_explorer(page)[0]["n"] == 25

    def broken():
        yield from rows[:3]
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_explorer_rows(page, broken(), n_rows=25, title="third", progress="off")
    meta, kept = read_explorer(page)  # the previous page and its files still work
    assert meta["title"] == "second" and len(kept) == 25
    assert len(list((tmp_path / "explorer_files").iterdir())) == 1
