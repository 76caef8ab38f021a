"""Embed a gallery of geotagged photos and build a FAISS index over it (``geo-r index``).

  geo-r index --model_name_or_path M --encoder vision_tower \\
      --data_file_paths mp16.jsonl --image_folders mp16_images/ --output_dir idx/

  geo-r index --encoder clip:clip-vit-large-patch14/ --data_file_paths a.jsonl:b.jsonl \\
      --image_folders imgs_a/:imgs_b/ --output_dir idx_clip/ --index_type ivfpq

  torchrun --nproc_per_node 8 -m geo_r.cli index ...     (each rank embeds a share of the shards)

The gallery goes through the project's loader and checks (``geo-r validate``): a malformed line, a missing
coordinate or an image that is missing or not an image is reported with its file:line before any model
loads (``--skip_invalid`` drops such rows; ``--decode_check`` also decodes every photo first). A photo that
passes the header check but does not decode is caught while embedding: it stops the run with its file:line,
or is skipped and listed in the manifest with ``--skip_invalid``. Embeddings are written in shards as they
are made; rerunning the same command continues from the last finished shard and says from where, and a
folder embedded with another encoder, other data or other settings is refused. Rerunning with only another
``--index_type`` (or IVF-PQ settings) rebuilds the index from the stored embeddings without embedding again.

The index folder (``manifest.json``, ``embeddings.npy``, ``rows.jsonl``, ``index.faiss``) is described in
docs/retrieval.md; ``geo-r retrieve`` reads it.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from geo_r.defaults import DEFAULT_DIST_TIMEOUT_S
from geo_r.retrieval.command import run_command, standalone_main
from geo_r.retrieval.faiss_index import DEFAULT_NPROBE, INDEX_TYPES, IndexSettings
from geo_r.retrieval.layout import (
    EMBEDDINGS,
    FAISS_INDEX,
    FORMAT_VERSION,
    MANIFEST,
    ROWS,
    SHARDS,
    RetrievalInputError,
)

logger = logging.getLogger("geo_r.retrieval.index")

MAX_LISTED = 20  # skipped rows named in the log; the manifest keeps up to MANIFEST_SKIPPED
MANIFEST_SKIPPED = 1000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``geo-r index``."""
    data = parser.add_argument_group("gallery")
    data.add_argument("--data_file_paths", required=True,
                      help="gallery jsonl/json file(s), colon-separated (the data contract: id, image, lat, lon; "
                           "chain fields and author optional)")
    data.add_argument("--image_folders", default=None,
                      help="image folder(s) paired with the data files by position (one folder serves all; "
                           "empty = the data file's own folder)")
    data.add_argument("--skip_invalid", action="store_true",
                      help="leave out rows with problems (bad line, missing or undecodable photo) instead of "
                           "stopping; they are counted in the log and listed in the manifest")
    data.add_argument("--decode_check", action="store_true",
                      help="decode every photo fully before the model loads (costs one extra decode per photo; "
                           "without it a photo whose header is fine but whose data is truncated is caught while "
                           "embedding)")
    data.add_argument("--no_derive_chains", dest="derive_chains", action="store_false",
                      help="do not fill missing country/region/city offline from lat/lon (they stay null in "
                           "rows.jsonl)")
    enc = parser.add_argument_group("encoder")
    enc.add_argument("--encoder", default="vision_tower",
                     help="'vision_tower' (the Qwen-VL checkpoint's own vision tower, mean-pooled; default) or "
                          "'clip:PATH' (a local CLIP/SigLIP folder, via get_image_features)")
    enc.add_argument("--model_name_or_path", default=None,
                     help="the Qwen-VL checkpoint folder whose vision tower embeds (needed for vision_tower)")
    enc.add_argument("--device", default="auto",
                     help="torch device; 'auto' = cuda:LOCAL_RANK when a GPU is present, else cpu (default: auto)")
    enc.add_argument("--dtype", default="auto",
                     help="encoder weights dtype: auto (bfloat16 on GPU, float32 on CPU), bfloat16, float16, "
                          "float32 (default: auto); retrieve embeds queries with the same")
    enc.add_argument("--min_pixels", type=int, default=None,
                     help="vision_tower: smallest image area after resizing (default: the project's, 3136)")
    enc.add_argument("--max_pixels", type=int, default=None,
                     help="vision_tower: largest image area after resizing (default: the project's, 401408)")
    run = parser.add_argument_group("run")
    run.add_argument("--output_dir", required=True, help="the index folder to write (or resume)")
    run.add_argument("--batch_size", type=int, default=32, help="photos per encoder call (default: 32)")
    run.add_argument("--num_workers", type=int, default=4,
                     help="threads decoding photos ahead of the encoder (0 = decode in the main thread; "
                          "default: 4)")
    run.add_argument("--shard_size", type=int, default=16384,
                     help="rows per resumable shard file (default: 16384); part of the settings a resume checks")
    run.add_argument("--overwrite", action="store_true",
                     help="delete an existing index or unfinished build in --output_dir first")
    run.add_argument("--ddp_timeout", type=int, default=DEFAULT_DIST_TIMEOUT_S,
                     help="seconds a torchrun rank may stay silent before the job ends naming it "
                          "(default: %(default)s)")
    run.add_argument("--no_progress", dest="progress", action="store_false", help="no progress bar")
    idx = parser.add_argument_group("FAISS index")
    idx.add_argument("--index_type", choices=INDEX_TYPES, default="flat",
                     help="flat: exact inner product (IndexFlatIP, 4 bytes/dim); flat_fp16: exact over fp16 "
                          "(half the memory); ivfpq: compressed IVF-PQ for galleries that do not fit in memory "
                          "(approximate; recall@10 measured and kept in the manifest) (default: flat)")
    idx.add_argument("--nlist", type=int, default=None,
                     help="ivfpq: coarse lists (default: ~4*sqrt(N), a power of two)")
    idx.add_argument("--pq_m", type=int, default=None,
                     help="ivfpq: bytes per vector, must divide the dimension (default: largest divisor <= 64)")
    idx.add_argument("--pq_nbits", type=int, default=None, help="ivfpq: bits per code (default: 8)")
    idx.add_argument("--train_size", type=int, default=None,
                     help="ivfpq: vectors sampled to train on (default: 64 x max(nlist, 2^nbits), at most N; FAISS "
                          "wants at least 39 per list)")
    idx.add_argument("--nprobe", type=int, default=DEFAULT_NPROBE,
                     help="ivfpq: lists a search visits, stored as retrieve's default (default: %(default)s)")
    idx.add_argument("--recall_queries", type=int, default=1000,
                     help="ivfpq: gallery rows used as queries to measure recall@10 against exact search "
                          "(0 = skip; default: 1000)")


def _check_args(args: argparse.Namespace) -> None:
    for name in ("batch_size", "shard_size"):
        if getattr(args, name) < 1:
            raise RetrievalInputError(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.num_workers < 0 or args.recall_queries < 0:
        raise RetrievalInputError("--num_workers and --recall_queries must be >= 0")
    if args.nprobe < 1:
        raise RetrievalInputError(f"--nprobe must be >= 1, got {args.nprobe}")


def _index_settings(args: argparse.Namespace) -> IndexSettings:
    return IndexSettings(args.index_type, args.nlist, args.pq_m, args.pq_nbits, args.train_size, args.nprobe)


def _load_gallery(args: argparse.Namespace, main: bool) -> tuple[list[Any], list[Any], list[str]]:
    """Records (validated, as every command loads data), their sources, and rows dropped by --decode_check."""
    from geo_r.data import derive_missing_chains, load_records, pair_sources
    from geo_r.data.images import check_images

    sources = pair_sources(args.data_file_paths, args.image_folders)
    records, _ = load_records(args.data_file_paths, args.image_folders, skip_invalid=args.skip_invalid)
    dropped: list[str] = []
    if args.decode_check:
        failures = check_images([p for r in records for p in r.images], workers=max(1, args.num_workers),
                                decode=True)
        bad = [r for r in records if any(p in failures for p in r.images)]
        messages = [f"{r.source}: {next(failures[p][1] for p in r.images if p in failures)}" for r in bad]
        if bad and not args.skip_invalid:
            listed = "\n  ".join(messages[:MAX_LISTED])
            raise RetrievalInputError(
                f"{len(bad)} gallery photo(s) do not decode (pass --skip_invalid to leave them out):\n  {listed}"
            )
        if bad:
            logger.warning("--decode_check: %d row(s) with undecodable photos left out; first: %s", len(bad), messages[0])
            records = [r for r in records if not any(p in failures for p in r.images)]
            dropped = messages
        if not records:
            raise RetrievalInputError(f"empty gallery: no photo of {args.data_file_paths} decodes")
    if main and args.derive_chains:
        derive_missing_chains(records)
    return records, sources, dropped


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


def _run(args: argparse.Namespace) -> int:
    from geo_r.retrieval.encoders import (
        describe_encoder,
        identity,
        parse_encoder,
        resolve_device,
        resolve_dtype_name,
    )
    from geo_r.retrieval.layout import data_files, ids_digest, read_manifest
    from geo_r.retrieval.shards import ShardPlan, check_build, fingerprint, start_build
    from geo_r.runtime import ranks as rk

    _check_args(args)
    ranks = rk.Ranks.from_env()
    spec = parse_encoder(args.encoder, args.model_name_or_path)
    if spec.kind != "vision_tower":
        unused = [f"--{name}" for name in ("model_name_or_path", "min_pixels", "max_pixels") if getattr(args, name)]
        if unused:
            logger.warning("%s not used by --encoder %s (its image processor sizes the photos)", ", ".join(unused),
                           args.encoder)
    out = Path(args.output_dir)
    shard_dir = out / SHARDS
    records, sources, dropped = _load_gallery(args, ranks.is_main)
    device = resolve_device(args.device)
    description = describe_encoder(spec, resolve_dtype_name(args.dtype, device), args.min_pixels, args.max_pixels)
    dimension = description["dimension"]
    try:
        _index_settings(args).resolved(len(records), dimension)  # bad IVF-PQ flags fail before the model loads
    except ValueError as exc:
        raise RetrievalInputError(str(exc)) from None
    settings = {
        "format_version": FORMAT_VERSION,
        "encoder": identity(description),
        "data": [{"sha256": f["sha256"], "bytes": f["bytes"]} for f in data_files(sources)],
        "rows_sha256": ids_digest(r.id for r in records),
        "count": len(records),
        "shard_size": args.shard_size,
    }
    expected = fingerprint(settings)
    plan = ShardPlan(len(records), args.shard_size)

    heartbeat = rk.join(ranks, args.ddp_timeout, what="index")
    try:
        if ranks.is_main and args.overwrite:
            for name in (MANIFEST, EMBEDDINGS, ROWS, FAISS_INDEX):
                (out / name).unlink(missing_ok=True)
            shutil.rmtree(shard_dir, ignore_errors=True)
        rk.barrier(ranks)
        if (out / MANIFEST).is_file():
            manifest = read_manifest(out)
            if manifest.get("build", {}).get("fingerprint") != expected:
                differ = _differences(manifest.get("build", {}).get("settings", {}), settings)
                raise RetrievalInputError(
                    f"{out / MANIFEST}: this index was built with other settings (differ: {', '.join(differ) or '?'}). "
                    "Use another --output_dir, or --overwrite to replace it."
                )
            if ranks.is_main:
                return _finish_existing(args, out, manifest)
            return 0
        resuming = check_build(shard_dir, settings)
        rk.barrier(ranks)  # every rank read build.json before rank 0 (re)writes it
        if ranks.is_main and not resuming:
            start_build(shard_dir, settings)
        rk.barrier(ranks)
        started = time.perf_counter()
        _embed(args, records, description, shard_dir, plan, expected, ranks, device)
        rk.barrier(ranks)
    finally:
        rk.leave(ranks, heartbeat)
    if not ranks.is_main:
        return 0
    return _finish_new(args, out, records, sources, description, settings, expected, plan, dropped,
                       time.perf_counter() - started, ranks.world_size)


def _embed(args: argparse.Namespace, records: list[Any], description: dict[str, Any], shard_dir: Path,
           plan: Any, expected: str, ranks: Any, device: str) -> None:
    from geo_r.retrieval.embed import embed_gallery
    from geo_r.retrieval.encoders import load_encoder
    from geo_r.retrieval.shards import done_shards

    mine = plan.shards_of(ranks.rank, ranks.world_size)
    if all(s in done_shards(shard_dir, plan, expected) for s in mine):
        logger.info("rank %d: all %d of its shard(s) are already embedded", ranks.rank, len(mine))
        return
    logger.info("loading encoder %s (%s, %s) on %s", description["name"], description["model_type"],
                description["dtype"], device)
    encoder = load_encoder(description, device)
    if encoder.dimension != description["dimension"]:
        raise RetrievalInputError(f"{description['path']}: the encoder gives {encoder.dimension}-d vectors, its "
                                  f"config says {description['dimension']}")
    embed_gallery(records, encoder, shard_dir, plan, expected, ranks=ranks, batch_size=args.batch_size,
                  workers=args.num_workers, skip_invalid=args.skip_invalid, progress=args.progress)


def _build_and_save_index(args: argparse.Namespace, out: Path, count: int, dimension: int) -> dict[str, Any]:
    import numpy as np

    from geo_r.retrieval.faiss_index import build_index, measure_recall, save_index

    settings = _index_settings(args).resolved(count, dimension)
    embeddings = np.load(out / EMBEDDINGS, mmap_mode="r")
    started = time.perf_counter()
    index = build_index(embeddings, settings, progress=args.progress)
    tmp = out / f".{FAISS_INDEX}.tmp"
    save_index(index, str(tmp))
    tmp.replace(out / FAISS_INDEX)
    info = {**settings, "file": FAISS_INDEX, "ntotal": int(index.ntotal),
            "build_seconds": round(time.perf_counter() - started, 3)}
    if settings["type"] == "ivfpq" and args.recall_queries:
        info.update(measure_recall(index, embeddings, 10, args.recall_queries, settings["seed"]))
        info["recall_queries"] = min(count, args.recall_queries)
        logger.info("IVF-PQ recall@10 against exact search: %.3f from the codes, %.3f after re-scoring %dx "
                    "candidates exactly as retrieve does (%d gallery rows as queries, nprobe %d)",
                    info["recall_at_10"], info["recall_at_10_reranked"], info["rerank_factor"],
                    info["recall_queries"], settings["nprobe"])
    return info


def _finish_new(args: argparse.Namespace, out: Path, records: list[Any], sources: list[Any],
                description: dict[str, Any], settings: dict[str, Any], expected: str, plan: Any,
                dropped: list[str], seconds: float, world_size: int) -> int:
    import datetime as dt

    from geo_r.retrieval.gallery import merge_shards
    from geo_r.retrieval.layout import data_files, package_versions, write_json

    count, skipped = merge_shards(records, out / SHARDS, plan, description["dimension"], out)
    skipped = dropped + skipped
    index_info = _build_and_save_index(args, out, count, description["dimension"])
    manifest = {
        "format_version": FORMAT_VERSION,
        "created_utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "encoder": description,
        "dimension": description["dimension"],
        "count": count,
        "index": index_info,
        "data": {"files": data_files(sources), "records": len(records), "rows_sha256": settings["rows_sha256"],
                 "n_skipped": len(skipped), "skipped": skipped[:MANIFEST_SKIPPED]},
        "build": {"fingerprint": expected, "settings": settings, "world_size": world_size,
                  "embed_seconds": round(seconds, 3), "command": " ".join(sys.argv)},
        "versions": package_versions(),
        "files": {"embeddings": EMBEDDINGS, "rows": ROWS, "index": FAISS_INDEX},
    }
    write_json(out / MANIFEST, manifest)
    shutil.rmtree(out / SHARDS, ignore_errors=True)
    if skipped:
        logger.warning("%d gallery row(s) left out (unreadable photos); first: %s", len(skipped), skipped[0])
    print(f"geo-r index: {count} row(s) x {description['dimension']} ({description['name']}) -> {out} "
          f"[{index_info['type']}" + (f", recall@10 {index_info['recall_at_10']:.3f}" if "recall_at_10" in index_info
                                      else "") + "]")
    return 0


def _finish_existing(args: argparse.Namespace, out: Path, manifest: dict[str, Any]) -> int:
    """The index folder is complete for these embeddings: nothing to do, or only the FAISS index to rebuild."""
    from geo_r.retrieval.layout import check_index_files, write_json

    check_index_files(out, manifest, with_index=False)
    wanted = _index_settings(args).resolved(manifest["count"], manifest["dimension"])
    have = {k: v for k, v in manifest["index"].items() if k in wanted}
    if have == wanted and (out / FAISS_INDEX).is_file():
        print(f"geo-r index: {out} is already complete ({manifest['count']} row(s), {wanted['type']}); nothing to do")
        return 0
    logger.info("embeddings are complete; rebuilding the FAISS index as %s (was %s)", wanted["type"],
                manifest["index"].get("type"))
    manifest["index"] = _build_and_save_index(args, out, manifest["count"], manifest["dimension"])
    write_json(out / MANIFEST, manifest)
    print(f"geo-r index: rebuilt {out / FAISS_INDEX} as {wanted['type']} from the stored embeddings")
    return 0


def run(args: argparse.Namespace) -> int:
    """Run ``geo-r index``; returns the exit code (1 with a reason naming the file for bad input)."""
    return run_command("geo-r index", _run, args)


def main(argv: list[str] | None = None) -> int:
    """``python -m geo_r.retrieval.index_cli ...``: the same as ``geo-r index``."""
    return standalone_main("geo-r index", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
