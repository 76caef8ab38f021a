"""The entrypoint's data path, end to end: ``grpo_jsonl.py`` builds the memory-mapped cache once, a second run
starts from it, and with the unreadable-image wrapper each photo is decoded once per step (the decode memo), as the
log shows; the memo's replacement of a row whose image fails matches the wrapper's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from geo_r.demo.toy_data import write_toy_dataset

REPO = Path(__file__).resolve().parents[1]
ENTRY = REPO / "src" / "geo_r" / "grpo_jsonl.py"
LENGTH_REWARD = f"{REPO / 'tests' / 'rewards_for_tests.py'}:length_reward"


def _run(cmd: list[str]) -> str:
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1",
               TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1")
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return proc.stdout + proc.stderr


@pytest.mark.slow
def test_entrypoint_caches_the_data_and_decodes_each_photo_once_per_step(tiny_model_dir, tmp_path):
    jsonl = write_toy_dataset(tmp_path / "toy", n=8, seed=4)
    cache = tmp_path / "cache"

    def command(out: Path) -> list[str]:
        return [sys.executable, str(ENTRY), "--model_name_or_path", str(tiny_model_dir),
                "--data_file_paths", str(jsonl), "--image_folders", str(jsonl.parent / "images"),
                "--output_dir", str(out), "--data_cache_dir", str(cache), "--max_steps", "2",
                "--per_device_train_batch_size", "8", "--num_generations", "4", "--max_completion_length", "8",
                "--learning_rate", "1e-3", "--logging_steps", "1", "--max_pixels", "12544", "--min_pixels", "3136",
                "--seed", "0", "--save_strategy", "no", "--report_to", "none",
                "--reward_funcs", "format", LENGTH_REWARD]

    first = _run(command(tmp_path / "run1"))
    assert "checked and cached" in first and str(cache) in first
    state = json.loads((tmp_path / "run1" / "trainer_state.json").read_text())
    logs = [e for e in state["log_history"] if "vision/images_decoded" in e]
    # 8 rows a step = 2 photos x 4 generations: each photo file decoded once per step, not once per copy
    assert [e["vision/images_decoded"] for e in logs] == [2.0, 2.0]
    assert [e["vision/images_processed"] for e in logs] == [2.0, 2.0]

    second = _run(command(tmp_path / "run2"))
    assert "from the cache" in second and "checked and cached" not in second
    assert len(list(cache.glob("grpo-*"))) == 1


def test_memo_replaces_an_unreadable_row_as_the_wrapper_does(tmp_path):
    """A photo that breaks after the cache was built (a file changed during a long run) fails when decoded: the
    trainer's memo (deferred decoding) and the wrapper's own transform put the same readable row in its place."""
    from geo_r.data.cache import open_training_cache
    from geo_r.data.skip_images import skip_unreadable_images, skipped_images
    from geo_r.trainer.image_memo import ImageDecodeMemo, undecoded_images

    jsonl = write_toy_dataset(tmp_path / "toy", n=6, seed=1)
    images = jsonl.parent / "images"
    rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
    cache = open_training_cache(tmp_path / "c", data_file_paths=str(jsonl), image_folders=str(images),
                                progress="off")
    broken = images / rows[2]["image"]
    broken.write_bytes(broken.read_bytes()[:300])
    wrapped = skip_unreadable_images(cache.dataset)
    eager = [wrapped[i] for i in (2, 2, 0)]
    lazy, decoders = undecoded_images(skip_unreadable_images(cache.dataset))
    assert list(decoders) == ["images"] and isinstance(lazy[0]["images"][0], dict)
    memo = ImageDecodeMemo(decoders)
    decoded = memo.decode_rows([lazy[i] for i in (2, 2, 0)])
    for got, want in zip(decoded, eager, strict=True):
        assert got["id"] == want["id"] and got["prompt"] == want["prompt"]
        assert [im.tobytes() for im in got["images"]] == [im.tobytes() for im in want["images"]]
    assert decoded[0]["id"] != rows[2]["id"]  # replaced
    assert str(broken) in skipped_images(lazy)
