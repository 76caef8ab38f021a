"""User reward functions named on the command line as ``path/to/file.py:function`` or ``package.module:function``.

A researcher can try a new reward without editing the package: ``--reward_funcs format my_rewards.py:coast``.
The function must follow TRL's contract ``fn(prompts, completions, completion_ids, **kwargs) -> list[float|None]``;
it is logged as ``rewards/<function name>/mean``. The file is imported as a module (never evaluated as text).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


def is_custom_reward_spec(name: str) -> bool:
    """True for ``something:function`` (a file path or a dotted module, then a function name)."""
    head, sep, tail = name.rpartition(":")
    return bool(sep and head and tail.isidentifier())


def load_custom_reward(spec: str) -> Callable[..., list[Any]]:
    """Import the function named by ``spec``; a clear error says what is missing."""
    target, _, func_name = spec.rpartition(":")
    if target.endswith(".py"):
        path = Path(target)
        if not path.is_file():
            raise FileNotFoundError(f"--reward_funcs {spec}: no such file {path}")
        module_name = f"geo_r_custom_reward_{path.stem}"
        module_spec = importlib.util.spec_from_file_location(module_name, path)
        if module_spec is None or module_spec.loader is None:
            raise ImportError(f"--reward_funcs {spec}: cannot import {path}")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[module_name] = module
        module_spec.loader.exec_module(module)
    else:
        module = importlib.import_module(target)
    func = getattr(module, func_name, None)
    if not callable(func):
        raise AttributeError(f"--reward_funcs {spec}: {target} has no function {func_name!r}")
    return func
