"""``geo-r app``: photo checks, the default model rule, streaming equal to eval's generation, and the page in
headless Chromium (a photo answered through the page with no request leaving the machine; bad uploads get a
message in the page)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from browser import chromium_page, is_local
from geo_r.app.cli import example_photos
from geo_r.app.engine import PhotoError, check_photo, parse_answer
from geo_r.demo.toy_data import write_toy_dataset
from geo_r.prompts import render_answer

SRC = Path(__file__).resolve().parents[1] / "src"
# sampled, seeded: the random tiny model's greedy answer is only newlines, a sample is visible text
APP_FLAGS = ["--max_new_tokens", "24", "--max_pixels", "12544", "--min_pixels", "3136", "--do_sample", "--seed", "1"]
SETTINGS = {"max_new_tokens": 24, "do_sample": True, "seed": 1}


def _bad_files(folder: Path) -> tuple[Path, Path]:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    fake = folder / "notes.jpg"
    fake.write_text("this is not a photo\n", encoding="utf-8")
    pano = folder / "panorama.png"
    Image.new("RGB", (20_000, 20), (90, 140, 200)).save(pano)
    return fake, pano


def test_check_photo_explains_bad_input(tmp_path: Path, make_images) -> None:
    fake, pano = _bad_files(tmp_path)
    with pytest.raises(PhotoError, match="notes.jpg is not an image"):
        check_photo(str(fake))
    with pytest.raises(PhotoError, match=r"20000 x 20 px, an aspect ratio of 1,000:1"):
        check_photo(str(pano))
    with pytest.raises(PhotoError, match="Upload a photo"):
        check_photo(None)
    truncated = tmp_path / "cut.jpg"
    good = make_images(tmp_path / "ok", 1, sizes=((200, 150),))[0]
    data = good.read_bytes()
    truncated.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(PhotoError, match="cut.jpg is damaged"):
        check_photo(str(truncated))
    assert check_photo(str(good)) == str(good)


def test_parse_answer_gives_chain_and_coordinates() -> None:
    a = parse_answer(render_answer("France", "Ile-de-France", "Paris", 48.8566, 2.3522))
    assert a.chain_markdown().splitlines()[-1] == "| France | Ile-de-France | Paris |"
    assert a.coordinates() == "48.856600, 2.352200"
    none = parse_answer("somewhere warm")
    assert "no `<answer>` block" in none.chain_markdown()
    assert none.coordinates() == "no valid coordinates in the answer"


def test_without_a_model_or_demo_it_says_how_to_get_one(tmp_path: Path, monkeypatch, capsys) -> None:
    from geo_r.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["app"]) == 1
    err = capsys.readouterr().err
    assert "no demo model at outputs/demo_full/grpo" in err and "geo-r demo" in err
    assert main(["app", "--model_name_or_path", str(tmp_path / "nope")]) == 1
    assert "no such folder" in capsys.readouterr().err


def test_default_model_is_the_demo_grpo_checkpoint_with_its_settings(tmp_path: Path, monkeypatch) -> None:
    import argparse

    from geo_r.app.cli import _resolve, add_arguments
    from geo_r.demo.pipeline import DemoConfig

    monkeypatch.chdir(tmp_path)
    grpo = tmp_path / "outputs" / "demo_full" / "grpo"
    grpo.mkdir(parents=True)
    (grpo / "config.json").write_text("{}", encoding="utf-8")
    world = write_toy_dataset(tmp_path / "outputs" / "demo_full" / "world", n=3).parent
    (world / "train.jsonl").rename(world / "heldout.jsonl")
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = _resolve(parser.parse_args([]))
    assert args.model_name_or_path == str(Path("outputs/demo_full/grpo"))
    assert args.host == "127.0.0.1" and args.max_pixels == DemoConfig().max_pixels
    assert args.max_new_tokens == DemoConfig().eval_max_new_tokens
    assert Path(args.examples) == Path("outputs/demo_full/world/heldout.jsonl")
    assert len(example_photos(args.examples, args.example_images)) == 3
    # an explicit model keeps eval's defaults
    other = _resolve(parser.parse_args(["--model_name_or_path", str(grpo)]))
    assert other.max_pixels == 401_408 and other.max_new_tokens == 512


def test_examples_one_photo_per_place(tmp_path: Path) -> None:
    jsonl = write_toy_dataset(tmp_path / "toy", n=40, seed=0)
    photos = example_photos(str(jsonl), str(jsonl.parent / "images"))
    assert len(photos) == 12 and len(set(photos)) == 12 and all(Path(p).is_file() for p in photos)


def test_stream_is_eval_generation(tiny_model_dir: Path, make_images) -> None:
    """The app's streamed answer is token for token what ``geo-r eval``'s generator writes for the photo."""
    from geo_r.app.engine import Engine
    from geo_r.eval.generate import GenerationSettings

    photo = str(make_images(Path(os.environ.get("TMPDIR", "/tmp")) / "geo_r_app_stream", 1)[0])
    engine = Engine(str(tiny_model_dir), GenerationSettings(**SETTINGS), min_pixels=3136, max_pixels=12544)
    steps = list(engine.stream(photo))
    assert len(steps) > 1 and all(b.startswith(a) for a, b in zip(steps, steps[1:], strict=False))
    assert steps[-1] == engine.generator.generate([engine.record(photo)])[0]
    assert steps[-1].strip()
    assert "<|vision_start|>" in engine.prompt(photo) or "<|image_pad|>" in engine.prompt(photo)

    # what the page shows for a streamed answer with a chain: table, coordinates, a pin where they point
    pytest.importorskip("gradio", reason='the app extra is not installed: pip install -e ".[app]"')
    from geo_r.app.page import page_updates

    text = render_answer("Kenya", "Nairobi Area", "Nairobi", -1.2921, 36.8219)
    engine.stream = lambda path: iter([text[:20], text])  # type: ignore[method-assign]
    updates = list(page_updates(engine, photo))
    status, preview, answer, chain, coords, world, prompt, settings = updates[-1]
    assert [u[2] for u in updates] == ["", text[:20], text, text] and preview == photo
    assert "Done." in status and "| Kenya | Nairobi Area | Nairobi |" in chain
    assert coords == "-1.292100, 36.821900"
    assert 'cx="216.82" cy="91.29"' in world  # lon + 180, 90 - lat
    assert json.loads(settings)["generation"]["seed"] == 1 and prompt == engine.prompt(photo)
    status, *_ = list(page_updates(engine, None))[-1]
    assert "Cannot answer" in status and "Upload a photo" in status


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, proc: subprocess.Popen, log: Path, timeout: float = 240) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            pytest.fail(f"geo-r app exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    pytest.fail(f"geo-r app did not open port {port} in {timeout} s:\n{log.read_text()[-3000:]}")


def _upload(page, path: Path, log: Path) -> None:
    """Choose ``path`` in the photo box as a user would (Gradio opens the file chooser on click); on a timeout,
    fail with what the box shows and the app's log (an upload the server could not store shows up only there)."""
    from playwright.sync_api import TimeoutError as PageTimeout

    clear = page.locator("#geo-r-photo button[aria-label='Clear']")
    if clear.count():
        clear.first.click()
    with page.expect_file_chooser() as chooser:
        page.click("#geo-r-photo button.upload-container")
    chooser.value.set_files(str(path))
    try:
        page.wait_for_function(
            # Gradio shows the stem and the extension in separate elements; innerText may break the line between
            # them (it follows the layout), so compare without whitespace
            "name => document.querySelector('#geo-r-photo').innerText.replace(/\\s+/g, '').includes(name)",
            arg=path.name, timeout=60_000,
        )
    except PageTimeout:
        box = page.inner_text("#geo-r-photo")
        pytest.fail(f"{path.name} never showed in the photo box (it shows {box!r}); app log:\n"
                    f"{log.read_text()[-3000:]}")


@pytest.mark.slow
def test_app_answers_a_photo_in_chromium(tiny_model_dir: Path, make_images, tmp_path: Path) -> None:
    pytest.importorskip("gradio", reason='the app extra is not installed: pip install -e ".[app]"')
    from geo_r.app.engine import Engine
    from geo_r.eval.generate import GenerationSettings

    jsonl = write_toy_dataset(tmp_path / "toy", n=4, seed=0)
    photo = make_images(tmp_path / "photos", 1, sizes=((160, 120),))[0]
    fake, pano = _bad_files(tmp_path / "bad")
    expected = Engine(str(tiny_model_dir), GenerationSettings(**SETTINGS), min_pixels=3136,
                      max_pixels=12544).generator.generate([Engine.record(str(photo))])[0]
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", OMP_NUM_THREADS="1")
    env.pop("GRADIO_ANALYTICS_ENABLED", None)  # the app must turn analytics off by itself
    log = tmp_path / "app.log"
    cmd = [sys.executable, "-m", "geo_r.cli", "app", "--model_name_or_path", str(tiny_model_dir), "--port",
           str(port), "--examples", str(jsonl), "--example_images", str(jsonl.parent / "images"), *APP_FLAGS]
    with log.open("w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
    try:
        _wait_for_port(port, proc, log)
        with chromium_page(tmp_path) as (page, requested):
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_selector("#geo-r-locate", timeout=60_000)
            status = page.locator("#geo-r-status")

            _upload(page, photo, log)
            page.click("#geo-r-locate")
            page.wait_for_function(
                "() => document.querySelector('#geo-r-status').innerText.includes('Done')", timeout=120_000
            )
            assert page.input_value("#geo-r-answer textarea") == expected
            assert page.locator("#geo-r-chain").inner_text().strip()
            assert page.locator("#geo-r-map svg path").count() >= 1
            assert page.locator("#geo-r-preview img").count() == 1
            page.screenshot(path=str(tmp_path / "app.png"), full_page=True)

            # an example photo: one click in the gallery puts it in the photo box and answers it
            page.click("#geo-r-examples button.thumbnail-item >> nth=0")
            page.wait_for_function(
                "() => document.querySelector('#geo-r-photo').innerText.includes('00000')", timeout=60_000
            )
            page.wait_for_function(  # the preview switches when the new answer starts
                "() => (document.querySelector('#geo-r-preview img') || {}).src?.includes('00000')", timeout=60_000
            )
            page.wait_for_function(
                "() => document.querySelector('#geo-r-status').innerText.includes('Done')", timeout=120_000
            )
            assert page.input_value("#geo-r-answer textarea").strip()

            for bad, message in ((fake, "notes.jpg is not an image"), (pano, "aspect ratio of 1,000:1")):
                _upload(page, bad, log)
                page.click("#geo-r-locate")
                page.wait_for_function(
                    "m => document.querySelector('#geo-r-status').innerText.includes(m)", arg=message,
                    timeout=60_000,
                )
                assert "Traceback" not in page.inner_text("body")
            assert "Cannot answer" in status.inner_text()
            page.screenshot(path=str(tmp_path / "app_bad_input.png"), full_page=True)
        outside = [u for u in requested if not is_local(u)]
        assert requested and not outside, outside
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
    assert f"serving http://127.0.0.1:{port}" in log.read_text()
    print(json.dumps({"requests": len(requested)}))
