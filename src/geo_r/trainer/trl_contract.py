"""What ``GeoGRPOTrainer`` relies on in TRL, written down and checked: fail closed on a TRL it was not tested with.

``GeoGRPOTrainer`` overrides private hooks of ``trl.GRPOTrainer`` and reads a few of its attributes; the group
filter merges the rollout dict TRL's ``_generate_and_score_completions`` returns, key by key
(:data:`geo_r.trainer.group_filter.ROLLOUT_KEYS`). Another TRL version may rename a hook, change its parameters
or add a rollout key, and such a change would not fail loudly: a hook that is never called again switches a
feature off, an unknown key would be merged wrongly. So importing the trainer checks the TRL version
(:func:`check_trl_version`) and the hooks' signatures (:func:`check_hooks`), and ``tests/test_trl_contract.py``
runs one real rollout and checks the attributes and the rollout's keys.

Override: ``GEO_R_ALLOW_UNTESTED_TRL=1`` lets an untested TRL version import (with a warning), for someone
porting Geo-R to it; the hook signatures are still checked.
"""

from __future__ import annotations

import inspect
import os
import warnings
from typing import Any

TESTED_TRL_VERSIONS = ("1.16.0",)
"""TRL versions GeoGRPOTrainer was tested with (pyproject.toml pins the first)."""
ALLOW_UNTESTED_ENV = "GEO_R_ALLOW_UNTESTED_TRL"
"""Set to 1 to import GeoGRPOTrainer with a TRL version outside :data:`TESTED_TRL_VERSIONS`."""

HOOKS: dict[str, tuple[str, ...]] = {
    "_generate_and_score_completions": ("self", "inputs"),
    "_calculate_rewards": ("self", "inputs", "prompts", "completions", "completion_ids_list"),
    "_get_train_sampler": ("self", "dataset"),
    "log": ("self", "logs", "start_time"),
}
"""The GRPOTrainer methods GeoGRPOTrainer overrides, with the parameters it passes on (in order)."""

ATTRIBUTES = (
    "accelerator", "args", "model", "ref_model", "processing_class", "train_dataset", "eval_dataset", "state",
    "num_generations", "num_generations_eval", "reward_weights", "multi_objective_aggregation", "_metrics",
    "_tokenizer",
)
"""GRPOTrainer attributes GeoGRPOTrainer reads after ``__init__``."""


class UntestedTRLError(ImportError):
    """The installed TRL is not one GeoGRPOTrainer was tested with, or its hooks changed."""


def check_trl_version(version: str | None = None) -> None:
    """Raise :class:`UntestedTRLError` unless ``version`` (default: the installed TRL's) was tested, or the
    override variable is set (then warn)."""
    if version is None:
        import trl

        version = trl.__version__
    if version in TESTED_TRL_VERSIONS:
        return
    message = (
        f"Geo-R's GeoGRPOTrainer subclasses private hooks of trl.GRPOTrainer and was tested with TRL "
        f"{', '.join(TESTED_TRL_VERSIONS)}; this environment has TRL {version}. Install the tested version "
        f"(pip install trl=={TESTED_TRL_VERSIONS[0]}, as setup.sh does), or set {ALLOW_UNTESTED_ENV}=1 to try this "
        "one and run tests/test_trl_contract.py first."
    )
    if os.environ.get(ALLOW_UNTESTED_ENV, "") not in ("", "0"):
        warnings.warn(message, stacklevel=2)
        return
    raise UntestedTRLError(message)


def hook_problems(base: type) -> list[str]:
    """What differs between ``base``'s hooks and :data:`HOOKS` (empty when they match)."""
    problems = []
    for name, params in HOOKS.items():
        method = getattr(base, name, None)
        if method is None:
            problems.append(f"{base.__name__}.{name} no longer exists")
            continue
        found = tuple(inspect.signature(method).parameters)
        if found != params:
            problems.append(f"{base.__name__}.{name}{found} != expected {params}")
    return problems


def check_hooks(base: type) -> None:
    """Raise :class:`UntestedTRLError` naming every hook of ``base`` that was renamed or changed its parameters."""
    problems = hook_problems(base)
    if problems:
        raise UntestedTRLError("GeoGRPOTrainer's TRL hooks changed: " + "; ".join(problems))


def missing_attributes(trainer: Any) -> list[str]:
    """The :data:`ATTRIBUTES` a built trainer lacks."""
    return [name for name in ATTRIBUTES if not hasattr(trainer, name)]
