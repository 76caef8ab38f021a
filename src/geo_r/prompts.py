"""The one place that defines what Geo-R asks a model for and what a correct answer looks like.

The question (``DEFAULT_QUESTION``) asks for the Chain-of-Region answer contract of DESIGN.md;
``render_answer`` writes an answer in exactly that contract (used for SFT targets, the tiny model's
tokenizer corpus and tests). The parser in :mod:`geo_r.geo` reads it back; the ``format`` reward is the
strict check of it.

With retrieval candidates (``--candidates NEIGHBOURS.jsonl``, or a record's ``candidates`` field),
:func:`question_with_candidates` is the one function that turns a question into the human turn: the question
unchanged, then a numbered list of the candidates and the request for one more answer line,
``Candidate: <k>`` or ``Candidate: none``, just before ``Coordinates:``. GRPO, ``geo-r sft``, ``geo-r
export-sft``, ``geo-r eval`` and ``geo-r app`` all build their prompt text through it; without candidates it
returns the question itself, so prompts without retrieval are what they always were.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

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

CANDIDATE_NAME_KM = 25
"""What ``Candidate: k`` claims: the photo was taken within this many km of candidate k. The prompt says so;
:data:`geo_r.geo.candidates.NAME_KM` (the SFT and reward rule) holds the same number (a test checks it)."""
CANDIDATES_HEADER = (
    "Candidates: where the most similar photos of a geotagged gallery were taken, best match first "
    "(any or all of them may be wrong):"
)
CANDIDATE_INSTRUCTION = (
    "In your answer, just before the Coordinates line, add the line \"Candidate: <number>\" naming the "
    f"candidate within {CANDIDATE_NAME_KM} km of where the photo was taken, or \"Candidate: none\" if no "
    "candidate is."
)


class CandidateLike(Protocol):
    """What rendering reads from a candidate (:class:`geo_r.geo.candidates.Candidate` has it)."""

    lat: float
    lon: float
    country: str | None
    region: str | None
    city: str | None
    photos: int
    score: float | None


def format_coordinates(lat: float, lon: float, decimals: int = COORDINATE_DECIMALS) -> str:
    """``(lat, lon)`` in decimal degrees, latitude first, as the answer contract writes them."""
    return f"({lat:.{decimals}f}, {lon:.{decimals}f})"


def render_candidate(k: int, candidate: CandidateLike) -> str:
    """One line of the candidate list: ``3. (48.858370, 2.294481) France / Ile-de-France / Paris; 12 photos,
    best similarity 0.91``."""
    chain = " / ".join(n for n in (candidate.country, candidate.region, candidate.city) if n) or "unnamed place"
    support = f"{candidate.photos} photo{'' if candidate.photos == 1 else 's'}"
    if candidate.score is not None:
        support += f", best similarity {candidate.score:.2f}"
    return f"{k}. {format_coordinates(candidate.lat, candidate.lon)} {chain}; {support}"


def render_candidates(candidates: Sequence[CandidateLike]) -> str:
    """The block added after the question: the header, one numbered line per candidate, the instruction."""
    lines = [CANDIDATES_HEADER, *(render_candidate(k, c) for k, c in enumerate(candidates, start=1))]
    return "\n".join([*lines, CANDIDATE_INSTRUCTION])


def question_with_candidates(question: str, candidates: Sequence[CandidateLike] | None) -> str:
    """The human turn's text: ``question`` itself without candidates (None or empty), else the question, a
    blank line and :func:`render_candidates`. ``<image>`` placeholders in the question stay where they are."""
    if not candidates:
        return question
    return f"{question}\n\n{render_candidates(candidates)}"


def render_answer(
    country: str,
    region: str,
    city: str,
    lat: float,
    lon: float,
    think: str | None = None,
    candidate: int | None = None,
) -> str:
    """A completion in the Chain-of-Region answer contract: ``<think>...</think>`` then ``<answer>...</answer>``.

    ``candidate`` adds the line ``Candidate: <k>`` before the coordinates (``0``: ``Candidate: none``, the
    parser's value for it); None (the default) writes the four-line answer of prompts without candidates.
    """
    if think is None:
        think = f"The visual clues point to {country}, more precisely {region}, near {city}."
    candidate_line = "" if candidate is None else f"Candidate: {candidate if candidate > 0 else 'none'}\n"
    return (
        f"<think> {think} </think>\n"
        "<answer>\n"
        f"Country: {country}\n"
        f"Region: {region}\n"
        f"City: {city}\n"
        f"{candidate_line}"
        f"Coordinates: {format_coordinates(lat, lon)}\n"
        "</answer>"
    )
