"""Read a model's completion into a :class:`Prediction` (country, region, city, lat, lon), leniently.

Rewards, training metrics and evaluation all use this one parser. It reads the answer contract of
:func:`geo_r.prompts.render_answer` exactly, and also what real models write instead:

* the answer region: the LAST ``<answer>`` block (tags matched case-insensitively, spaces allowed, closing
  tag optional); with no ``<answer>`` tag, the text after ``</think>``; with neither, the whole text;
* labels ``Country:``, ``Region:`` / ``State:`` / ``Province:`` / ``Prefecture:`` / ``Admin1:``,
  ``City:`` / ``Town:`` / ``Place:``, ``Coordinates:`` / ``Location:`` / ``LOC`` / ``GPS``, separate
  ``Latitude:`` / ``Longitude:``, and the optional ``Candidate:`` line of prompts with retrieval candidates
  (``Candidate: 3``, ``Candidate: #3``, ``Candidate number: 3 (Paris)`` give 3; ``Candidate: none`` / ``no`` /
  ``neither`` give :data:`CANDIDATE_NONE`; anything else, or no such line, gives None); markdown bold, bullets, JSON or Python-dict keys (``"lat": 48.8``) and
  several labels on one line all work, and when a label repeats, the last non-empty value wins;
* numbers as decimal degrees with optional degree signs, degrees-minutes-seconds, and N/S/E/W hemispheres
  before or after the number (``48.85°N, 2.35°E``, ``33.9 S 151.2 E``, ``N 48°51'24"``).
  A sign set apart from its number (``- 33.9``) and numbers in scientific notation (``1.5e3``) are not
  read at all, rather than read with a wrong sign, as "1.5 East" or as 1.5.

Coordinates: a pair is two numbers next to each other, separated only by commas, spaces, ``;``, ``/``,
``and``, quotes or a longitude label. Runs of three or more numbers are not pairs. An unlabelled pair is
ALWAYS read latitude first (our contract, Geo-R and most VLM prompts); only explicit information changes
that: hemisphere letters, separate latitude/longitude labels, or a label that says ``(lon, lat)``. So a
GeoJSON ``[lon, lat]`` array is read the wrong way round, and then usually rejected by the range check.
Priority: the last ``Coordinates``-type label holding a pair, else the last latitude and longitude labels,
else the last pair anywhere in the answer region. The chosen pair must be finite and in range
(|lat| <= 90, |lon| <= 180) or both values become None: no other pair is tried instead.

Bounded work: only the last :data:`MAX_SCAN_CHARS` characters of a completion are searched for tags, and
only the last :data:`MAX_ANSWER_CHARS` of the answer region are parsed. Every regex has bounded
repetition or cannot backtrack, so a megabyte of ``[[[[`` or digits parses in milliseconds.
:func:`parse_prediction` never raises: anything that is not text gives an empty prediction.
"""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass

logger = logging.getLogger(__name__)

MAX_SCAN_CHARS = 65_536
"""Only the last 64 KiB of a completion are searched (completions are a few KiB at most)."""
MAX_ANSWER_CHARS = 8_192
"""Only the last 8 KiB of the answer region are parsed (a contract answer is about 100 characters)."""
MAX_NAME_CHARS = 100
"""A country/region/city value longer than this is prose, not a name, and is dropped."""
CANDIDATE_NONE = 0
""":attr:`Prediction.candidate` of an answer that says ``Candidate: none`` (candidates are numbered from 1)."""
MAX_CANDIDATE = 9999
"""A larger ``Candidate:`` number is not a candidate number (None)."""
_MAX_GAP_CHARS = 40  # the most text allowed between the two numbers of a pair
_MAX_LABEL_WINDOW = 200  # how far a coordinate label's value may run past an empty line end

# A label value that says "no answer" (not "NA": that is Namibia's ISO code).
_EMPTY_VALUES = frozenset(
    {
        "",
        "unknown",
        "n/a",
        "none",
        "null",
        "nil",
        "-",
        "--",
        "?",
        "??",
        "unsure",
        "not sure",
        "unclear",
        "tbd",
    }
)


@dataclass(frozen=True)
class Prediction:
    """What a completion claims: each chain level and the coordinates, None where missing or invalid.

    ``answer_found`` says whether an ``<answer>`` tag (opening or closing) was present at all. ``candidate`` is
    the number of the retrieval candidate the answer names (``Candidate: 3`` -> 3), :data:`CANDIDATE_NONE`
    (0) for ``Candidate: none``, None when there is no readable ``Candidate:`` line.
    """

    country: str | None = None
    region: str | None = None
    city: str | None = None
    lat: float | None = None
    lon: float | None = None
    answer_found: bool = False
    candidate: int | None = None

    @property
    def has_coordinates(self) -> bool:
        """True when both coordinates were parsed, finite and in range."""
        return self.lat is not None and self.lon is not None


# ---------------------------------------------------------------------------------------------- answer region

_OPEN_ANSWER = re.compile(r"<[ \t]{0,3}answer[ \t]{0,3}>", re.IGNORECASE)
_CLOSE_ANSWER = re.compile(r"<[ \t]{0,3}/[ \t]{0,3}answer[ \t]{0,3}>", re.IGNORECASE)
_CLOSE_THINK = re.compile(r"<[ \t]{0,3}/[ \t]{0,3}think[ \t]{0,3}>", re.IGNORECASE)


def extract_answer(text: str) -> str | None:
    """Content of the last non-empty ``<answer>`` block (closing tag optional), or None without an answer tag.

    Tags match case-insensitively with spaces (``< Answer >``). A closing tag without an opening one yields
    the text between the last ``</think>`` (or the start) and that tag. Only the last
    :data:`MAX_SCAN_CHARS` characters are searched.
    """
    if not isinstance(text, str):
        return None
    text = text[-MAX_SCAN_CHARS:]
    opens = list(_OPEN_ANSWER.finditer(text))
    if opens:
        content = ""
        for m in reversed(opens):
            rest = text[m.end() :]
            close = _CLOSE_ANSWER.search(rest)
            content = rest[: close.start()] if close else rest
            if content.strip():
                break
        return content
    closes = list(_CLOSE_ANSWER.finditer(text))
    if closes:
        end = closes[-1].start()
        thinks = list(_CLOSE_THINK.finditer(text, 0, end))
        start = thinks[-1].end() if thinks else 0
        return text[start:end]
    return None


def answer_region(text: str) -> tuple[str, bool]:
    """The part of a completion to parse, capped to its last :data:`MAX_ANSWER_CHARS`, and whether it was tagged.

    The last ``<answer>`` block if any; else the text after the last ``</think>`` if that is not blank;
    else the whole text.
    """
    answer = extract_answer(text)
    if answer is not None:
        return answer[-MAX_ANSWER_CHARS:], True
    text = text[-MAX_SCAN_CHARS:]
    thinks = list(_CLOSE_THINK.finditer(text))
    if thinks and text[thinks[-1].end() :].strip():
        text = text[thinks[-1].end() :]
    return text[-MAX_ANSWER_CHARS:], False


# ---------------------------------------------------------------------------------------------------- numbers

_NUM = r"\d{1,3}(?:\.\d+)?"
_MIN_SEC = r"\d{1,2}(?:\.\d+)?"
_HEMI_WORD = r"north|south|east|west"
_COORD_TOKEN = re.compile(
    r"(?<![\w.])"
    r"(?:(?P<pre>(?-i:[NSEW]))[ \t]{0,2})?"  # hemisphere before the number: N 48.85
    r"(?P<sign>[-+\u2212])?"
    # an unsigned number must not follow a sign: "1.5e-3" holds no 3, and "- 33.9" is not +33.9
    r"(?(sign)|(?<![-+\u2212])(?<![-+\u2212][ ]))"
    r"(?P<deg>" + _NUM + r")(?![\d])(?!\.\d)(?![eE][-+]?\d)"  # whole numbers only, no 1e3
    r"(?:[ \t]{0,2}(?:°|º|˚|deg\b|degrees\b))?"
    r"(?:[ \t]{0,2}(?P<min>" + _MIN_SEC + r")[ \t]{0,2}['′’]"
    r"(?:[ \t]{0,2}(?P<sec>" + _MIN_SEC + r")[ \t]{0,2}(?:\"|″|''|”))?)?"
    r"(?(pre)|(?:[ \t]{0,2}(?P<post>[NSEW]|"
    + _HEMI_WORD
    + r")(?![A-Za-z0-9+\-]))?)",  # or after: 48.85 N (not 1e9)
    re.IGNORECASE,
)
# What may separate the two numbers of a pair: separators, "and", quotes, and a longitude key or label.
_PAIR_GAP = re.compile(
    r"[\s,;/|&\"']*(?:and\b[\s,]*)?(?:(?:\*\*)?(?:lon|lng|long|longitude)(?:\*\*)?[\"']?[ \t]*[:=]?[ \t]*)?[\s\"']*",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class _Token:
    """One number in degrees: its signed value and the hemisphere letter ('N', 'S', 'E', 'W' or '')."""

    start: int
    end: int
    value: float
    hemi: str


_NS = frozenset("NS")
_EW = frozenset("EW")


def _hemi_letter(raw: str | None) -> str:
    return raw[0].upper() if raw else ""


def _tokens(text: str) -> list[_Token]:
    """Every coordinate-like number in ``text`` with its sign applied; malformed ones (60 minutes) skipped."""
    out = []
    for m in _COORD_TOKEN.finditer(text):
        pre, post = _hemi_letter(m.group("pre")), _hemi_letter(m.group("post"))
        hemi = pre or post
        minutes = float(m.group("min")) if m.group("min") else 0.0
        seconds = float(m.group("sec")) if m.group("sec") else 0.0
        if minutes >= 60.0 or seconds >= 60.0:
            continue
        value = float(m.group("deg")) + minutes / 60.0 + seconds / 3600.0
        negative = m.group("sign") in ("-", "\u2212")
        if hemi:
            if negative and hemi in ("N", "E"):
                continue  # "-33.9 N": contradictory
            value = -value if hemi in ("S", "W") else value
        elif negative:
            value = -value
        out.append(_Token(m.start(), m.end(), value, hemi))
    return out


def _runs(text: str, tokens: list[_Token]) -> list[list[_Token]]:
    """Group consecutive tokens joined only by a pair separator into runs."""
    runs: list[list[_Token]] = []
    for tok in tokens:
        if runs:
            prev = runs[-1][-1]
            gap = text[prev.end : tok.start]
            if len(gap) <= _MAX_GAP_CHARS and _PAIR_GAP.fullmatch(gap):
                runs[-1].append(tok)
                continue
        runs.append([tok])
    return runs


def _orient(a: _Token, b: _Token, lon_first: bool = False) -> tuple[float, float] | None:
    """(lat, lon) from two adjacent numbers: latitude first unless hemispheres or a (lon, lat) label say otherwise."""
    ns, ew = _NS, _EW
    if a.hemi and b.hemi:
        if a.hemi in ns and b.hemi in ew:
            return a.value, b.value
        if a.hemi in ew and b.hemi in ns:
            return b.value, a.value
        return None  # both latitudes or both longitudes
    if a.hemi in ew or b.hemi in ns:
        return b.value, a.value
    if a.hemi in ns or b.hemi in ew:
        return a.value, b.value
    return (b.value, a.value) if lon_first else (a.value, b.value)


def find_coordinate_pairs(text: str, lon_first: bool = False) -> list[tuple[float, float]]:
    """All (lat, lon) pairs in ``text``, in order, oriented but NOT range-checked. Runs of 3+ numbers are skipped.

    ``lon_first`` reads unlabelled pairs as (lon, lat); hemisphere letters always take precedence.
    """
    if not isinstance(text, str):
        return []
    pairs = []
    for run in _runs(text, _tokens(text)):
        if len(run) == 2:
            pair = _orient(run[0], run[1], lon_first)
            if pair is not None:
                pairs.append(pair)
    return pairs


def _valid_pair(lat: float, lon: float) -> bool:
    return math.isfinite(lat) and math.isfinite(lon) and -90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0


# ----------------------------------------------------------------------------------------------------- labels

_LEVELS = ("country", "region", "city")
_KINDS = ("coords", *_LEVELS, "lat", "lon", "candidate")
_B = r"(?:\*\*|__)?"  # optional markdown bold
_LABEL = re.compile(
    r"(?<![A-Za-z0-9_])" + _B + r"[\"']?"
    r"(?:"
    r"(?P<coords>(?:gps[ \t]{1,2})?co-?ordinates?|coords?|location|loc|gps|geo(?:location)?|latlo?ng"
    r"|lat(?:itude)?[ \t]{0,2}(?:/|,|&|and)[ \t]{0,2}(?:lon|lng|long)(?:gitude)?"
    r"|(?:lon|lng|long)(?:gitude)?[ \t]{0,2}(?:/|,|&|and)[ \t]{0,2}lat(?:itude)?)"
    r"|(?P<country>country(?:[ \t]name)?|nation)"
    r"|(?P<region>(?:state|province|region)(?:[ \t]{0,2}(?:/|or)[ \t]{0,2}(?:state|province|region)){0,2}"
    r"|prefecture|admin(?:istrative)?[ \t_-]?(?:1|one|level[ \t]?1)"
    r"|administrative[ \t](?:region|area|division)|subdivision)"
    r"|(?P<city>(?:city|town|place|village|locality|municipality)"
    r"(?:[ \t]{0,2}(?:/|or)[ \t]{0,2}(?:city|town|place|village|locality)){0,2})"
    r"|(?P<lat>latitude|lat)"
    r"|(?P<lon>longitude|lon|lng|long)"
    r"|(?P<candidate>candidate(?:[ \t]{0,2}(?:number|num|no\.?|id|\#))?)"
    r")"
    r"[\"']?"
    + _B
    + r"(?P<paren>[ \t]{0,2}\([^()\n]{0,30}\))?[ \t]{0,4}"
    + _B
    + r"[ \t]{0,4}[:=：]"
    + _B
    + r"[ \t]{0,4}",
    re.IGNORECASE,
)
_LON_BEFORE_LAT = re.compile(r"(?:lon|lng|long)\w*[^a-z]{1,5}lat", re.IGNORECASE)
_QUOTED = re.compile(r"\"((?:[^\"\\\n]|\\.){0,300})\"|'([^'\n]{0,300})'")
_TRAILING_PAREN_WITH_DIGIT = re.compile(r"[ \t]*[(\[][^()\[\]]{0,60}\d[^()\[\]]{0,60}[)\]]$")
_STRIP_CHARS = " \t\r\n*_`\"'.,;:{}[]|-"
_CANDIDATE_NUMBER = re.compile(r"[\s*_`\"'(\[]{0,6}(?:no\.?|number|num)?[ \t]{0,2}\#?[ \t]{0,2}(\d{1,6})(?![\d.]\d)")
_CANDIDATE_NONE = re.compile(
    r"[\s*_`\"'(\[]{0,6}(?:none|no|null|nil|n/a|neither|no[ \t]candidate|not[ \t]any|-+)(?![A-Za-z0-9])",
    re.IGNORECASE,
)


def _clean_name(raw: str) -> str | None:
    """A label's value as a name: markdown, quotes, punctuation at the ends and coordinates cut off; None if empty."""
    value = raw.strip()
    m = _QUOTED.match(value)
    if m:
        if m.group(1) is not None:
            try:
                decoded = json.loads('"' + m.group(1) + '"')
            except ValueError:
                decoded = m.group(1)
            value = decoded if isinstance(decoded, str) else m.group(1)
        else:
            value = m.group(2)
    value = value.strip(_STRIP_CHARS)
    value = _TRAILING_PAREN_WITH_DIGIT.sub("", value).strip(_STRIP_CHARS)
    runs = [run for run in _runs(value, _tokens(value)) if len(run) >= 2]
    if runs:  # "Tromsø, 69.65, 18.96": the name ends where the coordinates begin
        value = value[: runs[0][0].start].strip(_STRIP_CHARS)
    if value.lower() in _EMPTY_VALUES or len(value) > MAX_NAME_CHARS:
        return None
    return value


def _candidate_value(raw: str) -> int | None:
    """A ``Candidate:`` label's value: its number (1..:data:`MAX_CANDIDATE`), :data:`CANDIDATE_NONE` for
    none, or None when it is neither."""
    m = _CANDIDATE_NUMBER.match(raw)
    if m:
        k = int(m.group(1))
        return k if 1 <= k <= MAX_CANDIDATE else None
    return CANDIDATE_NONE if _CANDIDATE_NONE.match(raw) else None


def _coordinate_window(region: str, start: int, stop: int) -> str:
    """The text a coordinate label governs: the rest of its line, or the next lines when the value opens there.

    ``"coordinates": [`` followed by the numbers on later lines (pretty-printed JSON) is read across lines.
    """
    line_end = region.find("\n", start, stop)
    line = region[start : line_end if line_end >= 0 else stop]
    if line.strip(" \t\r[({\"'"):
        return line
    return region[start : min(stop, start + _MAX_LABEL_WINDOW)]


def _parse(text: str) -> Prediction:
    """The parser proper (may raise only on a bug; :func:`parse_prediction` is the safe entry point)."""
    region, found = answer_region(text)
    names: dict[str, str] = {}
    coord_pair: tuple[float, float] | None = None
    lat_value: float | None = None
    lon_value: float | None = None
    candidate: int | None = None
    labels = list(_LABEL.finditer(region))
    for i, m in enumerate(labels):
        stop = labels[i + 1].start() if i + 1 < len(labels) else len(region)
        kind = next(k for k in _KINDS if m.group(k) is not None)
        if kind in _LEVELS:
            line_end = region.find("\n", m.end(), stop)
            name = _clean_name(region[m.end() : line_end if line_end >= 0 else stop])
            if name is not None:
                names[kind] = name
        elif kind == "candidate":
            line_end = region.find("\n", m.end(), stop)
            value = _candidate_value(region[m.end() : line_end if line_end >= 0 else stop])
            if value is not None:
                candidate = value
        elif kind == "coords":
            window = _coordinate_window(region, m.end(), stop)
            lon_first = bool(_LON_BEFORE_LAT.search(m.group(0)))
            pairs = find_coordinate_pairs(window, lon_first=lon_first)
            if pairs:
                coord_pair = pairs[0]
        elif kind in ("lat", "lon"):
            toks = _tokens(_coordinate_window(region, m.end(), stop))
            if toks:
                tok = toks[0]
                wrong_axis = tok.hemi in (_EW if kind == "lat" else _NS)
                value = math.nan if wrong_axis else tok.value
                if kind == "lat":
                    lat_value = value
                else:
                    lon_value = value
    if coord_pair is None and lat_value is not None and lon_value is not None:
        coord_pair = (lat_value, lon_value)
    if coord_pair is None:
        pairs = find_coordinate_pairs(region)
        coord_pair = pairs[-1] if pairs else None
    lat = lon = None
    if coord_pair is not None and _valid_pair(*coord_pair):
        lat, lon = float(coord_pair[0]), float(coord_pair[1])
    return Prediction(
        country=names.get("country"),
        region=names.get("region"),
        city=names.get("city"),
        lat=lat,
        lon=lon,
        answer_found=found,
        candidate=candidate,
    )


_warned_failure = False


def parse_prediction(text: object) -> Prediction:
    """Parse a completion into a :class:`Prediction`; never raises (non-text input gives an empty one).

    ``bytes`` are decoded as UTF-8 (invalid bytes replaced); any other non-``str`` input, including None,
    returns ``Prediction()``. See the module docstring for what is accepted and the priority rules.
    """
    global _warned_failure
    if isinstance(text, bytes | bytearray):
        text = bytes(text[-4 * MAX_SCAN_CHARS :]).decode("utf-8", errors="replace")
    if not isinstance(text, str):
        return Prediction()
    try:
        return _parse(text)
    except Exception:  # a parser bug must not stop training: report once, return the safe value
        if not _warned_failure:
            _warned_failure = True
            logger.warning(
                "parse_prediction failed on a completion; returning an empty prediction", exc_info=True
            )
        return Prediction()
