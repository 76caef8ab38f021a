"""Reward functions for GRPO, selected by name from one registry (``--reward_funcs format distance region``).

Importing this package registers every built-in reward: ``format`` (the strict answer contract),
``distance`` (aliases ``accuracy``, ``haversine``), ``region`` (region-chain consistency),
``geo_r_paper`` (the Geo-R paper's format x distance) and ``candidate`` (the answer's ``Candidate: k`` line,
for prompts with retrieval candidates). Each follows TRL's contract
``fn(prompts, completions, completion_ids=None, **kwargs) -> list[float | None]``, never raises and never
returns NaN; settings come from :class:`RewardArguments`.
"""

from __future__ import annotations

# The reward modules are imported for their @register side effect.
from geo_r.rewards import candidate, composite, distance, format, region  # noqa: F401
from geo_r.rewards.args import RewardArguments
from geo_r.rewards.registry import REFUSED_REWARDS, REWARD_FUNCS, build_reward, get_reward_funcs, register

__all__ = [
    "REFUSED_REWARDS",
    "REWARD_FUNCS",
    "RewardArguments",
    "build_reward",
    "get_reward_funcs",
    "register",
]
