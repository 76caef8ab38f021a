"""Name normalisation and country / region / city aliases (geo_r.geo.names): pure, no GeoNames table."""

from __future__ import annotations

import pycountry
import pytest

from geo_r.geo.name_aliases import COUNTRY_ALIASES
from geo_r.geo.names import (
    country_code,
    country_name,
    normalize_city,
    normalize_name,
    same_city,
    same_country,
    same_region,
)


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("Île-de-France", "ile de france"),
        ("  ÎLE   DE   FRANCE ", "ile de france"),
        ("U.S.A.", "usa"),
        ("Côte d'Ivoire", "cote ivoire"),
        ("Provence-Alpes-Côte-d’Azur", "provence alpes cote azur"),
        ("Tokyo Prefecture", "tokyo"),
        ("State of New York", "new york"),
        ("Moscow Oblast", "moscow"),
        ("The Gambia", "gambia"),
        ("St. Petersburg", "saint petersburg"),
        ("Kraków", "krakow"),
        ("Łódź", "lodz"),
        ("Straße", "strasse"),
        ("Stadt Winterthur (Kreis 1)", "winterthur"),
        ("Mexico City", "mexico city"),  # "city" is kept at region level: CDMX is not the State of Mexico
        ("Czech Republic", "czech republic"),  # "republic" is never dropped
        ("Province", "province"),  # a generic word alone is kept, never emptied
        ("Jönköping", "jonkoping"),
        ("Joenkoeping", "jonkoping"),  # GeoNames' German-style transliteration
        ("UAE", "uae"),  # short words are not umlaut-folded ("ua" would be Ukraine)
    ],
)
def test_normalize_name(raw: str, key: str) -> None:
    assert normalize_name(raw) == key


@pytest.mark.parametrize("empty", [None, "", "   ", 3.5, b"Paris", ["Paris"]])
def test_normalize_name_of_nothing_is_empty(empty: object) -> None:
    assert normalize_name(empty) == ""
    assert normalize_city(empty) == ""


def test_normalize_city_drops_city_and_applies_exonyms() -> None:
    assert normalize_city("New York City") == normalize_city("New York") == normalize_city("NYC")
    assert normalize_city("München") == normalize_city("Munich")
    assert normalize_city("Mexico City") == normalize_city("Ciudad de México")
    assert normalize_city("Paris") != normalize_city("Lyon")


@pytest.mark.parametrize(
    ("names", "code"),
    [
        (["USA", "US", "U.S.", "United States", "United States of America", "America", "usa"], "US"),
        (["UK", "United Kingdom", "Great Britain", "Britain", "England", "Scotland", "Wales"], "GB"),
        (["Czechia", "Czech Republic"], "CZ"),
        (["Russia", "Russian Federation"], "RU"),
        (["South Korea", "Korea, Republic of", "Korea"], "KR"),
        (["North Korea"], "KP"),
        (["Iran", "Iran, Islamic Republic of"], "IR"),
        (["Vietnam", "Viet Nam"], "VN"),
        (["Türkiye", "Turkiye", "Turkey"], "TR"),
        (["Ivory Coast", "Côte d'Ivoire", "Cote d'Ivoire", "COTE D’IVOIRE"], "CI"),
        (["Holland", "Netherlands", "The Netherlands"], "NL"),
        (["UAE", "United Arab Emirates"], "AE"),
        (["DR Congo", "DRC", "Democratic Republic of the Congo"], "CD"),
        (["Congo", "Republic of the Congo"], "CG"),
        (["Namibia", "NA", "na", "NAM"], "NA"),
        (["Paris, France", "France (FR)"], "FR"),
        (["Kosovo"], "XK"),
    ],
)
def test_country_code_aliases(names: list[str], code: str) -> None:
    for name in names:
        assert country_code(name) == code, name


@pytest.mark.parametrize("junk", [None, "", "   ", "Atlantis", "somewhere in Europe?", 42])
def test_country_code_unknown_is_none(junk: object) -> None:
    assert country_code(junk) is None  # type: ignore[arg-type]


def test_every_pycountry_name_and_code_round_trips() -> None:
    for c in pycountry.countries:
        for attr in ("name", "official_name", "common_name", "alpha_2", "alpha_3"):
            value = getattr(c, attr, None)
            if value:
                assert country_code(value) == c.alpha_2, (attr, value)
        assert country_code(country_name(c.alpha_2)) == c.alpha_2


def test_every_manual_alias_resolves_to_its_code() -> None:
    for alias, code in COUNTRY_ALIASES.items():
        assert country_code(alias) == code, alias


def test_country_name_display() -> None:
    assert country_name("NA") == "Namibia"
    assert country_name("RU") == "Russia"
    assert country_name("KR") == "South Korea"
    assert country_name("us") == "United States"
    assert country_name("XK") == "Kosovo"
    assert country_name("ZZ") is None
    assert country_name(None) is None


def test_same_country() -> None:
    assert same_country("USA", "United States of America")
    assert same_country("UK", "United Kingdom")
    assert same_country("Czechia", "Czech Republic")
    assert same_country("US", "America")
    assert same_country("Côte d'Ivoire", "Ivory Coast")
    assert not same_country("Austria", "Australia")
    assert not same_country("Niger", "Nigeria")
    assert not same_country("France", None)
    assert not same_country("", "")
    assert same_country("Atlantis", "atlantis")  # unknown names still compare by key
    assert not same_country("Atlantis", "Lemuria")


@pytest.mark.parametrize(
    ("a", "b", "cc"),
    [
        ("CA", "California", "US"),
        ("NY", "New York State", "US"),
        ("Washington DC", "District of Columbia", "US"),
        ("Île-de-France", "Ile-de-France", "FR"),
        ("Île-de-France", "Ile-de-France", None),  # accents need no country
        ("Hokkaidō", "Hokkaido", "JP"),
        ("Tokyo Metropolis", "Tokyo", "JP"),
        ("Bayern", "Bavaria", "DE"),
        ("Bavaria", "Bayern", "Germany"),  # the country may be given by name
        ("Catalunya", "Catalonia", "ES"),
        ("Barcelona", "Catalonia", "ES"),  # an ISO province lies in its community
        ("London", "England", "GB"),
        ("Paris", "Ile-de-France", "FR"),
        ("Grand Est", "Alsace", "FR"),  # 2016 region against its GeoNames (pre-2016) part
        ("Auvergne-Rhône-Alpes", "Rhone-Alpes", "FR"),
        ("Anhui Province", "Anhui Sheng", "CN"),
        ("Tibet", "Tibet Autonomous Region", "CN"),
        ("Gyeonggi Province", "Gyeonggi-do", "KR"),
        ("Jönköping County", "Joenkoeping", "SE"),
        ("Stockholms län", "Stockholm", "SE"),
        ("Nairobi", "Nairobi Area", "KE"),
        ("Masovian Voivodeship", "Mazowieckie", "PL"),
        ("CDMX", "Mexico City", "MX"),
        ("New South Wales", "NSW", "AU"),
    ],
)
def test_same_region_matches(a: str, b: str, cc: str | None) -> None:
    assert same_region(a, b, cc)
    assert same_region(b, a, cc)


@pytest.mark.parametrize(
    ("a", "b", "cc"),
    [
        ("California", "Nevada", "US"),
        ("CA", "California", None),  # abbreviations need the country
        ("New York", "New Jersey", "US"),
        ("Alsace", "Lorraine", "FR"),  # two parts of Grand Est are still different regions
        ("Barcelona", "Girona", "ES"),  # siblings inside Catalonia are different
        ("Scotland", "England", "GB"),
        ("Mexico City", "Mexico", "MX"),  # CDMX is not the State of Mexico
        ("Bavaria", "", "DE"),
        (None, None, "DE"),
    ],
)
def test_same_region_rejects(a: str | None, b: str | None, cc: str | None) -> None:
    assert not same_region(a, b, cc)
    assert not same_region(b, a, cc)


def test_same_city() -> None:
    assert same_city("New York City", "New York")
    assert same_city("Saint-Étienne", "St Etienne")
    assert same_city("St. Louis", "Saint Louis")
    assert same_city("Zürich", "Zurich")
    assert same_city("Kyiv", "Kiev")
    assert not same_city("Paris", "Lyon")
    assert not same_city("Paris", None)
    assert not same_city("", "")
