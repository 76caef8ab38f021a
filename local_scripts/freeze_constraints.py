"""Write the pip constraints file of the CPU stack: every distribution geo-r[dev] needs, transitively, pinned
to the version installed in this environment (geo-r itself left out).

    python local_scripts/freeze_constraints.py [--extras dev] [--out local_scripts/constraints-cpu.txt]

Only the requirement closure of geo-r is written, so packages installed beside it by hand (a UI, a browser
driver) never enter the lock. A local version label (``torch 2.13.0+cpu``) is dropped, so the pin accepts
the CPU wheel and PyPI's build alike, as setup.sh's own ``torch==2.13.0`` does.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import re
import sys
from pathlib import Path

from packaging.requirements import Requirement


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(root: str, extras: set[str]) -> dict[str, str]:
    """Normalised name -> installed version of every distribution ``root[extras]`` needs (``root`` excluded)."""
    pins: dict[str, str] = {}
    todo: list[tuple[str, set[str]]] = [(root, extras)]
    seen: set[tuple[str, frozenset[str]]] = set()
    while todo:
        name, wanted = todo.pop()
        key = (_norm(name), frozenset(wanted))
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            raise SystemExit(f"freeze_constraints: {name} is required but not installed in {sys.prefix}") from None
        if _norm(name) != _norm(root):
            pins[_norm(name)] = dist.version.split("+", 1)[0]
        for line in dist.requires or []:
            req = Requirement(line)
            envs = [{"extra": e} for e in wanted] or [{"extra": ""}]
            if req.marker is not None and not any(req.marker.evaluate(env) for env in envs):
                continue
            todo.append((req.name, set(req.extras)))
    return pins


def main(argv: list[str] | None = None) -> int:
    """Write the constraints file and say how many pins it holds."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default="geo-r", help="the distribution whose closure is pinned (default geo-r)")
    parser.add_argument("--extras", default="dev", help="comma-separated extras of the root (default: dev)")
    parser.add_argument("--out", default=str(Path(__file__).with_name("constraints-cpu.txt")))
    args = parser.parse_args(argv)
    extras = {e.strip() for e in args.extras.split(",") if e.strip()}
    pins = closure(args.root, extras)
    header = [
        "# Geo-R CPU stack: every package geo-r[" + ",".join(sorted(extras)) + "] needs, pinned as measured.",
        "# setup.sh installs with '-c' this file (bash setup.sh --no-lock to resolve freshly instead).",
        "# Regenerate: bash local_scripts/update_constraints.sh (a fresh venv; do not edit by hand).",
        f"# Python {sys.version.split()[0]} on {sys.platform}.",
    ]
    lines = [f"{name}=={version}" for name, version in sorted(pins.items())]
    Path(args.out).write_text("\n".join(header + lines) + "\n", encoding="utf-8")
    print(f"wrote {len(lines)} pins to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
