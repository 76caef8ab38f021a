"""The one place that defines what Geo-R asks a model for and what a correct answer looks like.

The question (``DEFAULT_QUESTION``) asks for the Chain-of-Region answer contract of DESIGN.md;
``render_answer`` writes an answer in exactly that contract (used for SFT targets, the tiny model's
tokenizer corpus and tests). The parser in :mod:`geo_r.geo` reads it back; the ``format`` reward is the
strict check of it.
"""

from __future__ import annotations

DEFAULT_QUESTION = (
    "You are a geographic reasoning agent. Look at the photo and work out where it was taken, using only "
    "what you can see (scripts on signs, vegetation, driving side, architecture, landscape, climate). "
    "Reason step by step inside <think> </think> tags, from the country to the region and the city. "
    "Then give the final answer inside <answer> </answer> tags, exactly in this form:\n"
    "Country: <country name>\n"
    "Region: <state, province or region>\n"
    "City: <city or place>\n"
    "Coordinates: (<latitude>, <longitude>)\n"
    "with latitude and longitude in decimal degrees (north and east positive)."
)

COORDINATE_DECIMALS = 6


def format_coordinates(lat: float, lon: float, decimals: int = COORDINATE_DECIMALS) -> str:
    """``(lat, lon)`` in decimal degrees, latitude first, as the answer contract writes them."""
    return f"({lat:.{decimals}f}, {lon:.{decimals}f})"


def render_answer(
    country: str,
    region: str,
    city: str,
    lat: float,
    lon: float,
    think: str | None = None,
) -> str:
    """A completion in the Chain-of-Region answer contract: ``<think>...</think>`` then ``<answer>...</answer>``."""
    if think is None:
        think = f"The visual clues point to {country}, more precisely {region}, near {city}."
    return (
        f"<think> {think} </think>\n"
        "<answer>\n"
        f"Country: {country}\n"
        f"Region: {region}\n"
        f"City: {city}\n"
        f"Coordinates: {format_coordinates(lat, lon)}\n"
        "</answer>"
    )
