"""Shared by the dashboard's browser tests: a demo server, a headless Chromium (Debian's,
driven by Playwright), API calls and page loads."""

from __future__ import annotations

import datetime as dt
import os
import time

import pytest
import requests

from harness import REPO_ROOT

playwright = pytest.importorskip("playwright.sync_api")

CHROMIUM = os.environ.get("LODESTAR_CHROMIUM", "/usr/bin/chromium")
SHOTS = REPO_ROOT / "docs" / "screenshots"
# Flags for a sandboxed machine without a network (see the install script).
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def demo(make_server):
    srv = make_server(start=False)
    srv.ws.cli("demo", "--users", "600", "--days", "200", "--no-serve", timeout=600)
    srv.start()
    return srv


@pytest.fixture
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"no Chromium at {CHROMIUM}: run scripts/install-test-deps.sh")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


def api(srv, path, body=None):
    url = f"{srv.url}{path}"
    r = requests.post(url, json=body, timeout=60) if body is not None else requests.get(url, timeout=60)
    assert r.ok, r.text
    return r.json()


def open_page(page, srv, route, ready):
    started = time.monotonic()
    page.goto(f"{srv.url}/#/{route}")
    page.wait_for_selector(f"body[data-ready={ready}]", timeout=30_000)
    return time.monotonic() - started




def english_page(browser):
    """A laptop-sized page in English and the light theme, and the list its script errors
    go to."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    page = browser.new_page(viewport={"width": 1366, "height": 900})
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.add_init_script("localStorage.setItem('lodestar.lang', 'en'); localStorage.setItem('lodestar.theme', 'light')")
    return page, errors


def last_90_days():
    """The dashboard's default range: the 90 days up to yesterday (UTC)."""
    to = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1)).date()
    return to - dt.timedelta(days=89), to
