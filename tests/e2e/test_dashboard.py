"""The dashboard in a real headless Chromium (Debian's, driven by Playwright) against a server
with demo data: each page renders its charts with the numbers the API gives, a profile opens
from a search, the language switches. The screenshots it takes go to docs/screenshots/."""

from __future__ import annotations

import json
import math

import requests

from dashboard import SHOTS, api, browser, demo, english_page, last_90_days, open_page  # noqa: F401 (fixtures)


def test_pages_show_the_apis_numbers_in_both_languages(demo, browser):
    page, errors = english_page(browser)
    frm, to = last_90_days()
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
    person = api(demo, f"/api/projects/demo/segments/{tagged['id']}/members?limit=100")
    # The first member the churn model scored (it scores persons active lately).
    for pid in person.get("members") or person:
        view = api(demo, f"/api/projects/demo/persons?id={pid}")
        if any(s.get("churn_risk") is not None for s in view["scores"]):
            break
    else:
        raise AssertionError("no tagged member has a churn risk")
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
    # Stage history: the API's steps, newest first.
    steps = view["stage_history"]
    assert steps and steps[-1]["to"] == view["stage"]
    rows = page.locator("[data-testid=stage-history] tr td:first-child").all_inner_texts()
    assert rows == [s["day"] for s in reversed(steps)]
    # Churn risk and its factors, from the newest churn fit.
    churn = next(s for s in view["scores"] if s.get("churn_risk") is not None)
    shown = page.inner_text("[data-testid=churn-risk]")
    assert shown == f"{round(churn['churn_risk'] * 1000) / 10:g}%", (shown, churn)
    assert page.locator("[data-testid=churn-factors] tr").count() == len(churn["churn_factors"])
    clv = next(s for s in view["scores"] if s.get("clv") is not None)
    assert f"{clv['clv']:,.2f}".rstrip("0").rstrip(".") in page.inner_text("[data-testid=value-scores]")
    page.screenshot(path=str(SHOTS / "user.png"), full_page=True)
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
    # Time to convert: the API's median, mean and 90th percentile in days / hours / minutes.
    ttc = funnel["time_to_convert"]
    assert ttc and ttc["persons"] > 0, funnel
    for key, field in [("median", "median_ms"), ("mean", "mean_ms"), ("p90", "p90_ms")]:
        assert page.inner_text(f"[data-testid=ttc-{key}]") == duration(ttc[field]), key
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

    # The builder: a tree put together with its controls, its live size the API's preview,
    # saved, members exported.
    tree = {"type": "and", "all": [{"type": "did", "event": "Order Completed", "min": 2},
                                   {"type": "stage", "in": ["dormant", "churned"]}]}
    want = api(demo, "/api/projects/demo/segments/preview", {"condition": tree, "sample": 0})["size"]
    open_page(page, demo, "segments?project=demo", "segments")
    did = page.locator("[data-testid=leaf-did]")
    did.locator("[data-testid=f-event]").fill("Order Completed")
    did.locator("[data-testid=f-min]").fill("2")
    did.locator("[data-testid=f-days]").fill("")
    page.locator("[data-testid=leaf-stage] [data-testid=c-churned]").check()
    size_is = lambda n: page.wait_for_function(  # noqa: E731
        f"document.querySelector('#psize').dataset.size === '{n}'", timeout=30_000)
    size_is(want)
    assert json.loads(page.input_value("[data-testid=tree]")) == tree
    # A negated group added and removed again: the tree and its size follow.
    group_tree = {**tree, "all": [*tree["all"], {"type": "not", "node": {"type": "or", "any": [
        {"type": "trait", "property": "city", "op": "eq", "value": "Shanghai"}]}}]}
    want_group = api(demo, "/api/projects/demo/segments/preview", {"condition": group_tree, "sample": 0})["size"]
    page.click("[data-testid=add-group]")
    inner = page.locator("[data-testid=group]").nth(1)
    inner.locator("[data-testid=leaf-did] [data-testid=remove]").click()
    inner = page.locator("[data-testid=group]").nth(1)
    inner.locator("[data-testid=new-type]").select_option("trait")
    inner.locator("[data-testid=add-condition]").click()
    leaf = page.locator("[data-testid=group]").nth(1).locator("[data-testid=leaf-trait]")
    leaf.locator("[data-testid=f-property]").fill("city")
    leaf.locator("[data-testid=f-value]").fill("Shanghai")
    page.locator("[data-testid=group]").nth(1).locator("[data-testid=not]").first.check()
    size_is(want_group)
    assert json.loads(page.input_value("[data-testid=tree]")) == group_tree
    assert want_group < want
    page.screenshot(path=str(SHOTS / "segment-builder.png"), full_page=True)
    page.locator("[data-testid=group]").nth(1).locator("[data-testid=remove]").first.click()
    size_is(want)
    assert json.loads(page.input_value("[data-testid=tree]")) == tree
    # Only orders above 300 count: a condition on the events' properties, then taken back.
    big = {**tree, "all": [{**tree["all"][0], "where": [{"property": "revenue", "op": "gt", "value": 300}]}, tree["all"][1]]}
    want_big = api(demo, "/api/projects/demo/segments/preview", {"condition": big, "sample": 0})["size"]
    did.locator("[data-testid=add-where]").click()
    where = page.locator("[data-testid=where]")
    where.locator("[data-testid=f-property]").fill("revenue")
    where.locator("[data-testid=f-op]").select_option("gt")
    page.locator("[data-testid=where] [data-testid=f-value]").fill("300")
    size_is(want_big)
    assert json.loads(page.input_value("[data-testid=tree]")) == big
    assert want_big < want
    page.click("[data-testid=remove-where]")
    size_is(want)
    assert json.loads(page.input_value("[data-testid=tree]")) == tree
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
    page.click("[data-testid=advanced] summary")
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


def test_a_server_with_an_admin_token_asks_for_it(make_server, browser):
    token = "dashboard-secret-token"
    srv = make_server(server={"admin_token": token})
    # The admin API refuses calls without it (this client is on loopback too).
    assert requests.get(f"{srv.url}/api/admin/projects", timeout=10).status_code == 401
    page = browser.new_page()
    page.add_init_script("localStorage.setItem('lodestar.lang', 'en')")
    page.goto(f"{srv.url}/#/overview?project={srv.project}")
    page.wait_for_selector("[data-testid=login]")
    # A wrong token: asked again, with the server's words.
    page.fill("[data-testid=token]", "wrong")
    page.click("[data-testid=sign-in]")
    page.wait_for_selector("#error:not([hidden])")
    assert "admin token" in page.inner_text("#error")
    assert page.is_visible("[data-testid=login]")
    page.fill("[data-testid=token]", token)
    page.click("[data-testid=sign-in]")
    page.wait_for_selector("body[data-ready=overview]", timeout=30_000)
    assert not page.is_visible("#error"), page.inner_text("#error")
    assert page.inner_text("[data-testid=kpi-growth] .value") == "0"
    # The token stays with the tab: another page opens without asking again.
    page.goto(f"{srv.url}/#/segments?project={srv.project}")
    page.wait_for_selector("body[data-ready=segments]", timeout=30_000)
    assert not page.is_visible("[data-testid=login]")
    assert page.inner_text("#psize") == "0 of 0"


def duration(ms: float) -> str:
    """A span as the dashboard writes it in English: the largest unit it reaches, one decimal."""
    for size, unit in [(86_400_000, "days"), (3_600_000, "hours"), (60_000, "min"), (1000, "s")]:
        if ms >= size:
            break
    value = math.floor(ms / size * 10 + 0.5) / 10  # as Math.round
    text = f"{value:,.1f}".removesuffix(".0")
    return f"{text} {unit}"
