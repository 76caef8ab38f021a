"""DeepSpeed ZeRO-3 on CPU needs g++ (DeepSpeed compiles its CPU communication op on first use).

Tests that run ZeRO-3 call :func:`require_zero3_on_cpu` first. Without g++ they are skipped with the reason; with
``GEO_R_REQUIRE_ZERO3=1`` (set by ``.ci/run`` and the gpu tier of ``run_tests.sh``) they fail instead, so CI can never
skip them silently, as ``GEO_R_REQUIRE_BROWSER`` does for the browser tests.
"""

from __future__ import annotations

import os
import shutil

import pytest

REQUIRE_ENV = "GEO_R_REQUIRE_ZERO3"


def require_zero3_on_cpu() -> None:
    """Skip the calling test (fail it under ``GEO_R_REQUIRE_ZERO3=1``) when g++ is missing."""
    if shutil.which("g++") is not None:
        return
    reason = "g++ is missing, and DeepSpeed compiles its CPU comm op with it on first use (apt-get install g++)"
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"ZeRO-3 tests are required here ({REQUIRE_ENV}=1) but {reason}")
    pytest.skip(reason)


@pytest.fixture
def zero3_on_cpu() -> None:
    """Fixture form of :func:`require_zero3_on_cpu`."""
    require_zero3_on_cpu()
