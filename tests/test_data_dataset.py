"""The GRPO dataset built from records: prompt layout, lazy image column, pass-through fields, TRL compatibility."""

from __future__ import annotations

import logging
from pathlib import Path

import datasets
import pytest
from trl.data_utils import prepare_multimodal_messages

from data_fixtures import contract_row, image_folder, make_jpeg, write_jsonl
from geo_r.data import GeoRecord, build_grpo_dataset, content_blocks, load_records, split_dataset
from geo_r.data import dataset as dataset_module
from geo_r.prompts import DEFAULT_QUESTION

IMAGE = {"type": "image", "text": None}


def _dataset(tmp_path: Path, rows: list, **kwargs) -> datasets.Dataset:
    folder = image_folder(tmp_path)
    data = write_jsonl(tmp_path / "data.jsonl", rows)
    records, _ = load_records(str(data), str(folder))
    return build_grpo_dataset(records, **kwargs)


def _record(i: int, images: list[str], **kwargs) -> GeoRecord:
    return GeoRecord(id=f"r{i}", images=images, lat=float(i), lon=float(-i), source=f"mem:{i}", **kwargs)


def test_columns_types_and_default_question(tmp_path: Path) -> None:
    ds = _dataset(tmp_path, [contract_row(0), contract_row(1, city=None)])
    assert ds.column_names == [
        "prompt",
        "images",
        "id",
        "lat",
        "lon",
        "country",
        "country_code",
        "region",
        "city",
        "solution",
    ]
    assert ds.features["images"] == datasets.List(datasets.Image())
    row = ds[1]
    assert row["prompt"] == [{"role": "user", "content": [IMAGE, {"type": "text", "text": DEFAULT_QUESTION}]}]
    assert (row["id"], row["lat"], row["lon"]) == ("r1", 48.8666, 2.3422)
    assert (row["country"], row["country_code"], row["region"], row["city"], row["solution"]) == (
        "France",
        "FR",
        "Ile-de-France",
        None,
        None,
    )


def test_images_are_stored_as_paths_and_decoded_on_access(tmp_path: Path) -> None:
    ds = _dataset(tmp_path, [contract_row(0), contract_row(1)])
    stored = ds.cast_column("images", datasets.List(datasets.Image(decode=False)))[0]["images"][0]
    assert stored == {"path": str(tmp_path / "imgs" / "0.jpg"), "bytes": None}
    # Replace the file after the dataset is built: reading the row decodes what is on disk now.
    make_jpeg(tmp_path / "imgs" / "0.jpg", size=(77, 33))
    (image,) = ds[0]["images"]
    assert image.size == (77, 33)


def test_question_sources_human_turn_problem_custom_and_replace(tmp_path: Path) -> None:
    rows = [
        contract_row(
            0, conversations=[{"from": "human", "value": "<image>\nWhere?"}, {"from": "gpt", "value": "A"}]
        ),
        contract_row(1, problem="Guess the place."),
        contract_row(2),
    ]
    ds = _dataset(tmp_path, rows, question="Custom question")
    contents = [p[0]["content"] for p in ds["prompt"]]
    assert contents[0] == [IMAGE, {"type": "text", "text": "\nWhere?"}]  # verbatim around the placeholder
    assert contents[1] == [IMAGE, {"type": "text", "text": "Guess the place."}]
    assert contents[2] == [IMAGE, {"type": "text", "text": "Custom question"}]
    assert list(ds["solution"]) == ["A", None, None]
    replaced = _dataset(tmp_path, rows, question="Q", replace_questions=True)
    assert {p[0]["content"][-1]["text"] for p in replaced["prompt"]} == {"Q"}


def test_placeholders_place_images_in_order_and_trl_fills_them(tmp_path: Path) -> None:
    rows = [
        contract_row(0, image=["2.jpg", "0.jpg", "3.jpg"], problem="First <image>, then <image> and <image>"),
        contract_row(1, image=["1.jpg", "2.jpg"]),
    ]
    ds = _dataset(tmp_path, rows)
    content = ds[0]["prompt"][0]["content"]
    assert content == [
        {"type": "text", "text": "First "},
        IMAGE,
        {"type": "text", "text": ", then "},
        IMAGE,
        {"type": "text", "text": " and "},
        IMAGE,
    ]
    assert ds[1]["prompt"][0]["content"][:2] == [IMAGE, IMAGE]
    for row, widths in zip(ds, ([22, 20, 23], [21, 22]), strict=True):
        messages = prepare_multimodal_messages(row["prompt"], images=row["images"])
        filled = [part["image"].size[0] for part in messages[0]["content"] if part["type"] == "image"]
        assert filled == widths  # each image lands on its own placeholder, in order
    with pytest.raises(ValueError, match="does not match"):  # TRL's own check guards the count
        prepare_multimodal_messages(ds[0]["prompt"], images=ds[1]["images"])


def test_qwen_chat_template_renders_one_vision_block_per_image(tmp_path: Path) -> None:
    import importlib.util

    from transformers.utils.chat_template_utils import render_jinja_template

    spec = importlib.util.find_spec("trl")
    assert spec is not None and spec.submodule_search_locations
    template = (Path(spec.submodule_search_locations[0]) / "chat_templates" / "qwen2_5_vl.jinja").read_text()
    rows = [contract_row(0, image=["0.jpg", "1.jpg"], problem="A <image> B <image> C")]
    row = _dataset(tmp_path, rows)[0]
    messages = prepare_multimodal_messages(row["prompt"], images=row["images"])
    (text,), _ = render_jinja_template([messages], chat_template=template, add_generation_prompt=True)
    vision = "<|vision_start|><|image_pad|><|vision_end|>"
    assert f"<|im_start|>user\nA {vision} B {vision} C<|im_end|>" in text
    assert text.endswith("<|im_start|>assistant\n")


def test_system_turn_becomes_a_system_message(tmp_path: Path) -> None:
    conv = [
        {"from": "system", "value": "You are a geographer."},
        {"from": "human", "value": "<image>Where?"},
        {"from": "gpt", "value": "[1, 2]"},
    ]
    ds = _dataset(tmp_path, [{"image": "0.jpg", "conversations": conv}])
    assert ds[0]["prompt"] == [
        {"role": "system", "content": [{"type": "text", "text": "You are a geographer."}]},
        {"role": "user", "content": [IMAGE, {"type": "text", "text": "Where?"}]},
    ]


def test_passthrough_fields_uniform_types_and_warnings(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rows = [
        contract_row(0, weight=1, mixed=3, meta={"src": "a"}, prompt="clash", only_first="x"),
        contract_row(1, weight=2.5, mixed="three", meta={"src": "b", "n": 2}),
    ]
    with caplog.at_level(logging.WARNING, logger="geo_r.data"):
        ds = _dataset(tmp_path, rows)
    assert list(ds["weight"]) == [1.0, 2.5]  # ints and floats share a float column
    assert list(ds["mixed"]) == ["3", "three"]  # a number and a text: all values as JSON text
    assert list(ds["meta"]) == [{"src": "a", "n": None}, {"src": "b", "n": 2}]  # one struct, union of keys
    assert list(ds["only_first"]) == ["x", None]
    assert "'mixed' has values of different types" in caplog.text
    assert "'prompt' clashes" in caplog.text
    assert ds[0]["prompt"][0]["role"] == "user"  # the built prompt, not the record's field


def test_empty_object_extras_become_text(tmp_path: Path) -> None:
    ds = _dataset(tmp_path, [contract_row(0, blob={}), contract_row(1, blob={})])
    assert list(ds["blob"]) == ["{}", "{}"]


def test_chunked_build_equals_single_chunk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [contract_row(i % 4, id=f"x{i}", tag=i if i % 2 else None) for i in range(7)]
    whole = _dataset(tmp_path, rows)
    monkeypatch.setattr(dataset_module, "_CHUNK", 2)
    chunked = _dataset(tmp_path, rows)
    assert chunked.features == whole.features
    keep = [c for c in whole.column_names if c != "images"]
    assert chunked.select_columns(keep).to_list() == whole.select_columns(keep).to_list()


def test_content_blocks_and_records_built_in_memory(tmp_path: Path) -> None:
    assert content_blocks(None, 2) == [IMAGE, IMAGE]
    assert content_blocks("<image>", 1) == [IMAGE]
    with pytest.raises(ValueError, match=r"2 <image> placeholder\(s\) for 1 image"):
        content_blocks("<image><image>", 1)
    path = str(make_jpeg(tmp_path / "m.jpg"))
    bad = _record(0, [path], question="<image> and <image>")
    with pytest.raises(ValueError, match="mem:0"):
        build_grpo_dataset([bad])
    with pytest.raises(ValueError, match="no records"):
        build_grpo_dataset([])


def test_split_dataset(tmp_path: Path) -> None:
    path = str(make_jpeg(tmp_path / "m.jpg"))
    ds = build_grpo_dataset([_record(i, [path]) for i in range(20)])
    train, val = split_dataset(ds, 0.0)
    assert val is None and len(train) == 20
    train, val = split_dataset(ds, 0.25, seed=3)
    assert val is not None and (len(train), len(val)) == (15, 5)
    assert sorted([*train["id"], *val["id"]]) == sorted(ds["id"])
    again_train, again_val = split_dataset(ds, 0.25, seed=3)
    assert again_val is not None and list(again_val["id"]) == list(val["id"])
    other_val = split_dataset(ds, 0.25, seed=4)[1]
    assert other_val is not None and list(other_val["id"]) != list(val["id"])
    for bad in (-0.1, 1.0, 1.5):
        with pytest.raises(ValueError, match="must be in"):
            split_dataset(ds, bad)
    with pytest.raises(ValueError, match="both sides"):
        split_dataset(ds, 0.01)


def test_qwen_processor_gets_each_image_at_its_placeholder(tmp_path: Path, tiny_model_dir: Path) -> None:
    """End to end with the project's processor on the tiny checkpoint: two images, interleaved with text,
    become two image grids and exactly as many image tokens as the grids need, in prompt order."""
    from geo_r.models.processor import load_processor

    processor = load_processor(tiny_model_dir, min_pixels=3136, max_pixels=12544)
    folder = tmp_path / "big"
    make_jpeg(folder / "wide.jpg", size=(112, 56))
    make_jpeg(folder / "tall.jpg", size=(56, 84))
    data = write_jsonl(
        tmp_path / "d.jsonl",
        [contract_row(0, image=["wide.jpg", "tall.jpg"], problem="North <image> south <image> which?")],
    )
    records, _ = load_records(str(data), str(folder))
    row = build_grpo_dataset(records)[0]
    messages = prepare_multimodal_messages(row["prompt"], images=row["images"])
    out = processor.apply_chat_template(
        [messages], add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
    )
    grids = out["image_grid_thw"].tolist()
    assert len(grids) == 2 and grids[0] != grids[1]  # one grid per image, in order (different shapes)
    merge = processor.image_processor.merge_size
    image_token = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    ids = out["input_ids"][0].tolist()
    assert ids.count(image_token) == sum(t * h * w for t, h, w in grids) // merge**2
    text = processor.tokenizer.decode(ids)
    assert (
        text.index("North")
        < text.index("<|vision_start|>")
        < text.index("south")
        < text.rindex("<|vision_start|>")
    )
