"""What ``geo-r app`` does with a photo: check it, stream the model's answer, parse the chain and coordinates.

Generation is :class:`geo_r.eval.generate.HFGenerator` itself (``stream`` goes through the same ``inputs``:
the project's prompt, the processor's ``min_pixels``/``max_pixels``, the blocked vision tokens and the
decoding settings ``geo-r eval`` uses), so the app answers exactly as an evaluation would.
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from geo_r.data.schema import GeoRecord
from geo_r.eval.generate import GenerationSettings, HFGenerator, load_image, prompt_texts
from geo_r.geo import Prediction, parse_prediction

MAX_ASPECT_RATIO = 200  # Qwen-VL processors refuse images whose long side is >= 200 x the short side
MIN_SIDE = 2


class PhotoError(ValueError):
    """The uploaded file cannot be answered; the message says why in words for the page."""


def check_photo(path: str | None) -> str:
    """Return ``path`` if it is an image the model can take, else raise :class:`PhotoError`."""
    from PIL import Image

    if not path:
        raise PhotoError("Upload a photo (JPEG, PNG, WebP, ...) or pick one of the examples first.")
    name = Path(path).name
    try:
        with Image.open(path) as img:
            width, height = img.size
    except Image.DecompressionBombError:
        raise PhotoError(f"{name} has too many pixels to open safely; downscale it first.") from None
    except (OSError, ValueError):
        raise PhotoError(f"{name} is not an image this app can read (expected JPEG, PNG, WebP, BMP or GIF).") from None
    if min(width, height) < MIN_SIDE:
        raise PhotoError(f"{name} is {width} x {height} px: too small to show the model anything.")
    ratio = max(width, height) / min(width, height)
    if ratio >= MAX_ASPECT_RATIO:
        raise PhotoError(
            f"{name} is {width} x {height} px, an aspect ratio of {ratio:,.0f}:1; Qwen-VL's image processor "
            f"takes at most {MAX_ASPECT_RATIO - 1}:1. Crop the panorama into parts and ask about each."
        )
    try:
        load_image(path)  # decodes every pixel: truncated files fail here, not inside generation
    except OSError:
        raise PhotoError(f"{name} is damaged or truncated: the image data cannot be decoded.") from None
    return path


@dataclass(frozen=True)
class Answer:
    """The parsed result of one completion."""

    text: str
    prediction: Prediction

    def chain_markdown(self) -> str:
        """Country / region / city as a small Markdown table (a dash where the answer gives none)."""
        p = self.prediction
        if not p.answer_found:
            return "The answer has no `<answer>` block, so there is no chain to read."
        cells = [p.country, p.region, p.city]
        return "| country | region | city |\n|---|---|---|\n| " + " | ".join(
            (html.escape(c) if c else "–") for c in cells
        ) + " |"

    def coordinates(self) -> str:
        """``lat, lon`` in decimal degrees, or why there are none."""
        p = self.prediction
        if p.lat is None or p.lon is None:
            return "no valid coordinates in the answer"
        return f"{p.lat:.6f}, {p.lon:.6f}"


def parse_answer(text: str) -> Answer:
    """Parse a completion with the same parser the rewards and ``geo-r eval`` use."""
    return Answer(text, parse_prediction(text))


class Engine:
    """A loaded checkpoint that answers one photo at a time, streaming."""

    def __init__(
        self,
        model_path: str,
        settings: GenerationSettings,
        *,
        min_pixels: int,
        max_pixels: int,
        dtype: str | None = None,
        attn_implementation: str | None = None,
        device: str | None = None,
        question: str | None = None,
    ) -> None:
        self.model_path = model_path
        self.settings = settings
        self.min_pixels, self.max_pixels = min_pixels, max_pixels
        self.generator = HFGenerator(
            model_path,
            settings,
            min_pixels=min_pixels,
            max_pixels=max_pixels,
            dtype=dtype,
            attn_implementation=attn_implementation,
            device=device,
            question=question,
        )

    @staticmethod
    def record(path: str) -> GeoRecord:
        """The photo as an evaluation record (its true location is unknown: 0, 0 is never read)."""
        return GeoRecord(id=Path(path).name, images=[str(path)], lat=0.0, lon=0.0)

    def prompt(self, path: str) -> str:
        """The chat-templated prompt the model sees for this photo (vision placeholders included)."""
        return prompt_texts(self.generator.processor, [self.record(path)], self.generator.question)[0]

    def settings_dict(self) -> dict[str, Any]:
        """What decides the answer, shown under it in the page."""
        return {
            "model_name_or_path": self.model_path,
            "generation": self.settings.to_dict(),
            "min_pixels": self.min_pixels,
            "max_pixels": self.max_pixels,
            "device": str(self.generator.device),
            "blocked_token_ids": sorted(self.generator.blocked_token_ids),
        }

    def stream(self, path: str) -> Iterator[str]:
        """The completion so far, longer at each step (the photo must have passed :func:`check_photo`)."""
        text = ""
        for piece in self.generator.stream(self.record(path)):
            text += piece
            yield text
