// Lodestar dashboard (运营看板): a small single-page app over the server's JSON API.
// No build step: plain ES modules and Apache ECharts (vendor/echarts.min.js), embedded in the
// binary. Pages live behind hash routes (#/overview?project=…&from=…&to=…), so a page's
// parameters are in its URL.

import {
  $, PAGES, addText, analysis, api, bindRange, chart, disposeCharts, esc, fmt, go, lang, pin, project,
  range, rangeForm, resizeCharts, route, setLang, setToken, showError, t, table, when,
} from "./core.js";
import { segments } from "./segments.js";
import { settings } from "./settings.js";

// --- pages ---------------------------------------------------------------------------------

async function overview(params) {
  const { from, to } = range(params);
  const view = $("#view");
  view.innerHTML = `<h1>${t("overview")}</h1>${rangeForm("overview", params, from, to)}
    <div id="alerts"></div><div id="pins"></div>
    <div class="kpis" id="kpis"></div>
    <div class="grid">
      <div class="card"><h2>${t("north_star")}</h2><div class="chart" id="c-ns"></div></div>
      <div class="card"><h2>${t("drivers")}</h2><div class="chart" id="c-drivers"></div></div>
      <div class="card"><h2>${t("stages_now")}</h2><div class="chart" id="c-stages"></div></div>
      <div class="card"><h2>${t("flows")} <span class="muted">${from} → ${to}</span></h2><div class="chart" id="c-flows"></div></div>
      <div class="card"><h2>${t("lifecycle")}</h2><div class="chart" id="c-lifecycle"></div></div>
      <div class="card"><h2>${t("revenue")}</h2><div class="chart" id="c-revenue"></div></div>
    </div>`;
  bindRange("overview", params);
  const [settings, models] = await Promise.all([
    api(`/api/projects/${encodeURIComponent(project())}/settings`),
    api(`/api/projects/${encodeURIComponent(project())}/models`),
  ]);
  const ns = settings.defaults && settings.defaults.north_star;
  // The newest customer-value fit's predicted CLV over all buyers.
  const fit = [...models.models].reverse().find((m) => m.summary && typeof m.summary.clv === "number");
  const pins = (settings.defaults && settings.defaults.dashboard) || [];
  if (pins.length) {
    $("#pins").innerHTML = `<div class="card" style="margin-bottom:12px" data-testid="pins"><h2>${t("pinned")}</h2>
      ${pins.map((p) => `<a class="tag" href="#/${esc(p.route)}">${esc(p.title)}</a>`).join("")}</div>`;
  }
  const [stages, lifecycle, revenue, star] = await Promise.all([
    analysis("stages", { date_from: from, date_to: to, interval: "month" }),
    analysis("lifecycle", { date_from: from, date_to: to, interval: "month" }),
    analysis("trends", { series: [{ event: "Order Completed", math: "sum" }], date_from: from, date_to: to, interval: "week" }),
    ns ? analysis("north_star", { date_from: from, date_to: to, interval: "week" }) : Promise.resolve(null),
  ]);
  const last = stages.points[stages.points.length - 1];
  const names = stages.stages.map(([key]) => key);
  $("#kpis").innerHTML = names.map((key, i) => `<div class="card kpi" data-testid="kpi-${key}">
      <div class="muted">${t(key)}</div><div class="value">${fmt(last ? last.counts[i] : 0)}</div></div>`).join("");
  chart($("#c-stages"), {
    tooltip: {}, xAxis: { type: "category", data: names.map(t) }, yAxis: { type: "value" },
    series: [{ type: "bar", data: names.map((_, i) => (last ? last.counts[i] : 0)) }],
  });
  // Left: the stage at `from` (or not yet arrived); right: the stage at `to`. Node names
  // carry their side; labels show the stage.
  const label = (name) => t(name.slice(2) === "null" ? "not_arrived" : name.slice(2));
  const nodes = new Set();
  stages.flows.forEach((f) => { nodes.add(`L:${f.from}`); nodes.add(`R:${f.to}`); });
  chart($("#c-flows"), {
    tooltip: { formatter: (p) => (p.dataType === "edge"
      ? `${label(p.data.source)} → ${label(p.data.target)}: ${fmt(p.data.value)}`
      : label(p.name)) },
    series: [{
      type: "sankey", left: 8, right: 90, top: 8, bottom: 8, emphasis: { focus: "adjacency" },
      label: { formatter: (p) => label(p.name) },
      data: [...nodes].map((name) => ({ name })),
      links: stages.flows.map((f) => ({ source: `L:${f.from}`, target: `R:${f.to}`, value: f.persons })),
    }],
  });
  const periods = lifecycle.periods || [];
  chart($("#c-lifecycle"), {
    tooltip: { trigger: "axis" }, legend: {},
    xAxis: { type: "category", data: periods.map((p) => p.date) }, yAxis: { type: "value" },
    series: ["new", "returning", "resurrecting", "dormant"].map((k) => ({
      name: t(k), type: "bar", stack: "all", data: periods.map((p) => p[k]),
    })),
  });
  if (star) {
    chart($("#c-ns"), {
      tooltip: { trigger: "axis" }, legend: {}, xAxis: { type: "category", data: star.labels }, yAxis: { type: "value" },
      series: [star.metric, ...star.drivers].map((m, i) => ({ name: m.name, type: "line", lineStyle: { width: i ? 1 : 3 }, data: m.values })),
    });
    const att = star.attribution;
    chart($("#c-drivers"), att ? {
      tooltip: {}, xAxis: { type: "value", max: 1 }, yAxis: { type: "category", data: att.drivers.map((d) => d.name) },
      series: [{ type: "bar", data: att.drivers.map((d) => Math.round(d.variance_share * 1000) / 1000), label: { show: true, position: "right" } }],
    } : { title: { text: star.attribution_note || "", textStyle: { fontSize: 12 } } });
  } else {
    $("#c-ns").outerHTML = `<div class="empty">${t("no_north_star")}</div>`;
    $("#c-drivers").closest(".card").remove();
  }
  const s = revenue.series[0] || { values: [], labels: [], total: 0 };
  // Alerts: the latest complete week beyond the mean ± 2 standard deviations of the ones before.
  const alerts = [];
  const check = (name, values) => {
    const v = values.slice(0, -1).filter((x) => x !== null && x !== undefined);
    if (v.length < 5) return;
    const last = v[v.length - 1];
    const before = v.slice(0, -1);
    const mean = before.reduce((a, b) => a + b, 0) / before.length;
    const sd = Math.sqrt(before.reduce((a, b) => a + (b - mean) ** 2, 0) / before.length);
    if (sd > 0 && Math.abs(last - mean) > 2 * sd) {
      alerts.push(`${name}: ${fmt(Math.round(last * 100) / 100)} — ${t(last > mean ? "alert_high" : "alert_low")} (${t("usual")} ${fmt(Math.round((mean - 2 * sd) * 100) / 100)}–${fmt(Math.round((mean + 2 * sd) * 100) / 100)})`);
    }
  };
  check(t("revenue"), s.values);
  if (star) check(star.metric.name, star.metric.values);
  $("#alerts").innerHTML = alerts.map((a) => `<div class="card alert" data-testid="alert">⚠ ${esc(a)}</div>`).join("");
  $("#kpis").insertAdjacentHTML("beforeend", `<div class="card kpi" data-testid="kpi-revenue">
      <div class="muted">${t("revenue")}</div><div class="value">${fmt(Math.round(s.total * 100) / 100)}</div></div>
      ${fit ? `<div class="card kpi" data-testid="kpi-clv-total"><div class="muted">${t("clv_total")}</div><div class="value">${fmt(Math.round(fit.summary.clv))}</div></div>` : ""}`);
  chart($("#c-revenue"), {
    tooltip: { trigger: "axis" }, xAxis: { type: "category", data: s.labels }, yAxis: { type: "value" },
    series: [{ type: "line", areaStyle: {}, data: s.values }],
  });
}

async function users(params, rest) {
  const view = $("#view");
  const q = params.get("q") || "";
  view.innerHTML = `<h1>${t("users")}</h1>
    <form class="row" id="find"><input name="q" size="40" value="${esc(q)}" placeholder="${t("search")}" data-testid="search">
    <button class="primary" type="submit">${t("find")}</button></form><div id="person"></div>`;
  $("#find").addEventListener("submit", (e) => {
    e.preventDefault();
    go("users", { ...Object.fromEntries(params), q: new FormData(e.target).get("q") });
  });
  if (!q) return;
  const base = `/api/projects/${encodeURIComponent(project())}/persons`;
  // trait=value: everyone whose trait has that value (the first 50).
  const pair = q.match(/^([^=\s]+)\s*=\s*(.+)$/);
  if (pair) {
    const value = Number.isFinite(Number(pair[2])) ? Number(pair[2]) : pair[2] === "true" ? true : pair[2] === "false" ? false : pair[2];
    const r = await api(`/api/projects/${encodeURIComponent(project())}/segments/preview`, {
      condition: { type: "trait", property: pair[1], op: "eq", value }, sample: 50,
    });
    $("#person").innerHTML = `<div class="card" data-testid="matches"><h2>${t("matches")} ${esc(pair[1])} = ${esc(pair[2])}: ${fmt(r.size)}</h2>
      ${r.sample.map((p) => `<a class="tag" href="#/users?project=${encodeURIComponent(project())}&q=${p}">${p}</a>`).join("")}</div>`;
    return;
  }
  let person = null;
  for (const key of /^\d+$/.test(q) ? ["id", "user_id", "anonymous_id"] : ["user_id", "anonymous_id"]) {
    try {
      person = await api(`${base}?${key}=${encodeURIComponent(q)}&limit=30`);
      break;
    } catch (e) {
      if (e.status !== 404) throw e;
    }
  }
  if (!person) {
    $("#person").innerHTML = `<div class="empty" data-testid="not-found">${t("not_found")}</div>`;
    return;
  }
  profile(person);
}

addText({
  en: {
    stage_history: "Stage history", churn_risk: "Churn risk", churn_factors: "Main factors (added to the log-odds of churning)",
    value_scores: "Predicted value", journeys_messages: "Journeys and messages",
    journeys_messages_soon: "Journeys this person is in and the messages they received will show here once the journey engine sends them.",
    first_seen: "First seen", last_seen: "Last seen", events_total: "Events", nps_answer: "Latest NPS answer",
    cf_recency: "Days since last active", cf_frequency_30d: "Activity, last 30 days", cf_active_days_30d: "Active days, last 30",
    cf_trend: "Activity trend", cf_breadth_90d: "Breadth of use, 90 days", cf_tenure: "Tenure", cf_conversions_90d: "Conversions, 90 days",
    day: "Day", arrived: "arrived",
    sign_in: "Sign in", admin_token: "Admin token",
    time_to_convert: "Time to convert (first step to last)", median: "Median", mean: "Mean", p90: "90th percentile",
    unit_d: "days", unit_h: "hours", unit_min: "min", unit_s: "s",
    token_needed: "This server asks for its admin token (the one it was started with: --admin-token or LODESTAR_ADMIN_TOKEN). It is kept in this tab only.",
  },
  zh: {
    stage_history: "阶段变化", churn_risk: "流失风险", churn_factors: "主要因素（对流失对数几率的贡献）",
    value_scores: "预测价值", journeys_messages: "旅程与消息",
    journeys_messages_soon: "旅程引擎上线后，这里会显示该用户所在的旅程和收到的消息。",
    first_seen: "首次出现", last_seen: "最近出现", events_total: "事件数", nps_answer: "最近一次 NPS 评分",
    cf_recency: "距最近活跃天数", cf_frequency_30d: "近 30 天活跃次数", cf_active_days_30d: "近 30 天活跃天数",
    cf_trend: "活跃趋势", cf_breadth_90d: "近 90 天行为广度", cf_tenure: "使用时长", cf_conversions_90d: "近 90 天转化次数",
    day: "日期", arrived: "到达",
    sign_in: "登录", admin_token: "管理令牌",
    time_to_convert: "转化耗时（首步到末步）", median: "中位数", mean: "平均", p90: "90 分位",
    unit_d: "天", unit_h: "小时", unit_min: "分钟", unit_s: "秒",
    token_needed: "该服务器需要管理令牌（即启动时的 --admin-token 或 LODESTAR_ADMIN_TOKEN）。令牌只保存在当前标签页。",
  },
});

/** A span of time in words: seconds, minutes, hours or days, one decimal. */
function duration(ms) {
  const units = [[86400000, "unit_d"], [3600000, "unit_h"], [60000, "unit_min"], [1000, "unit_s"]];
  const [size, unit] = units.find(([u]) => ms >= u) || units[units.length - 1];
  return `${fmt(Math.round((ms / size) * 10) / 10)} ${t(unit)}`;
}

function profile(p) {
  const traits = Object.entries(p.profile.traits || {}).map(([k, v]) => [k, esc(typeof v === "object" ? JSON.stringify(v) : v)]);
  const computed = Object.entries(p.computed || {}).map(([k, v]) => [k, fmt(v ?? "—")]);
  // The newest customer-value fit's scores and the newest churn fit's risk (each fit scores
  // some persons only).
  const value = (p.scores || []).find((s) => s.clv !== null && s.clv !== undefined);
  const churn = (p.scores || []).find((s) => s.churn_risk !== null && s.churn_risk !== undefined);
  const scores = value ? ["clv", "p_alive", "expected_purchases", "p_purchase"]
    .filter((k) => value[k] !== null && value[k] !== undefined).map((k) => [k, fmt(Math.round(value[k] * 100) / 100)]) : [];
  const consent = Object.entries(p.consent || {}).map(([k, v]) => [k, v ? "✓" : "✗"]);
  const ids = [...(p.profile.user_ids || []), ...(p.profile.anonymous_ids || [])];
  const factors = (churn && churn.churn_factors) || [];
  const history = [...(p.stage_history || [])].reverse();
  $("#person").innerHTML = `<div class="grid" data-testid="profile">
    <div class="card"><h2>${esc(ids[0] || p.profile.person)}</h2>${table([
      ["person", esc(p.profile.person)], ["ids", esc(ids.join(", "))],
      [t("stage"), esc(p.stage ? t(p.stage) : "—")], [t("rfm"), esc(p.rfm_layer || "—")],
      [t("first_seen"), esc(when(p.first_seen))], [t("last_seen"), esc(when(p.last_seen))], [t("events_total"), fmt(p.events)],
      [t("nps_answer"), p.nps ? `${fmt(p.nps.score)} (${esc(t(p.nps.category ? `${p.nps.category}s` : "none"))})` : "—"],
      [t("timezone"), esc(p.timezone)],
      [t("tags"), (p.tags || []).map((x) => `<span class="tag">${esc(x)}</span>`).join("") || "—"],
      [t("in_segments"), (p.segments || []).map((m) => `<span class="tag">${esc(m.name)}</span>`).join("") || "—"],
    ])}</div>
    <div class="card"><h2>${t("value_scores")}</h2><div data-testid="value-scores">${table(scores)}</div>
      <h2 style="margin-top:12px">${t("churn_risk")}: <span data-testid="churn-risk">${churn ? `${fmt(Math.round(churn.churn_risk * 1000) / 10)}%` : "—"}</span></h2>
      ${factors.length ? `<div class="muted">${t("churn_factors")}</div><table data-testid="churn-factors">${factors.map((f) =>
        `<tr><td>${esc(t(`cf_${f.feature}`))}</td><td><span class="bar" style="width:${Math.min(100, Math.round(f.contribution * 40))}px"></span> +${fmt(Math.round(f.contribution * 100) / 100)}</td></tr>`).join("")}</table>` : ""}
      <h2 style="margin-top:12px">${t("computed")}</h2>${table(computed)}</div>
    <div class="card"><h2>${t("stage_history")}</h2><table data-testid="stage-history"><tr><th>${t("day")}</th><th>${t("stage")}</th></tr>
      ${history.map((s) => `<tr><td>${esc(s.day)}</td><td>${s.from ? `${esc(t(s.from))} → ` : `${t("arrived")}: `}<b>${esc(t(s.to))}</b></td></tr>`).join("")}</table></div>
    <div class="card"><h2>${t("traits")}</h2>${table(traits)}<h2 style="margin-top:12px">${t("consent")}</h2>${table(consent)}</div>
    <div class="card"><h2>${t("journeys_messages")}</h2><div class="muted" data-testid="journeys-messages">${t("journeys_messages_soon")}</div></div>
    <div class="card"><h2>${t("timeline")}</h2><table data-testid="timeline"><tr><th>${t("time")}</th><th>${t("event")}</th><th>${t("value")}</th></tr>
      ${(p.timeline || []).map((e) => `<tr><td>${esc(new Date(e.ts).toISOString().replace("T", " ").slice(0, 19))}</td><td>${esc(e.event)}</td><td>${e.value === null ? "" : fmt(e.value)}</td></tr>`).join("")}</table></div>
  </div>`;
}

const KINDS = ["funnel", "retention", "paths", "trends", "stickiness", "rfm_grid", "clv", "nps", "kfactor"];

/** A form of text inputs from [name, label, value] triples; submits into the URL. */
function paramForm(id, fields) {
  return `<form class="row" id="${id}">${fields.map(([name, label, value]) =>
    `<label>${t(label)} <input name="${name}" value="${esc(value)}" data-testid="p-${name}" ${name === "from" || name === "to" ? 'type="date"' : ""}></label>`).join("")}
    <button class="primary" type="submit">${t("run")}</button></form>`;
}

async function analyses(params, rest) {
  const kind = KINDS.includes(rest[0]) ? rest[0] : "funnel";
  const { from, to } = range(params);
  const sub = KINDS.map((k) => `<a href="#/analyses/${k}?project=${encodeURIComponent(project())}" class="${k === kind ? "active" : ""}" data-testid="kind-${k}">${t(k)}</a>`).join("");
  const fields = {
    funnel: [["steps", "steps", params.get("steps") || "Product Viewed,Product Added,Order Completed"], ["window", "window", params.get("window") || "7d"]],
    retention: [["start_event", "start_event", params.get("start_event") || "Signed Up"], ["return_event", "return_event", params.get("return_event") || "Order Completed"], ["interval", "interval", params.get("interval") || "week"]],
    rfm_grid: [],
    clv: [],
    paths: [["start_event", "start", params.get("start_event") || "Application Opened"]],
    stickiness: [],
    nps: [["event", "series", params.get("event") || "Survey Answered"]],
    kfactor: [],
    trends: [["event", "series", params.get("event") || "Order Completed"], ["math", "math", params.get("math") || "total"], ["interval", "interval", params.get("interval") || "week"]],
  }[kind];
  $("#view").innerHTML = `<h1>${t("analyses")} <button type="button" id="pin" data-testid="pin">＋ ${t("pin")}</button></h1><nav class="row sub">${sub}</nav>
    ${paramForm("params", [...fields, ["from", "from", from], ["to", "to", to]])}
    <div class="card"><div class="chart" id="c-main"></div></div><div class="card" id="table" style="margin-top:12px"></div>`;
  $("#params").addEventListener("submit", (e) => {
    e.preventDefault();
    go("analyses", { project: project(), ...Object.fromEntries(new FormData(e.target)) }, [kind]);
  });
  $("#pin").addEventListener("click", () => pin(`${t(kind)} ${from} → ${to}`, location.hash.slice(2)));
  const dates = { date_from: from, date_to: to };
  if (kind === "clv") {
    const r = await analysis("clv", { ...dates, list: 100000 });
    const values = r.list.map((c) => c.clv).filter((v) => v !== null && v !== undefined).sort((a, b) => a - b);
    const top = values.length ? values[Math.floor(values.length * 0.99)] : 0;
    const bins = 20;
    const width = top / bins || 1;
    const hist = Array(bins).fill(0);
    values.forEach((v) => { hist[Math.min(bins - 1, Math.floor(v / width))] += 1; });
    chart($("#c-main"), {
      title: { text: t("clv_hist"), textStyle: { fontSize: 13 } }, tooltip: {},
      xAxis: { type: "category", data: hist.map((_, i) => fmt(Math.round(i * width))) }, yAxis: { type: "value" },
      series: [{ type: "bar", data: hist }],
    });
    // Mean P(alive) by frequency (x, capped at 10) and recency (weeks, in 10 bands).
    const maxR = Math.max(1, ...r.list.map((c) => c.recency));
    const sum = {};
    r.list.forEach((c) => {
      const key = `${Math.min(10, c.frequency)},${Math.min(9, Math.floor((c.recency / maxR) * 10))}`;
      const e = (sum[key] = sum[key] || [0, 0]);
      e[0] += c.p_alive; e[1] += 1;
    });
    $("#table").innerHTML = `<div class="kpis">
      <div class="card kpi" data-testid="kpi-clv"><div class="muted">${t("clv_total")}</div><div class="value">${fmt(Math.round(r.clv || 0))}</div></div>
      <div class="card kpi" data-testid="kpi-customers"><div class="muted">${t("customers")}</div><div class="value">${fmt(r.customers)}</div></div>
      <div class="card kpi"><div class="muted">${t("mean_p_alive")}</div><div class="value">${fmt(Math.round(r.mean_p_alive * 1000) / 1000)}</div></div></div>
      <h2>${t("p_alive_map")}</h2><div class="chart" id="c-palive"></div>`;
    chart($("#c-palive"), {
      tooltip: {}, xAxis: { type: "category", data: [...Array(11).keys()].map((i) => (i === 10 ? "10+" : i)) },
      yAxis: { type: "category", data: [...Array(10).keys()].map((i) => `${fmt(Math.round((i * maxR) / 10))}`) },
      visualMap: { min: 0, max: 1, orient: "horizontal", left: "center", bottom: 0 },
      series: [{ type: "heatmap", label: { show: true }, data: Object.entries(sum).map(([k, [a, n]]) => [...k.split(",").map(Number), Math.round((a / n) * 100) / 100]) }],
    });
  } else if (kind === "funnel") {
    const steps = (params.get("steps") || fields[0][2]).split(",").map((x) => x.trim()).filter(Boolean);
    const window = params.get("window") || "7d";
    const r = await analysis("funnel", { steps, window, ...dates });
    chart($("#c-main"), {
      tooltip: {}, xAxis: { type: "category", data: r.steps.map((x) => x.event) }, yAxis: { type: "value" },
      series: [{ type: "bar", data: r.steps.map((x) => x.persons), label: { show: true, position: "top" } }],
    });
    $("#table").innerHTML = `<table data-testid="funnel"><tr><th>${t("event")}</th><th>${t("persons")}</th><th>${t("conversion")}</th><th>${t("dropped")}</th><th></th></tr>
      ${r.steps.map((x, i) => `<tr><td>${esc(x.event)}</td><td>${fmt(x.persons)}</td><td>${fmt(Math.round(x.conversion_from_first * 1000) / 10)}%</td>
        <td>${fmt(x.dropped)}</td><td>${i > 0 && x.dropped > 0 ? `<button data-drop="${i}" data-testid="save-dropped-${i}">${t("save_dropped")}</button>` : ""}</td></tr>`).join("")}</table>`;
    // Time to convert (first step to last): median, mean, 90th percentile and the histogram.
    const ttc = r.time_to_convert;
    if (ttc && ttc.persons) {
      $("#table").insertAdjacentHTML("beforeend", `<h2 style="margin-top:16px">${t("time_to_convert")}</h2>
        <div class="kpis" data-testid="time-to-convert">${[["median", ttc.median_ms], ["mean", ttc.mean_ms], ["p90", ttc.p90_ms]].map(([k, ms]) =>
          `<div class="card kpi"><div class="muted">${t(k)}</div><div class="value" data-testid="ttc-${k}">${duration(ms)}</div></div>`).join("")}</div>
        <div class="chart" id="c-ttc" style="height:220px"></div>`);
      chart($("#c-ttc"), {
        tooltip: {}, grid: { top: 30, bottom: 30, left: 50, right: 20 },
        xAxis: { type: "category", data: ttc.histogram.map(([ms]) => `≥ ${duration(ms)}`) }, yAxis: { type: "value", name: t("persons") },
        series: [{ type: "bar", data: ttc.histogram.map(([, n]) => n) }],
      });
    }
    document.querySelectorAll("[data-drop]").forEach((b) => b.addEventListener("click", async () => {
      const at = Number(b.dataset.drop);
      const name = `${steps[at - 1]} → ${steps[at]} ${t("dropped")} ${from}…${to}`;
      const made = await api(`/api/projects/${encodeURIComponent(project())}/segments`, {
        name, from_analysis: { kind: "funnel", params: { steps, window, ...dates, dropped_at: at } },
      });
      go("segments", { project: project(), id: made.id });
    }));
  } else if (kind === "retention") {
    const r = await analysis("retention", {
      start_event: params.get("start_event") || fields[0][2], return_event: params.get("return_event") || fields[1][2],
      interval: params.get("interval") || "week", periods: 8, ...dates,
    });
    const cells = [];
    // Period k (1…) of cohort y, as % of the cohort.
    r.cohorts.forEach((c, y) => c.values.forEach((v, k) => { if (k > 0) cells.push([k - 1, y, c.values[0] ? Math.round((v / c.values[0]) * 1000) / 10 : 0]); }));
    $("#c-main").style.height = `${Math.max(320, 60 + r.cohorts.length * 26)}px`;
    chart($("#c-main"), {
      tooltip: {}, grid: { left: 90 },
      xAxis: { type: "category", data: [...Array(9).keys()].slice(1) },
      yAxis: { type: "category", data: r.cohorts.map((c) => `${c.date} (${c.values[0]})`), inverse: true },
      visualMap: { min: 0, max: Math.max(1, ...cells.map((c) => c[2])), orient: "horizontal", left: "center", bottom: 0, calculable: true },
      series: [{ type: "heatmap", data: cells, label: { show: true } }],
    });
    $("#table").innerHTML = `<table data-testid="retention"><tr><th>${t("cohort")}</th>${[...Array(9).keys()].map((i) => `<th>${i}</th>`).join("")}</tr>
      ${r.cohorts.map((c) => `<tr><td>${esc(c.date)}</td>${c.values.map((v) => `<td>${fmt(v)}</td>`).join("")}</tr>`).join("")}</table>`;
  } else if (kind === "rfm_grid") {
    const r = await analysis("rfm", dates);
    const cells = [];
    r.grid_persons.forEach((row, ri) => row.forEach((v, fi) => cells.push([fi, ri, v])));
    chart($("#c-main"), {
      tooltip: {}, xAxis: { type: "category", name: "F", data: [1, 2, 3, 4, 5] },
      yAxis: { type: "category", name: "R", data: [1, 2, 3, 4, 5] },
      visualMap: { min: 0, max: Math.max(1, ...cells.map((c) => c[2])), orient: "horizontal", left: "center", bottom: 0 },
      series: [{ type: "heatmap", data: cells, label: { show: true } }],
    });
    $("#table").innerHTML = `<table data-testid="rfm"><tr><th>${t("layer")}</th><th>${t("persons")}</th><th>${t("share")}</th><th>${t("monetary")}</th></tr>
      ${r.layers.map((l) => `<tr><td>${esc(lang === "zh" ? l.name_zh : l.name)}</td><td>${fmt(l.persons)}</td><td>${fmt(Math.round(l.share * 1000) / 10)}%</td><td>${fmt(Math.round(l.monetary))}</td></tr>`).join("")}</table>`;
  } else if (kind === "paths") {
    const r = await analysis("paths", { start_event: params.get("start_event") || fields[0][2], ...dates });
    const sankey = chart($("#c-main"), {
      tooltip: {},
      series: [{
        type: "sankey", left: 8, right: 140, emphasis: { focus: "adjacency" },
        label: { formatter: (p) => p.name.replace(/^\d+_/, "") },
        data: r.nodes.map((n) => ({ name: n.id })),
        links: r.edges.map((e) => ({ source: e.source, target: e.target, value: e.persons })),
      }],
    });
    $("#c-main").style.height = "480px";
    sankey.resize();
    $("#table").innerHTML = `<table data-testid="paths"><tr><th>${t("event")}</th><th>${t("persons")}</th></tr>
      ${r.nodes.map((n) => `<tr><td>${esc(n.step)}. ${esc(n.event)}</td><td>${fmt(n.persons)}</td></tr>`).join("")}</table>`;
  } else if (kind === "stickiness") {
    const r = await analysis("stickiness", dates);
    chart($("#c-main"), {
      tooltip: { trigger: "axis" }, legend: {}, xAxis: { type: "category", data: r.daily.map((d) => d.date) },
      yAxis: { type: "value" },
      series: ["dau", "wau", "mau"].map((k) => ({ name: k.toUpperCase(), type: "line", data: r.daily.map((d) => d[k]) })),
    });
    $("#table").innerHTML = `<table data-testid="stickiness"><tr><th>${t("time")}</th><th>DAU</th><th>WAU</th><th>MAU</th><th>DAU/MAU</th></tr>
      ${r.daily.map((d) => `<tr><td>${esc(d.date)}</td><td>${fmt(d.dau)}</td><td>${fmt(d.wau)}</td><td>${fmt(d.mau)}</td><td>${fmt(Math.round(d.dau_mau * 1000) / 10)}%</td></tr>`).join("")}</table>`;
  } else if (kind === "nps") {
    const r = await analysis("nps", { event: params.get("event") || fields[0][2], ...dates });
    const ps = r.all.periods;
    chart($("#c-main"), {
      tooltip: { trigger: "axis" }, legend: {}, xAxis: { type: "category", data: ps.map((p) => p.date) },
      yAxis: [{ type: "value" }, { type: "value", min: -100, max: 100 }],
      series: [
        ...["promoters", "passives", "detractors"].map((k) => ({ name: t(k), type: "bar", stack: "n", data: ps.map((p) => p[k]) })),
        { name: "NPS", type: "line", yAxisIndex: 1, data: ps.map((p) => p.nps) },
      ],
    });
    $("#table").innerHTML = `<table data-testid="nps"><tr><th>${t("time")}</th><th>NPS</th><th>${t("promoters")}</th><th>${t("passives")}</th><th>${t("detractors")}</th></tr>
      ${ps.map((p) => `<tr><td>${esc(p.date)}</td><td>${p.nps === null ? "—" : fmt(p.nps)}</td><td>${fmt(p.promoters)}</td><td>${fmt(p.passives)}</td><td>${fmt(p.detractors)}</td></tr>`).join("")}</table>`;
  } else if (kind === "kfactor") {
    const r = await analysis("kfactor", dates);
    const ps = r.periods;
    chart($("#c-main"), {
      tooltip: { trigger: "axis" }, legend: {}, xAxis: { type: "category", data: ps.map((p) => p.date) },
      yAxis: [{ type: "value" }, { type: "value" }],
      series: [
        { name: t("invitations"), type: "bar", data: ps.map((p) => p.invitations) },
        { name: t("k"), type: "line", yAxisIndex: 1, data: ps.map((p) => p.k_factor) },
      ],
    });
    $("#table").innerHTML = `<table data-testid="kfactor"><tr><th>${t("time")}</th><th>${t("k")}</th><th>${t("invitations")}</th><th>${t("conversions")}</th></tr>
      ${ps.map((p) => `<tr><td>${esc(p.date)}</td><td>${fmt(p.k_factor)}</td><td>${fmt(p.invitations)}</td><td>${fmt(p.conversions)}</td></tr>`).join("")}</table>`;
  } else {
    const r = await analysis("trends", {
      series: [{ event: params.get("event") || fields[0][2], math: params.get("math") || "total" }],
      interval: params.get("interval") || "week", ...dates,
    });
    const sr = r.series[0] || { labels: [], values: [], total: 0 };
    chart($("#c-main"), {
      tooltip: { trigger: "axis" }, xAxis: { type: "category", data: sr.labels }, yAxis: { type: "value" },
      series: [{ type: "line", data: sr.values }],
    });
    $("#table").innerHTML = `<table data-testid="trends"><tr><th>${t("time")}</th><th>${t("value")}</th></tr>
      ${sr.labels.map((l, i) => `<tr><td>${esc(l)}</td><td>${fmt(sr.values[i])}</td></tr>`).join("")}</table>`;
  }
}

function placeholder(key) {
  $("#view").innerHTML = `<h1>${t(key)}</h1><div class="empty card">${t(key === "journeys" ? "journeys_soon" : "no_data")}</div>`;
}

// --- shell ---------------------------------------------------------------------------------

async function render() {
  disposeCharts();
  showError("");
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  $("#lang").textContent = t("lang");
  const { page, rest, params } = route();
  $("#nav").innerHTML = PAGES.map((p) => `<a href="#/${p}?project=${encodeURIComponent(project())}" class="${p === page ? "active" : ""}" data-testid="nav-${p}">${t(p)}</a>`).join("");
  if (!project()) {
    $("#view").innerHTML = `<div class="empty">${t("no_projects")}</div>`;
    return;
  }
  document.body.dataset.ready = "";
  try {
    if (page === "overview") await overview(params);
    else if (page === "users") await users(params, rest);
    else if (page === "segments") await segments(params);
    else if (page === "analyses") await analyses(params, rest);
    else if (page === "settings") await settings(params);
    else placeholder(page);
  } catch (e) {
    if (e.status === 401) login(e.message);
    else showError(e.message);
  }
  // When the page had its data drawn, in ms since the document's navigation began.
  document.body.dataset.readyMs = String(Math.round(performance.now()));
  document.body.dataset.ready = page;
}

async function start() {
  const theme = localStorage.getItem("lodestar.theme") || (matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light");
  document.documentElement.dataset.theme = theme;
  $("#lang").addEventListener("click", () => {
    setLang(lang === "zh" ? "en" : "zh");
    render();
  });
  $("#theme").addEventListener("click", () => {
    const next = document.documentElement.dataset.theme === "dark" ? "light" : "dark";
    document.documentElement.dataset.theme = next;
    localStorage.setItem("lodestar.theme", next);
    render();
  });
  const ready = await loadProjects();
  $("#project").addEventListener("change", () => {
    localStorage.setItem("lodestar.project", $("#project").value);
    go(route().page, { project: $("#project").value });
  });
  window.addEventListener("hashchange", render);
  window.addEventListener("resize", resizeCharts);
  if (ready) render();
}

/** Fills the project picker; asks for the admin token when the server wants one (and then
 * answers false). */
async function loadProjects() {
  try {
    const { projects } = await api("/api/admin/projects");
    $("#project").innerHTML = projects.map((p) => `<option>${esc(p.name)}</option>`).join("");
    const wanted = route().params.get("project") || localStorage.getItem("lodestar.project");
    if (wanted && projects.some((p) => p.name === wanted)) $("#project").value = wanted;
  } catch (e) {
    if (e.status === 401) {
      login(e.message);
      return false;
    }
    showError(e.message);
  }
  return true;
}

/** The admin token form: shown when the server refuses the dashboard's calls (a server
 * reached from another machine needs `--admin-token`). The token is kept for this tab only. */
function login(message) {
  $("#view").innerHTML = `<h1>${t("sign_in")}</h1><form class="card" id="login" data-testid="login">
    <p class="muted">${t("token_needed")}</p>
    <div class="row"><input type="password" name="token" size="40" autocomplete="current-password" placeholder="${t("admin_token")}" data-testid="token">
    <button class="primary" type="submit" data-testid="sign-in">${t("sign_in")}</button></div></form>`;
  if (message && sessionStorage.length) showError(message);
  $("#login").addEventListener("submit", async (e) => {
    e.preventDefault();
    setToken(new FormData(e.target).get("token"));
    showError("");
    if (await loadProjects()) render();
  });
}

start();
