"""Give records their retrieval candidates from a neighbours file (``--candidates NEIGHBOURS.jsonl``).

The neighbours file is what ``geo-r retrieve`` writes (:mod:`geo_r.data.neighbours` defines and reads it:
every line is checked and bad ones are reported with ``file:line``). :func:`attach_candidates` sets
``record.candidates`` for every record: the record's neighbours merged by
:func:`geo_r.geo.candidates.cluster_neighbours` (at most ``num_candidates``, greedy by score within
``radius_km`` of each seed, the seed's coordinates) with region chains from offline reverse geocoding (one
batched lookup). A record whose id has no line is an error naming both files, raised before any model is
loaded. A record with an empty neighbour list gets no candidates (its prompt is the plain question). The
file's candidates replace a record's own ``candidates`` field (counted in the log).

Every command that takes ``--candidates`` (``grpo_jsonl.py``, ``geo-r sft``, ``geo-r export-sft``, ``geo-r
eval``, ``geo-r app``) calls :func:`attach_candidates` right after loading its records; the prompt is then
built by :func:`geo_r.prompts.question_with_candidates` everywhere.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from geo_r.data.neighbours import NeighboursFileError, read_neighbours
from geo_r.data.schema import GeoRecord
from geo_r.geo.candidates import (
    DEFAULT_NUM_CANDIDATES,
    DEFAULT_RADIUS_KM,
    Candidate,
    Neighbour,
    cluster_neighbours,
)

logger = logging.getLogger(__name__)

CANDIDATES_HELP = (
    "Retrieval candidates: a neighbours file of 'geo-r retrieve' (one line per photo id: "
    '{"id": ..., "neighbours": [{"id", "lat", "lon", "score"}, ...]}, best first). Each photo\'s neighbours are '
    "merged into at most --num_candidates numbered places (greedy by score within --candidate_radius_km; the "
    "best photo's coordinates, its offline region chain, photos and best similarity), listed after the question, "
    "and the answer gains a 'Candidate: <k>' or 'Candidate: none' line before its coordinates. Every photo needs "
    "a line in the file. A record's own 'candidates' field does the same without this flag. See "
    "docs/retrieval.md."
)
NUM_CANDIDATES_HELP = f"With --candidates: at most this many candidates per photo (default {DEFAULT_NUM_CANDIDATES})."
RADIUS_HELP = (
    f"With --candidates: neighbours within this many km of a candidate's best photo merge into it (default "
    f"{DEFAULT_RADIUS_KM:g})."
)


@dataclass(slots=True)
class CandidateReport:
    """What :func:`attach_candidates` did, for the log and the evaluation settings."""

    path: str
    num_candidates: int
    radius_km: float
    records: int = 0
    with_candidates: int = 0
    candidates: int = 0
    neighbours: int = 0
    replaced_own: int = 0
    lines_read: int = 0
    empty: list[str] = field(default_factory=list)  # ids with no neighbour at all (first few)

    def summary(self) -> str:
        """One line for logs."""
        mean = self.candidates / self.with_candidates if self.with_candidates else 0.0
        line = (
            f"candidates from {self.path}: {self.with_candidates} of {self.records} record(s) got {self.candidates} "
            f"candidate(s) (mean {mean:.1f}, at most {self.num_candidates}, radius {self.radius_km:g} km) from "
            f"{self.neighbours} neighbour(s)"
        )
        if self.records - self.with_candidates:
            line += f"; {self.records - self.with_candidates} with no neighbour keep the plain question"
        if self.replaced_own:
            line += f"; {self.replaced_own} record(s) had their own 'candidates' field, replaced by the file's"
        return line

    def settings(self) -> dict[str, object]:
        """The run settings that describe the candidates (written into metrics.json)."""
        return {"file": self.path, "num_candidates": self.num_candidates, "radius_km": self.radius_km}


def check_candidate_options(num_candidates: int, radius_km: float) -> None:
    """ValueError for a candidate count below 1 or a radius that is not a number of km >= 0."""
    if isinstance(num_candidates, bool) or not isinstance(num_candidates, int) or num_candidates < 1:
        raise ValueError(f"--num_candidates must be an integer >= 1, got {num_candidates!r}")
    if not (isinstance(radius_km, int | float) and math.isfinite(radius_km) and radius_km >= 0):
        raise ValueError(f"--candidate_radius_km must be a number of km >= 0, got {radius_km!r}")


def candidates_for(
    neighbour_lists: Sequence[Sequence[Neighbour]],
    num_candidates: int = DEFAULT_NUM_CANDIDATES,
    radius_km: float = DEFAULT_RADIUS_KM,
) -> list[tuple[Candidate, ...]]:
    """Clustered candidates with region chains for each list of neighbours (one batched reverse geocoding)."""
    check_candidate_options(num_candidates, radius_km)
    clustered = [cluster_neighbours(ns, num_candidates, radius_km) for ns in neighbour_lists]
    return fill_chains(clustered)


def fill_chains(candidate_lists: Sequence[Sequence[Candidate]]) -> list[tuple[Candidate, ...]]:
    """The candidates with their missing chain levels filled offline from their coordinates, in one batched
    reverse-geocoding call for every candidate that lacks a level."""
    todo = [(i, j) for i, cands in enumerate(candidate_lists) for j, c in enumerate(cands)
            if not (c.country and c.region and c.city)]
    out = [list(cands) for cands in candidate_lists]
    if todo:
        from geo_r.geo.regions import reverse_geocode

        chains = reverse_geocode([out[i][j].lat for i, j in todo], [out[i][j].lon for i, j in todo])
        for (i, j), chain in zip(todo, chains, strict=True):
            out[i][j] = out[i][j].with_chain(chain.country, chain.region, chain.city)
    return [tuple(cands) for cands in out]


def attach_candidates(
    records: Sequence[GeoRecord],
    path: str | os.PathLike[str],
    *,
    num_candidates: int = DEFAULT_NUM_CANDIDATES,
    radius_km: float = DEFAULT_RADIUS_KM,
) -> CandidateReport:
    """Set ``record.candidates`` of every record from the neighbours file ``path`` (see the module docstring).

    Raises :class:`NeighboursFileError` for a bad file or a record id it does not hold (naming the file and
    the record's ``file:line``), ValueError for bad options. Logs :meth:`CandidateReport.summary`.
    """
    check_candidate_options(num_candidates, radius_km)
    counted = [0]

    def cluster(neighbours: list[Neighbour]) -> list[Candidate]:
        counted[0] += len(neighbours)
        return cluster_neighbours(neighbours, num_candidates, radius_km)

    table, lines = read_neighbours(path, {r.id for r in records}, reduce=cluster)
    missing = [r for r in records if r.id not in table]
    if missing:
        first = missing[0]
        listed = ", ".join(repr(r.id) for r in missing[:5])
        raise NeighboursFileError(
            f"the neighbours file {path} has no line for {len(missing)} of {len(records)} photo(s) (e.g. {listed}; "
            f"{first.id!r} is at {first.source or 'the data file'}). Every photo needs its neighbours: run "
            "geo-r retrieve on the same --data_file_paths, or drop --candidates."
        )
    report = CandidateReport(str(path), num_candidates, radius_km, records=len(records), lines_read=lines)
    named = fill_chains([table[r.id] for r in records])
    del table
    for record, candidates in zip(records, named, strict=True):
        if record.candidates:
            report.replaced_own += 1
        record.candidates = candidates
        report.candidates += len(candidates)
        report.with_candidates += bool(candidates)
        if not candidates and len(report.empty) < 5:
            report.empty.append(record.id)
    report.neighbours = counted[0]
    logger.info("%s", report.summary())
    return report


def add_candidate_arguments(parser: Any) -> None:
    """``--candidates``, ``--num_candidates`` and ``--candidate_radius_km`` on an argparse parser (export-sft,
    eval, app); GRPO and SFT have the same flags as dataclass fields with the same help."""
    parser.add_argument("--candidates", default=None, metavar="NEIGHBOURS.jsonl", help=CANDIDATES_HELP)
    parser.add_argument("--num_candidates", type=int, default=DEFAULT_NUM_CANDIDATES, help=NUM_CANDIDATES_HELP)
    parser.add_argument("--candidate_radius_km", type=float, default=DEFAULT_RADIUS_KM, help=RADIUS_HELP)


def attach_from_args(records: Sequence[GeoRecord], args: object) -> CandidateReport | None:
    """:func:`attach_candidates` with a command's ``candidates`` / ``num_candidates`` /
    ``candidate_radius_km`` settings (argparse namespace or dataclass); None when no file was given."""
    path = getattr(args, "candidates", None)
    if not path:
        return None
    return attach_candidates(
        records,
        path,
        num_candidates=getattr(args, "num_candidates", DEFAULT_NUM_CANDIDATES),
        radius_km=getattr(args, "candidate_radius_km", DEFAULT_RADIUS_KM),
    )


def check_candidate_reward(records: Sequence[GeoRecord], reward_names: Sequence[str], command: str) -> None:
    """SystemExit when the ``candidate`` reward is selected but no record has candidates (it would score
    nothing: None on every row); a warning when only some have."""
    check_candidate_counts(sum(bool(r.candidates) for r in records), len(records), reward_names, command)


def check_candidate_counts(n: int, total: int, reward_names: Sequence[str], command: str) -> None:
    """:func:`check_candidate_reward` from counts: ``n`` of ``total`` rows have candidates (a cached set)."""
    if "candidate" not in reward_names:
        return
    if n == 0:
        raise SystemExit(
            f"{command}: --reward_funcs candidate scores the answer's 'Candidate:' line, but no record has retrieval "
            "candidates: add --candidates NEIGHBOURS.jsonl (geo-r retrieve writes it) or drop the reward"
        )
    if n < total:
        logger.warning("the candidate reward scores %d of %d record(s) (the others have no candidates: None)",
                       n, total)
