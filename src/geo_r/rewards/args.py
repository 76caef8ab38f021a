"""Settings of the reward functions, as command-line flags (``RewardArguments`` is read by HfArgumentParser).

Each reward in :mod:`geo_r.rewards` is built by a factory from one ``RewardArguments``, so a flag such as
``--distance_reward geoscore`` changes the function TRL calls without any global state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

DISTANCE_REWARDS = ("paper", "geoscore", "anneal", "threshold")
UNPARSEABLE_REWARDS = ("zero", "none")
PAPER_FORMATS = ("strict", "exact")


def _parse_float_list(text: str, flag: str) -> tuple[float, ...]:
    """``"1,25,200"`` -> (1.0, 25.0, 200.0); a clear ValueError naming the flag otherwise."""
    parts = [p.strip() for p in str(text).split(",")]
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        raise ValueError(f"--{flag} must be comma-separated numbers, got {text!r}") from None
    if not values or not all(math.isfinite(v) for v in values):
        raise ValueError(f"--{flag} must be comma-separated finite numbers, got {text!r}")
    return values


@dataclass
class RewardArguments:
    """How the ``distance`` reward maps kilometres to [0, 1], and what unscorable answers get."""

    distance_reward: str = field(
        default="paper",
        metadata={
            "help": "How the 'distance' reward (aliases accuracy, haversine) maps the great-circle error d (km) "
            "to [0, 1]. 'paper': the Geo-R paper's piecewise-linear map, 1 at 0 km, 0.5 at 750 km, 0.2 at "
            "2500 km, 0 at 20,000 km and beyond (linear in between). 'geoscore': exp(-d / --geoscore_scale_km), "
            "i.e. GeoGuessr score / 5000. 'anneal': exp(-d / tau) with tau shrinking from --anneal_start_km "
            "to --anneal_end_km over training (see --anneal_start_km). 'threshold': steps at --threshold_km "
            "worth --threshold_rewards. The 'geo_r_paper' composite always uses 'paper'.",
            "choices": list(DISTANCE_REWARDS),
        },
    )
    geoscore_scale_km: float = field(
        default=1492.7,
        metadata={
            "help": "Decay scale (km) of --distance_reward geoscore: reward = exp(-d / scale). 1492.7 km is "
            "GeoGuessr's world-map constant used by OSV-5M and PIGEON (0.5 at 1035 km, 0.19 at 2500 km)."
        },
    )
    anneal_start_km: float = field(
        default=2000.0,
        metadata={
            "help": "Starting scale (km) of --distance_reward anneal: reward = exp(-d / tau(p)) with "
            "tau(p) = start * (end / start) ** p, a geometric (log-linear) schedule, and training progress "
            "p = trainer_state.global_step / trainer_state.max_steps clipped to [0, 1] (p = 0 when there is no "
            "trainer state or max_steps is unknown). Coarse-to-fine like GRE and geospot: at the start a "
            "2000 km miss still earns 0.37; with the defaults tau is 224 km halfway and 25 km at the end."
        },
    )
    anneal_end_km: float = field(
        default=25.0,
        metadata={
            "help": "Final scale (km) of --distance_reward anneal, reached at the last step (see "
            "--anneal_start_km). 25 km is city level: a 25 km miss then earns 0.37."
        },
    )
    threshold_km: str = field(
        default="1,25,200,750,2500",
        metadata={
            "help": "Comma-separated, strictly increasing distances (km) of --distance_reward threshold: a "
            "prediction within the i-th distance (d <= threshold_km[i], the evaluation's convention) earns "
            "threshold_rewards[i] of the first threshold it meets, and 0 beyond the last one. The defaults are "
            "the standard street / city / region / country / continent accuracy thresholds."
        },
    )
    threshold_rewards: str = field(
        default="1.0,0.8,0.6,0.4,0.2",
        metadata={
            "help": "Comma-separated rewards in [0, 1], one per --threshold_km entry and non-increasing, so "
            "the reward never grows with distance. The defaults put REVERSE's knots (1 km: 1.0, 25 km: 0.8, "
            "200 km: 0.6, 750 km: 0.4, 2500 km: 0.2) on steps: a 100 km miss earns 0.6."
        },
    )
    unparseable_reward: str = field(
        default="zero",
        metadata={
            "help": "What 'distance' returns for a completion without valid coordinates (none found, or out of "
            "range). 'zero': 0.0, the worst score, so GRPO pushes the group away from such answers. 'none': "
            "None, TRL's 'this reward does not apply to this completion': it is left out of that reward's "
            "logged mean and the other rewards alone score the completion (if every reward returns None the "
            "completion gets zero advantage, i.e. an unparseable answer is then never penalised). A missing "
            "or invalid ground truth always gives None, whatever this setting: it is not the answer's fault.",
            "choices": list(UNPARSEABLE_REWARDS),
        },
    )

    paper_format: str = field(
        default="strict",
        metadata={
            "help": "The format factor of the 'geo_r_paper' composite. 'strict' (default): the 'format' reward's "
            "check, the whole answer contract (think/answer tags, Country/Region/City lines, one pair). 'exact': "
            "the paper's check to the letter, 1 when the completion holds exactly one valid (lat, lon) pair in "
            "parentheses, nothing else required; the distance is then measured from that pair. The 'format' "
            "reward itself stays strict. Which check ran is logged at start-up and on the reward's first call.",
            "choices": list(PAPER_FORMATS),
        },
    )

    def __post_init__(self) -> None:
        """Check every value now, so a bad flag fails before any model is loaded."""
        if self.paper_format not in PAPER_FORMATS:
            raise ValueError(
                f"--paper_format must be one of {', '.join(PAPER_FORMATS)}; got {self.paper_format!r}"
            )
        if self.distance_reward not in DISTANCE_REWARDS:
            raise ValueError(
                f"--distance_reward must be one of {', '.join(DISTANCE_REWARDS)}; got {self.distance_reward!r}"
            )
        if self.unparseable_reward not in UNPARSEABLE_REWARDS:
            raise ValueError(
                f"--unparseable_reward must be one of {', '.join(UNPARSEABLE_REWARDS)}; got {self.unparseable_reward!r}"
            )
        for flag in ("geoscore_scale_km", "anneal_start_km", "anneal_end_km"):
            value = getattr(self, flag)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or value <= 0
            ):
                raise ValueError(f"--{flag} must be a positive number of km, got {value!r}")
        thresholds, rewards = self.threshold_values, self.threshold_reward_values
        if len(thresholds) != len(rewards):
            raise ValueError(
                f"--threshold_km has {len(thresholds)} entries but --threshold_rewards has {len(rewards)}; "
                "give one reward per threshold"
            )
        if thresholds[0] <= 0 or any(b <= a for a, b in zip(thresholds, thresholds[1:], strict=False)):
            raise ValueError(
                f"--threshold_km must be positive and strictly increasing, got {self.threshold_km!r}"
            )
        if any(not 0.0 <= r <= 1.0 for r in rewards) or any(
            b > a for a, b in zip(rewards, rewards[1:], strict=False)
        ):
            raise ValueError(
                f"--threshold_rewards must lie in [0, 1] and never increase, got {self.threshold_rewards!r}"
            )

    @property
    def threshold_values(self) -> tuple[float, ...]:
        """``threshold_km`` as numbers (km)."""
        return _parse_float_list(self.threshold_km, "threshold_km")

    @property
    def threshold_reward_values(self) -> tuple[float, ...]:
        """``threshold_rewards`` as numbers."""
        return _parse_float_list(self.threshold_rewards, "threshold_rewards")
