"""``format``: 1.0 when a completion follows the Chain-of-Region answer contract exactly, else 0.0.

Strict on purpose (the lenient reading is the parser's job, for the distance and region rewards). A
completion passes when, after trimming surrounding whitespace:

* it is ``<think>`` + non-blank reasoning + ``</think>``, then only whitespace, then ``<answer>`` ... ``</answer>``,
  each tag exactly once, lowercase, and nothing after ``</answer>``;
* the answer holds exactly four non-blank lines, in order, with the contract's own labels (case-sensitive,
  no synonyms: ``State:`` or ``Province:`` fail), as :func:`geo_r.prompts.render_answer` writes them:
  ``Country: <name>``, ``Region: <name>``, ``City: <name>``, ``Coordinates: (<lat>, <lon>)``;
* each name is non-empty, at most 100 characters, has no ``<`` / ``>`` (a copied template placeholder such
  as ``<country name>`` fails) and holds no coordinate pair, so the answer has exactly one pair;
* the pair is plain decimal degrees in parentheses, latitude first (``-33.9``, not ``33.9 S``), finite
  and in range (|lat| <= 90, |lon| <= 180);
* the answer to a prompt with retrieval candidates (the row's ``candidates`` column lists K >= 1) has one more
  line between ``City:`` and ``Coordinates:``: ``Candidate: <k>`` with k one of 1..K, or ``Candidate: none``.
  It is required there (the question asks for it; a number outside the list names nothing), and refused
  after a prompt without candidates, so without candidates the check is exactly what it always was. ``k`` is
  a plain positive integer (``3``, not ``#3`` or ``03``) and ``none`` is lowercase.

Example: ``render_answer("Japan", "Hokkaido", "Biei", 43.452002, 142.615358)`` scores 1.0; the same with
``State: Hokkaido``, with ``(243.45, 142.61)``, or with a second pair in the city line scores 0.0.
"""

from __future__ import annotations

import math
import re
from typing import Any

from geo_r.geo.parse import MAX_NAME_CHARS, extract_answer, find_coordinate_pairs
from geo_r.rewards.args import RewardArguments
from geo_r.rewards.common import RewardFunc, column, completion_text
from geo_r.rewards.registry import register

CONTRACT_LABELS = ("Country", "Region", "City", "Coordinates")
CANDIDATE_LABEL = "Candidate"
_CANDIDATE_VALUE = re.compile(r"none|[1-9]\d{0,3}")
_LINE = re.compile(r"(?P<label>[A-Za-z]+)[ \t]*:[ \t]*(?P<value>.*)")
_DECIMAL = r"[-+]?\d{1,3}(?:\.\d+)?"
_PAIR = re.compile(r"\([ \t]*(?P<lat>" + _DECIMAL + r")[ \t]*,[ \t]*(?P<lon>" + _DECIMAL + r")[ \t]*\)")
_TAGS = ("<think>", "</think>", "<answer>", "</answer>")


def follows_contract(text: str, num_candidates: int | None = 0) -> bool:
    """True when ``text`` is exactly the answer contract (see the module docstring); never raises.

    ``num_candidates``: how many retrieval candidates the prompt listed. 0 (the default: no candidates)
    refuses a ``Candidate:`` line; K >= 1 requires ``Candidate: none`` or one of 1..K; None (not known)
    accepts the answer with or without a ``Candidate:`` line naming ``none`` or any number."""
    if not isinstance(text, str):
        return False
    s = text.strip()
    if not (s.startswith("<think>") and s.endswith("</answer>")):
        return False
    if any(s.count(tag) != 1 for tag in _TAGS):
        return False
    think_end = s.index("</think>")
    answer_start = s.index("<answer>")
    if answer_start < think_end or s[think_end + len("</think>") : answer_start].strip():
        return False
    if not s[len("<think>") : think_end].strip():
        return False
    answer = extract_answer(s)
    if answer is None:
        return False
    lines = [line.strip() for line in answer.splitlines() if line.strip()]
    if len(lines) == len(CONTRACT_LABELS) + 1 and num_candidates != 0:
        if not _valid_candidate_line(lines.pop(len(CONTRACT_LABELS) - 1), num_candidates):
            return False
    elif num_candidates:  # K >= 1 candidates and no fifth line
        return False
    if len(lines) != len(CONTRACT_LABELS):
        return False
    for line, label in zip(lines[:-1], CONTRACT_LABELS[:-1], strict=True):
        m = _LINE.fullmatch(line)
        if m is None or m.group("label") != label or not _valid_name(m.group("value")):
            return False
    m = _LINE.fullmatch(lines[-1])
    if m is None or m.group("label") != CONTRACT_LABELS[-1]:
        return False
    pair = _PAIR.fullmatch(m.group("value").strip())
    if pair is None:
        return False
    lat, lon = float(pair.group("lat")), float(pair.group("lon"))
    return math.isfinite(lat) and math.isfinite(lon) and abs(lat) <= 90.0 and abs(lon) <= 180.0


def _valid_candidate_line(line: str, num_candidates: int | None) -> bool:
    """Whether ``line`` is ``Candidate: none`` or ``Candidate: <k>`` with k allowed by ``num_candidates``."""
    m = _LINE.fullmatch(line)
    if m is None or m.group("label") != CANDIDATE_LABEL:
        return False
    value = m.group("value").strip()
    if _CANDIDATE_VALUE.fullmatch(value) is None:
        return False
    if value == "none":
        return True
    return num_candidates is None or 1 <= int(value) <= num_candidates


def candidate_counts(kwargs: dict[str, Any], n: int) -> list[int]:
    """Per row, how many candidates its prompt listed (the ``candidates`` column; 0 where it is missing)."""
    return [len(v) if isinstance(v, list | tuple) else 0 for v in column(kwargs, "candidates", n)]


def paper_pair(text: str) -> tuple[float, float] | None:
    """The Geo-R paper's format check, to the letter: the one ``(lat, lon)`` pair of ``text`` when it holds
    exactly one pair of decimal degrees, comma-separated inside parentheses, and that pair is in range; else
    None. Nothing else is required (no tags, no chain); never raises. Used by ``--paper_format exact``."""
    if not isinstance(text, str):
        return None
    pairs = list(_PAIR.finditer(text))
    if len(pairs) != 1:
        return None
    lat, lon = float(pairs[0].group("lat")), float(pairs[0].group("lon"))
    if not (math.isfinite(lat) and math.isfinite(lon) and abs(lat) <= 90.0 and abs(lon) <= 180.0):
        return None
    return lat, lon


def _valid_name(value: str) -> bool:
    value = value.strip()
    return (
        0 < len(value) <= MAX_NAME_CHARS
        and "<" not in value
        and ">" not in value
        and not find_coordinate_pairs(value)
    )


@register("format")
def make_format_reward(args: RewardArguments) -> RewardFunc:
    """Build ``format``: 1.0 per completion that follows the contract exactly, else 0.0 (no settings apply)."""

    def format_reward(
        prompts: Any, completions: Any, completion_ids: Any = None, **kwargs: Any
    ) -> list[float | None]:
        """1.0 per completion that follows the answer contract exactly (with the ``Candidate:`` line its
        prompt's candidates ask for), else 0.0."""
        counts = candidate_counts(kwargs, len(completions))
        return [1.0 if follows_contract(completion_text(c), k) else 0.0 for c, k in zip(completions, counts, strict=True)]

    return format_reward
