"""The training-data cache (:mod:`geo_r.data.cache`): rows identical to the in-memory dataset, in the same order,
through the same split and image wrapper; built once, reused, rebuilt when an input changes; an interrupted or
failed build leaves nothing a later run would use; bad rows still reported with ``file:line``."""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from pathlib import Path

import pytest

from data_fixtures import contract_row, image_folder, make_jpeg, write_jsonl
from geo_r.data import build_grpo_dataset, load_records, split_dataset
from geo_r.data.cache import open_training_cache, read_manifest
from geo_r.data.report import DataValidationError
from geo_r.data.skip_images import skip_unreadable_images


def _rows(tmp_path: Path) -> list[dict]:
    """Records that exercise every column: own and default questions, a system turn, several images with
    placeholders, pass-through fields of one type, of mixed numbers, of mixed types (-> JSON text), objects with
    different keys, a reserved name, and missing chain fields."""
    rows = []
    for i in range(23):
        row = contract_row(i, image=f"{i % 4}.jpg", author=f"a{i}", score=i if i % 2 else i + 0.5)
        if i % 3 == 0:
            row["conversations"] = [{"from": "system", "value": "You are careful."},
                                    {"from": "human", "value": "<image>\nWhere is this?"},
                                    {"from": "gpt", "value": "France"}]
        if i % 5 == 0:
            row["mixed"] = "text" if i % 10 else 7
            row["meta"] = {"a": i} if i % 10 else {"b": "x"}
        if i == 7:
            row["image"] = ["1.jpg", "2.jpg"]
            row["conversations"] = [{"from": "human", "value": "first <image> then <image> where?"}]
        if i == 11:
            del row["city"], row["region"]
        if i == 13:
            row["prompt"] = "reserved name: dropped"
        rows.append(row)
    return rows


@pytest.fixture
def data(tmp_path: Path) -> tuple[Path, Path]:
    folder = image_folder(tmp_path, 4)
    return write_jsonl(tmp_path / "train.jsonl", _rows(tmp_path)), folder


def _old_path(jsonl: Path, folder: Path, ratio: float, **kwargs):
    """What grpo_jsonl.py trained on before the cache: load_records -> build_grpo_dataset -> split -> wrapper."""
    question = kwargs.pop("question", None)
    replace = kwargs.pop("replace_questions", False)
    records, _ = load_records(str(jsonl), str(folder), **kwargs)
    dataset = build_grpo_dataset(records, question=question, replace_questions=replace)
    train, val = split_dataset(dataset, ratio, seed=5)
    return skip_unreadable_images(train), (skip_unreadable_images(val) if val is not None else None)


def _cache_path(root: Path, jsonl: Path, folder: Path, ratio: float, **kwargs):
    cache = open_training_cache(root, data_file_paths=str(jsonl), image_folders=str(folder), progress="off", **kwargs)
    train, val = split_dataset(cache.dataset, ratio, seed=5)
    return skip_unreadable_images(train), (skip_unreadable_images(val) if val is not None else None), cache


def _same(a, b) -> None:
    assert len(a) == len(b)
    rows_a, rows_b = a[: len(a)], b[: len(b)]
    assert list(rows_a) == list(rows_b)  # column names, in order
    for name in rows_a:
        if name == "images":
            pixels = [[(im.mode, im.size, im.tobytes()) for im in row] for row in rows_a[name]]
            assert pixels == [[(im.mode, im.size, im.tobytes()) for im in row] for row in rows_b[name]]
        else:
            assert rows_a[name] == rows_b[name], name
    # one row at a time (TRL's sampler) and a batch of repeated indices (its dataloader) agree too
    assert a[3] == b[3] if "images" not in a[3] else a[3]["prompt"] == b[3]["prompt"]
    got = a.__getitems__([2, 2, 0])
    want = b.__getitems__([2, 2, 0])
    assert [{k: v for k, v in r.items() if k != "images"} for r in got] == [
        {k: v for k, v in r.items() if k != "images"} for r in want]


@pytest.mark.parametrize("options", [
    {},
    {"question": "Where was this taken?", "replace_questions": True},
    {"derive_chains": True},
])
def test_trainer_sees_the_same_rows_in_the_same_order(data, tmp_path, options):
    jsonl, folder = data
    old_train, old_val = _old_path(jsonl, folder, 0.2, **dict(options))
    new_train, new_val, _ = _cache_path(tmp_path / "cache", jsonl, folder, 0.2, **dict(options))
    _same(new_train, old_train)
    _same(new_val, old_val)
    row = new_train[0]
    assert set(row) >= {"prompt", "images", "id", "lat", "lon", "solution", "author", "score", "mixed", "meta"}
    assert "prompt" in row and not any(k in row for k in ("q", "sys", "extras"))


def test_extras_typed_across_chunks_like_the_in_memory_table(data, tmp_path, monkeypatch):
    """Small chunks: each pass-through field's type is found chunk by chunk and must equal the whole table's."""
    import geo_r.data.records as records_module

    monkeypatch.setattr(records_module, "CHUNK_RECORDS", 4)
    jsonl, folder = data
    old = build_grpo_dataset(load_records(str(jsonl), str(folder))[0])
    cache = open_training_cache(tmp_path / "c", data_file_paths=str(jsonl), image_folders=str(folder),
                                progress="off")
    import pyarrow as pa

    with pa.memory_map(str(cache.folder / "rows.arrow")) as source:
        assert len(list(pa.ipc.open_stream(source))) == 6  # 23 rows written 4 at a time
    new_rows, old_rows = cache.dataset[:], old[:]
    for name in ("author", "score", "mixed", "meta", "id", "prompt", "solution"):
        assert new_rows[name] == old_rows[name], name
    assert isinstance(cache.dataset[0]["score"], float) and cache.dataset[5]["mixed"] == "text"
    assert cache.dataset[0]["mixed"] == "7" and cache.dataset[5]["meta"] == {"a": 5, "b": None}


def test_question_stored_once(tmp_path):
    """One long question on 500 rows: texts.arrow holds it once, rows.arrow holds an index."""
    make_jpeg(tmp_path / "imgs" / "0.jpg")
    question = "<image>" + "Where was this photo taken? " * 20
    rows = [contract_row(i, image="0.jpg", conversations=[{"from": "human", "value": question}]) for i in range(500)]
    jsonl = write_jsonl(tmp_path / "d.jsonl", rows)
    cache = open_training_cache(tmp_path / "c", data_file_paths=str(jsonl), image_folders=str(tmp_path / "imgs"),
                                progress="off")
    assert cache.manifest["rows"] == 500 and cache.manifest["texts"] == 1
    rows_bytes = (cache.folder / "rows.arrow").stat().st_size
    assert rows_bytes < 500 * len(question) / 2  # far less than the question on every row
    assert cache.dataset[499]["prompt"][0]["content"][1]["text"] == question[len("<image>"):]


def test_reused_then_rebuilt_when_an_input_or_option_changes(data, tmp_path):
    jsonl, folder = data
    root = tmp_path / "cache"
    first = open_training_cache(root, data_file_paths=str(jsonl), image_folders=str(folder), progress="off")
    again = open_training_cache(root, data_file_paths=str(jsonl), image_folders=str(folder), progress="off")
    assert first.built and not again.built and again.folder == first.folder
    other = open_training_cache(root, data_file_paths=str(jsonl), image_folders=str(folder), progress="off",
                                replace_questions=True)
    assert other.built and other.folder != first.folder  # an option that shapes the rows is part of the key

    rows = _rows(tmp_path)
    rows[0]["lat"] = 48.8567  # was 48.8566: same size, and the mtime is put back (cp -p would do that)
    before = jsonl.stat()
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    os.utime(jsonl, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert jsonl.stat().st_size == before.st_size and jsonl.stat().st_mtime_ns == before.st_mtime_ns
    changed = open_training_cache(root, data_file_paths=str(jsonl), image_folders=str(folder), progress="off")
    assert changed.built and changed.dataset[0]["lat"] == 48.8567  # the sampled bytes changed the key

    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows[:5]))  # an ordinary edit
    edited = open_training_cache(root, data_file_paths=str(jsonl), image_folders=str(folder), progress="off")
    assert edited.built and len(edited.dataset) == 5
    # the cache of the earlier contents of the same file with the same options was superseded and removed
    assert not first.folder.exists() and other.folder.exists()
    rebuilt = open_training_cache(root, data_file_paths=str(jsonl), image_folders=str(folder), progress="off",
                                  rebuild=True)
    assert rebuilt.built and rebuilt.folder == edited.folder and len(rebuilt.dataset) == 5


def _build_and_die(root: str, jsonl: str, folder: str) -> None:
    """A builder killed in the middle of writing (after the first chunk went to disk)."""
    import geo_r.data.cache.writer as writer

    original = writer.CacheWriter.add

    def add_then_die(self, records):
        original(self, records)
        os._exit(9)

    writer.CacheWriter.add = add_then_die
    open_training_cache(root, data_file_paths=jsonl, image_folders=folder, progress="off")


def test_an_interrupted_build_leaves_no_cache_a_later_run_uses(data, tmp_path):
    jsonl, folder = data
    root = tmp_path / "cache"
    proc = multiprocessing.get_context("fork").Process(target=_build_and_die, args=(str(root), str(jsonl), str(folder)))
    proc.start()
    proc.join(60)
    assert proc.exitcode == 9
    leftovers = [p.name for p in root.iterdir() if p.name.startswith(".grpo-") and ".tmp-" in p.name]
    assert leftovers and not list(root.glob("grpo-*"))  # the half-written folder was never committed
    cache = open_training_cache(root, data_file_paths=str(jsonl), image_folders=str(folder), progress="off")
    assert cache.built and len(cache.dataset) == 23
    assert not [p for p in root.iterdir() if ".tmp-" in p.name]  # the next builder removed the leftover


def test_bad_rows_reported_with_file_and_line_on_build_and_on_reuse(tmp_path, caplog):
    folder = image_folder(tmp_path, 2)
    rows = [contract_row(0, image="0.jpg"), "{not json", contract_row(2, image="missing.jpg"),
            contract_row(3, image="1.jpg", lat=123.0), contract_row(4, image="1.jpg", id="r0")]
    jsonl = write_jsonl(tmp_path / "bad.jsonl", rows)
    with pytest.raises(DataValidationError) as err:
        open_training_cache(tmp_path / "c", data_file_paths=str(jsonl), image_folders=str(folder), progress="off")
    message = str(err.value)
    assert f"{jsonl}:2: malformed JSON" in message and f"{jsonl}:3: image not found" in message
    assert f"{jsonl}:4:" in message
    assert not list((tmp_path / "c").glob("grpo-*"))  # nothing committed
    for attempt in range(2):
        caplog.clear()
        with caplog.at_level("WARNING"):
            cache = open_training_cache(tmp_path / "c", data_file_paths=str(jsonl), image_folders=str(folder),
                                        progress="off", skip_invalid=True)
        assert cache.built == (attempt == 0) and cache.dataset[:]["id"] == ["r0", "r0"]
        text = caplog.text
        assert "dropped 3 of 5" in text and f"{jsonl}:2: malformed JSON" in text
        assert f"{jsonl}:5: duplicate id 'r0' (first at {jsonl}:1)" in text


def _wait_then_open(root: str, jsonl: str, folder: str, queue) -> None:
    try:
        cache = open_training_cache(root, data_file_paths=jsonl, image_folders=folder, progress="off",
                                    prefer_builder=False)
        queue.put(("ok", cache.built, str(cache.folder), os.getpid()))
    except Exception as exc:  # noqa: BLE001 - reported to the test
        queue.put(("error", type(exc).__name__, str(exc), os.getpid()))


def test_one_process_builds_the_others_wait_and_map_it(data, tmp_path):
    jsonl, folder = data
    root = tmp_path / "cache"
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    waiters = [ctx.Process(target=_wait_then_open, args=(str(root), str(jsonl), str(folder), queue)) for _ in range(2)]
    for w in waiters:
        w.start()
    time.sleep(0.5)
    builder = open_training_cache(root, data_file_paths=str(jsonl), image_folders=str(folder), progress="off")
    results = [queue.get(timeout=120) for _ in waiters]
    for w in waiters:
        w.join(30)
    assert builder.built
    assert [r[:3] for r in results] == [("ok", False, str(builder.folder))] * 2


def test_waiting_processes_get_the_builders_data_error(tmp_path):
    folder = image_folder(tmp_path, 1)
    jsonl = write_jsonl(tmp_path / "bad.jsonl", [contract_row(0, image="0.jpg"), "{broken"])
    root = tmp_path / "cache"
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    waiter = ctx.Process(target=_wait_then_open, args=(str(root), str(jsonl), str(folder), queue))
    waiter.start()
    time.sleep(0.5)
    with pytest.raises(DataValidationError):
        open_training_cache(root, data_file_paths=str(jsonl), image_folders=str(folder), progress="off")
    status, kind, message, _ = queue.get(timeout=120)
    waiter.join(30)
    assert status == "error" and "malformed JSON" in message and f"{jsonl}:2" in message
    # a later run does not take the old failure for its own: it checks again (and fails on its own)
    with pytest.raises(DataValidationError):
        open_training_cache(root, data_file_paths=str(jsonl), image_folders=str(folder), progress="off",
                            prefer_builder=False)


def test_memory_mapped_rows_and_manifest(data, tmp_path):
    jsonl, folder = data
    cache = open_training_cache(tmp_path / "c", data_file_paths=str(jsonl), image_folders=str(folder),
                                progress="off")
    from datasets.table import MemoryMappedTable

    assert isinstance(cache.dataset.data, MemoryMappedTable)
    manifest = read_manifest(cache.folder)
    assert manifest["rows"] == 23 and manifest["report"]["records_read"] == 23
    assert manifest["inputs"][0]["path"] == str(jsonl.resolve())
    assert cache.dataset[0]["images"] == [{"bytes": None, "path": str(folder.resolve() / "0.jpg")}]


def test_without_file_locks_the_first_process_builds_and_the_others_poll(data, tmp_path, monkeypatch):
    """A file system without flock (some Lustre/NFS mounts): no second build, the waiter gets the builder's cache."""
    import errno
    import fcntl
    import threading

    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    jsonl, folder = data
    root = tmp_path / "cache"
    got: list = []
    waiter = threading.Thread(target=lambda: got.append(open_training_cache(
        root, data_file_paths=str(jsonl), image_folders=str(folder), progress="off", prefer_builder=False)))
    waiter.start()
    time.sleep(0.3)
    built = open_training_cache(root, data_file_paths=str(jsonl), image_folders=str(folder), progress="off")
    waiter.join(60)
    assert built.built and got and not got[0].built and got[0].folder == built.folder
    assert len(list(root.glob("grpo-*"))) == 1


def test_every_row_its_own_text_stays_on_disk_and_the_transform_pickles_by_path(tmp_path, monkeypatch):
    """A per-row human turn (e.g. retrieval candidates) on every row: texts.arrow is read memory-mapped, not
    loaded, and a DataLoader worker gets the path, not the texts."""
    import pickle

    import geo_r.data.cache.rows as rows_module

    make_jpeg(tmp_path / "imgs" / "0.jpg")
    rows = [contract_row(i, image="0.jpg", conversations=[{"from": "human", "value": f"<image>Where? hint {i}"}])
            for i in range(40)]
    jsonl = write_jsonl(tmp_path / "d.jsonl", rows)
    from datasets.table import MemoryMappedTable

    def arrow_column(path):  # as for a set past 10,000 distinct texts: the memory-mapped column, not a list
        return MemoryMappedTable.from_file(path).table.column("text")

    monkeypatch.setattr(rows_module, "open_texts", arrow_column)
    cache = open_training_cache(tmp_path / "c", data_file_paths=str(jsonl), image_folders=str(tmp_path / "imgs"),
                                progress="off")
    assert cache.manifest["texts"] == 40
    assert cache.dataset[39]["prompt"][0]["content"][1]["text"] == "Where? hint 39"
    transform = cache.dataset.format["format_kwargs"]["transform"]
    state = pickle.dumps(transform)
    assert len(state) < 2000 and b"hint 39" not in state
    assert pickle.loads(state).text(7) == "<image>Where? hint 7"


def _neighbours(path: Path, rows: list[dict], shift: float = 0.0) -> Path:
    """A geo-r retrieve neighbours file for ``rows``: two close neighbours and a far one each (every third empty)."""
    lines = []
    for i, r in enumerate(rows):
        ns = [] if i % 3 == 2 else [
            {"id": f"g{i}a", "lat": r["lat"] + 0.004 + shift, "lon": r["lon"], "score": 0.9},
            {"id": f"g{i}b", "lat": r["lat"] + 0.001, "lon": r["lon"], "score": 0.8},
            {"id": f"g{i}c", "lat": -r["lat"], "lon": r["lon"] / 2, "score": 0.4}]
        lines.append(json.dumps({"id": r["id"], "neighbours": ns}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_retrieval_candidates_through_the_cache_as_in_memory(data, tmp_path, caplog):
    """--candidates: the prompt (question + numbered candidates) and the 'candidates' column the rewards read are
    those of load_records -> attach_candidates -> build_grpo_dataset; the neighbours file and the options are in
    the key; a rerun from the cache logs the candidates summary again."""
    from geo_r.data.candidates import attach_candidates

    jsonl, folder = data
    rows = [json.loads(x) for x in jsonl.read_text().splitlines()]
    neighbours = _neighbours(tmp_path / "neighbours.jsonl", rows)
    records, _ = load_records(str(jsonl), str(folder))
    attach_candidates(records, neighbours, num_candidates=2, radius_km=1.0)
    old = build_grpo_dataset(records)
    root = tmp_path / "cache"
    kwargs = dict(data_file_paths=str(jsonl), image_folders=str(folder), progress="off", candidates=str(neighbours),
                  num_candidates=2, candidate_radius_km=1.0)
    cache = open_training_cache(root, **kwargs)
    assert cache.built and cache.manifest["with_candidates"] == sum(bool(r.candidates) for r in records) > 0
    new_rows, old_rows = cache.dataset[:], old[:]
    assert list(new_rows) == list(old_rows)  # 'candidates' (and 'author') where the in-memory set has them
    for name in old_rows:
        if name != "images":
            assert new_rows[name] == old_rows[name], name
    assert "Candidate" in json.dumps(new_rows["prompt"][0]) and new_rows["candidates"][2] is None

    caplog.set_level("INFO", logger="geo_r.data.cache")
    again = open_training_cache(root, **kwargs)
    assert not again.built and "candidates from" in caplog.text
    assert open_training_cache(root, **{**kwargs, "num_candidates": 1}).built  # an option in the key
    _neighbours(neighbours, rows, shift=0.002)  # the neighbours file changed
    changed = open_training_cache(root, **kwargs)
    assert changed.built and changed.dataset[0]["candidates"] != new_rows["candidates"][0]
    plain = open_training_cache(root, data_file_paths=str(jsonl), image_folders=str(folder), progress="off")
    assert "candidates" not in plain.dataset[0]
