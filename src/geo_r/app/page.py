"""The Gradio page of ``geo-r app``: a photo in; the streamed answer, chain, coordinates and a pin on a map out.

Under the chain, where the coordinates fall (offline reverse geocoding) and whether that agrees with the named
chain; with retrieval candidates, the candidates the prompt listed (also squares on the map) and what the
answer's ``Candidate:`` line says.

Offline by construction: system fonts only (no Google Fonts), the map is an inline SVG from the installed
coastlines (:func:`geo_r.eval.worldmap.pin_svg`), and Gradio's analytics are off (``geo_r.app.cli`` sets
``GRADIO_ANALYTICS_ENABLED=False`` before Gradio is imported).
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterator, Sequence
from typing import Any

import gradio as gr

from geo_r.app.engine import Engine, PhotoError, candidates_markdown, check_photo, parse_answer
from geo_r.eval.worldmap import land_source, pin_svg

TITLE = "Geo-R: where was this photo taken?"
CSS = "#geo-r-status p { margin: 0; } #geo-r-status.error, #geo-r-status .error { color: #b42318; }"


def theme() -> Any:
    """Gradio's default look with system fonts, so the page fetches no web fonts."""
    return gr.themes.Default(
        font=["system-ui", "-apple-system", "Segoe UI", "sans-serif"],
        font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "monospace"],
    )


def _status(text: str, error: bool = False) -> str:
    text = html.escape(text)  # file names come from the user
    return f'<p class="error"><strong>Cannot answer:</strong> {text}</p>' if error else f"<p>{text}</p>"

OUTPUTS = ("status", "preview", "answer", "chain", "place", "coordinates", "map", "candidates", "prompt", "settings")
"""The order of the values :func:`page_updates` yields (one per page component)."""


def _candidate_panel(engine: Engine, path: str) -> tuple[Any, str, list[tuple[float, float, str]]]:
    """The photo's candidates, their Markdown and map marks (None, "" and none when the app has none)."""
    candidates = engine.candidates_for(path)
    if not candidates:
        note = ("No retrieval candidates for this photo: `--candidates` covers the example photos only."
                if engine.candidates else "")
        return candidates, note, []
    marks = [(c.lat, c.lon, f"candidate {k}: {' / '.join(c.chain_names())}") for k, c in enumerate(candidates, 1)]
    return candidates, candidates_markdown(candidates), marks


def page_updates(engine: Engine, path: str | None) -> Iterator[tuple[Any, ...]]:
    """The page's values in :data:`OUTPUTS` order, as the answer grows: a message instead of an answer for a
    bad photo, never an exception."""
    empty_map = pin_svg(None, None)
    try:
        check_photo(path)
    except PhotoError as exc:
        yield _status(str(exc), error=True), None, "", "", "", "", empty_map, "", "", ""
        return
    assert path is not None
    prompt, settings = engine.prompt(path), json.dumps(engine.settings_dict(), indent=2)
    candidates, panel, marks = _candidate_panel(engine, path)
    waiting_map = pin_svg(None, None, marks=marks)
    yield _status("Generating..."), path, "", "", "", "", waiting_map, panel, prompt, settings
    text = ""
    try:
        for text in engine.stream(path):
            yield _status("Generating..."), path, text, "", "", "", waiting_map, panel, prompt, settings
    except Exception as exc:  # noqa: BLE001 - shown in the page, never as a traceback
        failed = _status(f"generation failed ({type(exc).__name__}: {exc})", error=True)
        yield failed, path, text, "", "", "", waiting_map, panel, prompt, settings
        return
    answer = parse_answer(text)
    p = answer.prediction
    label = ", ".join(x for x in (p.city, p.region, p.country) if x)
    done = "Done." if p.has_coordinates else "Done, but the answer gives no valid coordinates (no pin)."
    if answer.disagreements():
        done += " The named chain disagrees with the coordinates (see below the chain)."
    place = answer.place_markdown()
    named = answer.candidate_markdown(candidates)
    if named:
        place += "\n\n" + named
    yield (_status(done), path, text, answer.chain_markdown(), place, answer.coordinates(),
           pin_svg(p.lat, p.lon, label=label, marks=marks), panel, prompt, settings)


def build_page(engine: Engine, examples: Sequence[str] = (), examples_label: str = "examples") -> Any:
    """The ``gr.Blocks`` app; ``examples`` are photo paths offered in a gallery (may be empty)."""

    def locate(path: str | None) -> Iterator[tuple[Any, ...]]:
        yield from page_updates(engine, path)

    with gr.Blocks(title=TITLE, analytics_enabled=False) as page:
        gr.Markdown(f"## {TITLE}\nModel: `{engine.model_path}`. Upload a photo or pick an example, then "
                    "**Locate**. The answer streams in as it is generated; the chain, the coordinates and "
                    "the pin follow.")
        with gr.Row():
            with gr.Column(scale=1):
                photo = gr.File(label="photo", file_count="single", type="filepath", elem_id="geo-r-photo")
                locate_btn = gr.Button("Locate", variant="primary", elem_id="geo-r-locate")
                preview = gr.Image(label="the photo", type="filepath", interactive=False, height=260,
                                   elem_id="geo-r-preview")
                candidates = gr.Markdown(elem_id="geo-r-candidates")
                gallery = None
                if examples:
                    gallery = gr.Gallery(value=list(examples), label=examples_label,
                                         columns=6, height=160, allow_preview=False, elem_id="geo-r-examples")
            with gr.Column(scale=2):
                status = gr.HTML(_status("Waiting for a photo."), elem_id="geo-r-status")
                answer = gr.Textbox(label="answer (streamed)", lines=6, max_lines=14, elem_id="geo-r-answer")
                chain = gr.Markdown(elem_id="geo-r-chain")
                place = gr.Markdown(elem_id="geo-r-place")
                coords = gr.Textbox(label="coordinates (lat, lon)", elem_id="geo-r-coords")
                world = gr.HTML(pin_svg(None, None), elem_id="geo-r-map")
                gr.Markdown(f"Map: {land_source()}, drawn locally"
                            + ("; blue squares are the retrieval candidates." if engine.candidates else "."))
                with gr.Accordion("prompt and generation settings", open=False):
                    prompt = gr.Textbox(label="prompt (chat template applied)", lines=6, elem_id="geo-r-prompt")
                    settings = gr.Code(label="settings", language="json", elem_id="geo-r-settings")
        outputs = [status, preview, answer, chain, place, coords, world, candidates, prompt, settings]
        locate_btn.click(locate, inputs=photo, outputs=outputs)
        if gallery is not None:
            def pick(evt: gr.SelectData) -> str:
                return list(examples)[evt.index]

            gallery.select(pick, inputs=None, outputs=photo).then(locate, inputs=photo, outputs=outputs)
    return page
