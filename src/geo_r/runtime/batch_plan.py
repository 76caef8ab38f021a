"""The global batch of a launch, printed by every launcher before torchrun starts, and refused if it cannot work.

``python -m geo_r.runtime.batch_plan grpo NNODES NPROC_PER_NODE -- <trainer flags>`` reads the batch flags the
launcher is about to pass (the last occurrence wins, as in the trainer's own parser), prints the arithmetic
(nodes x processes x per-device x accumulation, prompts per step, generations per prompt) and exits 2 with a
one-line error when TRL would refuse it after minutes of model loading. ``sft`` and ``eval`` print theirs.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

# TRL 1.16 / transformers 5 defaults for the flags a launcher may leave out.
_DEFAULTS = {
    "per_device_train_batch_size": 8,
    "gradient_accumulation_steps": 1,
    "num_generations": 8,
    "batch_size": 16,
}


class BatchPlanError(ValueError):
    """A batch configuration the trainer would refuse; the message says which numbers and how to fix them."""


def flag(args: Sequence[str], name: str, default: int | None = None) -> int | None:
    """The integer value of ``--name`` in ``args`` (last one wins; ``--name=v`` too), or ``default``."""
    value: str | None = None
    for i, arg in enumerate(args):
        if arg in (f"--{name}", f"--{name.replace('_', '-')}") and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith((f"--{name}=", f"--{name.replace('_', '-')}=")):
            value = arg.split("=", 1)[1]
    if value is None:
        return default if default is not None else _DEFAULTS.get(name)
    try:
        number = int(value)
    except ValueError:
        raise BatchPlanError(f"--{name} {value}: expected a whole number") from None
    if number < 1:
        raise BatchPlanError(f"--{name} {value}: must be >= 1")
    return number


def _world(nnodes: int, nproc: int) -> int:
    if nnodes < 1 or nproc < 1:
        raise BatchPlanError(f"NNODES={nnodes} and NPROC_PER_NODE={nproc} must be >= 1")
    return nnodes * nproc


def grpo_plan(nnodes: int, nproc: int, args: Sequence[str]) -> str:
    """GRPO: completions per optimizer step and prompts per generation batch; BatchPlanError if TRL would refuse."""
    world = _world(nnodes, nproc)
    per_device = flag(args, "per_device_train_batch_size")
    accum = flag(args, "gradient_accumulation_steps")
    gens = flag(args, "num_generations")
    spg = flag(args, "steps_per_generation", default=0) or None
    gen_batch = flag(args, "generation_batch_size", default=0) or None
    assert per_device and accum and gens
    step = per_device * world
    if gen_batch is not None and spg is not None:
        raise BatchPlanError("--generation_batch_size and --steps_per_generation: pass one of them")
    if gen_batch is None:
        gen_batch = step * (spg or accum)
    elif gen_batch % step:
        raise BatchPlanError(
            f"--generation_batch_size {gen_batch} is not a multiple of {nnodes} node(s) x {nproc} process(es) x "
            f"{per_device} per device = {step}"
        )
    if gens < 2:
        raise BatchPlanError(f"--num_generations {gens}: GRPO needs >= 2 completions per prompt to compare them")
    if gen_batch % gens:
        hint = gens // _gcd(gens, world * (spg or accum))
        raise BatchPlanError(
            f"the generation batch ({nnodes} node(s) x {nproc} process(es) x {per_device} per device x "
            f"{gen_batch // step} step(s) per generation = {gen_batch} completions) is not divisible by "
            f"--num_generations {gens}: pick --per_device_train_batch_size as a multiple of {hint}, or change "
            "--num_generations / --gradient_accumulation_steps"
        )
    return (
        f"global batch: {nnodes} node(s) x {nproc} process(es) x {per_device} per device x {accum} accumulation = "
        f"{per_device * world * accum} completions per optimizer step; each generation batch of {gen_batch} = "
        f"{gen_batch // gens} prompts x {gens} generations"
    )


def _gcd(a: int, b: int) -> int:
    while b:
        a, b = b, a % b
    return a


def sft_plan(nnodes: int, nproc: int, args: Sequence[str]) -> str:
    """SFT: examples per optimizer step."""
    world = _world(nnodes, nproc)
    per_device = flag(args, "per_device_train_batch_size")
    accum = flag(args, "gradient_accumulation_steps")
    assert per_device and accum
    return (
        f"global batch: {nnodes} node(s) x {nproc} process(es) x {per_device} per device x {accum} accumulation = "
        f"{world * per_device * accum} examples per optimizer step"
    )


def eval_plan(nnodes: int, nproc: int, args: Sequence[str]) -> str:
    """Eval: how the photos are split over ranks and batched."""
    world = _world(nnodes, nproc)
    batch = flag(args, "batch_size")
    return (
        f"eval: {nnodes} node(s) x {nproc} process(es) = {world} rank(s), each takes every {world}th photo not yet "
        f"predicted, {batch} per batch ({world * batch} photos in flight)"
    )


PLANS = {"grpo": grpo_plan, "sft": sft_plan, "eval": eval_plan}


def main(argv: Sequence[str] | None = None) -> int:
    """``batch_plan {grpo,sft,eval} NNODES NPROC_PER_NODE -- FLAGS``: print the plan, or an error and exit 2."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 3 or args[0] not in PLANS:
        print("usage: python -m geo_r.runtime.batch_plan {grpo,sft,eval} NNODES NPROC_PER_NODE -- FLAGS", file=sys.stderr)
        return 2
    kind, nnodes, nproc, rest = args[0], args[1], args[2], args[3:]
    if rest[:1] == ["--"]:
        rest = rest[1:]
    try:
        print(PLANS[kind](int(nnodes), int(nproc), rest))
    except ValueError as exc:
        print(f"Geo-R {kind} launcher: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
