"""``candidate``: is the answer's ``Candidate: k`` line a true claim that the answer itself keeps?

For prompts with retrieval candidates (the dataset's ``candidates`` column; ``--candidates`` or a record's own
``candidates`` field). ``Candidate: k`` claims "the photo was taken within 25 km of candidate k"
(:data:`geo_r.geo.candidates.NAME_KM`, what the prompt says and what the SFT targets do):

====================================================================  =======
answer                                                                 reward
====================================================================  =======
``Candidate: none``, or no readable ``Candidate:`` line                  0.0
names k, consistent with k, and candidate k lies within 25 km of truth  +1.0
names k, consistent with k, but candidate k is farther than 25 km       -1.0
names k but is not consistent with it (see below)                       -1.0
names a k the prompt did not list                                       -1.0
====================================================================  =======

*Consistent* (:func:`geo_r.geo.candidates.check_candidate`): the answer keeps its claim. Its coordinates lie
within 25 km of candidate k (or the candidate's cluster radius, if larger), and every chain level it names
could be the place of a point that close to candidate k: the name matches candidate k's chain, or a GeoNames
place of that name (country, region, city) lies within 25 km of it plus the border tolerance the ``region``
reward uses (names compared offline, with aliases). So "Candidate: 2" next to candidate 2 in Tokyo with
"Japan / Tokyo" passes, also when candidate 2's own label is neighbouring Saitama, while "Japan / Hokkaido /
Manaus" does not. A level the answer does not name does not count against it; the ``format`` and ``region``
rewards ask for every level.

Why this scale. ``none`` costs nothing, so the reward never pushes a model to name a candidate. A named
candidate is a bet: +1 when the claim is true, -1 when it is false or the answer contradicts it. A policy
that names a candidate whose chance of being right is p earns 2p - 1 on average against 0 for ``none``, so
naming pays only where the model can tell a right candidate with p > 1/2. Always answering candidate 1
(retrieval top-1) earns 2 x (top-1 accuracy at 25 km) - 1, which is below zero whenever retrieval alone is
right less than half the time (every published benchmark), and always below a policy that names only the
candidates it recognises. Naming a right candidate but writing coordinates elsewhere also costs -1: the line
must describe the answer given, so evaluation can read it as such. A reward for consistency alone (+ for any
consistent claim) would be maximised by always naming candidate 1 and copying it: that is retrieval top-1,
not a model. The ``distance`` reward still scores the coordinates themselves.

Rows without candidates, or without valid true coordinates, get None (TRL leaves them out). Logged besides
``rewards/candidate/mean``: ``rewards/candidate/named`` (share of rows with candidates whose answer names
one), ``rewards/candidate/consistent`` and ``rewards/candidate/right`` (shares of the named ones).
"""

from __future__ import annotations

from typing import Any

from geo_r.geo.candidates import NAME_KM, CandidateCheck, candidates_from_column, check_candidate
from geo_r.geo.distance import haversine_km
from geo_r.geo.parse import parse_prediction
from geo_r.geo.regions import reverse_geocode
from geo_r.rewards.args import RewardArguments
from geo_r.rewards.common import RewardFunc, column, completion_text, log_metric, true_coordinates
from geo_r.rewards.registry import register

NO_CLAIM = 0.0
"""``Candidate: none`` or no Candidate line."""
RIGHT_CLAIM = 1.0
"""A consistent claim whose candidate lies within :data:`NAME_KM` of the truth."""
WRONG_CLAIM = -1.0
"""A consistent claim whose candidate lies farther than :data:`NAME_KM` from the truth."""
INCONSISTENT_CLAIM = -1.0
"""A claim the answer contradicts (coordinates or chain), or a candidate number the prompt did not list."""


def claim_reward(check: CandidateCheck | None, right: bool) -> float:
    """The reward of one answer from its candidate check (None: names no candidate) and whether the named
    candidate lies within :data:`NAME_KM` of the truth."""
    if check is None:
        return NO_CLAIM
    if not check.consistent:
        return INCONSISTENT_CLAIM
    return RIGHT_CLAIM if right else WRONG_CLAIM


@register("candidate")
def make_candidate_reward(args: RewardArguments) -> RewardFunc:
    """Build ``candidate`` (no RewardArguments field applies; the values are the module constants)."""

    def candidate_reward(
        prompts: Any, completions: Any, completion_ids: Any = None, **kwargs: Any
    ) -> list[float | None]:
        """Per completion: 0 without a claim, +1 for a true consistent claim, -1 otherwise; None for rows
        without candidates or truth."""
        n = len(completions)
        rows = [candidates_from_column(v) for v in column(kwargs, "candidates", n)]
        truths = [true_coordinates(a, b) for a, b in zip(column(kwargs, "lat", n), column(kwargs, "lon", n), strict=True)]
        preds = [parse_prediction(completion_text(c)) if rows[i] else None for i, c in enumerate(completions)]
        # One batched reverse geocoding for every named candidate that exists and needs its chain checked.
        named = [
            i for i, (p, cands) in enumerate(zip(preds, rows, strict=True))
            if p is not None and cands and p.candidate is not None and 1 <= p.candidate <= len(cands)
            and p.has_coordinates
        ]
        derived = {}
        if named:
            points = [rows[i][preds[i].candidate - 1] for i in named]  # type: ignore[index,union-attr,operator]
            for i, chain in zip(named, reverse_geocode([c.lat for c in points], [c.lon for c in points]), strict=True):
                derived[i] = chain
        out: list[float | None] = []
        n_rows = n_named = n_consistent = n_right = 0
        for i, (pred, cands, truth) in enumerate(zip(preds, rows, truths, strict=True)):
            if pred is None or not cands or truth is None:
                out.append(None)
                continue
            n_rows += 1
            check = check_candidate(pred, cands, derived.get(i))
            right = False
            if check is not None:
                n_named += 1
                n_consistent += check.consistent
                if check.offered:
                    cand = cands[check.k - 1]
                    right = float(haversine_km(cand.lat, cand.lon, truth[0], truth[1])) <= NAME_KM
                    n_right += right
            out.append(claim_reward(check, right))
        if n_rows:
            log_metric(kwargs, "rewards/candidate/named", n_named / n_rows)
        if n_named:
            log_metric(kwargs, "rewards/candidate/consistent", n_consistent / n_named)
            log_metric(kwargs, "rewards/candidate/right", n_right / n_named)
        return out

    return candidate_reward
