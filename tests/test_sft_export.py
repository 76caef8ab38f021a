"""``geo-r export-sft``: the sharegpt file and dataset_info entry obey LLaMA-Factory 0.9.5's rules (schema tests).

The rules checked here are the ones LLaMA-Factory applies (``data/converter.py``, ``mm_plugin.py``; see
shared notes): turns alternate user/assistant after an optional system message, ``<image>`` count equals the
image count, image paths are relative and exist under ``media_dir``, no ``<video>``/``<audio>`` placeholders.
tests/test_sft_llamafactory.py runs LLaMA-Factory's own loader on the same export where its venv exists.
"""

from __future__ import annotations

import io
import json
import os
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
import yaml

from data_fixtures import make_jpeg, write_jsonl
from geo_r.cli import main as cli_main
from geo_r.data import build_grpo_dataset, load_records
from geo_r.defaults import DEFAULT_MAX_PIXELS, DEFAULT_MIN_PIXELS
from geo_r.demo.toy_data import write_toy_dataset
from geo_r.prompts import DEFAULT_QUESTION
from geo_r.rewards.format import follows_contract
from geo_r.sft.examples import build_sft_examples
from geo_r.sft.export import DATASET_INFO, dataset_info_entry, export_llamafactory, update_dataset_info

REPO = Path(__file__).resolve().parents[1]
LF_COLUMNS = {"prompt", "query", "response", "history", "messages", "system", "tools", "images", "videos",
              "audios", "chosen", "rejected", "kto_tag"}
LF_TAGS = {"role_tag", "content_tag", "user_tag", "assistant_tag", "observation_tag", "function_tag", "system_tag"}


def check_llamafactory_rules(data_file: Path, media_dir: Path) -> list[dict]:
    """Every row of an exported file against LLaMA-Factory's sharegpt rules; returns the rows."""
    text = data_file.read_text(encoding="utf-8")
    rows = json.loads(text) if data_file.suffix == ".json" else [json.loads(line) for line in text.splitlines()]
    assert rows
    for row in rows:
        assert set(row) == {"messages", "images"}
        messages = row["messages"]
        turns = messages[1:] if messages[0]["role"] == "system" else messages
        assert len(turns) >= 2 and len(turns) % 2 == 0
        for i, message in enumerate(turns):
            assert set(message) == {"role", "content"} and isinstance(message["content"], str)
            assert message["role"] == ("user" if i % 2 == 0 else "assistant")
        assert turns[-1]["content"].strip()
        all_text = "".join(m["content"] for m in messages)
        assert all_text.count("<image>") == len(row["images"]) >= 1
        assert "<video>" not in all_text and "<audio>" not in all_text
        for image in row["images"]:
            assert not os.path.isabs(image) and "\\" not in image
            assert (media_dir / image).is_file(), f"{image} not under {media_dir}"
    return rows


def _check_info(info_path: Path, name: str, data_file: Path) -> None:
    entry = json.loads(info_path.read_text())[name]
    assert entry["formatting"] == "sharegpt"
    assert set(entry["columns"]) <= LF_COLUMNS and set(entry["tags"]) <= LF_TAGS
    assert (info_path.parent / entry["file_name"]) == data_file


@pytest.fixture()
def mixed_data(tmp_path):
    """Toy contract records, a VLM-R1 record with a bare-pair gpt turn, and a 2-image record with a system turn."""
    toy = write_toy_dataset(tmp_path / "toy", n=6, seed=3)
    images = tmp_path / "toy" / "images"
    make_jpeg(images / "nested" / "a.jpg", size=(40, 30))
    make_jpeg(images / "nested" / "b.jpg", size=(30, 40))
    extra = write_jsonl(tmp_path / "extra.jsonl", [
        {"id": "vlm", "image": "00000.jpg", "conversations": [
            {"from": "human", "value": "<image>Where is this?"}, {"from": "gpt", "value": "[48.8566, 2.3522]"}]},
        {"id": "two", "image": ["nested/a.jpg", "nested/b.jpg"], "lat": 35.6762, "lon": 139.6503,
         "conversations": [{"from": "system", "value": "You are a geolocation expert."},
                           {"from": "human", "value": "First <image>, then <image>: where?"}]},
    ])
    return f"{toy}:{extra}", f"{images}:{images}"


def test_export_obeys_llamafactory_rules_and_registers_the_dataset(mixed_data, tmp_path):
    data, folders = mixed_data
    records, _ = load_records(data, folders, derive_chains=True)
    examples, report = build_sft_examples(records)
    out = tmp_path / "sft"
    result = export_llamafactory(examples, out, "geo_sft")
    assert result.rows == 8 and result.data_file == out / "geo_sft.jsonl" and result.media_dir == out
    rows = check_llamafactory_rules(result.data_file, out)
    _check_info(out / DATASET_INFO, "geo_sft", result.data_file)
    by_text = {r["messages"][-1]["content"]: r for r in rows}
    assert all(follows_contract(text) for text in by_text)  # the bare pair was replaced
    assert report.answers["replaced"] == 1
    two = next(r for r in rows if r["messages"][0]["role"] == "system")
    assert two["messages"][0]["content"] == "You are a geolocation expert."
    assert two["messages"][1]["content"] == "First <image>, then <image>: where?"
    assert [Path(p).name for p in two["images"]] == ["a.jpg", "b.jpg"]
    assert yaml.safe_load(json.dumps(result.yaml_keys())) == {
        "dataset": "geo_sft", "dataset_dir": str(out), "media_dir": str(out)}


def test_user_turn_is_the_grpo_prompt_with_image_blocks_as_placeholders(mixed_data, tmp_path):
    data, folders = mixed_data
    records, _ = load_records(data, folders, derive_chains=True)
    examples, _ = build_sft_examples(records)
    result = export_llamafactory(examples, tmp_path / "sft")
    rows = check_llamafactory_rules(result.data_file, result.media_dir)
    grpo = build_grpo_dataset(records)
    for row, prompt in zip(rows, grpo["prompt"], strict=True):
        user = prompt[-1]["content"]
        flattened = "".join("<image>" if block["type"] == "image" else block["text"] for block in user)
        turns = row["messages"]
        assert turns[-2]["content"] == flattened
        assert (turns[0]["role"] == "system") == (prompt[0]["role"] == "system")
    assert rows[0]["messages"][0]["content"] == "<image>" + DEFAULT_QUESTION


def test_media_dir_and_json_array_output(mixed_data, tmp_path):
    data, folders = mixed_data
    records, _ = load_records(data, folders, derive_chains=True)
    examples, _ = build_sft_examples(records)
    media = tmp_path / "toy" / "images"
    result = export_llamafactory(examples, tmp_path / "lf", "geo_sft_arr", file_name="rows.json", media_dir=media)
    rows = check_llamafactory_rules(result.data_file, media)
    assert rows[0]["images"] == ["00000.jpg"]
    assert json.loads(result.data_file.read_text())[0] == rows[0]
    _check_info(tmp_path / "lf" / DATASET_INFO, "geo_sft_arr", result.data_file)


def test_dataset_info_keeps_other_entries_and_reports_bad_json(tmp_path):
    info = tmp_path / DATASET_INFO
    info.write_text(json.dumps({"mllm_demo": {"file_name": "mllm_demo.json"}}))
    update_dataset_info(info, "geo_sft", dataset_info_entry("geo_sft.jsonl"))
    update_dataset_info(info, "geo_sft", dataset_info_entry("geo_sft_v2.jsonl"))
    data = json.loads(info.read_text())
    assert list(data) == ["mllm_demo", "geo_sft"] and data["geo_sft"]["file_name"] == "geo_sft_v2.jsonl"
    info.write_text('{\n  "a": 1,\n  oops\n}')
    with pytest.raises(ValueError, match=r"dataset_info.json:3: invalid JSON"):
        update_dataset_info(info, "geo_sft", dataset_info_entry("x.jsonl"))
    info.write_text("[]")
    with pytest.raises(ValueError, match=r"dataset_info.json:1: expected a JSON object"):
        update_dataset_info(info, "geo_sft", dataset_info_entry("x.jsonl"))


def test_bad_names_and_empty_exports_are_refused(tmp_path):
    with pytest.raises(ValueError, match="plain name"):
        export_llamafactory([], tmp_path, "a/b")
    with pytest.raises(ValueError, match="ending in .jsonl or .json"):
        export_llamafactory([], tmp_path, "ok", file_name="rows.csv")
    with pytest.raises(ValueError, match="no SFT examples"):
        export_llamafactory([], tmp_path, "ok")
    assert not (tmp_path / "ok.jsonl").exists() and not (tmp_path / DATASET_INFO).exists()


def test_cli_exports_and_prints_the_yaml_keys(mixed_data, tmp_path):
    data, folders = mixed_data
    out = tmp_path / "cli"
    buf = io.StringIO()
    with redirect_stdout(buf):
        rc = cli_main(["export-sft", "--data_file_paths", data, "--image_folders", folders, "--out_dir", str(out),
                       "--target", "render"])
    assert rc == 0
    printed = buf.getvalue()
    assert "8 record(s) -> 8 SFT example(s): 0 own answer(s), 8 rendered" in printed
    assert f"dataset_dir: {out}" in printed and "dataset: geo_sft" in printed
    check_llamafactory_rules(out / "geo_sft.jsonl", out)

    err = io.StringIO()
    with redirect_stderr(err), redirect_stdout(io.StringIO()):
        rc = cli_main(["export-sft", "--data_file_paths", str(tmp_path / "missing.jsonl"), "--out_dir", str(out)])
    assert rc == 1 and "missing.jsonl" in err.getvalue()


def test_shipped_dataset_info_and_yaml_configs_match_the_code():
    sft = REPO / "data_config" / "sft"
    assert json.loads((sft / "dataset_info.json").read_text()) == {"geo_sft": dataset_info_entry("geo_sft.jsonl")}
    for name, method in (("qwen2_5vl_full_sft.yaml", "full"), ("qwen2_5vl_lora_sft.yaml", "lora")):
        cfg = yaml.safe_load((sft / name).read_text())
        assert cfg["image_max_pixels"] == DEFAULT_MAX_PIXELS == 401408
        assert cfg["image_min_pixels"] == DEFAULT_MIN_PIXELS
        assert cfg["finetuning_type"] == method and cfg["stage"] == "sft" and cfg["template"] == "qwen2_vl"
        assert cfg["dataset"] == "geo_sft" and cfg["freeze_vision_tower"] is True
        assert (REPO / cfg["deepspeed"]).is_file()
        assert cfg["cutoff_len"] > DEFAULT_MAX_PIXELS // (28 * 28) + 300  # room for 512 image tokens + text
    merge = yaml.safe_load((sft / "qwen2_5vl_lora_merge.yaml").read_text())
    assert merge["finetuning_type"] == "lora" and merge["template"] == "qwen2_vl"
