"""The k nearest gallery rows of every query photo, written once as a neighbours file (``geo-r retrieve``).

  geo-r retrieve --index idx/ --data_file_paths im2gps3k.jsonl --image_folders im2gps3k/ --k 10 \\
      --out im2gps3k.neighbours.jsonl

Queries are embedded with the index's own encoder (from its manifest), so the vectors are comparable; a
different ``--encoder`` / ``--model_name_or_path``, or an encoder folder whose config no longer matches the
manifest (another model, another dimension), is refused naming the files, before any model loads. So are a
corrupted manifest, index files from different builds, and a query file with a bad line or a missing photo
(file:line; ``--skip_invalid`` leaves such queries out).

``--protocol leakage_aware`` (default) drops gallery rows that are the query itself (same id or same image
bytes), from the same photographer (both ``author`` s known) or near-duplicates (cosine >=
``--near_dup_threshold``), and searches deeper so k rows remain; ``--protocol standard`` keeps them (numbers
comparable with published tables) and marks each neighbour with the rule that would have dropped it. The log
and ``<out>.summary.json`` say how many rows each rule dropped. The output is appended batch by batch: a
rerun of the same command continues after the last query written.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from geo_r.retrieval.command import run_command, standalone_main
from geo_r.retrieval.layout import RetrievalInputError
from geo_r.retrieval.leakage import DEFAULT_NEAR_DUPLICATE, PROTOCOLS, RULES

logger = logging.getLogger("geo_r.retrieval.retrieve")

THRESHOLDS_KM = (1.0, 25.0, 200.0, 750.0, 2500.0)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``geo-r retrieve``."""
    parser.add_argument("--index", required=True, help="index folder written by geo-r index")
    parser.add_argument("--data_file_paths", required=True,
                        help="query jsonl/json file(s), colon-separated (the data contract: id, image, lat, lon; "
                             "author optional)")
    parser.add_argument("--image_folders", default=None,
                        help="image folder(s) paired with the query files (as everywhere in geo-r)")
    parser.add_argument("--out", required=True, help="the neighbours jsonl to write (appended; resumable)")
    parser.add_argument("--k", type=int, default=10, help="neighbours per query (default: 10)")
    parser.add_argument("--protocol", choices=PROTOCOLS, default="leakage_aware",
                        help="leakage_aware: drop the query itself, same-photographer and near-duplicate gallery "
                             "rows (default); standard: keep them (comparable with published tables)")
    parser.add_argument("--near_dup_threshold", type=float, default=DEFAULT_NEAR_DUPLICATE,
                        help="cosine at or above which a gallery row is a near-duplicate of the query "
                             "(default: %(default)s)")
    parser.add_argument("--encoder", default=None,
                        help="only to check: must name the encoder the index was built with (default: the "
                             "manifest's)")
    parser.add_argument("--model_name_or_path", default=None,
                        help="where the index's encoder is now, if its folder moved (vision_tower: the checkpoint; "
                             "its config and weights must match the manifest)")
    parser.add_argument("--device", default="auto",
                        help="torch device for the encoder; auto = cuda:LOCAL_RANK when a GPU is present, else cpu")
    parser.add_argument("--nprobe", type=int, default=None,
                        help="ivfpq: lists each search visits (default: the index's, from the manifest)")
    parser.add_argument("--rerank_factor", type=int, default=10,
                        help="ivfpq: take this many times the needed candidates from the compressed index and "
                             "re-score them exactly from embeddings.npy (default: %(default)s)")
    parser.add_argument("--batch_size", type=int, default=32, help="photos per encoder call (default: 32)")
    parser.add_argument("--num_workers", type=int, default=4,
                        help="threads decoding photos ahead of the encoder (default: 4)")
    parser.add_argument("--search_batch", type=int, default=256,
                        help="queries written per batch (one FAISS search call each; default: 256)")
    parser.add_argument("--skip_invalid", action="store_true",
                        help="leave out queries with a bad line or an unreadable photo (listed in the summary) "
                             "instead of stopping")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out instead of resuming")
    parser.add_argument("--no_progress", dest="progress", action="store_false", help="no progress bar")


def _settings(args: argparse.Namespace, manifest: dict[str, Any], nprobe: int | None,
              sources: list[Any]) -> dict[str, Any]:
    from geo_r.retrieval.layout import data_files

    return {
        "index": str(Path(args.index).resolve()),
        "index_fingerprint": manifest.get("build", {}).get("fingerprint"),
        "index_type": manifest["index"].get("type"),
        "nprobe": nprobe,
        "rerank_factor": args.rerank_factor if manifest["index"].get("type") == "ivfpq" else None,
        "k": args.k,
        "protocol": args.protocol,
        "near_dup_threshold": args.near_dup_threshold,
        "queries": [{"path": f["path"], "sha256": f["sha256"]} for f in data_files(sources)],
    }


def _check_encoder(args: argparse.Namespace, manifest: dict[str, Any], manifest_path: Path) -> dict[str, Any]:
    """The description of the encoder to embed queries with: the manifest's, verified against its folder."""
    from geo_r.retrieval.encoders import EncoderSpec, describe_encoder, identity, parse_encoder

    built = manifest["encoder"]
    path = str(Path(args.model_name_or_path).resolve()) if args.model_name_or_path else built["path"]
    if args.encoder is not None:
        given = parse_encoder(args.encoder, path)
        if given.kind != built["kind"]:
            raise RetrievalInputError(
                f"--encoder {args.encoder}: the index {manifest_path} was built with encoder {built['name']} "
                f"({built['model_type']}, {built['dimension']}-d); queries must be embedded with the same encoder"
            )
        path = given.path
    now = describe_encoder(EncoderSpec(built["kind"], path), built["dtype"], built.get("min_pixels"),
                           built.get("max_pixels"))
    if identity(now) != identity(built):
        differ = sorted(k for k, v in identity(now).items() if identity(built).get(k) != v)
        shown = "; ".join(f"{k}: index {identity(built).get(k)!r}, now {identity(now).get(k)!r}"
                          for k in differ if k != "weights") or "weight files differ"
        raise RetrievalInputError(
            f"{Path(path) / 'config.json'} does not match the encoder {manifest_path} was built with ({shown}); "
            "queries must be embedded by the same encoder (same model, dimension and settings): rebuild the index "
            "or point --model_name_or_path at the original"
        )
    return now


def _load_queries(args: argparse.Namespace) -> tuple[list[Any], list[Any]]:
    from geo_r.data import load_records, pair_sources

    sources = pair_sources(args.data_file_paths, args.image_folders)
    records, _ = load_records(args.data_file_paths, args.image_folders, skip_invalid=args.skip_invalid)
    seen: dict[str, str] = {}
    for r in records:
        if r.id in seen:
            raise RetrievalInputError(
                f"{r.source}: query id {r.id!r} also at {seen[r.id]}; the neighbours file is keyed by query id, so "
                "ids must be unique"
            )
        seen[r.id] = r.source
    return records, sources


def _resume_state(args: argparse.Namespace, settings: dict[str, Any]) -> set[str]:
    """Ids already in ``--out`` from a run with the same settings; refuses a file from other settings."""
    import json

    from geo_r.atomic_io import cut_partial_line
    from geo_r.data.neighbours import read_neighbours, summary_path

    out, summary = Path(args.out), summary_path(args.out)
    if args.overwrite:
        out.unlink(missing_ok=True)
        summary.unlink(missing_ok=True)
        return set()
    if not out.is_file():
        return set()
    if not summary.is_file():
        raise RetrievalInputError(f"{out} exists without {summary.name}; pass --overwrite to replace it")
    try:
        stored = json.loads(summary.read_text(encoding="utf-8")).get("settings", {})
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as exc:
        raise RetrievalInputError(f"{summary}: unreadable ({exc}); pass --overwrite to start again") from None
    differ = sorted(k for k in set(stored) | set(settings) if stored.get(k) != settings.get(k))
    if differ:
        raise RetrievalInputError(
            f"{out} was written with other settings (differ: {', '.join(differ)}); use another --out or --overwrite"
        )
    if cut_partial_line(out):
        logger.warning("%s: removed an incomplete last line left by an interrupted run", out)
    return set(read_neighbours(out, reduce=lambda _: None)[0])


def _run(args: argparse.Namespace) -> int:
    import numpy as np

    from geo_r.data.neighbours import summary_path
    from geo_r.retrieval.faiss_index import load_index
    from geo_r.retrieval.gallery import RowTable
    from geo_r.retrieval.layout import EMBEDDINGS, MANIFEST, check_index_files, read_manifest, write_json

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise RetrievalInputError("geo-r retrieve runs in one process (queries are few; every rank would write the "
                                  "same --out): start it without torchrun")
    if args.k < 1:
        raise RetrievalInputError(f"--k must be >= 1, got {args.k}")
    if not 0.0 < args.near_dup_threshold <= 1.0:
        raise RetrievalInputError(f"--near_dup_threshold must be in (0, 1], got {args.near_dup_threshold}")
    if min(args.batch_size, args.search_batch, args.rerank_factor) < 1 or args.num_workers < 0:
        raise RetrievalInputError("--batch_size, --search_batch and --rerank_factor must be >= 1, --num_workers >= 0")
    folder = Path(args.index)
    manifest = read_manifest(folder)
    check_index_files(folder, manifest)
    rows = RowTable(folder, manifest["count"])
    records, sources = _load_queries(args)
    description = _check_encoder(args, manifest, folder / MANIFEST)
    nprobe = args.nprobe if args.nprobe is not None else manifest["index"].get("nprobe")
    settings = _settings(args, manifest, nprobe, sources)
    done = _resume_state(args, settings)
    index_file = folder / manifest["files"]["index"]
    index = load_index(str(index_file), nprobe)
    if index.d != manifest["dimension"] or index.ntotal != manifest["count"]:
        raise RetrievalInputError(
            f"{index_file}: {index.ntotal} x {index.d}, but {folder / MANIFEST} says {manifest['count']} x "
            f"{manifest['dimension']}: the files come from different builds (dimension mismatch); rebuild the index"
        )
    embeddings = np.load(folder / EMBEDDINGS, mmap_mode="r")
    todo = [r for r in records if r.id not in done]
    summary_file = summary_path(args.out)
    started = time.perf_counter()
    write_json(summary_file, {"complete": False, "settings": settings})
    if done:
        logger.info("resuming: %d of %d query(ies) already in %s; %d to go", len(records) - len(todo), len(records),
                    args.out, len(todo))
    skipped: list[str] = []
    if todo:
        skipped = _retrieve(args, todo, description, index, embeddings, rows, manifest)
    summary = _summary(args, records, rows, skipped, settings, manifest, time.perf_counter() - started)
    write_json(summary_file, summary)
    dropped = ", ".join(f"{rule} {summary['dropped'][rule]}" for rule in RULES)
    print(f"geo-r retrieve: {summary['queries_written']} query(ies) x k={args.k} ({args.protocol}) -> {args.out}; "
          + (f"dropped: {dropped}" if args.protocol == "leakage_aware" else "flagged (kept): "
             + ", ".join(f"{rule} {summary['flagged'][rule]}" for rule in RULES)))
    return 0


def _retrieve(args: argparse.Namespace, todo: list[Any], description: dict[str, Any], index: Any, embeddings: Any,
              rows: Any, manifest: dict[str, Any]) -> list[str]:
    """Embed and search ``todo`` batch by batch, appending to ``--out``; returns the skipped queries' messages."""
    from tqdm.auto import tqdm

    from geo_r.atomic_io import JsonlAppender
    from geo_r.data.neighbours import neighbour_entry, neighbours_line
    from geo_r.retrieval.embed import Embedded, embed_batch
    from geo_r.retrieval.encoders import load_encoder, resolve_device
    from geo_r.retrieval.leakage import QueryKey
    from geo_r.retrieval.photos import read_batches
    from geo_r.retrieval.search import search_queries

    device = resolve_device(args.device)
    logger.info("loading encoder %s (%s) on %s", description["name"], description["model_type"], device)
    encoder = load_encoder(description, device)
    rescore = manifest["index"].get("type") == "ivfpq"
    skipped: list[str] = []
    standard = args.protocol == "standard"
    with JsonlAppender(args.out) as writer, tqdm(total=len(todo), desc="geo-r retrieve", unit="img",
                                                     disable=not args.progress) as bar:
        for start in range(0, len(todo), args.search_batch):
            chunk = todo[start : start + args.search_batch]
            embedded = Embedded()
            first = 0
            for batch, photos in read_batches(chunk, args.batch_size, args.num_workers):
                embed_batch(encoder, batch, photos, first, args.skip_invalid, embedded)
                first += len(batch)
                bar.update(len(batch))
            skipped += list(embedded.skipped.values())
            if not embedded.positions:
                continue
            import numpy as np

            queries = [chunk[p] for p in embedded.positions]
            keys = [QueryKey(r.id, d, r.author) for r, d in zip(queries, embedded.digests, strict=True)]
            selections = search_queries(index, embeddings, rows, np.stack(embedded.vectors), keys, k=args.k,
                                        protocol=args.protocol, threshold=args.near_dup_threshold, rescore=rescore,
                                        rerank_factor=args.rerank_factor)
            writer.append(
                neighbours_line(
                    record.id,
                    [neighbour_entry(rows[row], score, rank, leak, standard)
                     for rank, (row, score, leak) in enumerate(sel.kept, start=1)],
                    None if standard else {rule: sel.dropped.get(rule, 0) for rule in RULES},
                )
                for record, sel in zip(queries, selections, strict=True)
            )
    return skipped


def _summary(args: argparse.Namespace, records: list[Any], rows: Any, skipped: list[str],
             settings: dict[str, Any], manifest: dict[str, Any], seconds: float) -> dict[str, Any]:
    """Counts over the whole neighbours file (earlier, resumed runs included)."""
    from geo_r.data.neighbours import DROPPED_KEY, LEAK_KEY, iter_neighbours
    from geo_r.geo.distance import haversine_km
    from geo_r.retrieval.layout import package_versions

    truth = {r.id: (r.lat, r.lon) for r in records}
    dropped: Counter[str] = Counter()
    flagged: Counter[str] = Counter()
    written = short = 0
    top1: list[float | None] = []
    for line in iter_neighbours(args.out):
        if line.id not in truth:
            continue
        written += 1
        dropped.update(line.raw.get(DROPPED_KEY) or {})
        flagged.update(n.get(LEAK_KEY) for n in line.raw["neighbours"] if n.get(LEAK_KEY))
        short += len(line.neighbours) < args.k
        first = line.neighbours[0] if line.neighbours else None
        top1.append(None if first is None else haversine_km(*truth[line.id], first.lat, first.lon))
    within = {f"{t:g}": (sum(d is not None and d <= t for d in top1) / len(top1) if top1 else None)
              for t in THRESHOLDS_KM}
    if written and args.protocol == "leakage_aware":
        logger.info("rows dropped per rule over %d query(ies): %s", written,
                    ", ".join(f"{rule} {dropped.get(rule, 0)}" for rule in RULES))
    return {
        "complete": written == len(records) - len(skipped),
        "settings": settings,
        "encoder": manifest["encoder"]["name"],
        "gallery_rows": len(rows),
        "queries": len(records),
        "queries_written": written,
        "queries_with_fewer_than_k": short,
        "skipped_queries": skipped,
        "dropped": {rule: dropped.get(rule, 0) for rule in RULES},
        "flagged": {rule: flagged.get(rule, 0) for rule in RULES},
        "retrieval_top1_within_km": within,
        "seconds": round(seconds, 3),
        "command": " ".join(sys.argv),
        "versions": package_versions(),
    }


def run(args: argparse.Namespace) -> int:
    """Run ``geo-r retrieve``; returns the exit code (1 with a reason naming the file for bad input)."""
    return run_command("geo-r retrieve", _run, args)


def main(argv: list[str] | None = None) -> int:
    """``python -m geo_r.retrieval.retrieve_cli ...``: the same as ``geo-r retrieve``."""
    return standalone_main("geo-r retrieve", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
