"""A reward with variance for training tests: a random tiny model earns 0 from every geographic reward, so
all advantages would be 0 and no weight would move. Used only by tests, loaded as ``file.py:function``."""

from __future__ import annotations


def length_reward(prompts, completions, completion_ids=None, **kwargs) -> list[float]:
    """Longer completions score higher (0..1): enough variance inside a group to give non-zero advantages."""
    out = []
    for c in completions:
        text = c if isinstance(c, str) else c[-1]["content"]
        out.append(min(len(text) / 100.0, 1.0))
    return out
