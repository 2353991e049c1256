"""The dashboard in a real headless Chromium (Debian's, driven by Playwright) against a server
with demo data: each page renders its charts with the numbers the API gives, a profile opens
from a search, the language switches. The screenshots it takes go to docs/screenshots/."""

from __future__ import annotations

import datetime as dt
import json

import requests

from dashboard import SHOTS, api, browser, demo, open_page  # noqa: F401 (fixtures)


def test_pages_show_the_apis_numbers_in_both_languages(demo, browser):
    SHOTS.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    page = browser.new_page(viewport={"width": 1366, "height": 900})
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.add_init_script("localStorage.setItem('lodestar.lang', 'en'); localStorage.setItem('lodestar.theme', 'light')")
    to = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1)).date()
    frm = to - dt.timedelta(days=89)
    route = f"overview?project=demo&from={frm}&to={to}"

    # Overview: every stage count and the revenue equal the API's.
    took = open_page(page, demo, route, "overview")
    assert not page.is_visible("#error"), page.inner_text("#error")
    stages = api(demo, "/api/projects/demo/analyses/stages",
                 {"date_from": str(frm), "date_to": str(to), "interval": "month"})
    last = stages["points"][-1]["counts"]
    for (key, _zh), count in zip(stages["stages"], last):
        shown = page.inner_text(f"[data-testid=kpi-{key}] .value")
        assert int(shown.replace(",", "")) == count, (key, shown, count)
    revenue = api(demo, "/api/projects/demo/analyses/trends",
                  {"series": [{"event": "Order Completed", "math": "sum"}], "date_from": str(frm),
                   "date_to": str(to), "interval": "week"})
    shown = float(page.inner_text("[data-testid=kpi-revenue] .value").replace(",", ""))
    assert abs(shown - revenue["series"][0]["total"]) < 0.01
    # Four charts, each drawn (ECharts draws on a canvas).
    assert page.locator(".chart canvas").count() >= 6
    # The North Star chart: the API's weekly values.
    star = api(demo, "/api/projects/demo/analyses/north_star",
               {"date_from": str(frm), "date_to": str(to), "interval": "week"})
    drawn = page.evaluate("echarts.getInstanceByDom(document.querySelector('#c-ns')).getOption().series[0].data")
    assert drawn == star["metric"]["values"]
    fits = [m for m in api(demo, "/api/projects/demo/models")["models"] if isinstance(m["summary"].get("clv"), (int, float))]
    assert int(page.inner_text("[data-testid=kpi-clv-total] .value").replace(",", "")) == round(fits[-1]["summary"]["clv"])
    page.screenshot(path=str(SHOTS / "overview.png"), full_page=True)
    print(f"overview ready in {took:.3f} s")

    # The language switches, and the numbers stay.
    page.click("[data-testid=lang]")
    page.wait_for_selector("body[data-ready=overview]")
    assert page.inner_text("[data-testid=nav-overview]") == "概览"
    assert "成长期" in page.inner_text("[data-testid=kpi-growth]")
    page.screenshot(path=str(SHOTS / "overview-zh.png"), full_page=True)
    page.click("[data-testid=lang]")
    page.wait_for_selector("body[data-ready=overview]")
    assert page.inner_text("[data-testid=nav-overview]") == "Overview"

    # A profile opened from a search by user id shows what the API says.
    member = api(demo, "/api/projects/demo/segments")
    tagged = next(s for s in member["segments"] if s["tag"] and s["size"] > 0)
    person = api(demo, f"/api/projects/demo/segments/{tagged['id']}/members?limit=1")
    pid = (person.get("members") or person)[0]
    view = api(demo, f"/api/projects/demo/persons?id={pid}")
    user_id = view["profile"]["user_ids"][0]
    open_page(page, demo, "users?project=demo", "users")
    page.fill("[data-testid=search]", user_id)
    page.press("[data-testid=search]", "Enter")
    page.wait_for_selector("[data-testid=profile]", timeout=30_000)
    text = page.inner_text("[data-testid=profile]")
    assert user_id in text
    assert tagged["name"] in text
    for key, value in view["computed"].items():
        assert key in text
    assert page.locator("[data-testid=timeline] tr").count() > 1
    page.screenshot(path=str(SHOTS / "user.png"), full_page=False)
    open_page(page, demo, "users?project=demo&q=nobody-has-this-id", "users")
    assert page.is_visible("[data-testid=not-found]")
    # Search by a trait: the count is the API's.
    city = view["profile"]["traits"]["city"]
    want_city = api(demo, "/api/projects/demo/segments/preview",
                    {"condition": {"type": "trait", "property": "city", "op": "eq", "value": city}, "sample": 0})["size"]
    open_page(page, demo, f"users?project=demo&q=city%3D{city}", "users")
    assert page.inner_text("[data-testid=matches] h2").endswith(f": {want_city:,}")

    # Segments: the saved ones with their sizes.
    open_page(page, demo, "segments?project=demo", "segments")
    listing = page.inner_text("[data-testid=segments]")
    for s in member["segments"]:
        assert s["name"] in listing
        assert f"{s['size']:,}" in listing

    # Analyses: the funnel, retention and RFM tables are the API's; a funnel's drop-offs
    # become a segment of exactly those persons.
    steps = "Product Viewed,Product Added,Order Completed"
    open_page(page, demo, f"analyses/funnel?project=demo&steps={steps}&window=7d&from={frm}&to={to}", "analyses")
    funnel = api(demo, "/api/projects/demo/analyses/funnel",
                 {"steps": steps.split(","), "window": "7d", "date_from": str(frm), "date_to": str(to)})
    rows = page.locator("[data-testid=funnel] tr")
    for i, step in enumerate(funnel["steps"]):
        cells = rows.nth(i + 1).inner_text().split("\t")
        assert int(cells[1].replace(",", "")) == step["persons"], (cells, step)
    assert page.locator(".chart canvas").count() >= 1
    page.screenshot(path=str(SHOTS / "funnel.png"), full_page=True)
    page.click("[data-testid=save-dropped-2]")
    page.wait_for_selector("[data-testid=members]", timeout=30_000)
    saved = [s for s in api(demo, "/api/projects/demo/segments")["segments"] if s.get("definition", {}).get("from_analysis")]
    assert saved and saved[-1]["size"] == funnel["steps"][2]["dropped"]
    open_page(page, demo, f"analyses/retention?project=demo&from={frm}&to={to}", "analyses")
    retention = api(demo, "/api/projects/demo/analyses/retention",
                    {"start_event": "Signed Up", "return_event": "Order Completed", "interval": "week",
                     "periods": 8, "date_from": str(frm), "date_to": str(to)})
    table = page.inner_text("[data-testid=retention]")
    for cohort in retention["cohorts"]:
        assert cohort["date"] in table
    first = page.locator("[data-testid=retention] tr").nth(1).inner_text().split("\t")
    assert [int(x.replace(",", "")) for x in first[1:]] == retention["cohorts"][0]["values"]
    page.screenshot(path=str(SHOTS / "retention.png"), full_page=True)
    open_page(page, demo, f"analyses/rfm_grid?project=demo&from={frm}&to={to}", "analyses")
    rfm = api(demo, "/api/projects/demo/analyses/rfm", {"date_from": str(frm), "date_to": str(to)})
    rfm_rows = page.locator("[data-testid=rfm] tr")
    for i, layer in enumerate(rfm["layers"]):
        assert int(rfm_rows.nth(i + 1).inner_text().split("\t")[1].replace(",", "")) == layer["persons"]
    page.screenshot(path=str(SHOTS / "rfm.png"), full_page=True)

    # Paths, stickiness, NPS and K-factor: drawn, and their first rows are the API's.
    checks = {
        "paths": ({"start_event": "Application Opened"}, lambda r: r["nodes"][0]["persons"], 1),
        "stickiness": ({}, lambda r: r["daily"][0]["dau"], 1),
        "nps": ({"event": "Survey Answered"}, lambda r: r["all"]["periods"][0]["promoters"], 2),
        "kfactor": ({}, lambda r: r["periods"][0]["invitations"], 2),
    }
    for kind, (extra, first, column) in checks.items():
        open_page(page, demo, f"analyses/{kind}?project=demo&from={frm}&to={to}", "analyses")
        assert not page.is_visible("#error"), (kind, page.inner_text("#error"))
        assert page.locator(".chart canvas").count() >= 1, kind
        want = first(api(demo, f"/api/projects/demo/analyses/{kind}", {**extra, "date_from": str(frm), "date_to": str(to)}))
        cells = page.locator(f"[data-testid={kind}] tr").nth(1).inner_text().split("\t")
        shown = cells[column] if kind != "stickiness" else cells[1]
        assert float(shown.replace(",", "")) == want, (kind, cells, want)
        page.screenshot(path=str(SHOTS / f"{kind}.png"), full_page=True)

    # CLV: the customers and the total the API gives; the P(alive) map drawn.
    open_page(page, demo, f"analyses/clv?project=demo&from={frm}&to={to}", "analyses")
    clv = api(demo, "/api/projects/demo/analyses/clv", {"date_from": str(frm), "date_to": str(to)})
    assert int(page.inner_text("[data-testid=kpi-customers] .value").replace(",", "")) == clv["customers"]
    assert int(page.inner_text("[data-testid=kpi-clv] .value").replace(",", "")) == round(clv["clv"])
    assert page.locator("#c-palive canvas").count() >= 1
    page.screenshot(path=str(SHOTS / "clv.png"), full_page=True)
    # Pinned to the overview: kept in the project's settings, listed there, and it leads back.
    page.click("[data-testid=pin]")
    page.wait_for_selector("[data-testid=pins]", timeout=30_000)
    pins = api(demo, "/api/projects/demo/settings")["defaults"]["dashboard"]
    assert pins[-1]["route"].startswith("analyses/clv?")
    page.click("[data-testid=pins] a")
    page.wait_for_selector("body[data-ready=analyses]")
    assert page.is_visible("[data-testid=kpi-customers]")

    # The builder: a tree typed in, its live size the API's preview, saved, members exported.
    tree = {"type": "and", "all": [{"type": "did", "event": "Order Completed", "min": 2},
                                   {"type": "stage", "in": ["dormant", "churned"]}]}
    want = api(demo, "/api/projects/demo/segments/preview", {"condition": tree, "sample": 0})["size"]
    open_page(page, demo, "segments?project=demo", "segments")
    page.fill("[data-testid=tree]", json.dumps(tree))
    page.wait_for_function(f"document.querySelector('#psize').dataset.size === '{want}'", timeout=30_000)
    page.fill("[data-testid=segment-name]", "Repeat buyers now asleep")
    page.click("[data-testid=save-segment]")
    page.wait_for_selector("[data-testid=members]", timeout=30_000)
    href = page.get_attribute("[data-testid=export]", "href")
    csv = requests.get(f"{demo.url}{href}", timeout=60)
    assert csv.ok and len(csv.text.strip().splitlines()) == want + 1, csv.text[:200]
    # Its entries, as recorded.
    history = page.inner_text("[data-testid=history]")
    assert history.count("entered") == want
    page.screenshot(path=str(SHOTS / "segments.png"), full_page=True)

    # Settings: a bad default is refused with its field named; a good change is kept; a new
    # project's write key is shown once.
    open_page(page, demo, "settings?project=demo", "settings")
    page.fill("[data-testid=defaults]", json.dumps({"computed": [{"name": "x", "agg": "median"}]}))
    page.click("[data-testid=save-settings]")
    page.wait_for_selector("#error:not([hidden])")
    assert "defaults.computed[0].agg" in page.inner_text("#error")
    before = api(demo, "/api/projects/demo/settings")
    page.fill("[data-testid=defaults]", json.dumps(before["defaults"]))
    page.fill("[data-testid=timezone]", "Asia/Shanghai")
    page.click("[data-testid=save-settings]")
    page.wait_for_function("document.querySelector('#saved').textContent.length > 0")
    assert api(demo, "/api/projects/demo/settings")["timezone"] == "Asia/Shanghai"
    page.fill("[data-testid=new-project]", "second-shop")
    page.click("[data-testid=create-project]")
    page.wait_for_selector("[data-testid=write-key]")
    key = page.inner_text("[data-testid=write-key]")
    assert key.startswith("lsk_")
    assert key not in json.dumps(api(demo, "/api/admin/projects")), "a key is shown only once"

    for name, ready in [("settings", "settings"), ("journeys", "journeys")]:
        open_page(page, demo, f"{name}?project=demo", ready)
        assert not page.is_visible("#error")
        page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)

    # Dark theme at tablet width.
    page.set_viewport_size({"width": 820, "height": 1100})
    open_page(page, demo, route, "overview")
    page.click("[data-testid=theme]")
    page.wait_for_selector("body[data-ready=overview]")
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    page.screenshot(path=str(SHOTS / "overview-dark-tablet.png"), full_page=True)
    assert not errors, errors


def test_an_empty_project_and_a_bad_range_are_told_in_plain_words(make_server, browser):
    srv = make_server()
    page = browser.new_page()
    page.add_init_script("localStorage.setItem('lodestar.lang', 'en')")
    open_page(page, srv, f"overview?project={srv.project}", "overview")
    assert not page.is_visible("#error"), page.inner_text("#error")
    assert page.inner_text("[data-testid=kpi-growth] .value") == "0"
    # The end before the start: the server's message, naming the field, shown as is.
    open_page(page, srv, f"overview?project={srv.project}&from=2026-05-01&to=2026-04-01", "overview")
    assert page.is_visible("#error")
    assert "date" in page.inner_text("#error")
