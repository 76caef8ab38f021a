"""``geo_r_paper``: the Geo-R paper's single reward, r = r_format x r_distance, to reproduce the paper.

r_distance is always the paper's piecewise-linear map (1 at 0 km, 0.5 at 750, 0.2 at 2500, 0 at 20,000 km),
whatever ``--distance_reward`` says. The paper's r_format is 1 only when the output holds exactly one valid
(lat, lon) pair, comma-separated inside parentheses. Ours is the ``format`` reward, which requires that and
more: the contract's tags and all three chain levels, which the Geo-R prompt asks for too (and the
``Candidate:`` line when the prompt lists retrieval candidates). So every answer
scoring > 0 here also passes the paper's check; an answer that has the one pair but drops the tags or the
chain scores 0 here and could score > 0 in the paper. A model warm-started on contract answers writes
the full contract, where the two agree. ``--paper_format exact`` applies the paper's check to the letter
instead (:func:`geo_r.rewards.format.paper_pair`: exactly one valid ``(lat, lon)`` pair in parentheses,
nothing else required) and measures the distance from that pair; the default stays ``strict``, and the
check in use is logged on the reward's first call (``grpo_jsonl.py`` also names it at start-up). Geo-R's released code differs from its paper (knot at
3000 km, format regex that never matches coordinates, rewards summed); this follows the paper.

Use it alone (``--reward_funcs geo_r_paper``) to reproduce the paper; ``format`` + ``distance`` + ``region``
are the separately logged (summed by TRL) alternative. A row with missing or invalid ground truth gets None.
"""

from __future__ import annotations

import logging
from typing import Any

from geo_r.geo.distance import haversine_km
from geo_r.rewards.args import RewardArguments
from geo_r.rewards.common import RewardFunc, column, completion_text, true_coordinates
from geo_r.rewards.distance import paper_reward, prediction_error_km
from geo_r.rewards.format import candidate_counts, follows_contract, paper_pair
from geo_r.rewards.registry import register

logger = logging.getLogger(__name__)
_FORMAT_CHECKS = {
    "strict": "strict (the answer contract: tags, Country/Region/City lines and one pair)",
    "exact": "exact (the paper's check: exactly one valid (lat, lon) pair, nothing else required)",
}


def _exact_error_km(text: str, lat: Any, lon: Any) -> tuple[float | None, bool]:
    """Like :func:`prediction_error_km`, but from the paper's one pair (None when the format check fails)."""
    truth = true_coordinates(lat, lon)
    if truth is None:
        return None, False
    pair = paper_pair(text)
    if pair is None:
        return None, True
    return float(haversine_km(pair[0], pair[1], truth[0], truth[1])), True


@register("geo_r_paper")
def make_geo_r_paper_reward(args: RewardArguments) -> RewardFunc:
    """Build ``geo_r_paper`` = format x paper distance map; ``args.paper_format`` picks the format check."""
    exact = args.paper_format == "exact"
    check = _FORMAT_CHECKS[args.paper_format]
    logged = False

    def geo_r_paper(
        prompts: Any, completions: Any, completion_ids: Any = None, **kwargs: Any
    ) -> list[float | None]:
        """Per completion: format (0/1) x the paper map of its error to (lat, lon)."""
        nonlocal logged
        if not logged:
            logger.info("geo_r_paper: format check %s (--paper_format)", check)
            logged = True
        n = len(completions)
        lats, lons = column(kwargs, "lat", n), column(kwargs, "lon", n)
        counts = candidate_counts(kwargs, n)
        out: list[float | None] = []
        for completion, lat, lon, k in zip(completions, lats, lons, counts, strict=True):
            text = completion_text(completion)
            if exact:
                error_km, truth_ok = _exact_error_km(text, lat, lon)
            else:
                error_km, truth_ok = prediction_error_km(text, lat, lon)
            if not truth_ok:
                out.append(None)
            elif error_km is None or (not exact and not follows_contract(text, k)):
                out.append(0.0)
            else:
                out.append(float(paper_reward(error_km)))
        return out

    geo_r_paper.format_check = args.paper_format  # type: ignore[attr-defined]
    geo_r_paper.__doc__ = f"{geo_r_paper.__doc__} Format check: {check}."
    return geo_r_paper
