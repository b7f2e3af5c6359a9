"""Screenshot of the web page answering a question, for the docs.

    python -m service.screenshot --url http://127.0.0.1:8000 --question "..." --output docs/web-page.png [--upload FILE]

With ``--upload``, the file is first uploaded through the page's upload area and indexed.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"  # Debian's
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default="http://127.0.0.1:8000")
    ap.add_argument("--question", default="How often should I water a snake plant in winter?")
    ap.add_argument("--key", default="")
    ap.add_argument("--output", type=Path, default=Path("docs/web-page.png"))
    ap.add_argument("--chromium", default=CHROMIUM)
    ap.add_argument("--upload", type=Path, help="a file to upload (and wait for) before asking")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:  # Playwright gives the browser a fresh profile
        browser = p.chromium.launch(executable_path=args.chromium, args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 760})
        page.goto(args.url)
        if args.upload:
            page.set_input_files("#files", str(args.upload))
            page.wait_for_selector("#uploads .state.done, #uploads .state.error", timeout=600_000)
            page.wait_for_timeout(1500)  # the searcher moves to the new generation within a second
        page.fill("#q", args.question)
        if args.key:
            page.fill("#key", args.key)
        page.click("#go")
        page.wait_for_selector(".passage", timeout=300_000)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(args.output), full_page=True)
        browser.close()


if __name__ == "__main__":
    main()
