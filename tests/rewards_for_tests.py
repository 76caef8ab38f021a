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


def record_prompts(prompts, completions, completion_ids=None, **kwargs) -> list[float]:
    """Append ``{"step", "rank", "pid", "ids"}`` for this batch to ``$GEO_R_TEST_PROMPT_LOG``, score 0.

    Lets the resume tests compare the photos each step trained on with those of an uninterrupted run, and find
    a rank's process. ``$GEO_R_TEST_STEP_DELAY`` seconds of sleep per step after the first checkpoint give a test
    time to interrupt a run mid-way.
    """
    import json
    import os
    import time

    path = os.environ.get("GEO_R_TEST_PROMPT_LOG")
    state = kwargs.get("trainer_state")
    if path and state is not None and state.global_step is not None:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"step": state.global_step + 1, "rank": int(os.environ.get("RANK", "0")),
                                 "pid": os.getpid(), "ids": list(kwargs.get("id") or [])}) + "\n")
        if state.global_step >= 2:
            time.sleep(float(os.environ.get("GEO_R_TEST_STEP_DELAY", "0")))
    return [0.0] * len(completions)


def southern_flat_reward(prompts, completions, completion_ids=None, lat=None, **kwargs) -> list[float]:
    """0 for every completion of a photo south of the equator (a group with zero reward spread), else the length
    reward: the group filter tests drop the southern groups and keep the northern ones."""
    lengths = length_reward(prompts, completions)
    lats = lat or [None] * len(lengths)
    return [0.0 if la is not None and float(la) < 0 else r for la, r in zip(lats, lengths, strict=True)]


def position_reward(prompts, completions, completion_ids=None, **kwargs) -> list[float]:
    """A different reward for every row of a batch (no group is ever flat), for the filter-on = filter-off test."""
    return [float(i % 7) for i in range(len(completions))]


def record_completion_ids(prompts, completions, completion_ids=None, lat=None, **kwargs) -> list[float]:
    """:func:`southern_flat_reward`'s scores; also appends each completion's token ids (one JSON list a line) to
    ``$GEO_R_TEST_COMPLETION_LOG``, so a test can check what the rollout engine really generated."""
    import json
    import os

    path = os.environ.get("GEO_R_TEST_COMPLETION_LOG")
    if path and completion_ids is not None:
        with open(path, "a", encoding="utf-8") as fh:
            for ids in completion_ids:
                fh.write(json.dumps([int(t) for t in ids]) + "\n")
    return southern_flat_reward(prompts, completions, completion_ids, lat=lat, **kwargs)
