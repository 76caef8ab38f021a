"""``geo-r index`` and ``geo-r retrieve`` on the tiny model: exact neighbours against a numpy brute force, each
leakage rule, resuming an interrupted build, bad inputs refused before any model loads, torchrun, a tiny
random CLIP / SigLIP, and IVF-PQ with its recall."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from data_fixtures import write_jsonl
from geo_r.cli import main as cli
from geo_r.retrieval.leakage import QueryKey, leak_rule, select
from photo_fixtures import truncated_jpeg

N_GALLERY = 20
AUTHORS = ("ann", "bob", "cy", "dee")


def _gallery_rows(n: int = N_GALLERY) -> list[dict[str, Any]]:
    return [
        {"id": f"g{i:02d}", "image": f"{i:03d}.jpg", "lat": -50.0 + 5.0 * i, "lon": -170.0 + 17.0 * i,
         "country": "Testland", "country_code": "TL", "region": f"R{i % 3}", "city": f"C{i}",
         "author": AUTHORS[i % len(AUTHORS)]}
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def gallery(tmp_path_factory: pytest.TempPathFactory, make_images: Any) -> Path:
    """``root/gallery.jsonl`` + ``root/imgs/000.jpg ..``: 20 distinct photos, 4 photographers."""
    root = tmp_path_factory.mktemp("gallery")
    make_images(root / "imgs", N_GALLERY + 6, sizes=((84, 70), (70, 84), (98, 70)))
    write_jsonl(root / "gallery.jsonl", _gallery_rows())
    return root


def _index_args(model: Path | None, gallery: Path, out: Path, *extra: str, data: str = "gallery.jsonl") -> list[str]:
    args = ["index", "--data_file_paths", str(gallery / data), "--image_folders", str(gallery / "imgs"),
            "--output_dir", str(out), "--shard_size", "6", "--batch_size", "4", "--num_workers", "2",
            "--no_derive_chains", "--no_progress", *extra]
    return args + (["--model_name_or_path", str(model)] if model is not None else [])


def _retrieve_args(index: Path, queries: Path, images: Path, out: Path, *extra: str) -> list[str]:
    return ["retrieve", "--index", str(index), "--data_file_paths", str(queries), "--image_folders", str(images),
            "--out", str(out), "--no_progress", *extra]


@pytest.fixture(scope="module")
def built(gallery: Path, tiny_model_dir: Path) -> Path:
    """A flat index of the gallery with the tiny model's vision tower (built once)."""
    out = gallery / "idx"
    assert cli(_index_args(tiny_model_dir, gallery, out)) == 0
    return out


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _query_vectors(index: Path, queries: Path, images: Path) -> tuple[list[str], np.ndarray]:
    """The queries embedded in-process with the index's own encoder (what retrieve must have searched with)."""
    from geo_r.data import load_records
    from geo_r.retrieval.embed import embed_records
    from geo_r.retrieval.encoders import load_encoder

    manifest = json.loads((index / "manifest.json").read_text())
    records, _ = load_records(str(queries), str(images))
    out = embed_records(records, load_encoder(manifest["encoder"], "cpu"), batch_size=3, workers=0,
                        skip_invalid=False, progress=False, desc="q")
    return [r.id for r in records], np.stack(out.vectors)


def _no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any model load fail loudly: the checks under test must come first."""
    import geo_r.retrieval.encoders as enc

    def boom(*_: Any, **__: Any) -> Any:
        raise AssertionError("a model was loaded before the input was checked")

    monkeypatch.setattr(enc, "load_encoder", boom)
    monkeypatch.setattr("geo_r.models.loading.load_model", boom)


# ------------------------------------------------------------------------------------------------ index files


def test_index_files_manifest_and_rows(built: Path, gallery: Path, tiny_model_dir: Path) -> None:
    manifest = json.loads((built / "manifest.json").read_text())
    emb = np.load(built / "embeddings.npy", mmap_mode="r")
    assert emb.dtype == np.float16 and emb.shape == (N_GALLERY, manifest["dimension"]) == (N_GALLERY, 64)
    np.testing.assert_allclose(np.linalg.norm(emb.astype(np.float32), axis=1), 1.0, atol=2e-3)
    rows = _lines(built / "rows.jsonl")
    assert [r["id"] for r in rows] == [f"g{i:02d}" for i in range(N_GALLERY)]
    assert rows[5]["author"] == "bob" and rows[5]["city"] == "C5" and rows[5]["source"].endswith("gallery.jsonl:6")
    assert len({r["digest"] for r in rows}) == N_GALLERY
    enc = manifest["encoder"]
    assert (enc["name"], enc["model_type"], enc["path"]) == ("vision_tower", "qwen2_5_vl", str(tiny_model_dir))
    assert manifest["count"] == N_GALLERY and manifest["index"]["type"] == "flat"
    assert manifest["data"]["files"][0]["sha256"] and manifest["versions"]["faiss-cpu"]
    assert not (built / "shards").exists()
    import faiss

    assert faiss.read_index(str(built / "index.faiss")).ntotal == N_GALLERY


def test_exact_neighbours_equal_a_numpy_brute_force(built: Path, gallery: Path, make_images: Any,
                                                    tmp_path: Path) -> None:
    """Queries that are not in the gallery (other photos), standard protocol: ids and scores as numpy finds them."""
    write_jsonl(tmp_path / "q.jsonl", [{"id": f"q{i}", "image": f"{N_GALLERY + i:03d}.jpg", "lat": 1.0, "lon": 2.0}
                                       for i in range(5)])
    out = tmp_path / "nb.jsonl"
    assert cli(_retrieve_args(built, tmp_path / "q.jsonl", gallery / "imgs", out, "--k", "7",
                              "--protocol", "standard")) == 0
    ids, vectors = _query_vectors(built, tmp_path / "q.jsonl", gallery / "imgs")
    gallery_vectors = np.load(built / "embeddings.npy").astype(np.float32)
    scores = vectors @ gallery_vectors.T
    rows = _lines(built / "rows.jsonl")
    lines = _lines(out)
    assert [line["id"] for line in lines] == ids
    for q, line in enumerate(lines):
        best = np.argsort(-scores[q])[:7]
        assert [n["id"] for n in line["neighbours"]] == [rows[i]["id"] for i in best]
        np.testing.assert_allclose([n["score"] for n in line["neighbours"]], scores[q, best], atol=1e-5)
        first = line["neighbours"][0]
        assert first["rank"] == 1 and (first["lat"], first["lon"]) == (rows[best[0]]["lat"], rows[best[0]]["lon"])
        assert first["author"] == rows[best[0]]["author"] and "leak" in first and "dropped" not in line


# ------------------------------------------------------------------------------------------------ leakage rules


def test_leak_rule_order_and_threshold() -> None:
    q = QueryKey("a", "d1", "ann")
    assert leak_rule(q, {"id": "a", "digest": "x", "author": None}, 0.1, 0.95) == "self_id"
    assert leak_rule(q, {"id": "b", "digest": "d1", "author": "ann"}, 0.99, 0.95) == "self_content"
    assert leak_rule(q, {"id": "b", "digest": "x", "author": "ann"}, 0.99, 0.95) == "same_author"
    assert leak_rule(q, {"id": "b", "digest": "x", "author": "bob"}, 0.95, 0.95) == "near_duplicate"  # at: dropped
    assert leak_rule(q, {"id": "b", "digest": "x", "author": "bob"}, 0.9499, 0.95) is None  # below: kept
    unknown = QueryKey("a", None, None)  # an unknown author or digest never matches (not even another unknown)
    assert leak_rule(unknown, {"id": "b", "digest": None, "author": None}, 0.5, 0.95) is None
    assert leak_rule(q, {"id": "b", "digest": "x", "author": None}, 0.5, 0.95) is None


def test_select_keeps_k_clean_rows_and_counts_each_rule() -> None:
    rows = [{"id": "q"}, {"id": "c", "digest": "D"}, {"id": "s", "author": "ann"}, {"id": "n"}, {"id": "k1"},
            {"id": "k2"}, {"id": "k3"}]
    cands = [(0, 0.99), (1, 0.98), (2, 0.97), (3, 0.96), (4, 0.9), (5, 0.8), (6, 0.7)]
    key = QueryKey("q", "D", "ann")
    sel = select(key, cands, rows, 2, "leakage_aware", 0.95, complete=True)
    assert [r for r, _, _ in sel.kept] == [4, 5] and not sel.exhausted
    assert sel.dropped == {"self_id": 1, "self_content": 1, "same_author": 1, "near_duplicate": 1}
    std = select(key, cands, rows, 5, "standard", 0.95, complete=True)
    assert [(r, leak) for r, _, leak in std.kept] == [(0, "self_id"), (1, "self_content"), (2, "same_author"),
                                                      (3, "near_duplicate"), (4, None)]
    assert not std.dropped
    short = select(key, cands, rows, 5, "leakage_aware", 0.95, complete=True)
    assert len(short.kept) == 3 and short.exhausted


def test_each_leakage_rule_end_to_end(built: Path, gallery: Path, tmp_path: Path) -> None:
    """Searching the whole gallery (k = its size): exactly the rows each rule names are dropped."""
    from PIL import Image

    images = tmp_path / "imgs"
    shutil.copytree(gallery / "imgs", images)
    shutil.copy(images / "003.jpg", images / "copy_of_3.jpg")  # same bytes, another name and id
    Image.open(images / "007.jpg").save(images / "resaved_7.jpg", quality=70)  # a near-duplicate of g07
    queries = [
        {"id": "g01", "image": "001.jpg", "lat": 0, "lon": 0},  # the gallery row itself
        {"id": "q_copy", "image": "copy_of_3.jpg", "lat": 0, "lon": 0},  # g03's bytes under another id
        {"id": "q_author", "image": f"{N_GALLERY:03d}.jpg", "lat": 0, "lon": 0, "author": "cy"},
        {"id": "q_resaved", "image": "resaved_7.jpg", "lat": 0, "lon": 0},
    ]
    write_jsonl(tmp_path / "q.jsonl", queries)
    ids, vectors = _query_vectors(built, tmp_path / "q.jsonl", images)
    cos = vectors @ np.load(built / "embeddings.npy").astype(np.float32).T
    rows = _lines(built / "rows.jsonl")
    assert cos[3, 7] >= 0.95  # the re-saved photo is a near-duplicate under the tiny tower
    threshold = 0.95
    near = {q: {rows[i]["id"] for i in np.flatnonzero(cos[q] >= threshold)} for q in range(4)}
    expected_drop = {
        "g01": {"self_id": {"g01"}},
        "q_copy": {"self_content": {"g03"}},
        "q_author": {"same_author": {r["id"] for r in rows if r["author"] == "cy"}},
        "q_resaved": {},
    }
    for q, qid in enumerate(ids):  # near-duplicates not already taken by an earlier rule
        taken = set().union(*expected_drop[qid].values()) if expected_drop[qid] else set()
        expected_drop[qid]["near_duplicate"] = near[q] - taken
    assert "g07" in expected_drop["q_resaved"]["near_duplicate"]

    out = tmp_path / "aware.jsonl"
    assert cli(_retrieve_args(built, tmp_path / "q.jsonl", images, out, "--k", str(N_GALLERY))) == 0
    summary = json.loads((tmp_path / "aware.summary.json").read_text())
    totals = {rule: 0 for rule in ("self_id", "self_content", "same_author", "near_duplicate")}
    for line in _lines(out):
        drops = expected_drop[line["id"]]
        gone = set().union(*drops.values())
        assert {n["id"] for n in line["neighbours"]} == {r["id"] for r in rows} - gone
        assert line["dropped"] == {rule: len(drops.get(rule, ())) for rule in totals}
        for rule in totals:
            totals[rule] += len(drops.get(rule, ()))
    assert summary["dropped"] == totals and summary["queries_with_fewer_than_k"] == 4
    assert totals["self_id"] == 1 and totals["self_content"] == 1 and totals["same_author"] == N_GALLERY // 4

    std = tmp_path / "std.jsonl"
    assert cli(_retrieve_args(built, tmp_path / "q.jsonl", images, std, "--k", str(N_GALLERY),
                              "--protocol", "standard")) == 0
    for line in _lines(std):  # standard keeps every row and names the rule that would drop it
        assert len(line["neighbours"]) == N_GALLERY
        leaks = {n["id"]: n["leak"] for n in line["neighbours"] if n["leak"]}
        assert leaks == {rid: rule for rule, ids_ in expected_drop[line["id"]].items() for rid in ids_}
    assert json.loads((tmp_path / "std.summary.json").read_text())["flagged"] == totals

    # a small k: searched deeper until k clean rows remain
    few = tmp_path / "few.jsonl"
    assert cli(_retrieve_args(built, tmp_path / "q.jsonl", images, few, "--k", "3")) == 0
    for line in _lines(few):
        assert len(line["neighbours"]) == 3 and not set(n["id"] for n in line["neighbours"]) & set().union(
            *expected_drop[line["id"]].values())


# ------------------------------------------------------------------------------------------------ resuming


def test_an_interrupted_index_continues_on_rerun(gallery: Path, tiny_model_dir: Path, built: Path,
                                                 tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 caplog: pytest.LogCaptureFixture,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    import geo_r.retrieval.shards as shards

    real = shards.write_shard
    calls = []

    def fail_after_first(*args: Any, **kwargs: Any) -> Path:
        if calls:
            raise KeyboardInterrupt("killed after the first shard")
        calls.append(args[1])
        return real(*args, **kwargs)

    out = tmp_path / "idx"
    monkeypatch.setattr(shards, "write_shard", fail_after_first)
    with pytest.raises(KeyboardInterrupt):
        cli(_index_args(tiny_model_dir, gallery, out))
    monkeypatch.setattr(shards, "write_shard", real)
    assert calls == [0] and (out / "shards" / "shard_000000.npz").is_file() and not (out / "manifest.json").exists()
    assert not list((out / "shards").glob(".*.tmp"))  # no half-written shard left behind

    # another encoder setting is refused, naming the build file and what differs
    assert cli(_index_args(tiny_model_dir, gallery, out, "--max_pixels", "20000")) == 1
    err = capsys.readouterr().err
    assert f"{out / 'shards' / 'build.json'}: the shards" in err and "differ: encoder" in err
    assert not (out / "manifest.json").exists()

    caplog.set_level("INFO")
    written = []
    monkeypatch.setattr(shards, "write_shard", lambda *a, **k: written.append(a[1]) or real(*a, **k))
    assert cli(_index_args(tiny_model_dir, gallery, out)) == 0
    assert written == [1, 2, 3]  # shard 0 was not embedded again
    assert "resuming: 1 of 4 shard(s) already embedded (6 of 20 rows); continuing from shard 1" in caplog.text
    for name in ("embeddings.npy", "rows.jsonl", "index.faiss"):
        assert (out / name).read_bytes() == (built / name).read_bytes(), name

    # a finished folder: nothing to do; another --index_type rebuilds the index only, from the stored embeddings
    _no_model(monkeypatch)
    assert cli(_index_args(tiny_model_dir, gallery, out)) == 0
    assert cli(_index_args(tiny_model_dir, gallery, out, "--index_type", "flat_fp16")) == 0
    assert json.loads((out / "manifest.json").read_text())["index"]["type"] == "flat_fp16"


def test_an_interrupted_retrieve_continues_on_rerun(built: Path, gallery: Path, tmp_path: Path) -> None:
    write_jsonl(tmp_path / "q.jsonl", [{"id": f"q{i}", "image": f"{i:03d}.jpg", "lat": 0, "lon": 0}
                                       for i in range(6)])
    full, part = tmp_path / "full.jsonl", tmp_path / "part.jsonl"
    args = ("--k", "4", "--search_batch", "2")
    assert cli(_retrieve_args(built, tmp_path / "q.jsonl", gallery / "imgs", full, *args)) == 0
    assert cli(_retrieve_args(built, tmp_path / "q.jsonl", gallery / "imgs", part, *args)) == 0
    lines = part.read_text().splitlines(keepends=True)
    part.write_text("".join(lines[:2]) + lines[2][:15])  # killed while writing the third line
    assert cli(_retrieve_args(built, tmp_path / "q.jsonl", gallery / "imgs", part, *args)) == 0
    assert part.read_text() == full.read_text()
    assert json.loads((tmp_path / "part.summary.json").read_text())["complete"] is True
    assert cli(_retrieve_args(built, tmp_path / "q.jsonl", gallery / "imgs", part, "--k", "5")) == 1  # other k


# ------------------------------------------------------------------------------------------------ bad inputs


def test_bad_gallery_photos(gallery: Path, tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                            capsys: pytest.CaptureFixture[str]) -> None:
    images = tmp_path / "imgs"
    shutil.copytree(gallery / "imgs", images)
    (images / "002.jpg").write_bytes(b"not a jpeg at all")  # undecodable: found by the header check
    truncated_jpeg(images / "004.jpg")  # header intact, pixels cut: found by a full decode
    rows = _gallery_rows(8)
    write_jsonl(tmp_path / "gallery.jsonl", rows)
    args = ["index", "--model_name_or_path", str(tiny_model_dir), "--data_file_paths",
            str(tmp_path / "gallery.jsonl"), "--image_folders", str(images), "--shard_size", "3", "--no_progress",
            "--no_derive_chains"]

    with monkeypatch.context() as m:
        _no_model(m)
        assert cli([*args, "--output_dir", str(tmp_path / "a")]) == 1
        err = capsys.readouterr().err
        assert "gallery.jsonl:3" in err and "002.jpg" in err and "image_unreadable" in err
    # --decode_check finds the truncated photo too, before any model loads
    with monkeypatch.context() as m:
        _no_model(m)
        write_jsonl(tmp_path / "g2.jsonl", [r for r in rows if r["id"] != "g02"])
        args2 = [a if a != str(tmp_path / "gallery.jsonl") else str(tmp_path / "g2.jsonl") for a in args]
        assert cli([*args2, "--output_dir", str(tmp_path / "c"), "--decode_check"]) == 1
        err = capsys.readouterr().err
        assert "g2.jsonl:4" in err and "004.jpg" in err and "do not decode" in err
    # without --decode_check the truncated photo stops the run while embedding, naming it; shards before it stay
    assert cli([*args2, "--output_dir", str(tmp_path / "d")]) == 1
    err = capsys.readouterr().err
    assert "g2.jsonl:4" in err and "004.jpg" in err and "--skip_invalid" in err
    assert (tmp_path / "d" / "shards" / "shard_000000.npz").is_file()
    # --skip_invalid: both left out, listed in the manifest; the rest is indexed
    assert cli([*args, "--output_dir", str(tmp_path / "e"), "--skip_invalid"]) == 0
    manifest = json.loads((tmp_path / "e" / "manifest.json").read_text())
    assert manifest["count"] == 6 and manifest["data"]["n_skipped"] == 1  # 002 dropped by the loader, 004 here
    assert "gallery.jsonl:5" in manifest["data"]["skipped"][0]
    assert [r["id"] for r in _lines(tmp_path / "e" / "rows.jsonl")] == ["g00", "g01", "g03", "g05", "g06", "g07"]


def test_empty_gallery_and_bad_queries(gallery: Path, built: Path, tiny_model_dir: Path, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    _no_model(monkeypatch)
    (tmp_path / "empty.jsonl").write_text("")
    assert cli(["index", "--model_name_or_path", str(tiny_model_dir), "--data_file_paths",
                str(tmp_path / "empty.jsonl"), "--image_folders", str(gallery / "imgs"), "--output_dir",
                str(tmp_path / "x")]) == 1
    err = capsys.readouterr().err
    assert "no records in" in err and "empty.jsonl" in err

    write_jsonl(tmp_path / "q.jsonl", [{"id": "a", "image": "000.jpg", "lat": 0, "lon": 0},
                                       {"id": "b", "image": "missing.jpg", "lat": 0, "lon": 0}])
    assert cli(_retrieve_args(built, tmp_path / "q.jsonl", gallery / "imgs", tmp_path / "nb.jsonl")) == 1
    err = capsys.readouterr().err
    assert "q.jsonl:2" in err and "missing.jpg" in err and not (tmp_path / "nb.jsonl").exists()

    write_jsonl(tmp_path / "dup.jsonl", [{"id": "a", "image": "000.jpg", "lat": 0, "lon": 0}] * 2)
    assert cli(_retrieve_args(built, tmp_path / "dup.jsonl", gallery / "imgs", tmp_path / "nb.jsonl")) == 1
    assert "dup.jsonl:2" in capsys.readouterr().err


def test_corrupted_or_mismatched_index(built: Path, gallery: Path, tiny_model_dir: Path, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                       tiny_clip: Path) -> None:
    _no_model(monkeypatch)
    write_jsonl(tmp_path / "q.jsonl", [{"id": "a", "image": "000.jpg", "lat": 0, "lon": 0}])

    def attempt(index: Path, *extra: str) -> str:
        assert cli(_retrieve_args(index, tmp_path / "q.jsonl", gallery / "imgs", tmp_path / "nb.jsonl", *extra)) == 1
        return capsys.readouterr().err

    broken = tmp_path / "broken"
    shutil.copytree(built, broken)
    (broken / "manifest.json").write_text('{"format_version": 1,\n "encoder": ')
    assert f"{broken / 'manifest.json'}:2: invalid JSON" in attempt(broken)
    (broken / "manifest.json").write_text(json.dumps({"format_version": 1}))
    assert "manifest.json: key 'encoder' is missing" in attempt(broken)

    # another encoder named on the command line
    err = attempt(built, "--encoder", f"clip:{tiny_clip}")
    assert "manifest.json" in err and "built with encoder vision_tower" in err
    # the encoder folder now holds another model (another dimension): named with both files
    other = tmp_path / "other_model"
    shutil.copytree(tiny_model_dir, other)
    config = json.loads((other / "config.json").read_text())
    config["vision_config"]["out_hidden_size"] = 96
    (other / "config.json").write_text(json.dumps(config))
    err = attempt(built, "--model_name_or_path", str(other))
    assert f"{other / 'config.json'} does not match" in err and "dimension: index 64, now 96" in err
    # files of two builds mixed: rows of another gallery, embeddings or an index of another dimension
    mixed = tmp_path / "mixed"
    shutil.copytree(built, mixed)
    rows_file = mixed / "rows.jsonl"
    rows_file.write_text("".join(rows_file.read_text().splitlines(keepends=True)[:-1]))
    assert "rows.jsonl: 19 row(s), but the manifest counts 20" in attempt(mixed)
    shutil.copy(built / "rows.jsonl", rows_file)
    np.save(mixed / "embeddings.npy", np.zeros((N_GALLERY, 32), dtype=np.float16))
    err = attempt(mixed)
    assert "embeddings.npy: 20 x 32 float16" in err and "says 20 x 64" in err
    # an index file of another dimension
    import faiss

    shutil.copy(built / "embeddings.npy", mixed / "embeddings.npy")
    wrong = faiss.IndexFlatIP(32)
    wrong.add(np.zeros((N_GALLERY, 32), dtype=np.float32))
    faiss.write_index(wrong, str(mixed / "index.faiss"))
    assert "index.faiss: 20 x 32" in attempt(mixed)
    assert "not a finished geo-r index folder" in attempt(tmp_path)


def test_author_must_be_text(gallery: Path, tmp_path: Path) -> None:
    from geo_r.data import DataValidationError, build_grpo_dataset, load_records

    rows = _gallery_rows(4)
    rows[1]["author"] = 12345  # numeric Flickr-style ids become text
    rows[2]["author"] = "  "
    rows[3]["author"] = ["x"]
    write_jsonl(tmp_path / "a.jsonl", rows)
    with pytest.raises(DataValidationError, match=r"a\.jsonl:4: author must be a string or an integer"):
        load_records(str(tmp_path / "a.jsonl"), str(gallery / "imgs"))
    records, _ = load_records(str(tmp_path / "a.jsonl"), str(gallery / "imgs"), skip_invalid=True)
    assert [r.author for r in records] == ["ann", "12345", None] and all("author" not in r.extras for r in records)
    assert build_grpo_dataset(records)["author"] == ["ann", "12345", None]  # passes through to reward functions
    del rows[3]
    for row in rows:
        row.pop("author")
    write_jsonl(tmp_path / "b.jsonl", rows)
    records, _ = load_records(str(tmp_path / "b.jsonl"), str(gallery / "imgs"))
    assert "author" not in build_grpo_dataset(records).column_names  # no photographer anywhere: no column


# ------------------------------------------------------------------------------------------------ encoders


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random CLIPModel (24-d projection) with its image processor, saved offline."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-clip")
    small = {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2}
    config = CLIPConfig(text_config={**small, "vocab_size": 64, "max_position_embeddings": 16},
                        vision_config={**small, "image_size": 32, "patch_size": 8}, projection_dim=24)
    CLIPModel(config).save_pretrained(folder)
    CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


def test_clip_and_siglip_encoders(gallery: Path, tiny_clip: Path, tmp_path: Path) -> None:
    import torch
    from transformers import SiglipConfig, SiglipImageProcessorPil, SiglipModel

    out = tmp_path / "clip_idx"
    assert cli(_index_args(None, gallery, out, "--encoder", f"clip:{tiny_clip}")) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert (manifest["encoder"]["kind"], manifest["encoder"]["model_type"], manifest["dimension"]) == ("clip", "clip", 24)
    write_jsonl(tmp_path / "q.jsonl", [{"id": "q", "image": f"{N_GALLERY:03d}.jpg", "lat": 0, "lon": 0}])
    assert cli(_retrieve_args(out, tmp_path / "q.jsonl", gallery / "imgs", tmp_path / "nb.jsonl", "--k", "3",
                              "--protocol", "standard")) == 0
    _, vectors = _query_vectors(out, tmp_path / "q.jsonl", gallery / "imgs")
    scores = vectors @ np.load(out / "embeddings.npy").astype(np.float32).T
    got = _lines(tmp_path / "nb.jsonl")[0]["neighbours"]
    np.testing.assert_allclose([n["score"] for n in got], np.sort(scores[0])[::-1][:3], atol=1e-5)

    torch.manual_seed(0)
    siglip = tmp_path / "tiny-siglip"
    small = {"hidden_size": 20, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2}
    SiglipModel(SiglipConfig(text_config={**small, "vocab_size": 64, "max_position_embeddings": 16},
                             vision_config={**small, "image_size": 32, "patch_size": 8})).save_pretrained(siglip)
    SiglipImageProcessorPil(size={"height": 32, "width": 32}).save_pretrained(siglip)
    assert cli(_index_args(None, gallery, tmp_path / "sig", "--encoder", f"clip:{siglip}")) == 0
    assert json.loads((tmp_path / "sig" / "manifest.json").read_text())["dimension"] == 20


@pytest.mark.parametrize("family", ["qwen2_vl", "qwen3_vl"])
def test_vision_tower_of_every_family(family: str, tiny_model_builder: Any, gallery: Path) -> None:
    from PIL import Image

    from geo_r.retrieval.encoders import describe_encoder, load_encoder, parse_encoder

    spec = parse_encoder("vision_tower", str(tiny_model_builder(family)))
    description = describe_encoder(spec, "float32")
    encoder = load_encoder(description, "cpu")
    vectors = encoder.encode([Image.open(gallery / "imgs" / "000.jpg"), Image.open(gallery / "imgs" / "001.jpg")])
    assert vectors.shape == (2, description["dimension"]) and np.allclose(np.linalg.norm(vectors, axis=1), 1.0)
    assert not np.allclose(vectors[0], vectors[1])


# ------------------------------------------------------------------------------------------------ IVF-PQ


def test_ivfpq_recall_on_clustered_vectors() -> None:
    from geo_r.retrieval.faiss_index import (
        IndexSettings,
        build_index,
        exact_search,
        measure_recall,
        recall_at_k,
    )

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(40, 32))
    vectors = centres[rng.integers(0, 40, 4000)] + 0.3 * rng.normal(size=(4000, 32))
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float16)
    settings = IndexSettings("ivfpq", nlist=32, pq_m=8, nprobe=8).resolved(len(vectors), 32)
    assert settings["pq_nbits"] == 8 and settings["train_size"] == 4000
    index = build_index(vectors, settings)
    measured = measure_recall(index, vectors, k=10, n_queries=200)
    recall = measured["recall_at_10"]
    queries = vectors[np.sort(np.random.default_rng(0).choice(4000, 200, replace=False))].astype(np.float32)
    _, exact = exact_search(vectors, queries, 10)
    _, found = index.search(queries, 10)
    assert recall == recall_at_k(found, exact, 10)
    assert 0.2 < recall < 1.0  # compressed: approximate, but far above chance (10 / 4000)
    assert measured["recall_at_10_reranked"] > recall  # exact re-scoring of 10x candidates recovers most
    index.nprobe = 32  # every list: only the PQ compression is left
    assert recall_at_k(index.search(queries, 10)[1], exact, 10) >= recall
    with pytest.raises(ValueError, match="must divide"):
        IndexSettings("ivfpq", pq_m=5).resolved(4000, 32)


def test_ivfpq_index_cli_reports_recall_and_scores_exactly(built: Path, gallery: Path, tiny_model_dir: Path,
                                                          tmp_path: Path) -> None:
    out = tmp_path / "ivf"
    assert cli(_index_args(tiny_model_dir, gallery, out, "--index_type", "ivfpq", "--nlist", "2", "--pq_m", "8",
                           "--pq_nbits", "3", "--nprobe", "2")) == 0
    info = json.loads((out / "manifest.json").read_text())["index"]
    assert info["type"] == "ivfpq" and 0.0 <= info["recall_at_10"] <= 1.0 and info["recall_queries"] == N_GALLERY
    assert info["recall_at_10_reranked"] == 1.0  # 10 x 10 candidates of a 20-row gallery: all, re-scored exactly
    write_jsonl(tmp_path / "q.jsonl", [{"id": "q", "image": f"{N_GALLERY + 1:03d}.jpg", "lat": 0, "lon": 0}])
    assert cli(_retrieve_args(out, tmp_path / "q.jsonl", gallery / "imgs", tmp_path / "nb.jsonl", "--k", "5",
                              "--protocol", "standard")) == 0
    _, vectors = _query_vectors(out, tmp_path / "q.jsonl", gallery / "imgs")
    cos = vectors[0] @ np.load(out / "embeddings.npy").astype(np.float32).T
    rows = {r["id"]: i for i, r in enumerate(_lines(out / "rows.jsonl"))}
    got = _lines(tmp_path / "nb.jsonl")[0]["neighbours"]
    np.testing.assert_allclose([n["score"] for n in got], [cos[rows[n["id"]]] for n in got], atol=1e-5)
    assert [n["score"] for n in got] == sorted((n["score"] for n in got), reverse=True)


# ------------------------------------------------------------------------------------------------ torchrun


@pytest.mark.distributed
def test_torchrun_two_ranks_equal_one_process(built: Path, gallery: Path, tiny_model_dir: Path, tmp_path: Path,
                                              free_port: int) -> None:
    repo = Path(__file__).resolve().parents[1]
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               PYTHONPATH=os.pathsep.join([str(repo / "src"), os.environ.get("PYTHONPATH", "")]))
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port),
           "-m", "geo_r.cli", *_index_args(tiny_model_dir, gallery, out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["build"]["world_size"] == 2 and manifest["count"] == N_GALLERY
    assert (out / "rows.jsonl").read_bytes() == (built / "rows.jsonl").read_bytes()
    np.testing.assert_allclose(np.load(out / "embeddings.npy").astype(np.float32),
                               np.load(built / "embeddings.npy").astype(np.float32), atol=1e-3)


def test_row_table_reads_rows_lazily_and_names_a_bad_line(tmp_path: Path) -> None:
    from geo_r.retrieval.gallery import RowTable
    from geo_r.retrieval.layout import RetrievalInputError

    rows = [{"id": f"g{i}", "lat": i, "lon": -i, "author": None} for i in range(5)]
    text = "".join(json.dumps(r) + "\n" for r in rows)
    (tmp_path / "rows.jsonl").write_text(text[:-1])  # no newline after the last row: still five rows
    table = RowTable(tmp_path, 5)
    assert len(table) == 5 and table[4] == rows[4] and table[0]["id"] == "g0"
    (tmp_path / "rows.jsonl").write_text(text.replace('{"id": "g2"', '{"id": g2'))
    with pytest.raises(RetrievalInputError, match=r"rows\.jsonl:3: invalid JSON"):
        RowTable(tmp_path, 5)[2]
    with pytest.raises(RetrievalInputError, match="5 row"):
        RowTable(tmp_path, 6)
