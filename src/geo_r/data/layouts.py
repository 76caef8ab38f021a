"""Recognise the layout of one decoded record and turn it into a :class:`GeoRecord`, or say what is wrong.

Three layouts are accepted, told apart per record by where the true coordinates are:

* ``contract`` (DESIGN.md): ``lat``/``lon`` fields, plus optional chain fields and ``conversations``;
* ``geo-r`` (Geo-R's release): no ``lat``/``lon``, a ``solution`` holding ``[lat, lon]`` (a JSON list, or a
  string such as ``"[48.85, 2.35]"`` or ``"(48.85, 2.35)"``) and ``problem`` as the question;
* ``vlm-r1`` (VLM-R1's ``grpo_jsonl.py``): no ``lat``/``lon`` nor ``solution``; ``conversations`` whose gpt turn
  is a coordinate answer (``"[48.8566, 2.3522]"`` or an answer in our contract), read with
  :func:`geo_r.geo.parse.parse_prediction`; the chain fields it names fill the missing ones.

In every layout the human turn (else ``problem``) is the question, and the gpt turn (else ``solution`` as
text) is kept as ``solution``, the SFT target. An optional ``author`` (the photographer; a string or an
integer user id) is kept as the record's ``author``, an optional ``candidates`` list (retrieval candidates, see
:func:`geo_r.geo.candidates.parse_candidates`) as ``record.candidates``. Numbers are read with a regex or
``json``, never evaluated.
Problems come back as ``(kind, message)`` pairs; the caller adds the file and line.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from typing import Any

from geo_r.data import report as k
from geo_r.data.schema import CHAIN_FIELDS, IMAGE_PLACEHOLDER, GeoRecord

Finding = tuple[str, str]  # (kind, message)

_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_NUMBER_RE = re.compile(rf"\s*({_NUMBER})\s*")
_PAIR_RE = re.compile(rf"\s*[\[(]\s*({_NUMBER})\s*,\s*({_NUMBER})\s*[\])]\s*")
_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}
_CONSUMED = frozenset({"id", "lat", "lon", *CHAIN_FIELDS, "author", "conversations", "problem", "solution",
                       "candidates"})


@dataclass(slots=True)  # not frozen: one is made per record, and frozen __init__ is several times slower
class RecordContext:
    """Where a record comes from: the image folder its paths are relative to, and a fallback id."""

    image_folder: str  # absolute
    default_id: str  # used when the record has no ``id``
    source: str  # "file:line"


def parse_record(value: Any, ctx: RecordContext) -> tuple[GeoRecord | None, list[Finding], list[str]]:
    """``(record, [], images)``, or ``(None, problems, images)`` with every problem found: all checks run,
    so one pass reports them all. ``images`` (absolute paths, possibly empty) lets the caller check the
    images of an invalid record too."""
    if not isinstance(value, dict):
        return None, [(k.MALFORMED_JSON, f"expected a JSON object, found {_type(value)}")], []
    layout = detect_layout(value)
    if layout is None:
        fields = ", ".join(sorted(map(str, value))) or "none"
        images = _images(value, ctx.image_folder, []) if "image" in value or "images" in value else None
        return (
            None,
            [
                (
                    k.UNKNOWN_LAYOUT,
                    f"unrecognised record layout (fields found: {fields}); expected lat/lon (Geo-R data contract), "
                    "problem/solution (Geo-R) or conversations with a coordinate answer (VLM-R1)",
                )
            ],
            images or [],
        )
    problems: list[Finding] = []
    system, human, gpt = _conversations(value.get("conversations"), problems)
    question = human if human is not None else _problem_text(value.get("problem"), problems)
    solution = gpt if gpt is not None else _solution_text(value.get("solution"))
    images = _images(value, ctx.image_folder, problems)
    if images is not None and question:
        n_placeholders = question.count(IMAGE_PLACEHOLDER)
        if n_placeholders and n_placeholders != len(images):
            problems.append(
                (
                    k.PLACEHOLDER_MISMATCH,
                    f"{n_placeholders} {IMAGE_PLACEHOLDER} placeholder(s) in the question for {len(images)} image(s)",
                )
            )
    chain = {name: _optional_text(value, name, problems) for name in CHAIN_FIELDS}
    if layout == "contract":
        lat = _coordinate(value, "lat", 90.0, problems)
        lon = _coordinate(value, "lon", 180.0, problems)
    elif layout == "geo-r":
        lat, lon = _coordinates_from_solution(value["solution"], problems)
    else:
        lat, lon = _coordinates_from_answer(gpt, chain, problems)
    record_id = _record_id(value, ctx.default_id, problems)
    author = _author(value, problems)
    candidates = _candidates(value.get("candidates"), problems)
    if problems:
        return None, problems, images or []
    assert images is not None and lat is not None and lon is not None and record_id is not None
    if chain["country_code"] is not None:
        chain["country_code"] = chain["country_code"].upper()
    used_image_key = "image" if "image" in value else "images"
    extras = {key: v for key, v in value.items() if key not in _CONSUMED and key != used_image_key}
    record = GeoRecord(
        id=record_id,
        images=images,
        lat=lat,
        lon=lon,
        question=question,
        system=system,
        solution=solution,
        author=author,
        extras=extras,
        layout=layout,
        source=ctx.source,
        candidates=candidates,
        **chain,
    )
    return record, [], images


def detect_layout(value: dict[str, Any]) -> str | None:
    """``"contract"``, ``"geo-r"`` or ``"vlm-r1"`` by where the coordinates are; None when nothing fits."""
    if "lat" in value or "lon" in value:
        return "contract"
    if "solution" in value:
        return "geo-r"
    if "conversations" in value:
        return "vlm-r1"
    return None


def _type(value: Any) -> str:
    """The JSON name of a value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _clip(text: str, limit: int = 60) -> str:
    """``repr`` of ``text`` cut to ``limit`` characters, for messages."""
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


def _conversations(conv: Any, problems: list[Finding]) -> tuple[str | None, str | None, str | None]:
    """(system, human, gpt) texts of a one-turn conversation; ``from``/``value`` (ShareGPT, VLM-R1) or
    ``role``/``content`` keys. A gpt value that is not a string (``[48.8, 2.3]``) becomes its JSON text."""
    if conv is None:
        return None, None, None
    if not isinstance(conv, list):
        problems.append((k.BAD_CONVERSATIONS, f"conversations must be a list of turns, found {_type(conv)}"))
        return None, None, None
    texts: dict[str, list[str]] = {"system": [], "user": [], "assistant": []}
    for i, turn in enumerate(conv):
        if not isinstance(turn, dict):
            problems.append(
                (k.BAD_CONVERSATIONS, f"conversations[{i}] must be an object, found {_type(turn)}")
            )
            continue
        speaker = turn.get("from", turn.get("role"))
        role = _ROLES.get(speaker) if isinstance(speaker, str) else None
        if role is None:
            problems.append(
                (
                    k.BAD_CONVERSATIONS,
                    f"conversations[{i}] has speaker {speaker!r}; expected from/role human, gpt or system",
                )
            )
            continue
        text = turn.get("value", turn.get("content"))
        if role == "assistant" and text is not None and not isinstance(text, str):
            text = json.dumps(text)
        if not isinstance(text, str):
            problems.append(
                (
                    k.BAD_CONVERSATIONS,
                    f"conversations[{i}] ({speaker}) value must be a string, found {_type(text)}",
                )
            )
            continue
        texts[role].append(text)
    for role, name in (("system", "system"), ("user", "human"), ("assistant", "gpt")):
        if len(texts[role]) > 1:
            problems.append(
                (
                    k.BAD_CONVERSATIONS,
                    f"{len(texts[role])} {name} turns: only single-turn conversations are supported",
                )
            )
    first = {role: (items[0] if items else None) for role, items in texts.items()}
    return first["system"], first["user"], first["assistant"]


def _optional_text(value: dict[str, Any], name: str, problems: list[Finding]) -> str | None:
    """A string field, stripped; absent, null or empty -> None; another type is a problem."""
    text = value.get(name)
    if text is None:
        return None
    if not isinstance(text, str):
        problems.append((k.BAD_FIELD, f"{name} must be a string, found {_type(text)} {text!r}"))
        return None
    return text.strip() or None


def _author(value: dict[str, Any], problems: list[Finding]) -> str | None:
    """The optional ``author`` (the photographer) as text: a string (stripped; empty -> None) or an integer user
    id; another type is a problem. The leakage-aware retrieval protocol compares it between query and gallery."""
    raw = value.get("author")
    if raw is None:
        return None
    if isinstance(raw, int) and not isinstance(raw, bool):
        return str(raw)
    if not isinstance(raw, str):
        problems.append((k.BAD_FIELD, f"author must be a string or an integer, found {_type(raw)} {raw!r}"))
        return None
    return raw.strip() or None


def _problem_text(problem: Any, problems: list[Finding]) -> str | None:
    """Geo-R's ``problem`` (the question), verbatim; absent, null or empty -> None."""
    if problem is None or problem == "":
        return None
    if not isinstance(problem, str):
        problems.append((k.BAD_FIELD, f"problem must be a string, found {_type(problem)}"))
        return None
    return problem


def _solution_text(solution: Any) -> str | None:
    """The ``solution`` field as text: strings as they are, ``[lat, lon]`` and other JSON as JSON text."""
    if solution is None or isinstance(solution, str):
        return solution
    return json.dumps(solution)


def _images(value: dict[str, Any], folder: str, problems: list[Finding]) -> list[str] | None:
    """Absolute paths of ``image`` (a path or a list of paths; ``images`` is accepted as an alias)."""
    key = "image" if "image" in value else "images"
    raw = value.get(key)
    if raw is None:
        problems.append(
            (k.BAD_IMAGE_FIELD, "no image: the record needs an 'image' path (or a list of paths)")
        )
        return None
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list) or not items:
        problems.append(
            (k.BAD_IMAGE_FIELD, f"{key} must be a path or a non-empty list of paths, found {_type(raw)}")
        )
        return None
    paths = []
    for i, item in enumerate(items):
        if not isinstance(item, str) or not item.strip():
            problems.append(
                (k.BAD_IMAGE_FIELD, f"{key}[{i}] must be a non-empty path string, found {item!r}")
            )
            return None
        paths.append(os.path.normpath(os.path.join(folder, item)))
    return paths


def parse_number(raw: Any) -> float | None:
    """A JSON number (not a boolean) or a decimal string as float; None for anything else."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int | float):
        return float(raw)
    if isinstance(raw, str):
        m = _NUMBER_RE.fullmatch(raw)
        return float(m.group(1)) if m else None
    return None


def check_coordinate(name: str, raw: Any, limit: float, problems: list[Finding]) -> float | None:
    """``raw`` as a float in ``[-limit, limit]``; otherwise a problem saying what is wrong with it."""
    number = parse_number(raw)
    if number is None:
        problems.append((k.BAD_COORDINATES, f"{name} is not a number: {_type(raw)} {raw!r}"))
        return None
    if math.isnan(number):
        problems.append((k.BAD_COORDINATES, f"{name} is NaN"))
        return None
    if not -limit <= number <= limit:
        problems.append((k.BAD_COORDINATES, f"{name} {raw!r} is out of range [-{limit:g}, {limit:g}]"))
        return None
    return number


def _coordinate(value: dict[str, Any], name: str, limit: float, problems: list[Finding]) -> float | None:
    """The ``lat`` or ``lon`` field of a contract record."""
    if value.get(name) is None:
        problems.append((k.MISSING_COORDINATES, f"{name} is missing"))
        return None
    return check_coordinate(name, value[name], limit, problems)


def _coordinates_from_solution(solution: Any, problems: list[Finding]) -> tuple[float | None, float | None]:
    """Geo-R's ``solution``: ``[lat, lon]`` as a JSON list or as text ``"[lat, lon]"`` / ``"(lat, lon)"``;
    other text goes through the lenient answer parser (e.g. ``"<answer> ... </answer>"``)."""
    pair: tuple[Any, Any] | None = None
    if isinstance(solution, list) and len(solution) == 2:
        pair = (solution[0], solution[1])
    elif isinstance(solution, str):
        m = _PAIR_RE.fullmatch(solution)
        if m:
            pair = (m.group(1), m.group(2))
        else:
            from geo_r.geo.parse import parse_prediction

            pred = parse_prediction(solution)
            if pred.lat is not None and pred.lon is not None:
                pair = (pred.lat, pred.lon)
    if pair is None:
        shown = _clip(solution) if isinstance(solution, str) else f"{_type(solution)} {solution!r}"
        problems.append((k.MISSING_COORDINATES, f"solution {shown} is not a [lat, lon] pair"))
        return None, None
    lat = check_coordinate("solution latitude", pair[0], 90.0, problems)
    lon = check_coordinate("solution longitude", pair[1], 180.0, problems)
    return lat, lon


def _coordinates_from_answer(
    gpt: str | None, chain: dict[str, str | None], problems: list[Finding]
) -> tuple[float | None, float | None]:
    """VLM-R1 records: the coordinates (and any missing chain names) from the gpt turn's answer."""
    if gpt is None:
        problems.append((k.MISSING_COORDINATES, "no lat/lon fields and no gpt turn to read coordinates from"))
        return None, None
    from geo_r.geo.parse import parse_prediction

    pred = parse_prediction(gpt)
    if pred.lat is None or pred.lon is None:
        problems.append(
            (k.MISSING_COORDINATES, f"no lat/lon fields and the gpt turn {_clip(gpt)} holds no coordinates")
        )
        return None, None
    for name in ("country", "region", "city"):
        found = getattr(pred, name, None)
        if chain[name] is None and isinstance(found, str) and found.strip():
            chain[name] = found.strip()
    lat = check_coordinate("answer latitude", pred.lat, 90.0, problems)
    lon = check_coordinate("answer longitude", pred.lon, 180.0, problems)
    return lat, lon


def _candidates(raw: Any, problems: list[Finding]) -> tuple[Any, ...] | None:
    """A record's own ``candidates`` field (None when absent or null)."""
    if raw is None:
        return None
    from geo_r.geo.candidates import parse_candidates

    try:
        return parse_candidates(raw)
    except ValueError as exc:
        problems.append((k.BAD_FIELD, str(exc)))
        return None


def _record_id(value: dict[str, Any], default: str, problems: list[Finding]) -> str | None:
    """The record's ``id`` as text (numbers are accepted); ``default`` when it has none."""
    raw = value.get("id")
    if raw is None:
        return default
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        problems.append((k.BAD_FIELD, f"id must be a string or an integer, found {_type(raw)} {raw!r}"))
        return None
    return str(raw)
