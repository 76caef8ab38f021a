"""The data and evaluation paths at real dataset sizes: wall, CPU, peak and anonymous memory per rank, fitted and
extrapolated to MP16-Pro (4.12M training rows, 8 ranks a node) and OSV-5M's test set (210k photos).

Synthetic inputs in the datasets' real layouts (docs/scale.md): an MP16-Pro metadata CSV (its 18 columns, ``IMG_ID``
``a5/d4/<id>.jpg``, the photos flattened to ``a5_d4_<id>.jpg`` in 4,096-file folders, so every row takes the
default search by file name; the 100k real MP16 coordinates of ../shared/data, jittered past 100k, else uniform
land-ish points; 12 % of rows without city/state, 2 % without an address) turned into the training jsonl by
``geo-r prepare --format mp16pro``; an OSV-5M ``test.csv`` (32 columns, ``images/test/00..04/<id>.jpg``) by
``geo-r prepare --format osv5m``. Every photo is a hard link to one 640x750 JPEG (to one of its copies: a file
takes at most 65,000 links on ext4). Predictions: ``<think>`` +
``<answer>`` completions of ~330 characters, 30 % within ~100 km, 67 % 200-12,000 km off, 3 % without coordinates.
The smaller training sets are the first N lines of the largest.

Steps, each a subprocess measured from outside (``/proc`` sampled every 0.1 s for every process of the tree:
VmHWM for the peak, RssAnon for the anonymous, i.e. not file-backed, memory; CPU from ``wait4``):

* ``validate``: ``geo-r validate`` (header checks);
* ``grpo_first_build``: ``grpo_jsonl.py --max_steps 1`` on the tiny model, one process, empty cache: launch ->
  first logged step;
* ``grpo_from_cache``: the same command again (the cache exists), one process;
* ``grpo_torchrun2_first_build`` / ``grpo_torchrun2_from_cache``: ``torchrun --nproc_per_node 2``;
* ``mine_hard``: ``geo-r mine-hard``;
* ``eval``: ``geo-r eval --predictions`` with explorer.html (OSV-5M sizes).

THE BASELINE, side by side on the same data and machine: the code before this change (``--before_commit``,
default the merge base with ``main``, extracted with ``git archive`` and put first on PYTHONPATH), for every step
up to ``--baseline_max_rows`` (its GRPO start-up holds the whole set in every rank: 8 GB a process at 1M).
Each series is fitted with ``a + b * rows`` (least squares over the sizes) and its log-log slope; the JSON states
the fits' values at 4.12M rows and what an 8-rank node needs.

Usage (heavy: run it alone or under the shared lock; about 45 minutes at the default sizes on 2 cores)::

    nice -n 5 python bench/bench_scale.py --work /tmp/scale
    python bench/bench_scale.py --sizes 2000 5000 10000 --eval_sizes 1000 2000 4000 --work /tmp/s  # quick
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import random
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from provenance import provenance  # bench/provenance.py (scripts run as files)

REPO = Path(__file__).resolve().parents[1]
SHARED_COORDS = REPO.parent / "shared" / "data" / "mp16_coordinates_100k.csv"
MP16_ROWS, NODE_RANKS, OSV5M_TEST_ROWS = 4_120_000, 8, 210_000
MP16PRO_HEADER = [
    "IMG_ID", "AUTHOR", "LAT", "LON", "neighbourhood", "city", "county", "state", "region", "country",
    "country_code", "continent", "S3_Label", "S16_Label", "S365_Label", "Prob_indoor", "Prob_natural", "Prob_urban",
]  # fmt: skip
OSV5M_HEADER = [
    "id", "latitude", "longitude", "thumb_original_url", "country", "sequence", "captured_at", "lon_bin", "lat_bin",
    "cell", "region", "sub-region", "city", "land_cover", "road_index", "drive_side", "climate", "soil", "dist_sea",
    "quadtree_10_500", "quadtree_10_1000", "quadtree_10_2500", "quadtree_10_5000", "quadtree_10_12500",
    "quadtree_10_25000", "quadtree_10_50000", "unique_region", "unique_sub-region", "unique_city", "unique_country",
    "creator_username", "creator_id",
]  # fmt: skip
PLACES = [("FR", "France", "Ile-de-France", "Paris"), ("US", "United States", "California", "Los Angeles"),
          ("JP", "Japan", "Tokyo", "Tokyo"), ("BR", "Brazil", "Sao Paulo", "Sao Paulo"),
          ("DE", "Germany", "Bavaria", "Munich"), ("AU", "Australia", "New South Wales", "Sydney")]
LOSS_LINE = re.compile(r"""['"]loss['"]\s*:""")


# ---------------------------------------------------------------------------------------------- measurement


def _status(pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key in ("VmHWM", "RssAnon", "RssFile", "VmRSS", "PPid"):
                    out[key] = int(value.split()[0])
    except (OSError, ValueError, IndexError):
        pass
    return out


def _role(pid: int) -> str:
    """rank<LOCAL_RANK> for torchrun workers, else the program's name."""
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        for item in env:
            if item.startswith(b"LOCAL_RANK="):
                parts = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:3]
                if b"torch.distributed.run" not in parts and not parts[0].endswith(b"torchrun"):  # not the agent
                    return "rank" + item.split(b"=", 1)[1].decode()
        cmd = [c.decode() for c in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if c]
        if cmd and "python" in Path(cmd[0]).name:
            cmd = [c for c in cmd[1:] if c not in ("-u", "-m")] or cmd
        return Path(cmd[0]).name if cmd else "?"
    except (OSError, IndexError):
        return "?"


class TreeSampler(threading.Thread):
    """Samples every process under ``root``: peak RSS (VmHWM), peak anonymous and file-backed RSS, per process."""

    def __init__(self, root: int, interval: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.root, self.interval = root, interval
        self.procs: dict[int, dict[str, Any]] = {}
        self.total_anon_peak_kb = 0
        self._halt = threading.Event()

    def _tree(self) -> list[int]:
        parents: dict[int, int] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as fh:
                        fields = fh.read().rsplit(")", 1)[1].split()
                    parents[int(entry)] = int(fields[1])
                except (OSError, IndexError, ValueError):
                    continue
        found, frontier = [self.root], [self.root]
        while frontier:
            frontier = [p for p, parent in parents.items() if parent in frontier]
            found += frontier
        return found

    def run(self) -> None:
        while not self._halt.is_set():
            total = 0
            for pid in self._tree():
                st = _status(pid)
                if not st:
                    continue
                rec = self.procs.setdefault(pid, {"role": "?", "hwm_kb": 0, "anon_kb": 0, "file_kb": 0})
                if not rec["role"].startswith("rank"):  # seen between fork and exec: look again
                    rec["role"] = _role(pid) if _role(pid) != "?" else rec["role"]  # "?": a zombie's empty cmdline
                rec["hwm_kb"] = max(rec["hwm_kb"], st.get("VmHWM", 0))
                rec["anon_kb"] = max(rec["anon_kb"], st.get("RssAnon", 0))
                rec["file_kb"] = max(rec["file_kb"], st.get("RssFile", 0))
                total += st.get("RssAnon", 0)
            self.total_anon_peak_kb = max(self.total_anon_peak_kb, total)
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join()


def measure(cmd: list[str], env: dict[str, str], log: Path, timeout: int = 3600) -> dict[str, Any]:
    """Run ``cmd``; wall, CPU (user+sys of the whole tree), first logged training step, memory per process."""
    start = time.perf_counter()
    first_step: list[float] = []
    with open(log, "w", encoding="utf-8") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                bufsize=1)
        sampler = TreeSampler(proc.pid)
        sampler.start()

        def pump() -> None:
            for line in proc.stdout:  # type: ignore[union-attr]
                out.write(line)
                if not first_step and LOSS_LINE.search(line):
                    first_step.append(time.perf_counter() - start)

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        deadline = time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"timed out: {' '.join(cmd)}")
            time.sleep(0.05)
        wall = time.perf_counter() - start
        reader.join(10)
        sampler.stop()
    code = os.waitstatus_to_exitcode(status)
    teardown_abort = code != 0 and teardown_abort_after_training(log.read_text(encoding="utf-8", errors="replace"))
    if code != 0 and not teardown_abort:
        raise RuntimeError(f"exit {code}: {' '.join(map(str, cmd))}\n{log.read_text()[-4000:]}")
    procs = [p for p in sampler.procs.values() if p["hwm_kb"] > 20_000]  # leave out shells and tiny helpers
    ranks = sorted((p for p in procs if p["role"].startswith("rank")), key=lambda p: p["role"])
    main = ranks or ([max(procs, key=lambda p: p["hwm_kb"])] if procs else [])
    return {
        "wall_s": round(wall, 2),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "first_step_s": round(first_step[0], 2) if first_step else None,
        "per_rank": [{"role": p["role"], "peak_rss_mb": round(p["hwm_kb"] / 1024, 1),
                      "peak_anon_mb": round(p["anon_kb"] / 1024, 1), "peak_file_mb": round(p["file_kb"] / 1024, 1)}
                     for p in main],
        "all_processes_anon_peak_mb": round(sampler.total_anon_peak_kb / 1024, 1),
        **({"teardown_abort_after_training": True} if teardown_abort else {}),
    }


def teardown_abort_after_training(log: str) -> bool:
    """A torchrun job that trained, saved, then had a rank abort at interpreter exit (gloo's known teardown
    "terminate called without an active exception", runtime/distributed.py): its start-up and memory stand."""
    return ("terminate called without an active exception" in log and "saved the trained model" in log
            and LOSS_LINE.search(log) is not None)


# ------------------------------------------------------------------------------------------------ inputs


def make_photo(path: Path) -> Path:
    """A 640x750 JPEG of about 110 KB (textured, so it compresses like a photo)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:750, 0:640]
    base = np.stack([120 + 60 * np.sin(x / 37.0), 140 + 50 * np.cos(y / 23.0), 100 + 40 * np.sin((x + y) / 51.0)], -1)
    pixels = np.clip(base + rng.normal(0, 18, base.shape), 0, 255).astype("uint8")
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format="JPEG", quality=82)
    return path


_LINKS_PER_COPY = 60_000  # ext4 allows 65,000 hard links to one file


def link_photo(photo: Path, target: Path, i: int) -> None:
    """``target`` as a hard link to the photo (copy ``i // 60,000`` of it: a file takes at most 65,000 links)."""
    source = photo if i < _LINKS_PER_COPY else photo.with_name(f"{photo.stem}.{i // _LINKS_PER_COPY}{photo.suffix}")
    if not source.exists():
        shutil.copyfile(photo, source)
    os.link(source, target)


def coordinates(n: int, seed: int) -> list[tuple[float, float]]:
    """Real MP16 coordinates (jittered by ~25 km past their count) or uniform land-ish points."""
    rng = random.Random(seed)
    real = []
    if SHARED_COORDS.is_file():
        with open(SHARED_COORDS) as fh:
            real = [(float(r["LAT"]), float(r["LON"])) for r in csv.DictReader(fh)]
    out = []
    for i in range(n):
        if real:
            lat, lon = real[i % len(real)]
            if i >= len(real):
                lat, lon = lat + rng.gauss(0, 0.2), lon + rng.gauss(0, 0.2)
        else:
            lat, lon = rng.uniform(-55, 70), rng.uniform(-180, 180)
        out.append((max(-89.9, min(89.9, lat)), ((lon + 180) % 360) - 180))
    return out


def write_mp16pro(root: Path, n: int, photo: Path) -> tuple[Path, Path]:
    """MP16-Pro CSV + flattened image folders of hard links; returns (csv, image root)."""
    images = root / "mp16_images"
    table = root / "MP16_Pro_filtered.csv"
    rng = random.Random(1)
    with open(table, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(MP16PRO_HEADER)
        for i, (lat, lon) in enumerate(coordinates(n, 1)):
            h = f"{(i * 2654435761) & 0xFFFFFFFF:08x}"
            img_id = f"{h[:2]}/{h[2:4]}/{i + 10_000_000}.jpg"
            code, country, state, city = PLACES[i % len(PLACES)]
            r = rng.random()
            if r < 0.02:
                code = country = state = city = ""
            elif r < 0.14:
                state = city = ""
            w.writerow([img_id, f"{i % 9973}@N0{i % 7}", f"{lat:.6f}", f"{lon:.6f}", "", city, "", state, "", country,
                        code.lower(), "Europe", 1, 5, 100, 0.1, 0.6, 0.3])
            shard = images / f"{i // 4096:04d}"
            if i % 4096 == 0:
                shard.mkdir(parents=True, exist_ok=True)
            link_photo(photo, shard / img_id.replace("/", "_"), i)
    return table, images


def write_osv5m(root: Path, n: int, photo: Path) -> tuple[Path, Path]:
    """OSV-5M ``test.csv`` + ``images/test/00..04/<id>.jpg`` hard links; returns (csv, image root)."""
    images = root / "osv5m" / "images" / "test"
    table = root / "osv5m" / "test.csv"
    table.parent.mkdir(parents=True, exist_ok=True)
    photo = Path(shutil.copyfile(photo, root / "osv5m" / "photo.jpg"))  # its own copies: MP16's hold their links
    with open(table, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(OSV5M_HEADER)
        for i, (lat, lon) in enumerate(coordinates(n, 2)):
            code, _country, state, city = PLACES[i % len(PLACES)]
            values = {"id": 5_000_000 + i, "latitude": f"{lat:.6f}", "longitude": f"{lon:.6f}", "country": code,
                      "region": state, "city": city, "creator_username": f"user{i % 977}"}
            w.writerow([values.get(name, "") for name in OSV5M_HEADER])
            shard = images / f"{i * 5 // n:02d}"
            shard.mkdir(parents=True, exist_ok=True)
            link_photo(photo, shard / f"{5_000_000 + i}.jpg", i)
    return table, images


def write_predictions(jsonl: Path, out: Path, seed: int) -> Path:
    """~330-character completions: 30 % within ~100 km, 67 % 200-12,000 km off, 3 % without coordinates."""
    sys.path.insert(0, str(REPO / "src"))
    from geo_r.prompts import render_answer

    rng = random.Random(seed)
    think = ("The vegetation, the road markings and the architecture point to this region; the signs use the "
             "Latin script and the cars drive on the right.")
    with open(jsonl, encoding="utf-8") as src, open(out, "w", encoding="utf-8") as dst:
        for line in src:
            rec = json.loads(line)
            r = rng.random()
            if r < 0.03:
                text = "<think>Hard to tell.</think><answer>I cannot tell where this photo was taken.</answer>"
            else:
                scale = rng.uniform(0, 0.9) if r < 0.33 else rng.uniform(2, 100)
                bearing = rng.uniform(0, 2 * math.pi)
                lat = max(-89.0, min(89.0, rec["lat"] + scale * math.cos(bearing)))
                lon = ((rec["lon"] + scale * math.sin(bearing) + 180) % 360) - 180
                text = render_answer(rec.get("country") or "Unknown", rec.get("region") or "Unknown",
                                     rec.get("city") or "Unknown", round(lat, 4), round(lon, 4), think=think)
            dst.write(json.dumps({"id": rec["id"], "completion": text}) + "\n")
    return out


def head(src: Path, dst: Path, n: int) -> Path:
    with open(src, "rb") as fi, open(dst, "wb") as fo:
        for i, line in enumerate(fi):
            if i >= n:
                break
            fo.write(line)
    return dst


# ---------------------------------------------------------------------------------------------------- steps


def env_for(code: Path) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(code), OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1",
               TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1")
    env.pop("WANDB_API_KEY", None)
    return env


def grpo_cmd(code: Path, model: Path, data: Path, images: Path, out: Path, nproc: int, port: int,
             cache: Path | None) -> list[str]:
    entry = code / "geo_r" / "grpo_jsonl.py"
    launcher = [sys.executable, str(entry)] if nproc == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--master_port", str(port),
        str(entry)]
    flags = ["--model_name_or_path", str(model), "--data_file_paths", str(data), "--image_folders", str(images),
             "--output_dir", str(out), "--max_steps", "1", "--per_device_train_batch_size", "2",
             "--num_generations", "2", "--max_completion_length", "16", "--logging_steps", "1",
             "--save_strategy", "no", "--report_to", "none", "--max_pixels", "12544", "--min_pixels", "3136",
             "--reward_funcs", "format", "distance", "region", "--seed", "0"]
    if cache is not None:
        flags += ["--data_cache_dir", str(cache)]
    return [*launcher, *flags]


def fit(xs: list[float], ys: list[float]) -> dict[str, float] | None:
    """``y = a + b x`` by least squares, its value at 4.12M, and the log-log slope (growth order)."""
    pts = [(x, y) for x, y in zip(xs, ys, strict=True) if y is not None]
    if len(pts) < 2:
        return None
    n = len(pts)
    mx, my = sum(p[0] for p in pts) / n, sum(p[1] for p in pts) / n
    sxx = sum((p[0] - mx) ** 2 for p in pts)
    b = sum((p[0] - mx) * (p[1] - my) for p in pts) / sxx if sxx else 0.0
    a = my - b * mx
    logs = [(math.log(p[0]), math.log(p[1])) for p in pts if p[1] > 0]
    slope = None
    if len(logs) >= 2:
        lx, ly = sum(p[0] for p in logs) / len(logs), sum(p[1] for p in logs) / len(logs)
        den = sum((p[0] - lx) ** 2 for p in logs)
        slope = sum((p[0] - lx) * (p[1] - ly) for p in logs) / den if den else None
    return {"a": round(a, 4), "b_per_row": b, "loglog_slope": None if slope is None else round(slope, 3)}


def at(f: dict[str, float] | None, rows: int) -> float | None:
    return None if f is None else round(f["a"] + f["b_per_row"] * rows, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[50_000, 200_000, 1_000_000])
    parser.add_argument("--eval_sizes", type=int, nargs="+", default=[20_000, 50_000, OSV5M_TEST_ROWS])
    parser.add_argument("--baseline_max_rows", type=int, default=200_000,
                        help="run the code before the change only up to this many rows (its memory grows per rank)")
    parser.add_argument("--eval_baseline_max_rows", type=int, default=50_000)
    parser.add_argument("--steps", default="validate,grpo,torchrun,mine,eval")
    parser.add_argument("--before_commit", default=None, help="default: git merge-base HEAD main")
    parser.add_argument("--work", type=Path, required=True, help="scratch folder (deleted at the end unless --keep)")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--port", type=int, default=29651)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "scale.json")
    parser.add_argument("--continue_from", type=Path, default=None,
                        help="a JSON of a run that stopped half-way: its runs are kept and these added (its "
                        "provenance goes into 'earlier_parts'); use the same --work to reuse its inputs")
    args = parser.parse_args()
    steps = set(args.steps.split(","))
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    after = REPO / "src"
    before_commit = args.before_commit or subprocess.run(
        ["git", "merge-base", "HEAD", "main"], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
    before_root = work / "before"
    if not (before_root / "src").is_dir():
        before_root.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "archive", before_commit, "src"], cwd=REPO, capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(before_root)], input=archive.stdout, check=True)
    before = before_root / "src"
    results: dict[str, Any] = {"runs": []}
    if args.continue_from is not None:
        earlier = json.loads(args.continue_from.read_text(encoding="utf-8"))
        results["runs"] = list(earlier["runs"])
        results["earlier_parts"] = [*earlier.get("earlier_parts", []),
                                    {"steps_until": len(earlier["runs"]), "provenance": earlier["provenance"]}]

    def record(step: str, code: str, rows: int, m: dict[str, Any], **extra: Any) -> None:
        entry = {"step": step, "code": code, "rows": rows, **m, **extra}
        results["runs"].append(entry)
        ranks = ", ".join(f"{r['role']} peak {r['peak_rss_mb']:.0f} / anon {r['peak_anon_mb']:.0f} MB"
                          for r in m["per_rank"])
        print(f"[scale] {step:<28} {code:<6} {rows:>9,}  wall {m['wall_s']:7.1f} s  cpu {m['cpu_s']:7.1f} s  "
              f"first step {m['first_step_s']}  {ranks}", flush=True)
        write(complete=False)  # after every step: a run stopped half-way keeps what it measured

    def write(complete: bool) -> dict[str, Any]:
        summary = summarise(results["runs"])
        payload = {"benchmark": "data and evaluation paths at real dataset sizes (bench/bench_scale.py)",
                   "complete": complete, "before_commit": before_commit, **results, "fits": summary,
                   "provenance": provenance(sys.argv)}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        return summary

    photo = make_photo(work / "photo.jpg")
    biggest = max(args.sizes)
    t0 = time.perf_counter()
    table, mp16_images = write_mp16pro(work, biggest, photo) if not (work / "mp16.jsonl").is_file() else (None, None)
    mp16_images = work / "mp16_images"
    if table is not None:
        m = measure([sys.executable, "-m", "geo_r.cli", "prepare", "--format", "mp16pro", "--input", str(table),
                     "--images", str(mp16_images), "--out", str(work / "mp16.jsonl"), "--no_progress"],
                    env_for(after), work / "prepare.log")
        record("prepare_mp16pro", "after", biggest, m)
    if args.continue_from is None:
        results["inputs_seconds"] = round(time.perf_counter() - t0, 1)
    model = work / "tiny"
    if not model.is_dir():
        subprocess.run([sys.executable, "-m", "geo_r.cli", "tiny-model", "--out", str(model)], env=env_for(after),
                       cwd=REPO, check=True, capture_output=True)
    port = args.port
    for rows in sorted(args.sizes):
        data = head(work / "mp16.jsonl", work / f"mp16_{rows}.jsonl", rows)
        codes = [("after", after)] + ([("before", before)] if rows <= args.baseline_max_rows else [])
        if "validate" in steps:
            for name, code in codes:
                m = measure([sys.executable, "-m", "geo_r.cli", "validate", "--data_file_paths", str(data),
                             "--image_folders", str(mp16_images)], env_for(code), work / f"validate_{name}_{rows}.log")
                record("validate", name, rows, m)
        if "grpo" in steps or "torchrun" in steps:
            cache = work / f"cache_{rows}"
            runs = [("grpo_first_build", 1, True), ("grpo_from_cache", 1, False)] if "grpo" in steps else []
            if "torchrun" in steps:
                runs += [("grpo_torchrun2_first_build", 2, True), ("grpo_torchrun2_from_cache", 2, False)]
            for step, nproc, clear in runs:
                if clear:
                    shutil.rmtree(cache, ignore_errors=True)
                port += 1
                out = work / f"run_{step}_{rows}"
                m = measure(grpo_cmd(after, model, data, mp16_images, out, nproc, port, cache), env_for(after),
                            work / f"{step}_after_{rows}.log")
                size = sum(p.stat().st_size for p in cache.rglob("*") if p.is_file())
                record(step, "after", rows, m, cache_mb=round(size / 1e6, 1))
                shutil.rmtree(out, ignore_errors=True)
            if "before" in dict(codes):
                for step, nproc in (("grpo_first_build", 1), ("grpo_torchrun2_first_build", 2)):
                    if (nproc == 1 and "grpo" not in steps) or (nproc == 2 and "torchrun" not in steps):
                        continue
                    port += 1
                    out = work / f"run_before_{step}_{rows}"
                    m = measure(grpo_cmd(before, model, data, mp16_images, out, nproc, port, None), env_for(before),
                                work / f"{step}_before_{rows}.log")
                    record(step, "before", rows, m)
                    shutil.rmtree(out, ignore_errors=True)
            shutil.rmtree(cache, ignore_errors=True)
        if "mine" in steps:
            preds = write_predictions(data, work / f"mp16_preds_{rows}.jsonl", seed=rows)
            for name, code in codes:
                m = measure([sys.executable, "-m", "geo_r.cli", "mine-hard", "--data_file_paths", str(data),
                             "--predictions", str(preds), "--out", str(work / f"hard_{name}_{rows}.jsonl")]
                            + (["--no_progress"] if name == "after" else []),
                            env_for(code), work / f"mine_{name}_{rows}.log")
                record("mine_hard", name, rows, m)
            preds.unlink()
        data.unlink()
    if "eval" in steps:
        osv_table, osv_images = write_osv5m(work, max(args.eval_sizes), photo)
        m = measure([sys.executable, "-m", "geo_r.cli", "prepare", "--format", "osv5m", "--input", str(osv_table),
                     "--images", str(osv_images), "--out", str(work / "osv5m_test.jsonl"), "--no_progress"],
                    env_for(after), work / "prepare_osv.log")
        record("prepare_osv5m", "after", max(args.eval_sizes), m)
        for rows in sorted(args.eval_sizes):
            data = head(work / "osv5m_test.jsonl", work / f"osv_{rows}.jsonl", rows)
            preds = write_predictions(data, work / f"osv_preds_{rows}.jsonl", seed=7)
            codes = [("after", after)] + ([("before", before)] if rows <= args.eval_baseline_max_rows else [])
            for name, code in codes:
                out = work / f"eval_{name}_{rows}"
                m = measure([sys.executable, "-m", "geo_r.cli", "eval", "--predictions", str(preds),
                             "--data_file_paths", str(data), "--image_folders", str(osv_images), "--output_dir",
                             str(out), "--no_progress"], env_for(code), work / f"eval_{name}_{rows}.log")
                page = sum(p.stat().st_size for p in [out / "explorer.html", *(out / "explorer_files").rglob("*")]
                           if p.is_file())
                chunks = [p.stat().st_size for p in (out / "explorer_files").rglob("*.js")] or [page]
                record("eval", name, rows, m, explorer_mb=round(page / 1e6, 1),
                       largest_explorer_file_mb=round(max(chunks) / 1e6, 1))
                shutil.rmtree(out, ignore_errors=True)
            data.unlink()
            preds.unlink()

    summary = write(complete=True)
    print(json.dumps(summary, indent=2))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per (step, code): linear fits of time and memory in the rows, their values at MP16-Pro's and OSV-5M's sizes."""
    out: dict[str, Any] = {}
    keys = sorted({(r["step"], r["code"]) for r in runs})
    for step, code in keys:
        series = sorted((r for r in runs if r["step"] == step and r["code"] == code), key=lambda r: r["rows"])
        if len(series) < 2:
            continue
        xs = [r["rows"] for r in series]
        target = OSV5M_TEST_ROWS if step == "eval" else MP16_ROWS
        block: dict[str, Any] = {"rows": xs, "extrapolated_to_rows": target}
        metrics = {
            "wall_s": [r["wall_s"] for r in series],
            "cpu_s": [r["cpu_s"] for r in series],
            "first_step_s": [r["first_step_s"] for r in series],
            "max_rank_peak_rss_mb": [max(p["peak_rss_mb"] for p in r["per_rank"]) for r in series],
            "max_rank_peak_anon_mb": [max(p["peak_anon_mb"] for p in r["per_rank"]) for r in series],
        }
        if "cache_mb" in series[0]:
            metrics["cache_mb"] = [r["cache_mb"] for r in series]
        if "explorer_mb" in series[0]:
            metrics["explorer_mb"] = [r["explorer_mb"] for r in series]
        for name, ys in metrics.items():
            if any(y is None for y in ys):
                continue
            f = fit(xs, ys)
            block[name] = {"measured": ys, "fit": f, "at_target": at(f, target)}
        out[f"{step}/{code}"] = block
    node = {}
    for step in ("grpo_from_cache", "grpo_torchrun2_from_cache"):
        block = out.get(f"{step}/after")
        if block and "max_rank_peak_anon_mb" in block:
            per_rank = block["max_rank_peak_anon_mb"]["at_target"]
            node[step] = {
                "per_rank_anon_mb_at_4.12M": per_rank,
                "ranks": NODE_RANKS,
                "node_anon_mb_8_ranks": None if per_rank is None else round(per_rank * NODE_RANKS, 1),
                "cache_on_disk_and_page_cache_mb": block.get("cache_mb", {}).get("at_target"),
                "first_step_s_at_4.12M": block.get("first_step_s", {}).get("at_target"),
                "note": "tiny model: a real model's weights, optimizer and activations come on top of these",
            }
    out["node_8_ranks_mp16pro"] = node
    return out


if __name__ == "__main__":
    main()
