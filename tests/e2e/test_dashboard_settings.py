"""The Settings page in a real headless Chromium against a demo server: write keys are listed
masked and never in full; rotating shows the new key once and the old one is refused at once;
the forms of the lifecycle rules, RFM layers, North Star and computed attributes save what the
API then returns, and show the server's error naming the field; the page speaks Chinese. The
screenshot goes to docs/screenshots/settings-forms.png."""

from __future__ import annotations

import json

from dashboard import SHOTS, api, browser, demo, english_page, last_90_days, open_page  # noqa: F401 (fixtures)


def save(page, form: str) -> str:
    """Clicks the form's Save and returns what it says once the server answered."""
    page.click(f"[data-testid=form-{form}] [data-save]")
    page.wait_for_function(
        "f => document.querySelector(`[data-testid=form-${f}] .status`).textContent.length > 0", arg=form
    )
    return page.inner_text(f"[data-testid=form-{form}] .status")


def settings(srv):
    return api(srv, "/api/projects/demo/settings")


def track(srv, key: str, message_id: str) -> int:
    body = {"userId": "settings-test", "event": "Key Checked", "messageId": message_id}
    return srv.post("track", body, key=key).status_code


def test_settings_keys_and_forms(demo, browser):
    page, errors = english_page(browser)
    frm, to = last_90_days()
    window = {"date_from": str(frm), "date_to": str(to)}
    open_page(page, demo, "settings?project=demo", "settings")
    assert not page.is_visible("#error"), page.inner_text("#error")

    # Every project is listed with its key masked: its hint and "…", never the key.
    old = demo.write_key
    row = "[data-testid=project-e2e]"
    assert page.inner_text(f"{row} [data-testid=key-hint]") == f"{old[:8]}…"
    assert page.is_visible("[data-testid=project-demo]")
    assert old not in page.content() and old[8:] not in page.content()

    # Rotating asks first; cancelled, nothing changes.
    page.once("dialog", lambda d: d.dismiss())
    page.click("[data-testid=rotate-e2e]")
    assert page.locator("[data-testid=new-key]").count() == 0
    assert track(demo, old, "before") == 200
    # Confirmed: the new key is shown once, the old one is refused at once, the new one works.
    page.once("dialog", lambda d: d.accept())
    page.click("[data-testid=rotate-e2e]")
    page.wait_for_selector("[data-testid=new-key]")
    new = page.inner_text("[data-testid=new-key]")
    assert new.startswith("lsk_") and new != old
    page.wait_for_function(f"document.querySelector('{row} [data-testid=key-hint]').textContent === '{new[:8]}…'")
    assert track(demo, old, "after-old") == 401
    assert track(demo, new, "after-new") == 200
    assert new not in json.dumps(api(demo, "/api/admin/projects")), "a key is shown only once"
    page.reload()
    page.wait_for_selector("body[data-ready=settings]")
    assert page.inner_text(f"{row} [data-testid=key-hint]") == f"{new[:8]}…"
    assert new not in page.content() and old not in page.content()

    # Lifecycle stages. What each preset shows is the server's preset: same stages either way.
    stages = "[data-testid=form-stages]"
    fields = ["conversion_event", "dormant_days", "churn_days", "mature_conversions", "resurrected_days"]
    for preset in ["ecommerce", "saas", "education"]:
        page.select_option(f"{stages} [data-key=mode]", preset)
        shown = {f: page.input_value(f"{stages} [data-key={f}]") for f in fields}
        rules = {f: v if f == "conversion_event" else int(v) for f, v in shown.items()}
        by_rules = api(demo, "/api/projects/demo/analyses/stages", {**window, "rules": {**rules, "activity_events": []}})
        by_preset = api(demo, "/api/projects/demo/analyses/stages", {**window, "preset": preset})
        assert by_rules["points"] == by_preset["points"], preset
    # Own rules: a bad one is refused with its field named and marked; a good one is kept.
    page.select_option(f"{stages} [data-key=mode]", "ecommerce")
    page.select_option(f"{stages} [data-key=mode]", "custom")
    assert page.input_value(f"{stages} [data-key=dormant_days]") == "30", "own rules start from the preset"
    page.fill(f"{stages} [data-key=churn_days]", "20")
    said = save(page, "stages")
    assert said.startswith("Not saved") and "defaults.stages.churn_days" in said, said
    assert "invalid" in page.get_attribute(f"{stages} [data-key=churn_days]", "class")
    page.fill(f"{stages} [data-key=churn_days]", "120")
    page.fill(f"{stages} [data-key=activity_events]", "Product Viewed, Order Completed")
    assert save(page, "stages") == "Saved."
    kept = settings(demo)["defaults"]["stages"]
    assert "preset" not in kept
    assert kept["rules"] == {"activity_events": ["Product Viewed", "Order Completed"], "conversion_event": "Order Completed",
                             "dormant_days": 30, "churn_days": 120, "mature_conversions": 3, "resurrected_days": 30}

    # RFM: the layers shown by default are the server's own (same buyers in each layer).
    rfm = "[data-testid=form-rfm]"
    rows = page.locator(f"{rfm} table.edit tbody tr")
    shown = []
    for i in range(rows.count()):
        value = lambda k: rows.nth(i).locator(f"[data-key={k}]").input_value()  # noqa: E731
        shown.append({"key": value("key"), "name": value("name"), "name_zh": value("name_zh"),
                      "r": [int(value("r_lo")), int(value("r_hi"))], "f": [int(value("f_lo")), int(value("f_hi"))]})
    assert len(shown) == 11
    built_in = api(demo, "/api/projects/demo/analyses/rfm", window)["layers"]
    given = api(demo, "/api/projects/demo/analyses/rfm", {**window, "layers": shown})["layers"]
    assert [(l["key"], l["name_zh"], l["persons"]) for l in given] == [(l["key"], l["name_zh"], l["persons"]) for l in built_in]
    # A threshold out of 1..5 is refused, naming the layer's field; a good one is kept.
    rows.nth(0).locator("[data-key=r_hi]").fill("6")
    said = save(page, "rfm")
    assert "defaults.rfm.layers[0].r" in said and said.startswith("Not saved"), said
    assert "invalid" in rows.nth(0).locator("[data-key=r_hi]").get_attribute("class")
    rows.nth(0).locator("[data-key=r_hi]").fill("5")
    rows.nth(0).locator("[data-key=r_lo]").fill("4")
    assert save(page, "rfm") == "Saved."
    layers = settings(demo)["defaults"]["rfm"]["layers"]
    assert layers[0] == {"key": "champions", "name": "Champions", "name_zh": "冠军客户", "r": [4, 5], "f": [4, 5]}
    assert layers[1:] == shown[1:]
    assert settings(demo)["defaults"]["stages"] == kept, "one form keeps the others' settings"

    # North Star: the demo's definition is shown; a driver without a name is refused.
    ns = "[data-testid=form-north-star]"
    before = settings(demo)["defaults"]["north_star"]
    assert page.input_value(f"{ns} [data-key=metric_name]") == before["metric"]["name"]
    assert page.locator(f"{ns} table.edit tbody tr").count() == len(before["drivers"])
    page.click(f"{ns} [data-add]")
    page.locator(f"{ns} table.edit tbody tr").last.locator("[data-key=event]").fill("Checkout Started")
    said = save(page, "north-star")
    assert f"defaults.north_star.drivers[{len(before['drivers'])}].name" in said, said
    page.locator(f"{ns} table.edit tbody tr").last.locator("[data-remove]").click()
    page.fill(f"{ns} [data-key=metric_name]", "weekly orders")
    page.select_option(f"{ns} [data-key=metric_math]", "total")
    assert save(page, "north-star") == "Saved."
    after = settings(demo)["defaults"]["north_star"]
    assert after["metric"] == {"name": "weekly orders", "event": "Order Completed", "math": "total"}
    assert after["drivers"] == before["drivers"]

    # Computed attributes: a row added is kept; a bad name is refused with its row named.
    comp = "[data-testid=form-computed]"
    defined = settings(demo)["defaults"]["computed"]
    assert page.locator(f"{comp} table.edit tbody tr").count() == len(defined)
    page.click(f"{comp} [data-add]")
    last = page.locator(f"{comp} table.edit tbody tr").last
    last.locator("[data-key=name]").fill("views 30d")
    last.locator("[data-key=event]").fill("Product Viewed")
    last.locator("[data-key=days]").fill("30")
    said = save(page, "computed")
    assert f"defaults.computed[{len(defined)}].name" in said, said
    last.locator("[data-key=name]").fill("views_30d")
    last.locator("[data-key=agg]").select_option("days_active")
    assert save(page, "computed") == "Saved."
    added = settings(demo)["defaults"]["computed"]
    assert added[:-1] == defined
    assert added[-1] == {"name": "views_30d", "agg": "days_active", "event": "Product Viewed", "days": 30}

    # The time zone: an unknown one is refused, naming it.
    page.fill("[data-testid=timezone]", "Mars/Olympus")
    assert "(timezone)" in save(page, "timezone")
    page.fill("[data-testid=timezone]", "Asia/Shanghai")
    assert save(page, "timezone") == "Saved."
    assert settings(demo)["timezone"] == "Asia/Shanghai"

    # The raw JSON is under "advanced", collapsed, and follows the forms' saves.
    assert not page.is_visible("[data-testid=defaults]")
    page.click("[data-testid=advanced] summary")
    assert json.loads(page.input_value("[data-testid=defaults]")) == settings(demo)["defaults"]
    page.click("[data-testid=advanced] summary")
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(SHOTS / "settings-forms.png"), full_page=True)

    # 中文: the page's own labels too.
    page.click("[data-testid=lang]")
    page.wait_for_selector("body[data-ready=settings]")
    view = page.inner_text("#view")
    for zh in ["项目与写入密钥", "轮换密钥", "生命周期阶段规则", "关键转化事件", "RFM 分层", "恢复默认分层",
               "北极星指标", "添加驱动因素", "计算属性", "聚合方式", "添加属性", "分析所用时区", "高级"]:
        assert zh in view, zh
    for en in ["Projects and write keys", "Rotate key", "Lifecycle stages", "Conversion event", "Add layer",
               "Add driver", "Aggregate", "Remove", "Save", "Advanced", "Created"]:
        assert en not in view, en
    assert page.input_value(f"{stages} [data-key=mode]") == "custom"
    assert not errors, errors
