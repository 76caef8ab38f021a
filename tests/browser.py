"""Headless Chromium for the browser tests: Debian's ``chromium`` driven by Playwright, offline, fresh profile.

A test calls :func:`chromium_page` and gets a Playwright page plus the list of every URL the page requested.
Without Playwright or a Chromium executable the test is skipped with the reason and the install command;
with ``GEO_R_REQUIRE_BROWSER=1`` (set by ``.ci/run``) it fails instead, so CI can never skip them silently.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

# Without these, Chromium tries to reach Google (sync, component updates, QUIC probes) from a fresh profile.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
INSTALL_HINT = "apt-get install -y chromium (Debian/Ubuntu) and pip install playwright (setup.sh does)"


def _unavailable(reason: str) -> None:
    if os.environ.get("GEO_R_REQUIRE_BROWSER") == "1":
        pytest.fail(f"browser tests are required here (GEO_R_REQUIRE_BROWSER=1) but {reason}")
    pytest.skip(f"{reason}; to run the browser tests: {INSTALL_HINT}")


def chromium_executable() -> str | None:
    """``$GEO_R_CHROMIUM``, else ``chromium`` / ``chromium-browser`` on PATH, else None."""
    explicit = os.environ.get("GEO_R_CHROMIUM")
    if explicit:
        return explicit if Path(explicit).is_file() else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


def is_local(url: str) -> bool:
    """True for URLs that never leave this machine (files, inline data, loopback servers)."""
    parsed = urlparse(url)
    if parsed.scheme in ("file", "data", "blob", "about"):
        return True
    return parsed.scheme in ("http", "https", "ws", "wss") and parsed.hostname in ("127.0.0.1", "localhost", "::1")


@contextmanager
def chromium_page(tmp_path: Path, width: int = 1400, height: int = 900) -> Iterator[tuple[Any, list[str]]]:
    """(page, requested URLs) in a fresh headless Chromium profile under ``tmp_path``."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("Playwright is not installed")
    exe = chromium_executable()
    if exe is None:
        _unavailable("no Chromium executable (chromium / chromium-browser on PATH, or GEO_R_CHROMIUM)")
    requested: list[str] = []
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=exe,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": width, "height": height},
        )
        try:
            page = context.pages[0] if context.pages else context.new_page()
            page.on("request", lambda request: requested.append(request.url))
            yield page, requested
        finally:
            context.close()
