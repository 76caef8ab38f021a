"""In CI a ZeRO-3 or browser test can fail but never skip: the skips turn into failures under the GEO_R_REQUIRE_*
flags that .ci/run and the gpu tier of run_tests.sh set."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import zero3_cpu

REPO = Path(__file__).resolve().parents[1]


def test_zero3_tests_skip_without_gxx_but_fail_when_required(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.delenv(zero3_cpu.REQUIRE_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match="g\\+\\+ is missing"):
        zero3_cpu.require_zero3_on_cpu()
    monkeypatch.setenv(zero3_cpu.REQUIRE_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match="GEO_R_REQUIRE_ZERO3=1"):
        zero3_cpu.require_zero3_on_cpu()


def test_every_zero3_test_goes_through_the_requirement():
    """A ZeRO-3 test guarded by a plain skipif would skip in CI too."""
    needle = 'shutil.which("g' + '++")'  # split so that this file does not match itself
    for path in sorted((REPO / "tests").glob("test_*.py")):
        assert needle not in path.read_text(), f"{path.name}: use zero3_on_cpu / require_zero3_on_cpu"


def test_ci_and_the_gpu_tier_require_zero3_and_the_browser():
    ci = (REPO / ".ci" / "run").read_text()
    assert "export GEO_R_REQUIRE_ZERO3=1" in ci and "export GEO_R_REQUIRE_BROWSER=1" in ci
    tiers = (REPO / "run_scripts" / "run_tests.sh").read_text()
    assert "GEO_R_REQUIRE_GPU_STACK=1 GEO_R_REQUIRE_ZERO3=1" in tiers
