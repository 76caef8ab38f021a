"""Offline place-name matching: normalised comparison keys and aliases for countries, regions and cities.

Models write "USA", "Bayern" or "Tokyo Prefecture" where the labels say "US", "Bavaria" or "Tokyo".
Everything here is pure (pycountry + the tables in :mod:`.name_aliases`, no GeoNames table, no network)
and cached, so the reward can call it per completion.

``normalize_name`` builds a comparison key, never a display name. In order it
1. drops parenthesised parts ("Stadt Winterthur (Kreis 1)"), then folds Unicode: NFKD, drops accents,
   casefolds, and transliterates letters NFKD keeps (ø, æ, ł, ß, ...);
2. deletes periods ("U.S.A." -> "usa"), turns other punctuation into spaces and "&" into "and", and
   drops one-letter tokens when others remain ("Côte d'Ivoire" -> "cote ivoire");
3. expands "st"/"ste"/"mt"/"ft"/"sankt" to "saint"/"sainte"/"mount"/"fort"/"saint";
4. strips generic administrative words at the start ("the", "city of", "state of", "province of",
   "changwat", "stadt", ...) or the end ("province", "prefecture", "state", "region", "oblast",
   "county", "voivodeship", "sheng", "zizhiqu", "do", ...), repeatedly, never emptying the name.
   "Republic" and "city" are kept (Czech Republic / Mexico City are not Czech / Mexico);
   :func:`normalize_city` also drops a trailing "city", since it compares cities with cities only;
5. folds German-style umlaut spellings ("ae"/"oe"/"ue" -> "a"/"o"/"u") in words of 5+ letters, so
   GeoNames' "Joenkoeping" equals "Jönköping". This is lossy ("Israel" -> "isral") but applied to both
   sides of every comparison; short words are left alone so "UAE" does not become "ua" (Ukraine's code).

Known limits: "Moscow Oblast" and "Moscow" share the key "moscow"; names in non-Latin scripts only match
themselves. The spatial checks in :mod:`.consistency` catch most cases names alone cannot.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import pycountry

from .name_aliases import (
    CITY_SYNONYMS,
    COUNTRY_ALIASES,
    COUNTRY_DISPLAY,
    EXTRA_COUNTRIES,
    REGION_PARTS,
    REGION_SYNONYMS,
)

_TRANSLIT = str.maketrans({"ø": "o", "æ": "ae", "œ": "oe", "đ": "d", "ł": "l", "ı": "i", "þ": "th", "ð": "d"})
_PARENTHESES = re.compile(r"\([^()]*\)|\[[^\[\]]*\]")
_SPLIT = re.compile(r"[^\w]+|_")
_ABBREVIATIONS = {"st": "saint", "ste": "sainte", "mt": "mount", "ft": "fort", "sankt": "saint"}
_PREFIXES: tuple[tuple[str, ...], ...] = tuple(
    tuple(p.split())
    for p in (
        "the", "city of", "state of", "province of", "region of", "county of", "prefecture of",
        "municipality of", "comunidad de", "comunidad foral de", "principado de", "region de",
        "provincia di", "provincia de", "estado de", "departamento de", "departement de",
        "departement du", "departement des", "changwat", "stadt",
    )
)
_SUFFIXES: tuple[tuple[str, ...], ...] = tuple(
    tuple(p.split())
    for p in (
        "province", "prefecture", "state", "region", "oblast", "krai", "kray", "okrug", "autonomous okrug",
        "avtonomnyy okrug", "county", "district", "governorate", "department", "departement",
        "municipality", "metropolis", "voivodeship", "canton", "area", "territory", "autonomous region",
        "autonomous community", "autonomous", "special administrative region", "sar", "sheng", "shi", "zizhiqu",
        "zhuangzu", "huizu", "uygur", "weiwuer", "zangzu", "do", "gwangyeoksi", "teukbyeolsi",
        "teukbyeoljachido", "teukbyeoljachisi", "lan", "fylke", "kraj", "zupanija", "megye",
    )
)
_CITY_SUFFIXES: tuple[tuple[str, ...], ...] = (("city",),)
_UMLAUT = re.compile(r"ae|oe|ue")


def _fold(text: str) -> list[str]:
    """Steps 1-3 of the module docstring: Unicode folding, punctuation, abbreviations, as tokens."""
    s = text
    if "(" in s or "[" in s:
        stripped = _PARENTHESES.sub(" ", s)
        s = stripped if stripped.strip() else s
    if s.isascii():  # GeoNames' names: nothing to fold
        s = s.lower()
    else:
        s = unicodedata.normalize("NFKD", s)
        s = "".join(ch for ch in s if not unicodedata.combining(ch)).casefold().translate(_TRANSLIT)
    s = s.replace(".", "").replace("&", " and ")
    tokens = [t for t in _SPLIT.split(s) if t]
    if len(tokens) > 1:
        tokens = [t for t in tokens if len(t) > 1 or t.isdigit()] or tokens
    return [_ABBREVIATIONS.get(t, t) for t in tokens]


def _by_edge(affixes: tuple[tuple[str, ...], ...], edge: int) -> dict[str, tuple[tuple[str, ...], ...]]:
    """Affixes grouped by their first (edge 0) or last (edge -1) token, longest first."""
    out: dict[str, list[tuple[str, ...]]] = {}
    for a in sorted(affixes, key=len, reverse=True):
        out.setdefault(a[edge], []).append(a)
    return {k: tuple(v) for k, v in out.items()}


_PREFIX_INDEX = _by_edge(_PREFIXES, 0)
_SUFFIX_INDEX = _by_edge(_SUFFIXES, -1)  # "autonomous region" is tried before "region"
_CITY_SUFFIX_INDEX = _by_edge(_SUFFIXES + _CITY_SUFFIXES, -1)


def _strip_affixes(tokens: list[str], suffixes: dict[str, tuple[tuple[str, ...], ...]]) -> list[str]:
    """Step 4: drop generic prefixes/suffixes repeatedly while at least one token remains."""
    changed = True
    while changed and len(tokens) > 1:
        changed = False
        for p in _PREFIX_INDEX.get(tokens[0], ()):
            if len(tokens) > len(p) and tuple(tokens[: len(p)]) == p:
                tokens, changed = tokens[len(p) :], True
                break
        for p in suffixes.get(tokens[-1], ()) if len(tokens) > 1 else ():
            if len(tokens) > len(p) and tuple(tokens[-len(p) :]) == p:
                tokens, changed = tokens[: -len(p)], True
                break
    return tokens


def normalize_name(name: object) -> str:
    """Comparison key for a place name ("" for None, non-strings or blank); see the module docstring."""
    return _normalize(name) if isinstance(name, str) else ""


@lru_cache(maxsize=65536)
def _normalize(name: str) -> str:
    if not name.strip():
        return ""
    return _join(_strip_affixes(_fold(name), _SUFFIX_INDEX))


def _join(tokens: list[str]) -> str:
    """Step 5: umlaut folding on tokens of 5+ letters (so "UAE" stays "uae"), joined by spaces."""
    return " ".join(_UMLAUT.sub(_first, t) if len(t) >= 5 and "e" in t else t for t in tokens)


def _first(m: re.Match[str]) -> str:
    return m.group(0)[0]


@lru_cache(maxsize=65536)
def _city_key_raw(name: str) -> str:
    if not name.strip():
        return ""
    return _join(_strip_affixes(_fold(name), _CITY_SUFFIX_INDEX))


@lru_cache(maxsize=1)
def _city_synonyms() -> dict[str, str]:
    table: dict[str, str] = {}
    for group in CITY_SYNONYMS:
        names = group.split("|")
        canonical = _city_key_raw(names[0])
        for n in names:
            table[_city_key_raw(n)] = canonical
    return table


def normalize_city(name: object) -> str:
    """Comparison key for a city: :func:`normalize_name` minus a trailing "city", through exonym aliases."""
    if not isinstance(name, str):
        return ""
    key = _city_key_raw(name)
    return _city_synonyms().get(key, key)


# --------------------------------------------------------------------------------------------- countries


def _name_variants(name: str) -> tuple[list[str], list[str]]:
    """(exact, derived) aliases of a pycountry name: "Korea, Republic of" also gives "Republic of Korea"
    and "Korea"; "Holy See (Vatican City State)" also gives "Holy See"; "[...]" holds alternatives."""
    exact = [name]
    derived: list[str] = []
    base = re.sub(r"\s*\[[^\]]*\]", "", name).strip()
    for alt in re.findall(r"\[([^\]]*)\]", name):
        derived.extend(a.strip() for a in alt.split(",") if a.strip() and not re.search(r"\d|-[A-Z]", a))
    if base != name:
        derived.append(base)
    if "(" in base:
        derived.append(base.split("(")[0].strip())
    if "," in base:
        head, tail = (p.strip() for p in base.split(",", 1))
        derived.extend([f"{tail} {head}", head])
    return exact, derived


@lru_cache(maxsize=1)
def _country_table() -> dict[str, str]:
    """Normalised country name/code -> alpha-2. Priority: manual > pycountry names > derived forms;
    a derived form claimed by two countries (e.g. "Congo") is dropped unless a higher tier decides."""
    best: dict[str, tuple[int, str | None]] = {}

    def put(raw: str, code: str, tier: int) -> None:
        key = normalize_name(raw)
        if not key:
            return
        old = best.get(key)
        if old is None or tier < old[0]:
            best[key] = (tier, code)
        elif tier == old[0] and old[1] != code:
            best[key] = (tier, None)  # ambiguous at this tier

    for raw, code in COUNTRY_ALIASES.items():
        put(raw, code, 0)
    for code, name in EXTRA_COUNTRIES.items():
        put(name, code, 1)
    for c in pycountry.countries:
        for attr in ("name", "official_name", "common_name"):
            value = getattr(c, attr, None)
            if not value:
                continue
            exact, derived = _name_variants(value)
            for v in exact:
                put(v, c.alpha_2, 1)
            for v in derived:
                put(v, c.alpha_2, 2)
    return {k: code for k, (_, code) in best.items() if code is not None}


@lru_cache(maxsize=1)
def _known_codes() -> dict[str, str]:
    """Upper-case alpha-2 and alpha-3 codes -> alpha-2."""
    codes = {c.alpha_2: c.alpha_2 for c in pycountry.countries}
    codes.update({c.alpha_3: c.alpha_2 for c in pycountry.countries})
    codes.update({k: k for k in EXTRA_COUNTRIES})
    codes["XKX"] = "XK"
    return codes


def country_code(name: str | None) -> str | None:
    """ISO alpha-2 code for a country name, alias or code ("USA", "Czech Republic", "na" -> "US", "CZ",
    "NA"); ``None`` when it names no country. "Paris, France" and "France (FR)" resolve by their parts."""
    return _country_code(name) if isinstance(name, str) else None


@lru_cache(maxsize=65536)
def _country_code(name: str) -> str | None:
    text = name.strip()
    if not text:
        return None
    codes = _known_codes()
    if len(text) in (2, 3) and text.isalpha() and text.upper() in codes:
        return codes[text.upper()]
    table = _country_table()
    hit = table.get(normalize_name(text))
    if hit:
        return hit
    parts = [p for p in re.split(r"[,;/|()]+", text) if p.strip()]
    if len(parts) > 1:
        for part in reversed(parts):
            hit = _country_code(part)
            if hit:
                return hit
    return None


def country_name(code: str | None) -> str | None:
    """Display name for an alpha-2 code: pycountry's common name, else its name, with a few readable
    overrides ("RU" -> "Russia"); ``None`` for unknown codes."""
    return _country_name(code.strip().upper()) if isinstance(code, str) and code.strip() else None


@lru_cache(maxsize=1024)
def _country_name(code: str) -> str | None:
    if code in COUNTRY_DISPLAY:
        return COUNTRY_DISPLAY[code]
    c = pycountry.countries.get(alpha_2=code)
    if c is None:
        return EXTRA_COUNTRIES.get(code)
    return getattr(c, "common_name", None) or c.name


def same_country(a: str | None, b: str | None) -> bool:
    """Whether two country names or codes name the same country (False when either is empty)."""
    ca, cb = country_code(a), country_code(b)
    if ca is not None and cb is not None:
        return ca == cb
    ka, kb = normalize_name(a), normalize_name(b)
    return bool(ka) and ka == kb


# ----------------------------------------------------------------------------------------------- regions


@dataclass(frozen=True)
class RegionKey:
    """A region name resolved inside one country: ids it *is* and ids of the regions that contain it."""

    own: frozenset[str]
    within: frozenset[str]


def _subdivision_names(sub: object) -> tuple[list[str], list[str]]:
    name = getattr(sub, "name", "")
    exact, derived = _name_variants(name)
    suffix = getattr(sub, "code", "").split("-", 1)[-1]
    if suffix.isalpha():
        exact.append(suffix)
    if getattr(sub, "country_code", "") == "SE":  # "Stockholms län" -> "Stockholm" (genitive s)
        derived.extend(v[:-1] for v in [re.sub(r"\s*(län|\[.*\])", "", name).strip()] if v.endswith("s"))
    return exact, derived


@lru_cache(maxsize=512)
def _region_table(cc: str) -> dict[str, RegionKey]:
    """Normalised region alias -> RegionKey for one country, from pycountry subdivisions (all levels,
    with their ancestors), then REGION_SYNONYMS (shared ids), then REGION_PARTS (containment)."""
    own: dict[str, set[str]] = {}
    within: dict[str, set[str]] = {}
    subs = list(pycountry.subdivisions.get(country_code=cc) or [])
    parent = {s.code: s.parent_code for s in subs}

    def ancestors(code: str) -> set[str]:
        out: set[str] = set()
        p = parent.get(code)
        while p and p not in out:
            out.add(p)
            p = parent.get(p)
        return out

    derived_claims: dict[str, set[str]] = {}
    for s in subs:
        exact, derived = _subdivision_names(s)
        for v in exact:
            key = normalize_name(v)
            if key:
                own.setdefault(key, set()).add(s.code)
                within.setdefault(key, set()).update(ancestors(s.code))
        for v in derived:
            key = normalize_name(v)
            if key:
                derived_claims.setdefault(key, set()).add(s.code)
    for key, codes in derived_claims.items():
        if key not in own and len(codes) == 1:
            code = next(iter(codes))
            own[key] = {code}
            within[key] = ancestors(code)

    for group in REGION_SYNONYMS.get(cc, ()):
        keys = [k for k in (normalize_name(n) for n in group.split("|")) if k]
        ids = set().union(*(own.get(k, set()) for k in keys)) or {f"syn:{cc}:{keys[0]}"}
        anc = set().union(*(within.get(k, set()) for k in keys))
        for k in keys:
            own.setdefault(k, set()).update(ids)
            within.setdefault(k, set()).update(anc)

    for whole, parts in REGION_PARTS.get(cc, {}).items():
        whole_key = normalize_name(whole)
        whole_ids = own.setdefault(whole_key, {f"syn:{cc}:{whole_key}"})
        for part in parts:
            pk = normalize_name(part)
            own.setdefault(pk, {f"part:{cc}:{pk}"})
            within.setdefault(pk, set()).update(whole_ids)

    return {k: RegionKey(frozenset(v), frozenset(within.get(k, ()))) for k, v in own.items()}


def region_key(name: str | None, country: str | None = None) -> RegionKey | None:
    """Resolve a region name (or ISO suffix such as "CA" in the US) inside ``country`` (name or code);
    unknown names get a key of their own normalised form; ``None`` for an empty name."""
    if not isinstance(name, str):
        return None
    return _region_key(name, country if isinstance(country, str) else None)


@lru_cache(maxsize=65536)
def _region_key(name: str, country: str | None) -> RegionKey | None:
    key = normalize_name(name)
    if not key:
        return None
    cc = country_code(country)
    if cc:
        hit = _region_table(cc).get(key)
        if hit is not None:
            return hit
    return RegionKey(frozenset({f"name:{key}"}), frozenset())


def same_region(a: str | None, b: str | None, country_code: str | None = None) -> bool:
    """Whether two region names name the same region, or one contains the other ("Grand Est" and
    "Alsace"; "London" lies in "England"). Pass the country (code or name) to resolve abbreviations such
    as "CA" = California and local/English pairs ("Bayern" = "Bavaria")."""
    ka, kb = region_key(a, country_code), region_key(b, country_code)
    if ka is None or kb is None:
        return False
    return bool(ka.own & (kb.own | kb.within)) or bool(kb.own & (ka.own | ka.within))


def same_city(a: str | None, b: str | None) -> bool:
    """Whether two city names are the same after :func:`normalize_city` (exonyms included)."""
    ka, kb = normalize_city(a), normalize_city(b)
    return bool(ka) and ka == kb
