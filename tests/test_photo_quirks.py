"""Real-photo quirks: what the processor refuses is caught before a run, and at run time one bad image never
ends it (training skips the sample with a counted warning; eval records it as unparseable with the reason)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from data_fixtures import contract_row, write_jsonl
from geo_r.cli import main
from geo_r.data.image_decode import UnreadableImageError, open_rgb
from photo_fixtures import BAD_QUIRKS, GOOD_QUIRKS, ROTATE_90_CW, camera_jpeg, truncated_jpeg, write_quirks


@pytest.fixture(scope="module")
def quirks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_quirks(tmp_path_factory.mktemp("quirks"))


def _jsonl(tmp_path: Path, quirks: dict[str, Path]) -> Path:
    """One record per quirky photo, in the order of ``quirks`` (line i + 1 holds quirk i)."""
    return write_jsonl(
        tmp_path / "quirks.jsonl", [contract_row(i, image=str(p), id=name) for i, (name, p) in enumerate(quirks.items())]
    )


def test_open_rgb_turns_every_readable_quirk_into_upright_8bit_rgb(quirks: dict[str, Path]) -> None:
    images = {name: open_rgb(str(quirks[name])) for name in GOOD_QUIRKS}
    assert all(im.mode == "RGB" for im in images.values())
    assert images["cmyk"].getpixel((0, 0)) == (0, 255, 255)  # pure cyan stays cyan
    grey = images["grey16"]
    assert grey.getpixel((0, 0)) == (255, 255, 255)
    assert grey.getpixel((59, 0)) == (128, 128, 128)  # 32768 / 65535, not clipped to white
    assert images["palette"].getpixel((0, 0)) == (0, 0, 0) and images["palette"].getpixel((49, 0)) == (255, 0, 0)
    assert images["palette_alpha"].getpixel((0, 0)) == (255, 255, 255)  # transparent -> white, not black
    assert images["rgba"].getpixel((0, 0)) == (255, 255, 255) and images["rgba"].getpixel((49, 0)) == (0, 200, 0)
    assert images["tiny"].size == (10, 10)
    assert images["exif_rotated"].size == (64, 96)  # stored 96x64 landscape, shown as portrait


@pytest.mark.parametrize("name", sorted(BAD_QUIRKS))
def test_open_rgb_refuses_with_the_reason(quirks: dict[str, Path], name: str) -> None:
    with pytest.raises(UnreadableImageError) as info:
        open_rgb(str(quirks[name]))
    assert BAD_QUIRKS[name][2] in info.value.reason
    assert str(quirks[name]) in str(info.value)


def test_aspect_ratio_limit_is_the_processors(tmp_path: Path) -> None:
    """199:1 is accepted and the processor resizes it; 200:1 is refused, as smart_resize would refuse it."""
    from PIL import Image
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

    ok = tmp_path / "ok.png"
    Image.new("RGB", (199 * 28, 28)).save(ok)
    assert open_rgb(str(ok)).size == (199 * 28, 28)
    smart_resize(28, 199 * 28, factor=28, min_pixels=3136, max_pixels=12845056)
    bad = tmp_path / "bad.png"
    Image.new("RGB", (200 * 28 + 1, 28)).save(bad)
    with pytest.raises(UnreadableImageError, match="aspect ratio"):
        open_rgb(str(bad))
    with pytest.raises(ValueError, match="aspect ratio"):
        smart_resize(28, 200 * 28 + 1, factor=28, min_pixels=3136, max_pixels=12845056)


def test_validate_names_each_bad_photo_with_line_and_reason(
    quirks: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _jsonl(tmp_path, quirks)
    line_of = {name: i + 1 for i, name in enumerate(quirks)}
    # header check: panorama and bomb are refused; the truncated JPEG's header is intact, so it passes
    assert main(["validate", "--data_file_paths", str(data), "--image_check_workers", "1"]) == 1
    out = capsys.readouterr().out
    assert f"{data}:{line_of['panorama']}: image unusable (aspect ratio 267:1" in out
    assert f"{data}:{line_of['bomb']}: image unreadable (too large, a decompression bomb" in out
    assert "truncated" not in out
    assert "8 valid, 2 invalid" in out
    # --decode decodes every pixel (4 threads): now the truncated one is named too, and nothing else
    assert main(["validate", "--data_file_paths", str(data), "--decode", "--image_check_workers", "4"]) == 1
    out = capsys.readouterr().out
    assert f"{data}:{line_of['truncated']}: image does not decode (OSError: image file is truncated" in out
    assert "7 valid, 3 invalid" in out and "10 distinct image(s) decoded" in out
    for name in GOOD_QUIRKS:
        assert f"{data}:{line_of[name]}:" not in out, name


def test_decode_uses_the_thread_pool_for_many_images(tmp_path: Path) -> None:
    """More images than one decode task: every bad one is still found, in any thread."""
    from geo_r.data.images import check_images

    good = [str(camera_jpeg(tmp_path / f"g{i}.jpg", (40, 30), seed=i)) for i in range(9)]
    bad = [str(truncated_jpeg(tmp_path / f"t{i}.jpg")) for i in range(3)]
    failures = check_images(good[:5] + bad + good[5:], workers=3, decode=True)
    assert sorted(failures) == sorted(bad)
    assert check_images(good + bad, workers=3, decode=False) == {}


def test_training_dataset_skips_an_unreadable_row_with_a_counted_warning(
    quirks: dict[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from geo_r.data import build_grpo_dataset, load_records
    from geo_r.data.skip_images import skip_unreadable_images, skipped_images

    readable = {n: p for n, p in quirks.items() if n != "panorama" and n != "bomb"}
    data = _jsonl(tmp_path, readable)
    records, _ = load_records(str(data), "", check_images=True)  # header check: the truncated file passes
    assert len(records) == len(readable)
    dataset = skip_unreadable_images(build_grpo_dataset(records))
    truncated_row = [r.id for r in records].index("truncated")
    with caplog.at_level(logging.WARNING, logger="geo_r.data.skip_images"):
        rows = [dataset[i] for i in range(len(dataset))]
        again = dataset[[truncated_row, truncated_row, 0]]  # GRPO reads each prompt num_generations times
    assert all(all(im.mode == "RGB" for im in row["images"]) for row in rows)
    stand_in = rows[truncated_row]["id"]
    assert stand_in != "truncated" and again["id"][:2] == [stand_in, stand_in]
    skipped = skipped_images(dataset)
    assert list(skipped) == [str(quirks["truncated"])] and "truncated" in skipped[str(quirks["truncated"])]
    warnings = [r.getMessage() for r in caplog.records if "skipped a training sample" in r.getMessage()]
    assert len(warnings) == 1 and "1 unreadable image(s) skipped so far" in warnings[0]
    assert str(quirks["truncated"]) in warnings[0]


def test_eval_records_unreadable_images_and_finishes(
    tiny_model_dir: Path, quirks: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from geo_r.eval.cli import main as eval_main

    data = _jsonl(tmp_path, quirks)
    out = tmp_path / "eval"
    flags = ["--model_name_or_path", str(tiny_model_dir), "--data_file_paths", str(data), "--output_dir", str(out),
             "--max_new_tokens", "4", "--no_progress", "--batch_size", "4", "--max_pixels", "12544",
             "--min_pixels", "3136", "--no_check_images"]
    assert eval_main(flags) == 0
    preds = {p["id"]: p for p in map(json.loads, (out / "predictions.jsonl").read_text().splitlines())}
    assert sorted(preds) == sorted(quirks)
    for name in BAD_QUIRKS:
        assert BAD_QUIRKS[name][2] in preds[name]["image_error"] and preds[name]["completion"] == ""
    assert not any("image_error" in preds[name] for name in GOOD_QUIRKS)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n"] == len(quirks) and metrics["unparseable"] >= len(BAD_QUIRKS)
    assert metrics["settings"]["unreadable_images"]["count"] == len(BAD_QUIRKS)
    printed = capsys.readouterr().out
    assert f"{len(BAD_QUIRKS)} image(s) could not be read and count as unparseable" in printed
    assert "truncated:" in printed and "panorama:" in printed


def test_exif_rotated_camera_photo_is_upright_at_full_size(tmp_path: Path) -> None:
    photo = camera_jpeg(tmp_path / "phone.jpg", (1024, 768), orientation=ROTATE_90_CW)
    assert open_rgb(str(photo)).size == (768, 1024)


@pytest.mark.slow
def test_grpo_run_skips_a_truncated_image_and_finishes(tiny_model_dir: Path, tmp_path: Path) -> None:
    """The entrypoint, 1 step: the truncated photo passes the header check, fails when its row is read, and
    the run logs the skip and finishes."""
    import os
    import subprocess
    import sys

    from geo_r.demo.toy_data import write_toy_dataset

    data = write_toy_dataset(tmp_path / "toy", n=4, seed=1)
    rows = [json.loads(x) for x in data.read_text().splitlines()]
    first = data.parent / "images" / rows[0]["image"]
    truncated_jpeg(first)  # overwrite the first photo with a truncated one
    repo = Path(__file__).resolve().parents[1]
    out = tmp_path / "run"
    cmd = [sys.executable, str(repo / "src" / "geo_r" / "grpo_jsonl.py"),
           "--model_name_or_path", str(tiny_model_dir), "--data_file_paths", str(data),
           "--image_folders", str(data.parent / "images"), "--output_dir", str(out), "--max_steps", "1",
           "--per_device_train_batch_size", "4", "--num_generations", "4", "--max_completion_length", "8",
           "--max_pixels", "12544", "--min_pixels", "3136", "--report_to", "none", "--torch_dtype", "float32",
           "--save_strategy", "no", "--reward_funcs", "format", "distance", "--seed", "0"]
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    log = proc.stdout + proc.stderr
    assert "skipped a training sample: image unreadable" in log and str(first) in log
    assert "unreadable image(s) skipped so far" in log
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 1
