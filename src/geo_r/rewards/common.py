"""Helpers every reward shares: completion text, dataset columns, safe numbers, and the never-raise guard.

TRL calls ``fn(prompts=..., completions=..., completion_ids=..., **columns, trainer_state=...,
log_metric=..., log_extra=...)``. Completions are strings or ``[{"role": "assistant", "content": ...}]``;
columns arrive as one list per dataset column, and any of them may be missing or hold None. These
helpers turn that into plain values, and :func:`safe_reward` guarantees one finite value (or None) per
completion whatever happens inside.
"""

from __future__ import annotations

import functools
import logging
import math
import numbers
from collections.abc import Callable, Mapping
from typing import Any

logger = logging.getLogger(__name__)

RewardFunc = Callable[..., list[float | None]]
"""TRL's reward contract: ``fn(prompts, completions, completion_ids=None, **kwargs) -> list[float | None]``."""

SAFE_VALUE = 0.0
_MAX_NUMBER_CHARS = 64
_warned: set[tuple[str, str]] = set()


def warn_once(key: str, kind: str, message: str, *, exc_info: bool = False) -> None:
    """Log ``message`` as a warning the first time this (key, kind) is seen in the process, then stay quiet."""
    if (key, kind) in _warned:
        return
    _warned.add((key, kind))
    logger.warning(message, exc_info=exc_info)


def completion_text(completion: Any) -> str:
    """The text of one completion: a string as is; conversational messages -> the last message's text.

    Content given as blocks (``[{"type": "text", "text": ...}, ...]``) is joined; anything else gives "".
    """
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Mapping):
        completion = [completion]
    if isinstance(completion, list | tuple) and completion:
        message = completion[-1]
        content = message.get("content") if isinstance(message, Mapping) else message
        if isinstance(content, str):
            return content
        if isinstance(content, list | tuple):
            parts = []
            for block in content:
                if isinstance(block, str):
                    parts.append(block)
                elif isinstance(block, Mapping) and isinstance(block.get("text"), str):
                    parts.append(block["text"])
            return "".join(parts)
    return ""


def column(kwargs: Mapping[str, Any], name: str, n: int) -> list[Any]:
    """Dataset column ``name`` as a list of length ``n``; ``[None] * n`` when it is missing or malformed.

    A column of the wrong length (a plumbing bug upstream) is reported once and treated as missing, so a
    reward scores nothing against misaligned truth.
    """
    values = kwargs.get(name)
    if values is None:
        return [None] * n
    if (
        isinstance(values, str | bytes)
        or not hasattr(values, "__len__")
        or not hasattr(values, "__getitem__")
    ):
        warn_once(
            name, "column-type", f"reward column {name!r} is a {type(values).__name__}, not a list; ignored"
        )
        return [None] * n
    if len(values) != n:
        warn_once(
            name,
            "column-len",
            f"reward column {name!r} has {len(values)} values for {n} completions; ignored",
        )
        return [None] * n
    return list(values)


def to_float(value: Any) -> float | None:
    """A finite float from a number or numeric string (``"48.85"``); None for bool, NaN, inf, junk or None.

    Booleans are rejected on purpose: Geo-R's released reward read ``[True, False]`` as coordinates (1, 0).
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str | bytes):
        text = value.strip()
        if not text or len(text) > _MAX_NUMBER_CHARS:
            return None
        try:
            number = float(text)
        except ValueError:
            return None
    elif isinstance(value, numbers.Real):
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):
            return None
    else:
        if getattr(value, "ndim", None) != 0 or getattr(getattr(value, "dtype", None), "kind", None) not in (
            "i",
            "u",
            "f",
        ):
            return None  # only 0-d numeric arrays / tensors, never containers or numpy bools
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):
            return None
    return number if math.isfinite(number) else None


def true_coordinates(lat: Any, lon: Any) -> tuple[float, float] | None:
    """Ground-truth (lat, lon) as finite floats in range, or None when either is missing or invalid."""
    la, lo = to_float(lat), to_float(lon)
    if la is None or lo is None or not (-90.0 <= la <= 90.0 and -180.0 <= lo <= 180.0):
        return None
    return la, lo


def training_progress(trainer_state: Any) -> float:
    """Fraction of training done, ``global_step / max_steps`` clipped to [0, 1]; 0.0 when unknown."""
    step = to_float(getattr(trainer_state, "global_step", None))
    total = to_float(getattr(trainer_state, "max_steps", None))
    if step is None or total is None or total <= 0:
        return 0.0
    return min(1.0, max(0.0, step / total))


def log_metric(kwargs: Mapping[str, Any], name: str, value: float) -> None:
    """Send a scalar through TRL's ``log_metric`` callback when one was passed; a failing callback is reported once."""
    callback = kwargs.get("log_metric")
    if not callable(callback):
        return
    try:
        callback(name, float(value))
    except Exception:
        warn_once(name, "log-metric", f"log_metric({name!r}) failed; metric not logged", exc_info=True)


def _batch_size(prompts: Any, completions: Any) -> int:
    for batch in (completions, prompts):
        try:
            return len(batch)
        except TypeError:
            continue
    return 0


def sanitize(value: Any, name: str) -> float | None:
    """None stays None; a finite number becomes a float; anything else (NaN, inf, junk) the safe value 0.0."""
    if value is None:
        return None
    number = to_float(value) if not isinstance(value, str | bytes) else None
    if number is None:
        warn_once(name, "bad-value", f"reward {name!r} produced {value!r}; replaced by {SAFE_VALUE}")
        return SAFE_VALUE
    return number


def safe_reward(fn: RewardFunc, name: str) -> RewardFunc:
    """Wrap a reward so it never raises and returns exactly one finite float or None per completion.

    An exception, a result of the wrong length or a non-list result gives ``[0.0] * n`` and one warning
    per reward and kind of failure (a bug to fix, but never a crashed training run); NaN or inf values become
    0.0. The wrapper is named ``name``: TRL logs each reward as ``rewards/<__name__>/mean``.
    """

    @functools.wraps(fn)
    def reward(
        prompts: Any = None, completions: Any = None, completion_ids: Any = None, **kwargs: Any
    ) -> list[float | None]:
        n = _batch_size(prompts, completions)
        try:
            out = fn(prompts=prompts, completions=completions, completion_ids=completion_ids, **kwargs)
        except Exception as exc:
            warn_once(
                name,
                "raised",
                f"reward {name!r} raised {type(exc).__name__}: {exc}; returning {SAFE_VALUE}",
                exc_info=True,
            )
            return [SAFE_VALUE] * n
        if not isinstance(out, list | tuple) or len(out) != n:
            size = len(out) if isinstance(out, list | tuple) else type(out).__name__
            warn_once(
                name,
                "shape",
                f"reward {name!r} returned {size} values for {n} completions; returning {SAFE_VALUE}",
            )
            return [SAFE_VALUE] * n
        return [sanitize(v, name) for v in out]

    reward.__name__ = name
    reward.__qualname__ = name
    return reward
