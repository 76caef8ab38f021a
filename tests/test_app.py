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
from geo_r.app.engine import PhotoError, candidates_markdown, check_photo, parse_answer
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


def test_the_chain_is_checked_against_where_the_coordinates_fall() -> None:
    tokyo = parse_answer(render_answer("Japan", "Hokkaido", "Manaus", 35.6895, 139.6917))
    assert tokyo.place.country == "Japan" and tokyo.place.region == "Tokyo"
    assert tokyo.disagreements() == ["region", "city"]
    md = tokyo.place_markdown()
    assert "| answer names | Japan | Hokkaido | Manaus |" in md and "| coordinates fall in | Japan | Tokyo |" in md
    assert "| | ✓ agree | ✗ **disagree** | ✗ **disagree** |" in md
    assert "The answer disagrees with its own coordinates** (region, city)" in md
    paris = parse_answer(render_answer("France", "Ile-de-France", "Paris", 48.8566, 2.3522))
    assert paris.disagreements() == [] and "agrees with the coordinates" in paris.place_markdown()
    assert "nothing to check" in parse_answer("somewhere warm").place_markdown()


def test_candidates_and_the_named_one_are_shown() -> None:
    from geo_r.geo.candidates import Candidate

    cands = (Candidate(48.8584, 2.2945, "France", "Ile-de-France", "Paris", 3, 0.91), Candidate(35.6895, 139.6917))
    table = candidates_markdown(cands)
    assert "| 1 | France / Ile-de-France / Paris | 48.8584, 2.2945 | 3 | 0.91 |" in table
    assert "| 2 | – | 35.6895, 139.6917 | 1 | – |" in table and candidates_markdown(None) == ""
    named = parse_answer(render_answer("France", "Ile-de-France", "Paris", 48.8584, 2.2945, candidate=1))
    assert named.candidate_markdown(cands) == "The answer names candidate 1 (its coordinates are 0.0 km from it): consistent."
    wrong = parse_answer(render_answer("France", "Ile-de-France", "Paris", 48.8584, 2.2945, candidate=2))
    assert "not consistent" in wrong.candidate_markdown(cands)
    assert "only 2" in parse_answer(render_answer("A", "B", "C", 1, 2, candidate=5)).candidate_markdown(cands)
    assert "none" in parse_answer(render_answer("A", "B", "C", 1, 2, candidate=0)).candidate_markdown(cands)
    assert "no readable" in named.__class__(named.text.replace("Candidate: 1\n", ""),
                                            parse_answer(named.text.replace("Candidate: 1\n", "")).prediction
                                            ).candidate_markdown(cands)
    assert named.candidate_markdown(None) == ""


def test_without_a_model_or_demo_it_says_how_to_get_one(tmp_path: Path, monkeypatch, capsys) -> None:
    from geo_r.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["app"]) == 1
    err = capsys.readouterr().err
    assert "no demo model at outputs/demo_full/grpo" in err and "geo-r demo" in err
    assert main(["app", "--model_name_or_path", str(tmp_path / "nope")]) == 1
    assert "no such folder" in capsys.readouterr().err


def test_candidates_need_examples_and_a_line_for_each(tmp_path: Path, monkeypatch, capsys) -> None:
    from geo_r.cli import main

    monkeypatch.chdir(tmp_path)
    jsonl = write_toy_dataset(tmp_path / "toy", n=3)
    first = json.loads(jsonl.read_text().splitlines()[0])
    short = tmp_path / "neighbours.jsonl"
    short.write_text(json.dumps({"id": first["id"], "neighbours": []}) + "\n", encoding="utf-8")
    model = tmp_path / "model"  # never loaded: the candidates are checked first
    model.mkdir()
    assert main(["app", "--model_name_or_path", str(model), "--candidates", str(short)]) == 1
    assert "pass --examples FILE.jsonl" in capsys.readouterr().err
    assert main(["app", "--model_name_or_path", str(model), "--candidates", str(short), "--examples", str(jsonl),
                 "--example_images", str(jsonl.parent / "images")]) == 1
    err = capsys.readouterr().err
    assert "no line for 2 of 3 photo(s)" in err and str(short) in err and f"{jsonl}:2" in err


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
    from geo_r.app.page import OUTPUTS, page_updates

    text = render_answer("Kenya", "Nairobi Area", "Nairobi", -1.2921, 36.8219)
    engine.stream = lambda path: iter([text[:20], text])  # type: ignore[method-assign]
    updates = list(page_updates(engine, photo))
    assert all(len(u) == len(OUTPUTS) for u in updates)
    status, preview, answer, chain, place, coords, world, candidates, prompt, settings = updates[-1]
    assert [u[2] for u in updates] == ["", text[:20], text, text] and preview == photo
    assert "Done." in status and "| Kenya | Nairobi Area | Nairobi |" in chain
    assert "| coordinates fall in | Kenya | Nairobi Area |" in place and "agrees with the coordinates" in place
    assert "disagree" not in status and candidates == ""
    assert coords == "-1.292100, 36.821900"
    assert 'cx="216.82" cy="91.29"' in world  # lon + 180, 90 - lat
    assert json.loads(settings)["generation"]["seed"] == 1 and prompt == engine.prompt(photo)
    status, *_ = list(page_updates(engine, None))[-1]
    assert "Cannot answer" in status and "Upload a photo" in status

    # with retrieval candidates for this photo (recognised by its bytes): listed in the prompt and the page,
    # squares on the map, and what the answer's Candidate line says
    from geo_r.app.engine import photo_digest
    from geo_r.geo.candidates import Candidate
    from geo_r.prompts import CANDIDATES_HEADER

    cands = (Candidate(-1.2921, 36.8219, "Kenya", "Nairobi Area", "Nairobi", 4, 0.8), Candidate(10.0, 10.0))
    engine.candidates = {photo_digest(photo): cands}
    named = render_answer("Kenya", "Nairobi Area", "Nairobi", -1.2921, 36.8219, candidate=1)
    engine.stream = lambda path: iter([named])  # type: ignore[method-assign]
    status, _, _, _, place, _, world, candidates, prompt, _ = list(page_updates(engine, photo))[-1]
    assert CANDIDATES_HEADER in prompt and "1. (-1.292100, 36.821900) Kenya / Nairobi Area / Nairobi" in prompt
    assert "Retrieval candidates in the prompt** (2;" in candidates and world.count('class="geo-r-mark"') == 2
    assert "names candidate 1 (its coordinates are 0.0 km from it): consistent" in place
    other = str(make_images(Path(os.environ.get("TMPDIR", "/tmp")) / "geo_r_app_other", 1, sizes=((90, 60),))[0])
    *_, world, candidates, prompt, _ = list(page_updates(engine, other))[-1]
    assert "covers the example photos only" in candidates and CANDIDATES_HEADER not in prompt
    assert "geo-r-mark" not in world


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
    neighbours = tmp_path / "neighbours.jsonl"  # retrieval candidates for the example photos
    neighbours.write_text("".join(
        json.dumps({"id": r["id"], "neighbours": [{"lat": r["lat"], "lon": r["lon"], "score": 0.9},
                                                  {"lat": -r["lat"], "lon": r["lon"], "score": 0.5}]}) + "\n"
        for r in map(json.loads, jsonl.read_text().splitlines())), encoding="utf-8")
    photo = make_images(tmp_path / "photos", 1, sizes=((160, 120),))[0]
    fake, pano = _bad_files(tmp_path / "bad")
    expected = Engine(str(tiny_model_dir), GenerationSettings(**SETTINGS), min_pixels=3136,
                      max_pixels=12544).generator.generate([Engine.record(str(photo))])[0]
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", OMP_NUM_THREADS="1")
    env.pop("GRADIO_ANALYTICS_ENABLED", None)  # the app must turn analytics off by itself
    log = tmp_path / "app.log"
    cmd = [sys.executable, "-m", "geo_r.cli", "app", "--model_name_or_path", str(tiny_model_dir), "--port",
           str(port), "--examples", str(jsonl), "--example_images", str(jsonl.parent / "images"), "--candidates", str(neighbours),
           *APP_FLAGS]
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
            assert "covers the example photos only" in page.inner_text("#geo-r-candidates")
            assert page.locator("#geo-r-place").inner_text().strip()  # where the coordinates fall, or why not
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
            # an example photo has its retrieval candidates: in the page, on the map and in the prompt
            assert "Retrieval candidates in the prompt (2;" in page.inner_text("#geo-r-candidates")
            assert page.locator("#geo-r-map .geo-r-mark").count() == 2
            page.click("text=prompt and generation settings")  # open the accordion
            assert "Candidates: where the most similar photos" in page.input_value("#geo-r-prompt textarea")

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


class _ScriptedEngine:
    """What the page needs from an Engine, answering every photo with a fixed completion (no model)."""

    model_path = "scripted"

    def __init__(self, answer: str, candidates: dict) -> None:
        self.answer, self.candidates = answer, candidates

    def candidates_for(self, path: str):
        from geo_r.app.engine import photo_digest

        return self.candidates.get(photo_digest(path))

    def prompt(self, path: str) -> str:
        return "scripted prompt"

    def settings_dict(self) -> dict:
        return {"model_name_or_path": self.model_path}

    def stream(self, path: str):
        yield self.answer[: len(self.answer) // 2]
        yield self.answer


def test_page_shows_candidates_and_flags_a_chain_that_disagrees_in_chromium(make_images, tmp_path: Path) -> None:
    """The page itself, in headless Chromium, for an answer whose chain contradicts its coordinates (the
    held-out photo that got "Japan / Hokkaido / Manaus" with coordinates in Tokyo) and names a candidate."""
    pytest.importorskip("gradio", reason='the app extra is not installed: pip install -e ".[app]"')
    from geo_r.app.engine import photo_digest
    from geo_r.app.page import CSS, build_page, theme
    from geo_r.geo.candidates import Candidate

    photo = make_images(tmp_path / "photos", 1, sizes=((160, 120),))[0]
    cands = (Candidate(35.6895, 139.6917, "Japan", "Tokyo", "Tokyo", 5, 0.87),
             Candidate(43.0642, 141.3469, "Japan", "Hokkaido", "Sapporo", 2, 0.71))
    answer = render_answer("Japan", "Hokkaido", "Manaus", 35.6895, 139.6917, candidate=2)
    engine = _ScriptedEngine(answer, {photo_digest(photo): cands})
    page = build_page(engine, [str(photo)], "examples")
    port = _free_port()
    page.queue().launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                        allowed_paths=[str(photo.parent)], theme=theme(), css=CSS, ssr_mode=False)
    try:
        with chromium_page(tmp_path) as (browser, requested):
            browser.goto(f"http://127.0.0.1:{port}/")
            browser.wait_for_selector("#geo-r-locate", timeout=60_000)
            browser.click("#geo-r-examples button.thumbnail-item >> nth=0")
            browser.wait_for_function(
                "() => document.querySelector('#geo-r-status').innerText.includes('Done')", timeout=60_000)
            status = browser.inner_text("#geo-r-status")
            place = browser.inner_text("#geo-r-place")
            listed = browser.inner_text("#geo-r-candidates")
            assert "disagrees with the coordinates" in status
            assert "The answer disagrees with its own coordinates (region, city)" in place
            assert "Hokkaido" in place and "Tokyo" in place and "Manaus" in place
            assert "names candidate 2" in place and "not consistent" in place
            assert "Retrieval candidates in the prompt (2;" in listed and "Japan / Tokyo / Tokyo" in listed
            assert browser.locator("#geo-r-map .geo-r-mark").count() == 2
            browser.screenshot(path=str(tmp_path / "app_candidates.png"), full_page=True)
        outside = [u for u in requested if not is_local(u)]
        assert requested and not outside, outside
    finally:
        page.close()
    print(json.dumps({"screenshot": str(tmp_path / "app_candidates.png")}))
