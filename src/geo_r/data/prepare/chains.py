"""Complete each row's region chain: the source's names where it has them, GeoNames offline for the gaps.

Countries are normalised first: a code (alpha-2 or alpha-3, any case; OSV-5M's ``NMB`` for Namibia) becomes
the upper-case alpha-2 code, and a known code sets the English display name (so ``country`` reads "Germany"
whatever language the source used); a name without a code gets its code from the name tables of
:mod:`geo_r.geo.names`. Missing levels are then filled by :func:`geo_r.data.derive_missing_chains` in one
batched reverse-geocoding call, which never mixes two countries in a chain (a row whose country differs from
the geocoded one near a border keeps its gaps). ``mode="geonames"`` drops the source's names and labels
every row from GeoNames, consistent with what the ``region`` reward and the metrics compare against.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from geo_r.data.records import derive_missing_chains
from geo_r.data.schema import CHAIN_FIELDS, GeoRecord

from .rows import SourceRow

CODE_FIXES = {"NMB": "NA"}  # OSV-5M's fix_namimbia.py spelling


@dataclass
class ChainCounts:
    """How the chains of a batch were made."""

    from_source: int = 0  # complete from the source alone
    completed: int = 0  # had gaps, filled offline
    incomplete: int = 0  # still missing a level after the lookup
    unknown_codes: int = 0  # source country codes that name no country (dropped, then derived)


def normalise_country(row: SourceRow, counts: ChainCounts) -> None:
    """Upper-case alpha-2 ``country_code`` and English ``country`` where either can be resolved."""
    from geo_r.geo.names import country_code, country_name

    code = row.country_code
    if code is not None:
        code = CODE_FIXES.get(code.strip().upper(), code.strip().upper())
        resolved = code if country_name(code) is not None else country_code(code)
        if resolved is None:
            counts.unknown_codes += 1
        code = resolved
    if code is None and row.country is not None:
        code = country_code(row.country)
    row.country_code = code
    if code is not None:
        row.country = country_name(code) or row.country


def complete_chains(rows: Sequence[SourceRow], mode: str = "source") -> ChainCounts:
    """Fill the chain fields of ``rows`` in place (see the module docstring) and count how."""
    counts = ChainCounts()
    for row in rows:
        if mode == "geonames":
            row.country = row.country_code = row.region = row.city = None
        else:
            normalise_country(row, counts)
    records = [
        GeoRecord(
            id=row.id,
            images=[],
            lat=row.lat,
            lon=row.lon,
            country=row.country,
            country_code=row.country_code,
            region=row.region,
            city=row.city,
        )
        for row in rows
    ]
    gaps = [r.missing_chain() for r in records]
    if any(gaps):
        with _quiet("geo_r.data.records"):  # its per-call border warning would repeat every batch
            derive_missing_chains(records)
    for row, record, had_gap in zip(rows, records, gaps, strict=True):
        for name in CHAIN_FIELDS:
            setattr(row, name, getattr(record, name))
        if not had_gap:
            counts.from_source += 1
        elif record.missing_chain():
            counts.incomplete += 1
        else:
            counts.completed += 1
    return counts


@contextmanager
def _quiet(name: str) -> Iterator[None]:
    """Silence one logger for the duration (the caller reports the same facts in its summary)."""
    logger = logging.getLogger(name)
    before = logger.disabled
    logger.disabled = True
    try:
        yield
    finally:
        logger.disabled = before
