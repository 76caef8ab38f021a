"""The one reward registry: names (and aliases) -> factories that build TRL reward functions from settings.

A reward module registers a factory ``factory(args: RewardArguments) -> RewardFunc`` with
``@register("name", "alias", ...)``. :data:`REWARD_FUNCS` holds every name built with default settings;
:func:`get_reward_funcs` builds the selected ones from the run's :class:`RewardArguments`. Every built
function is wrapped by :func:`~geo_r.rewards.common.safe_reward` and named after its canonical name, which
is what TRL logs (``rewards/distance/mean`` whether the run asked for ``distance`` or ``accuracy``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from geo_r.rewards.args import RewardArguments
from geo_r.rewards.common import RewardFunc, safe_reward
from geo_r.rewards.custom import is_custom_reward_spec, load_custom_reward

RewardFactory = Callable[[RewardArguments], RewardFunc]

_FACTORIES: dict[str, RewardFactory] = {}
_ALIASES: dict[str, str] = {}  # alias -> canonical name (canonical names map to themselves)
REWARD_FUNCS: dict[str, RewardFunc] = {}
"""Name or alias -> the reward built with default :class:`RewardArguments` (aliases share one function)."""

_USE_INSTEAD = "use 'distance' (with --distance_reward), 'region' and 'format'"
REFUSED_REWARDS: dict[str, str] = {
    "length": "VLM-R1's cosine length reward scores answer length, not location (and per VLM-R1 issue #247 it "
    "always takes its 'correct' branch); bound length with --max_completion_length",
    "cosine": "a cosine length schedule scores answer length, not location; bound length with "
    "--max_completion_length",
    "repetition": "VLM-R1's repetition penalty counts repeated n-grams of bounding-box lists or words; a "
    "geolocation answer is four short lines",
    "repetition_penalty": "a repetition penalty targets long free text; a geolocation answer is four short lines",
    "iou": "IoU scores bounding boxes (referring expression comprehension); a photo has no box to locate",
    "map": "COCO mAP scores object detection boxes, not coordinates",
    "od_ap": "COCO mAP scores object detection boxes, not coordinates",
    "od_ap50": "COCO mAP@50 scores object detection boxes, not coordinates",
    "odlength": "VLM-R1's detection mAP with a box-count penalty scores boxes, not coordinates",
    "weighted_sum": "VLM-R1's detection score matches boxes by IoU, not coordinates",
    "mcq": "multiple-choice letter matching has no meaning for free coordinates",
    "yes_no": "yes/no matching has no meaning for coordinates",
    "math": "math-verify reads only the last number of '[lat, lon]' (so any answer ending in the right "
    "longitude scored 1.0 in VLM-R1)",
    "ocr": "OCR edit distance compares text transcriptions, not places",
    "llm": "an LLM judge is networked and nondeterministic; Geo-R's rewards run offline",
    "default": "VLM-R1's default accuracy falls back to Levenshtein similarity of the coordinate text (0.2-0.8 "
    "for wrong coordinates)",
    "tag_count": "open-r1's tag count rewards partial tags; 'format' checks the whole answer contract",
    "reasoning_steps": "open-r1's step counter rewards 'Step 1:' style text, not location",
    "soft_overlong_punishment": "length shaping belongs to --max_completion_length / TRL's loss settings",
}
"""VLM-R1 / open-r1 reward names refused by name, with why (each message ends with what to use instead)."""


def _key(name: str) -> str:
    return name.strip().lower()


def register(name: str, *aliases: str) -> Callable[[RewardFactory], RewardFactory]:
    """Class the decorated factory under ``name`` (and ``aliases``) and add its default build to REWARD_FUNCS.

    Names are case-insensitive and must be new; the factory is returned unchanged.
    """
    canonical = _key(name)

    def decorator(factory: RewardFactory) -> RewardFactory:
        for key in (canonical, *map(_key, aliases)):
            if not re.fullmatch(r"[a-z][a-z0-9_]*", key):
                raise ValueError(f"reward name {key!r} must be lowercase letters, digits and '_'")
            if key in _ALIASES or key in REFUSED_REWARDS:
                raise ValueError(f"reward name {key!r} is already taken")
        _FACTORIES[canonical] = factory
        _ALIASES[canonical] = canonical
        for alias in map(_key, aliases):
            _ALIASES[alias] = canonical
        built = build_reward(canonical, RewardArguments())
        REWARD_FUNCS[canonical] = built
        for alias in map(_key, aliases):
            REWARD_FUNCS[alias] = built
        return factory

    return decorator


def canonical_name(name: str) -> str:
    """The canonical reward name for a name or alias (``accuracy`` -> ``distance``); ValueError if unknown."""
    key = _key(name)
    if key in _ALIASES:
        return _ALIASES[key]
    if key in REFUSED_REWARDS:
        raise ValueError(
            f"reward {name!r} (from VLM-R1 / open-r1) does not apply to geolocation: {REFUSED_REWARDS[key]}. "
            f"Instead {_USE_INSTEAD}. {_valid_names_sentence()}"
        )
    raise ValueError(f"unknown reward {name!r}. {_valid_names_sentence()}")


def _valid_names_sentence() -> str:
    parts = []
    for canonical in sorted(_FACTORIES):
        aliases = sorted(a for a, c in _ALIASES.items() if c == canonical and a != canonical)
        parts.append(f"{canonical} (aliases: {', '.join(aliases)})" if aliases else canonical)
    return f"Valid rewards: {', '.join(parts)}."


def build_reward(name: str, args: RewardArguments | None = None) -> RewardFunc:
    """Build one reward by name or alias from ``args``, wrapped to never raise and named canonically."""
    canonical = canonical_name(name)
    fn = _FACTORIES[canonical](args if args is not None else RewardArguments())
    return safe_reward(fn, canonical)


def get_reward_funcs(names: Sequence[str] | str, args: RewardArguments | None = None) -> list[RewardFunc]:
    """The reward functions for ``names`` (canonical names or aliases), built from ``args``, in order.

    Strings are split on commas and spaces (``"format,distance"`` or ``["format,distance"]``). A
    ``path/file.py:function`` or ``package.module:function`` entry loads a user reward
    (:mod:`geo_r.rewards.custom`), wrapped by the same never-raise guard and named after its function. Unknown names raise ValueError listing the valid ones;
    VLM-R1 names that make no sense here (``length``, ``iou``, ...) raise with the reason; asking for one
    reward twice (``distance accuracy``) raises, since TRL would log both under one key.
    """
    if isinstance(names, str):
        names = [names]
    names = [
        part
        for name in names
        for part in (re.split(r"[\s,]+", name) if isinstance(name, str) else [name])
        if part != ""
    ]
    if not names:
        raise ValueError(f"no reward functions given. {_valid_names_sentence()}")
    args = args if args is not None else RewardArguments()
    funcs: list[RewardFunc] = []
    for name in names:
        if not isinstance(name, str):
            raise ValueError(f"reward names must be strings, got {name!r}")
        if is_custom_reward_spec(name):
            user_fn = load_custom_reward(name)
            func = safe_reward(user_fn, getattr(user_fn, "__name__", name.rpartition(":")[2]))
        else:
            func = build_reward(name, args)
        if any(f.__name__ == func.__name__ for f in funcs):
            raise ValueError(
                f"reward {func.__name__!r} is selected twice (as {name!r}); list each reward once"
            )
        funcs.append(func)
    return funcs
