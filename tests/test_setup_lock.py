"""setup.sh installs the CPU stack from the committed constraints file (``--no-lock`` opts out), and that file
pins every package geo-r[dev] needs, so a fresh machine gets the versions the README's numbers came from."""

from __future__ import annotations

import importlib.metadata as md
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LOCK = REPO / "local_scripts" / "constraints-cpu.txt"


def _fake_venv(tmp_path: Path) -> tuple[Path, Path]:
    """A venv whose python only records its arguments (pip calls) and succeeds: setup.sh runs in a second."""
    venv, calls = tmp_path / "venv", tmp_path / "calls.txt"
    (venv / "bin").mkdir(parents=True)
    py = venv / "bin" / "python"
    py.write_text(f'#!/usr/bin/env bash\nprintf "%s " "$@" >> "{calls}"\necho >> "{calls}"\n', encoding="utf-8")
    py.chmod(py.stat().st_mode | stat.S_IEXEC)
    return venv, calls


def _pip_calls(tmp_path: Path, *flags: str) -> list[str]:
    venv, calls = _fake_venv(tmp_path)
    env = {**os.environ, "VIRTUAL_ENV": str(venv), "CONDA_PREFIX": ""}
    proc = subprocess.run(["bash", str(REPO / "setup.sh"), *flags], env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    return [line for line in calls.read_text(encoding="utf-8").splitlines() if "pip install" in line]


def test_setup_installs_the_cpu_stack_from_the_lock_unless_no_lock(tmp_path: Path) -> None:
    locked = _pip_calls(tmp_path / "a")
    assert len(locked) == 2 and all(f"-c {LOCK}" in call for call in locked), locked
    free = _pip_calls(tmp_path / "b", "--no-lock")
    assert len(free) == 2 and not any("-c " in call for call in free), free
    help_text = subprocess.run(["bash", str(REPO / "setup.sh"), "--help"], capture_output=True, text=True).stdout
    assert "--no-lock" in help_text and "constraints-cpu.txt" in help_text


def _pins() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


def test_the_lock_pins_every_package_geo_r_dev_needs() -> None:
    sys.path.insert(0, str(REPO / "local_scripts"))
    try:
        from freeze_constraints import closure
    finally:
        sys.path.pop(0)
    try:
        needed = closure("geo-r", {"dev"})
    except SystemExit as exc:  # an environment without the dev tools cannot check the closure
        pytest.skip(str(exc))
    pins = _pins()
    assert "geo-r" not in pins and pins["torch"] == "2.13.0" and "pillow" in pins
    missing = sorted(set(needed) - set(pins))
    assert not missing, f"not pinned in {LOCK.name} (run local_scripts/update_constraints.sh): {missing}"
    # the pins are the versions pyproject.toml's own exact pins ask for
    requires = md.requires("geo-r") or []
    for exact in ("transformers", "trl", "peft", "accelerate", "datasets", "deepspeed"):
        spec = next(r for r in requires if r.lower().startswith(exact + "=="))
        assert pins[exact] == spec.split("==")[1].split(";")[0].strip(), exact
