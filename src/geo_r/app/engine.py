"""What ``geo-r app`` does with a photo: check it, stream the model's answer, parse the chain and coordinates.

Generation is :class:`geo_r.eval.generate.HFGenerator` itself (``stream`` goes through the same ``inputs``:
the project's prompt, the processor's ``min_pixels``/``max_pixels``, the blocked vision tokens and the
decoding settings ``geo-r eval`` uses), so the app answers exactly as an evaluation would.

Every answer with coordinates is also checked against itself: :meth:`Answer.place_markdown` shows where the
coordinates fall (offline reverse geocoding) next to the chain the answer named, and flags the levels that
disagree (``Japan / Hokkaido / Manaus`` with coordinates in Tokyo). With retrieval candidates (``--candidates``
for the example photos, matched by file content) the prompt lists them exactly as eval's would, the page
shows them, and :meth:`Answer.candidate_markdown` says whether the answer agrees with the one it names.
"""

from __future__ import annotations

import hashlib
import html
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from geo_r.data.schema import GeoRecord
from geo_r.eval.generate import GenerationSettings, HFGenerator, load_image, prompt_texts
from geo_r.geo import Prediction, parse_prediction
from geo_r.geo.candidates import Candidate, check_candidate
from geo_r.geo.consistency import Consistency, place_matches_coordinates
from geo_r.geo.regions import EMPTY_CHAIN, RegionChain, reverse_geocode

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


def photo_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes: how the app recognises an example photo after Gradio copies an upload."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _cell(value: str | None) -> str:
    return html.escape(value) if value else "–"


def _mark(ok: bool | None) -> str:
    return "–" if ok is None else ("✓ agree" if ok else "✗ **disagree**")


def candidates_markdown(candidates: Sequence[Candidate] | None) -> str:
    """The candidates the prompt listed, as a Markdown table ("" when there are none)."""
    if not candidates:
        return ""
    rows = [
        f"| {k} | {_cell(' / '.join(c.chain_names()))} | {c.lat:.4f}, {c.lon:.4f} | {c.photos} | "
        f"{'–' if c.score is None else f'{c.score:.2f}'} |"
        for k, c in enumerate(candidates, start=1)
    ]
    return "\n".join([
        f"**Retrieval candidates in the prompt** ({len(candidates)}; photos: how many gallery photos merged into "
        "it, sim.: the best one's cosine similarity)",
        "",
        "| # | place | lat, lon | photos | sim. |",
        "|---:|---|---|---:|---:|",
        *rows,
    ])


@dataclass(frozen=True)
class Answer:
    """The parsed result of one completion, and (when it has coordinates) where they fall."""

    text: str
    prediction: Prediction
    place: RegionChain = EMPTY_CHAIN  # reverse-geocoded chain of the answer's coordinates
    agreement: Consistency = Consistency()  # the named levels against the coordinates

    def disagreements(self) -> list[str]:
        """The named levels whose place is not where the coordinates are (``["region", "city"]``)."""
        return [level for level in ("country", "region", "city") if getattr(self.agreement, level) is False]

    def place_markdown(self) -> str:
        """The chain the answer named beside the chain its coordinates fall in, level by level, with a
        warning line when they disagree; a sentence when there are no coordinates."""
        p = self.prediction
        if not p.has_coordinates or not self.place.valid:
            return "No valid coordinates, so nothing to check the chain against."
        a, q = self.agreement, self.place
        far = f" (nearest GeoNames place {q.distance_km:.1f} km away)" if q.distance_km is not None else ""
        lines = [
            f"**Where the coordinates fall**{far}, reverse geocoded offline:",
            "",
            "| | country | region | city |",
            "|---|---|---|---|",
            f"| answer names | {_cell(p.country)} | {_cell(p.region)} | {_cell(p.city)} |",
            f"| coordinates fall in | {_cell(q.country)} | {_cell(q.region)} | {_cell(q.city)} |",
            f"| | {_mark(a.country)} | {_mark(a.region)} | {_mark(a.city)} |",
        ]
        bad = self.disagreements()
        if bad:
            lines += ["", f"⚠ **The answer disagrees with its own coordinates** ({', '.join(bad)}): it names "
                          f"{' / '.join(_cell(x) for x in (p.country, p.region, p.city) if x)} but its coordinates "
                          f"are in {' / '.join(_cell(x) for x in (q.country, q.region, q.city) if x)}."]
        else:
            lines += ["", "The named chain agrees with the coordinates."]
        return "\n".join(lines)

    def candidate_markdown(self, candidates: Sequence[Candidate] | None) -> str:
        """What the answer's ``Candidate:`` line says and whether the answer keeps to it ("" without
        candidates)."""
        if not candidates:
            return ""
        k = self.prediction.candidate
        if k is None:
            return "The answer has no readable `Candidate:` line."
        if k == 0:
            return "The answer says `Candidate: none`: none of the candidates."
        check = check_candidate(self.prediction, candidates)
        assert check is not None
        if not check.offered:
            return f"⚠ The answer names candidate {k}, but the prompt listed only {len(candidates)}."
        where = (f"its coordinates are {check.distance_km:.1f} km from it" if check.distance_km is not None
                 else "it gives no coordinates")
        verdict = "consistent" if check.consistent else "⚠ **not consistent** with it"
        return f"The answer names candidate {k} ({where}): {verdict}."

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
    """Parse a completion with the same parser the rewards and ``geo-r eval`` use, and check its named chain
    against where its coordinates fall (:func:`geo_r.geo.consistency.place_matches_coordinates`)."""
    pred = parse_prediction(text)
    if not pred.has_coordinates:
        return Answer(text, pred)
    place = reverse_geocode(pred.lat, pred.lon)[0]
    agreement = place_matches_coordinates(pred.country, pred.region, pred.city, pred.lat, pred.lon, place)
    return Answer(text, pred, place, agreement)


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
        candidates: Mapping[str, tuple[Candidate, ...]] | None = None,
    ) -> None:
        self.model_path = model_path
        self.candidates = dict(candidates or {})  # photo digest -> its retrieval candidates
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
    def record(path: str, candidates: tuple[Candidate, ...] | None = None) -> GeoRecord:
        """The photo as an evaluation record (its true location is unknown: 0, 0 is never read)."""
        return GeoRecord(id=Path(path).name, images=[str(path)], lat=0.0, lon=0.0, candidates=candidates)

    def candidates_for(self, path: str) -> tuple[Candidate, ...] | None:
        """The retrieval candidates of the photo at ``path`` (an example given --candidates, recognised by
        content), else None."""
        if not self.candidates:
            return None
        try:
            return self.candidates.get(photo_digest(path))
        except OSError:
            return None

    def photo_record(self, path: str) -> GeoRecord:
        """The record the model is asked about: the photo with its candidates, if it has any."""
        return self.record(path, self.candidates_for(path))

    def prompt(self, path: str) -> str:
        """The chat-templated prompt the model sees for this photo (vision placeholders included)."""
        return prompt_texts(self.generator.processor, [self.photo_record(path)], self.generator.question)[0]

    def settings_dict(self) -> dict[str, Any]:
        """What decides the answer, shown under it in the page."""
        return {
            "model_name_or_path": self.model_path,
            "generation": self.settings.to_dict(),
            "min_pixels": self.min_pixels,
            "max_pixels": self.max_pixels,
            "device": str(self.generator.device),
            "blocked_token_ids": sorted(self.generator.blocked_token_ids),
        } | ({"photos_with_candidates": len(self.candidates)} if self.candidates else {})

    def stream(self, path: str) -> Iterator[str]:
        """The completion so far, longer at each step (the photo must have passed :func:`check_photo`)."""
        text = ""
        for piece in self.generator.stream(self.photo_record(path)):
            text += piece
            yield text
