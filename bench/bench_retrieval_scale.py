"""Retrieval at MP16-Pro's scale (4.12M photos x 768-d, CLIP ViT-L/14): which FAISS index, and what embedding costs.

Index side, on synthetic vectors (seeded; a mixture of --clusters Gaussian clusters, L2-normalised, so that
neighbours exist as they do in real image embeddings; queries are drawn the same way), at each of --sizes:

* exact fp32 ``IndexFlatIP`` (THE BASELINE: what G3 and Img2Loc search), exact fp16 (``IndexScalarQuantizer``
  fp16: exact over the fp16 values) and compressed ``IndexIVFPQ`` (--nlist lists, --pq_m bytes per vector);
* memory (the index's own bytes, from its code size, and the process's resident-set growth), build time
  (IVF-PQ: training and adding separately), query time per query for a batch of --queries, and IVF-PQ
  recall@10 against exact fp32 search at each --nprobe, from the PQ codes alone and after re-scoring the
  top --rerank_factor x 10 candidates exactly (what ``geo-r retrieve`` does from ``embeddings.npy``; its
  ``wide_query_ms`` is the wider PQ search, the exact re-scoring of 100 fp16 rows per query is not timed). Times are CPU seconds of one thread (``*_s``,
  ``*_ms``; on this shared machine wall time includes waiting for other jobs, and is kept as ``*_wall_*``).

At --full rows (4.12M) exact fp32 needs 12.7 GB and does not fit in the ~8 GB a run may use here, so only fp16
exact (which is the reference there: its top-10 equals fp32's up to fp16 ties) and IVF-PQ are built at that
size; fp32 memory is computed (4 d bytes per vector) and its times are extrapolated linearly from the largest
measured size, and the JSON says which numbers are measured and which extrapolated.

Encoder side (CPU, a few photos each): seconds per photo of the tiny Qwen-VL vision tower (``geo-r tiny-model``;
its resize to the project's 401,408-pixel bound gives the token count a real checkpoint sees), of a CLIP
ViT-L/14 with random weights built from its published sizes (vision width 1024, 24 layers, 16 heads, MLP 4096,
patch 14 at 224 px, projection 768; timing does not depend on the weights), and of decoding a 1024x768 JPEG.

Usage: ``python bench/bench_retrieval_scale.py [--sizes 100000,1000000] [--full 4120000] [--quick]``; run it
under the shared lock: ``flock /tmp/geo-r-heavy.lock nice -n 10 python bench/bench_retrieval_scale.py``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from provenance import provenance

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "bench" / "results" / "retrieval_scale.json"
MP16_PRO = 4_120_000
CHUNK = 50_000
GIB = 1024**3


def rss_gib() -> float:
    """This process's resident set size (GiB)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024 / GIB
    return float("nan")


class Synthetic:
    """A seeded stream of unit vectors with two levels of structure, as photos of places have: ``clusters``
    regions, each with ``sites`` sites (offset ``site_spread``), each photo a site plus noise (``spread``; noise
    norms, relative to the unit centres). Chunk i is the same array on every pass."""

    def __init__(self, d: int, clusters: int, sites: int, site_spread: float, spread: float, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.d, self.spread, self.seed = d, spread, seed
        centres = rng.standard_normal((clusters, d)).astype(np.float32)
        centres /= np.linalg.norm(centres, axis=1, keepdims=True)
        if sites > 1:
            offsets = (site_spread / np.sqrt(d)) * rng.standard_normal((clusters, sites, d)).astype(np.float32)
            centres = (centres[:, None, :] + offsets).reshape(-1, d)
            centres /= np.linalg.norm(centres, axis=1, keepdims=True)
        self.centres = centres

    def _draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        picks = rng.integers(0, len(self.centres), n)
        x = self.centres[picks] + (self.spread / np.sqrt(self.d)) * rng.standard_normal((n, self.d), dtype=np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    def rows(self, ids: np.ndarray) -> np.ndarray:
        """The gallery vectors with these row numbers (each chunk they fall in is drawn again)."""
        out = np.zeros((len(ids), self.d), dtype=np.float32)
        for chunk in np.unique(ids // CHUNK):
            block = self._draw(np.random.default_rng([self.seed, int(chunk)]), CHUNK)
            mine = np.flatnonzero(ids // CHUNK == chunk)
            out[mine] = block[ids[mine] - chunk * CHUNK]
        return out

    def chunks(self, n: int):
        """``n`` gallery vectors, float32, in chunks of CHUNK."""
        for i, start in enumerate(range(0, n, CHUNK)):
            yield self._draw(np.random.default_rng([self.seed, i]), min(CHUNK, n - start))

    def head(self, n: int) -> np.ndarray:
        """The first ``n`` gallery vectors (a random sample: the stream has no order)."""
        return np.concatenate(list(self.chunks(n))) if n else np.zeros((0, self.d), np.float32)

    def queries(self, n: int) -> np.ndarray:
        """``n`` query vectors from the same clusters (not in the gallery)."""
        return self._draw(np.random.default_rng([self.seed, 10**9]), n)


def code_bytes(index: Any) -> int:
    """Bytes the index holds for its vectors (codes + ids for IVF), not counting training structures."""
    import faiss

    if isinstance(index, faiss.IndexIVF):
        invlists = index.invlists
        total = sum(invlists.list_size(i) for i in range(index.nlist))
        return total * (index.code_size + 8) + index.quantizer.ntotal * index.d * 4
    return index.ntotal * index.sa_code_size()


class Clock:
    """Wall and CPU seconds since it started (the machine is shared: CPU time is what one dedicated core of a
    single-threaded run would take; wall time includes waiting for other jobs)."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def lap(self) -> tuple[float, float]:
        """(wall, cpu) seconds since start."""
        return time.perf_counter() - self.wall, time.process_time() - self.cpu


def time_search(index: Any, queries: np.ndarray, k: int = 10) -> tuple[float, float, np.ndarray]:
    """(wall ms per query for the batch, CPU ms per query, ids)."""
    clock = Clock()
    _, ids = index.search(queries, k)
    wall, cpu = clock.lap()
    return wall * 1e3 / len(queries), cpu * 1e3 / len(queries), ids


def recall(found: np.ndarray, exact: np.ndarray, k: int = 10) -> float:
    """Mean |found top-k & exact top-k| / k."""
    return float(np.mean([len(set(f[:k]) & set(e[:k])) / k for f, e in zip(found, exact, strict=True)]))


def measure_exact(kind: str, data: Synthetic, n: int, queries: np.ndarray) -> tuple[dict[str, Any], np.ndarray]:
    """Build and search one exact index of ``n`` vectors; its numbers and the query ids (the reference)."""
    import faiss

    gc.collect()
    before = rss_gib()
    if kind == "flat_fp32":
        index = faiss.IndexFlatIP(data.d)
    else:
        index = faiss.IndexScalarQuantizer(data.d, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)
    build_wall = build_cpu = 0.0
    for block in data.chunks(n):  # generating the data is not timed
        clock = Clock()
        index.add(block)
        wall, cpu = clock.lap()
        build_wall, build_cpu = build_wall + wall, build_cpu + cpu
    grown = rss_gib() - before
    query_wall, query_cpu, ids = time_search(index, queries)
    out = {"index": kind, "n": n, "measured": True, "index_gib": code_bytes(index) / GIB, "rss_growth_gib": grown,
           "build_s": build_cpu, "build_wall_s": build_wall, "query_ms": query_cpu, "query_wall_ms": query_wall,
           "queries": len(queries)}
    del index
    gc.collect()
    return out, ids


def rerank_rows(stored: dict[int, np.ndarray], queries: np.ndarray, ids: np.ndarray, k: int = 10) -> np.ndarray:
    """Top-``k`` of each query's candidate ``ids`` by exact inner product with the ``stored`` vectors (what geo-r
    retrieve does with an IVF-PQ index, reading the candidates from embeddings.npy; here they are drawn again
    from the seeded stream)."""
    out = np.full((len(queries), k), -1, dtype=np.int64)
    for q, row in enumerate(ids):
        row = row[row >= 0]
        scores = np.stack([stored[int(r)] for r in row]) @ queries[q]
        best = row[np.argsort(-scores, kind="stable")[:k]]
        out[q, : len(best)] = best
    return out


def measure_ivfpq(data: Synthetic, n: int, queries: np.ndarray, exact: np.ndarray, nlist: int, pq_m: int,
                  train_size: int, nprobes: list[int], rerank_factor: int) -> dict[str, Any]:
    """Train, fill and search an IVF-PQ index of ``n`` vectors; recall@10 against ``exact`` at each nprobe,
    from the codes alone and after re-scoring ``rerank_factor`` x 10 candidates exactly."""
    import faiss

    gc.collect()
    before = rss_gib()
    quantizer = faiss.IndexFlatIP(data.d)
    index = faiss.IndexIVFPQ(quantizer, data.d, nlist, pq_m, 8, faiss.METRIC_INNER_PRODUCT)
    sample = data.head(min(n, train_size))
    clock = Clock()
    index.train(sample)
    train_wall, train_cpu = clock.lap()
    del sample
    add_wall = add_cpu = 0.0
    for block in data.chunks(n):  # generating the data is not timed
        clock = Clock()
        index.add(block)
        wall, cpu = clock.lap()
        add_wall, add_cpu = add_wall + wall, add_cpu + cpu
    grown = rss_gib() - before
    sweep, wides = [], []
    for nprobe in nprobes:
        index.nprobe = nprobe
        query_wall, query_cpu, ids = time_search(index, queries)
        wide_wall, wide_cpu, wide = time_search(index, queries, 10 * rerank_factor)
        wides.append(wide)
        sweep.append({"nprobe": nprobe, "query_ms": query_cpu, "query_wall_ms": query_wall,
                      "recall_at_10": recall(ids, exact), "wide_query_ms": wide_cpu, "wide_query_wall_ms": wide_wall})
    flat = np.unique(np.concatenate(wides, axis=1))
    flat = flat[flat >= 0]
    stored = dict(zip(flat.tolist(), data.rows(flat), strict=True))  # one pass over the stream for every nprobe
    for wide, entry in zip(wides, sweep, strict=True):
        entry["recall_at_10_reranked"] = recall(rerank_rows(stored, queries, wide), exact)
    out = {"index": "ivfpq", "n": n, "measured": True, "nlist": nlist, "pq_m": pq_m, "pq_nbits": 8,
           "rerank_factor": rerank_factor,
           "train_size": min(n, train_size), "index_gib": code_bytes(index) / GIB, "rss_growth_gib": grown,
           "train_s": train_cpu, "add_s": add_cpu, "build_s": train_cpu + add_cpu,
           "build_wall_s": train_wall + add_wall, "queries": len(queries), "nprobe": sweep}
    del index, quantizer
    gc.collect()
    return out


def extrapolate_fp32(rows: list[dict[str, Any]], d: int, n: int) -> dict[str, Any]:
    """Exact fp32 at ``n`` rows: memory computed (4 d bytes per vector), times scaled linearly from the largest
    measured size (both a flat scan and a flat add are linear in n)."""
    largest = max((r for r in rows if r["index"] == "flat_fp32"), key=lambda r: r["n"])
    scale = n / largest["n"]
    return {"index": "flat_fp32", "n": n, "measured": False,
            "extrapolated_from_n": largest["n"], "index_gib": 4 * d * n / GIB,
            "build_s": largest["build_s"] * scale, "query_ms": largest["query_ms"] * scale,
            "build_wall_s": largest["build_wall_s"] * scale, "query_wall_ms": largest["query_wall_ms"] * scale,
            "note": f"does not fit in the ~8 GB a run may use here ({4 * d * n / GIB:.1f} GiB of vectors); "
                    "memory computed, times scaled linearly"}


def encoder_costs(photos: int, tmp: Path) -> list[dict[str, Any]]:
    """Seconds per photo on CPU: JPEG decode, the tiny Qwen-VL vision tower, a ViT-L/14-shaped CLIP."""
    import torch
    from PIL import Image
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel

    from geo_r.data.image_decode import open_rgb
    from geo_r.demo.tiny_model import build_tiny_model
    from geo_r.retrieval.encoders import describe_encoder, load_encoder, parse_encoder

    rng = np.random.default_rng(0)
    paths = []
    for i in range(photos):  # camera-like content: smooth gradients plus noise, 1024x768 JPEG
        y, x = np.mgrid[0:768, 0:1024]
        base = np.stack([(x + 40 * i) % 256, (y + 10 * i) % 256, (x + y) % 256], -1).astype(np.float32)
        pixels = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
        path = tmp / f"photo{i}.jpg"
        Image.fromarray(pixels).save(path, quality=90)
        paths.append(str(path))
    out = []
    clock = Clock()
    images = [open_rgb(p) for p in paths]
    wall, cpu = clock.lap()
    out.append({"encoder": "decode 1024x768 JPEG (open_rgb)", "s_per_photo": cpu / photos,
                "wall_s_per_photo": wall / photos, "photos": photos})

    def timed(name: str, encoder: Any, extra: dict[str, Any]) -> None:
        encoder.encode(images[:1])  # warm-up
        clock = Clock()
        vectors = encoder.encode(images)
        wall, cpu = clock.lap()
        out.append({"encoder": name, "s_per_photo": cpu / photos, "wall_s_per_photo": wall / photos,
                    "photos": photos, "dimension": int(vectors.shape[1]), **extra})

    tiny = build_tiny_model(tmp / "tiny", family="qwen2_5_vl")
    description = describe_encoder(parse_encoder("vision_tower", str(tiny)), "float32")
    timed("vision_tower (tiny Qwen2.5-VL, geo-r tiny-model)", load_encoder(description, "cpu"),
          {"max_pixels": description["max_pixels"], "params": None})

    torch.manual_seed(0)
    clip_dir = tmp / "clip_vit_l14"
    config = CLIPConfig(
        text_config={"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1, "num_attention_heads": 2,
                     "vocab_size": 1000, "max_position_embeddings": 77},
        vision_config={"hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24,
                       "num_attention_heads": 16, "image_size": 224, "patch_size": 14},
        projection_dim=768,
    )
    model = CLIPModel(config)
    params = sum(p.numel() for p in model.vision_model.parameters()) + model.visual_projection.weight.numel()
    model.save_pretrained(clip_dir)
    del model
    CLIPImageProcessorPil(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}).save_pretrained(clip_dir)
    description = describe_encoder(parse_encoder(f"clip:{clip_dir}", None), "float32")
    timed("clip ViT-L/14 shape (random weights, 224 px)", load_encoder(description, "cpu"),
          {"params": int(params)})
    return out


def markdown(result: dict[str, Any]) -> str:
    """The two tables docs/retrieval.md shows, from a result JSON."""
    lines = ["| index | N | memory (GiB) | build (s) | query (ms/query) | recall@10 vs exact | measured |",
             "|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        if r["index"] == "ivfpq":
            for p in r["nprobe"]:
                rec = f"{p['recall_at_10']:.3f} codes" + (
                    f" / {p['recall_at_10_reranked']:.3f} re-ranked" if "recall_at_10_reranked" in p else "")
                lines.append(f"| IVF{r['nlist']},PQ{r['pq_m']} nprobe {p['nprobe']} | {r['n']:,} | {r['index_gib']:.2f} | "
                             f"{r['build_s']:.0f} (train {r['train_s']:.0f}) | {p['query_ms']:.2f} | {rec} | yes |")
            continue
        rec = "1 (reference)" if r["index"] == "flat_fp32" or "note" in r and "reference" in r["note"] else (
            f"{r['recall_at_10_vs_fp32']:.3f}" if "recall_at_10_vs_fp32" in r else "1")
        lines.append(f"| {'exact fp32 (IndexFlatIP)' if r['index'] == 'flat_fp32' else 'exact fp16 (SQfp16)'} | "
                     f"{r['n']:,} | {r['index_gib']:.2f} | {r['build_s']:.1f} | {r['query_ms']:.1f} | {rec} | "
                     f"{'yes' if r['measured'] else 'extrapolated from ' + format(r['extrapolated_from_n'], ',')} |")
    enc = ["| step | CPU s / photo (1 thread) | output |", "|---|---|---|"]
    for e in result.get("encoders", []):
        enc.append(f"| {e['encoder']} | {e['s_per_photo']:.3f} | {str(e['dimension']) + '-d' if 'dimension' in e else '-'} |")
    return "\n".join(lines) + "\n\n" + "\n".join(enc) + "\n"



def _shown(path: Path) -> str:
    """A path as the JSON records it: relative to the repository when inside it (no machine's absolute path)."""
    try:
        return str(path.resolve().relative_to(Path(__file__).resolve().parents[1]))
    except ValueError:
        return str(path)

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000", help="gallery sizes measured with all three indexes")
    parser.add_argument("--full", type=int, default=MP16_PRO,
                        help="the target size: fp16 exact and IVF-PQ measured there, fp32 extrapolated (0 = skip)")
    parser.add_argument("--dim", type=int, default=768, help="embedding width (CLIP ViT-L/14: 768)")
    parser.add_argument("--queries", type=int, default=200, help="queries per search batch")
    parser.add_argument("--full_queries", type=int, default=50, help="queries at --full (fp16 scans are slow)")
    parser.add_argument("--clusters", type=int, default=2000, help="regions in the synthetic data")
    parser.add_argument("--sites", type=int, default=1, help="sites per region (1: one level of clusters)")
    parser.add_argument("--site_spread", type=float, default=0.8, help="norm of a site's offset from its region")
    parser.add_argument("--spread", type=float, default=0.6, help="norm of a photo's noise around its site")
    parser.add_argument("--rerank_factor", type=int, default=10, help="IVF-PQ candidates re-scored: factor x 10")
    parser.add_argument("--nlist", type=int, default=1024, help="IVF lists")
    parser.add_argument("--pq_m", type=int, default=64, help="PQ bytes per vector")
    parser.add_argument("--train_size", type=int, default=65536, help="IVF-PQ training sample")
    parser.add_argument("--nprobe", default="8,32,128", help="IVF lists searched, comma-separated")
    parser.add_argument("--threads", type=int, default=1,
                        help="FAISS / torch threads (1: on a shared machine OpenMP threads spin against other jobs; "
                             "CPU seconds are then what one dedicated core takes)")
    parser.add_argument("--photos", type=int, default=4, help="photos per encoder timing")
    parser.add_argument("--no_encoders", action="store_true", help="skip the encoder timings")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to check the script runs")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--report", type=Path, default=None,
                        help="print the docs tables of an existing result JSON and exit (measures nothing)")
    args = parser.parse_args(argv)
    if args.report is not None:
        print(markdown(json.loads(args.report.read_text())))
        return 0
    import faiss
    import torch

    if args.quick:
        args.sizes, args.full, args.queries, args.full_queries, args.nlist = "5000,20000", 40000, 50, 20, 64
        args.train_size, args.photos = 8192, 2
    faiss.omp_set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    nprobes = [int(s) for s in args.nprobe.split(",") if s]
    data = Synthetic(args.dim, args.clusters, args.sites, args.site_spread, args.spread, seed=0)
    result: dict[str, Any] = {
        "settings": {k: (_shown(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "data": (f"{args.clusters} Gaussian clusters on the unit sphere, noise norm {args.spread}, L2-normalised, "
                 f"d={args.dim}" if args.sites == 1 else
                 f"{args.clusters} regions x {args.sites} sites (offset norm {args.site_spread}) on the unit sphere, "
                 f"photos = site + noise of norm {args.spread}, L2-normalised, d={args.dim}"),
        "faiss": faiss.__version__, "threads": args.threads, "rows": [], "encoders": [],
    }

    def save() -> None:
        result["provenance"] = provenance()
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")

    for n in sizes:
        queries = data.queries(args.queries)
        fp32, exact = measure_exact("flat_fp32", data, n, queries)
        fp16, ids16 = measure_exact("flat_fp16", data, n, queries)
        fp16["recall_at_10_vs_fp32"] = recall(ids16, exact)
        ivf = measure_ivfpq(data, n, queries, exact, args.nlist, args.pq_m, args.train_size, nprobes,
                            args.rerank_factor)
        result["rows"] += [fp32, fp16, ivf]
        for row in (fp32, fp16, ivf):
            print(json.dumps({k: v for k, v in row.items() if k != "nprobe"}), file=sys.stderr)
        save()
    if args.full:
        queries = data.queries(args.full_queries)
        fp16, exact = measure_exact("flat_fp16", data, args.full, queries)
        fp16["note"] = "the reference at this size (exact over fp16 values)"
        ivf = measure_ivfpq(data, args.full, queries, exact, args.nlist, args.pq_m, args.train_size, nprobes,
                            args.rerank_factor)
        ivf["recall_reference"] = "flat_fp16"
        result["rows"] += [extrapolate_fp32(result["rows"], args.dim, args.full), fp16, ivf]
        save()
    if not args.no_encoders:
        with tempfile.TemporaryDirectory(prefix="geo-r-bench-") as tmp:
            result["encoders"] = encoder_costs(args.photos, Path(tmp))
        save()
    print(json.dumps(result["rows"], indent=1))
    print(json.dumps(result["encoders"], indent=1))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.exit(main())
