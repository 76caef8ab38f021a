"""Retake the README's two screenshots: ``geo-r app`` answering a held-out photo, and ``explorer.html``.

Run from the repository root after ``geo-r demo`` (uses its model, held-out photos and evaluation):

  python docs/images/screenshots.py [--stage grpo] [--photo N]

Needs Chromium (``apt-get install chromium``) and Playwright; writes docs/images/app.png and explorer.png as
256-colour PNGs so they stay small.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
OUT = Path(__file__).resolve().parent


def _save_small(png: Path, dest: Path) -> None:
    from PIL import Image

    with Image.open(png) as img:
        img.convert("RGB").quantize(colors=256, dither=Image.Dither.NONE).save(dest, optimize=True)
    print(f"wrote {dest} ({dest.stat().st_size // 1024} KB)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage", default="grpo", help="demo stage whose model and evaluation to show")
    parser.add_argument("--photo", type=int, default=0, help="which gallery example the app answers")
    parser.add_argument("--demo_dir", default="outputs/demo_full")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    demo = Path(args.demo_dir)
    port = _free_port()
    app = subprocess.Popen([sys.executable, "-m", "geo_r.cli", "app", "--model_name_or_path",
                            str(demo / args.stage), "--port", str(port), "--max_new_tokens", "96",
                            "--max_pixels", "12544"])
    try:
        with tempfile.TemporaryDirectory() as tmp, sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 820})
            requested: list[str] = []
            page.on("request", lambda r: requested.append(r.url))
            page.goto((demo / "eval" / args.stage / "explorer.html").resolve().as_uri())
            page.wait_for_selector("body[data-ready='1']")
            page.click("#head button[data-key='km']")
            page.click("#spacer .row >> nth=2")
            page.screenshot(path=f"{tmp}/explorer.png")
            outside = [u for u in requested if not u.startswith(("file:", "data:"))]
            print(f"explorer.html: {len(requested)} requests, {len(outside)} outside the file: {outside[:3]}")
            _save_small(Path(f"{tmp}/explorer.png"), OUT / "explorer.png")

            for _ in range(600):
                with socket.socket() as s:
                    if s.connect_ex(("127.0.0.1", port)) == 0:
                        break
                time.sleep(0.5)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"http://127.0.0.1:{port}/")
            page.click(f"#geo-r-examples button.thumbnail-item >> nth={args.photo}")
            page.wait_for_function("() => document.querySelector('#geo-r-status').innerText.includes('Done')",
                                   timeout=300_000)
            page.screenshot(path=f"{tmp}/app.png", full_page=True)
            _save_small(Path(f"{tmp}/app.png"), OUT / "app.png")
            browser.close()
    finally:
        app.terminate()
        app.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
