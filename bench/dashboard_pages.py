"""Opens every dashboard page in Debian's Chromium (Playwright) and reports how long each
takes to be ready: from the start of navigation until the page has fetched its data and drawn
its charts, as the page itself records it (`body[data-ready-ms]`, from `performance.now()`;
the wall time seen by this script adds Playwright's polling). Runs each page RUNS times and
prints the median.

usage: python3 bench/dashboard_pages.py URL PROJECT [RUNS=3]
"""

from __future__ import annotations

import datetime as dt
import statistics
import sys
import time

from playwright.sync_api import sync_playwright

FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def main() -> None:
    url, project = sys.argv[1], sys.argv[2]
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    to = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1)).date()
    frm = to - dt.timedelta(days=89)
    q = f"project={project}&from={frm}&to={to}"
    pages = [
        ("overview", f"overview?{q}", "overview"),
        ("users (a profile)", f"users?project={project}&q=u1", "users"),
        ("funnel", f"analyses/funnel?{q}", "analyses"),
        ("retention", f"analyses/retention?{q}", "analyses"),
        ("rfm", f"analyses/rfm_grid?{q}", "analyses"),
        ("clv", f"analyses/clv?{q}", "analyses"),
        ("paths", f"analyses/paths?{q}", "analyses"),
        ("stickiness", f"analyses/stickiness?{q}", "analyses"),
        ("nps", f"analyses/nps?{q}", "analyses"),
        ("kfactor", f"analyses/kfactor?{q}", "analyses"),
        ("trends", f"analyses/trends?{q}", "analyses"),
        ("segments", f"segments?project={project}", "segments"),
        ("settings", f"settings?project={project}", "settings"),
    ]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
        page = browser.new_page(viewport={"width": 1366, "height": 900})
        page.goto(f"{url}/#/settings?project={project}")
        page.wait_for_selector("body[data-ready=settings]", timeout=60_000)
        print(f"{'page':<20} median s  (runs)")
        for name, route, ready in pages:
            took = []
            for _ in range(runs):
                page.goto("about:blank")
                started = time.monotonic()
                page.goto(f"{url}/#/{route}")
                page.wait_for_selector(f"body[data-ready={ready}]", timeout=120_000)
                wall = time.monotonic() - started
                took.append(int(page.get_attribute("body", "data-ready-ms")) / 1000)
                assert took[-1] <= wall + 0.05, (took[-1], wall)
                assert not page.is_visible("#error"), page.inner_text("#error")
            print(f"{name:<20} {statistics.median(took):.3f}    ({', '.join(f'{t:.3f}' for t in took)})")
        browser.close()


if __name__ == "__main__":
    main()
