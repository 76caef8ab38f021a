"""How long ``explorer.html`` takes to open and respond in headless Chromium, at 1,000, 10,000 and 210,000 rows
(OSV-5M's test set) side by side.

Inputs (seeded): N synthetic evaluation records over 64 distinct 320 x 240 JPEG photos, each row's photo its own
path (a hard link), so each row still gets its own thumbnail, as in a real run; true points uniform on land-ish latitudes, completions rendered with
``geo_r.prompts.render_answer`` 50-5,000 km off with a two-sentence reasoning, 5 % unparseable. The page is
written by the same :func:`geo_r.eval.explorer.write_explorer` that ``geo-r eval`` calls, from the same
scored rows (:func:`geo_r.eval.scoring.score_predictions`).

Measured per size (median of --repeats page loads, each in a fresh browser page):
* write_s: scoring excluded, thumbnails + row files + page written (one run); file_mb: the page and
  explorer_files/ together; largest_file_mb: the largest single file (the page or one row file);
* ready_ms: navigation start -> the table and map are drawn (the page sets body[data-ready]);
* sort_ms / filter_ms / click_ms: one click on "error km", choosing one continent, clicking a row (the
  synchronous work of each handler, measured inside the page).

Chromium: Debian's ``chromium`` via Playwright (``--chromium``, default /usr/bin/chromium), offline flags.
Usage: ``python bench/bench_explorer_load.py [--sizes 1000 10000 210000] [--repeats 3]
[--out bench/results/explorer_load.json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from provenance import provenance  # bench/provenance.py (scripts run as files)

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]


def make_eval(folder: Path, n: int, seed: int = 0) -> tuple[list[Any], dict[str, str], list[Any]]:
    """(records, completions, scored rows) of a synthetic evaluation of ``n`` photos."""
    import numpy as np
    from PIL import Image

    from geo_r.data.schema import GeoRecord
    from geo_r.eval.scoring import score_predictions
    from geo_r.prompts import render_answer

    rng = random.Random(seed)
    photos = []
    (folder / "img").mkdir(parents=True, exist_ok=True)
    for k in range(64):
        arr = np.random.default_rng(k).integers(0, 255, size=(240, 320, 3), dtype=np.uint8)
        path = folder / "img" / f"{k:02d}.jpg"
        Image.fromarray(arr).save(path, quality=85)
        photos.append(str(path))
    records, completions = [], {}
    for i in range(n):
        lat, lon = rng.uniform(-45, 65), rng.uniform(-180, 180)
        rid = f"img_{i:05d}"
        own = folder / "img" / f"row_{i:07d}.jpg"
        os.link(photos[i % 64], own)
        records.append(GeoRecord(id=rid, images=[str(own)], lat=lat, lon=lon))
        if rng.random() < 0.05:
            completions[rid] = "I am not sure where this photo was taken."
            continue
        off = rng.uniform(50, 5000) / 111.0
        plat = max(-89.0, min(89.0, lat + rng.uniform(-off, off)))
        plon = (lon + rng.uniform(-off, off) + 180) % 360 - 180
        think = "Left-hand traffic and eucalyptus trees. The signs are in English."
        completions[rid] = render_answer("Country", "Region", "City", plat, plon, think=think)
    rows = score_predictions(records, completions)
    return records, completions, rows


def measure(page: Any, url: str) -> dict[str, float]:
    """One load of the page and one sort, filter and row click; milliseconds."""
    page.goto(url)
    page.wait_for_selector("body[data-ready='1']", timeout=300_000)
    ready = page.evaluate("() => performance.now()")
    timed = page.evaluate(
        """() => {
          const t = (f) => { const s = performance.now(); f(); return performance.now() - s; };
          const sort = t(() => document.querySelector("#head button[data-key='km']").click());
          const sel = document.getElementById('f-cont');
          const filter = t(() => { sel.value = sel.options[1].value; sel.dispatchEvent(new Event('change')); });
          const click = t(() => document.querySelector('#spacer .row').click());
          return {sort, filter, click};
        }"""
    )
    return {"ready_ms": ready, "sort_ms": timed["sort"], "filter_ms": timed["filter"], "click_ms": timed["click"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 210_000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "explorer_load.json"))
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    from geo_r.eval.explorer import write_explorer

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=args.chromium, headless=True, args=CHROMIUM_ARGS)
        chromium_version = browser.version
        for n in args.sizes:
            folder = Path(tmp) / str(n)
            records, completions, rows = make_eval(folder, n)
            start = time.perf_counter()
            path = write_explorer(folder / "explorer.html", records, completions, rows, title=f"bench {n}")
            write_s = time.perf_counter() - start
            runs = []
            for _ in range(args.repeats):
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                requested: list[str] = []
                page.on("request", lambda r, acc=requested: acc.append(r.url))
                runs.append(measure(page, path.as_uri()))
                assert all(u.startswith(("file:", "data:")) for u in requested), requested
                page.close()
            results[str(n)] = {
                "rows": n,
                "file_mb": round(sum(p.stat().st_size for p in [path, *(folder / "explorer_files").rglob("*")]
                                     if p.is_file()) / 2**20, 2),
                "largest_file_mb": round(max(p.stat().st_size for p in [path, *(folder / "explorer_files").rglob("*")]
                                             if p.is_file()) / 2**20, 2),
                "write_s": round(write_s, 2),
                **{k: round(statistics.median(r[k] for r in runs), 1) for k in runs[0]},
                "runs": runs,
            }
            print(json.dumps({k: v for k, v in results[str(n)].items() if k != "runs"}), flush=True)
        browser.close()
    payload = {"benchmark": "explorer.html load and interaction in headless Chromium",
               "chromium": chromium_version, "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()], "repeats": args.repeats, "results": results, **provenance()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
