// Lodestar dashboard (运营看板): a small single-page app over the server's JSON API.
// No build step: plain ES modules and Apache ECharts (vendor/echarts.min.js), embedded in the
// binary. Pages live behind hash routes (#/overview?project=…&from=…&to=…), so a page's
// parameters are in its URL.

const TEXT = {
  en: {
    overview: "Overview", users: "Users", analyses: "Analyses", segments: "Segments",
    journeys: "Journeys", settings: "Settings", lang: "中文",
    stages_now: "Users by lifecycle stage", flows: "Stage flows", lifecycle: "New / returning / resurrecting / dormant",
    revenue: "Revenue", from: "From", to: "To", apply: "Apply",
    onboarding: "Onboarding", growth: "Growth", maturity: "Maturity", dormant: "Dormant",
    churned: "Churned", resurrected: "Resurrected",
    new: "New", returning: "Returning", resurrecting: "Resurrecting", not_arrived: "Not yet arrived",
    search: "User id, anonymous id or person id", find: "Find", not_found: "Nobody has that id.",
    traits: "Traits", tags: "Tags", consent: "Consent", computed: "Computed attributes",
    scores: "Model scores", timeline: "Latest events", stage: "Stage", rfm: "RFM layer",
    timezone: "Time zone", in_segments: "Segments", none: "None", name: "Name", size: "Members",
    kind: "Kind", dynamic: "dynamic", static: "static", evaluated: "Evaluated",
    no_segments: "No segments yet.", no_data: "No data in this range yet.",
    journeys_soon: "Journeys (流程画布) come with the journey engine.",
    timezone_setting: "Time zone", defaults: "Default parameters",
    error_network: "The server did not answer. Is it running?",
    no_projects: "No projects yet. Create one with `lodestar projects create NAME`.",
    event: "Event", time: "Time", value: "Value",
  },
  zh: {
    overview: "概览", users: "用户", analyses: "分析", segments: "分群",
    journeys: "流程", settings: "设置", lang: "English",
    stages_now: "各生命周期阶段用户数", flows: "阶段流转", lifecycle: "新增 / 留存 / 回流 / 沉睡",
    revenue: "收入", from: "开始", to: "结束", apply: "应用",
    onboarding: "导入期", growth: "成长期", maturity: "成熟期", dormant: "休眠期",
    churned: "流失期", resurrected: "回流",
    new: "新增", returning: "留存", resurrecting: "回流", not_arrived: "尚未到来",
    search: "用户 ID、匿名 ID 或人员编号", find: "查询", not_found: "没有用户使用该 ID。",
    traits: "属性", tags: "标签", consent: "渠道授权", computed: "计算属性",
    scores: "模型评分", timeline: "最近事件", stage: "阶段", rfm: "RFM 分层",
    timezone: "时区", in_segments: "所属分群", none: "无", name: "名称", size: "人数",
    kind: "类型", dynamic: "动态", static: "静态", evaluated: "更新时间",
    no_segments: "还没有分群。", no_data: "该时间范围内还没有数据。",
    journeys_soon: "流程画布将随旅程引擎一起推出。",
    timezone_setting: "时区", defaults: "默认参数",
    error_network: "服务器没有响应，请确认它正在运行。",
    no_projects: "还没有项目。请用 `lodestar projects create 名称` 创建。",
    event: "事件", time: "时间", value: "数值",
  },
};

const PAGES = ["overview", "users", "analyses", "segments", "journeys", "settings"];
const STAGES = ["onboarding", "growth", "maturity", "dormant", "churned", "resurrected"];

let lang = localStorage.getItem("lodestar.lang") || (navigator.language.startsWith("zh") ? "zh" : "en");
let charts = [];

const t = (key) => (TEXT[lang] && TEXT[lang][key]) || TEXT.en[key] || key;
const $ = (sel) => document.querySelector(sel);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
const fmt = (n) => (typeof n === "number" ? n.toLocaleString(lang === "zh" ? "zh-CN" : "en-US", { maximumFractionDigits: 2 }) : esc(n));

/** The route: page, its parameters (from the hash) and the rest of the path. */
function route() {
  const [path, query] = location.hash.replace(/^#\/?/, "").split("?");
  const parts = (path || "overview").split("/");
  return { page: parts[0] || "overview", rest: parts.slice(1), params: new URLSearchParams(query || "") };
}

function go(page, params, rest = []) {
  const q = new URLSearchParams(params);
  location.hash = `#/${[page, ...rest].join("/")}?${q}`;
}

function showError(message) {
  const box = $("#error");
  box.textContent = message;
  box.hidden = !message;
}

/** Calls the API; errors become plain words (the server's message names the field). */
async function api(path, body) {
  let res;
  try {
    res = await fetch(path, body === undefined ? {} : {
      method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body),
    });
  } catch (e) {
    throw new Error(t("error_network"));
  }
  const data = await res.json().catch(() => null);
  if (!res.ok) {
    const err = new Error(data?.message ? `${data.message}${data.field ? ` (${data.field})` : ""}` : `HTTP ${res.status}`);
    err.status = res.status;
    throw err;
  }
  return data;
}

function project() {
  return route().params.get("project") || $("#project").value;
}

function analysis(kind, params) {
  return api(`/api/projects/${encodeURIComponent(project())}/analyses/${kind}`, params);
}

function chart(el, option) {
  const c = echarts.init(el, document.documentElement.dataset.theme === "dark" ? "dark" : null);
  // No animation: the numbers are there at once (and screenshots show them whole).
  c.setOption({ backgroundColor: "transparent", animation: false, ...option });
  charts.push(c);
  return c;
}

function day(d) {
  return d.toISOString().slice(0, 10);
}

/** The page's date range: from the URL, else the 90 days up to yesterday. */
function range(params) {
  const yesterday = new Date(Date.now() - 86400000);
  const to = params.get("to") || day(yesterday);
  const from = params.get("from") || day(new Date(Date.parse(to) - 89 * 86400000));
  return { from, to };
}

function rangeForm(page, params, from, to) {
  return `<form class="row" id="range">
    <label>${t("from")} <input type="date" name="from" value="${from}" data-testid="from"></label>
    <label>${t("to")} <input type="date" name="to" value="${to}" data-testid="to"></label>
    <button class="primary" type="submit">${t("apply")}</button></form>`;
}

function bindRange(page, params) {
  $("#range").addEventListener("submit", (e) => {
    e.preventDefault();
    const f = new FormData(e.target);
    go(page, { ...Object.fromEntries(params), from: f.get("from"), to: f.get("to") });
  });
}

// --- pages ---------------------------------------------------------------------------------

async function overview(params) {
  const { from, to } = range(params);
  const view = $("#view");
  view.innerHTML = `<h1>${t("overview")}</h1>${rangeForm("overview", params, from, to)}
    <div class="kpis" id="kpis"></div>
    <div class="grid">
      <div class="card"><h2>${t("stages_now")}</h2><div class="chart" id="c-stages"></div></div>
      <div class="card"><h2>${t("flows")} <span class="muted">${from} → ${to}</span></h2><div class="chart" id="c-flows"></div></div>
      <div class="card"><h2>${t("lifecycle")}</h2><div class="chart" id="c-lifecycle"></div></div>
      <div class="card"><h2>${t("revenue")}</h2><div class="chart" id="c-revenue"></div></div>
    </div>`;
  bindRange("overview", params);
  const [stages, lifecycle, revenue] = await Promise.all([
    analysis("stages", { date_from: from, date_to: to, interval: "month" }),
    analysis("lifecycle", { date_from: from, date_to: to, interval: "month" }),
    analysis("trends", { series: [{ event: "Order Completed", math: "sum" }], date_from: from, date_to: to, interval: "week" }),
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
  const s = revenue.series[0] || { values: [], labels: [], total: 0 };
  $("#kpis").insertAdjacentHTML("beforeend", `<div class="card kpi" data-testid="kpi-revenue">
      <div class="muted">${t("revenue")}</div><div class="value">${fmt(Math.round(s.total * 100) / 100)}</div></div>`);
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

function table(rows) {
  if (!rows.length) return `<div class="muted">${t("none")}</div>`;
  return `<table>${rows.map(([k, v]) => `<tr><th>${esc(k)}</th><td>${v}</td></tr>`).join("")}</table>`;
}

function profile(p) {
  const traits = Object.entries(p.profile.traits || {}).map(([k, v]) => [k, esc(typeof v === "object" ? JSON.stringify(v) : v)]);
  const computed = Object.entries(p.computed || {}).map(([k, v]) => [k, fmt(v ?? "—")]);
  const latest = p.scores && p.scores[0];
  const scores = latest ? ["clv", "p_alive", "expected_purchases", "churn_risk"]
    .filter((k) => latest[k] !== null && latest[k] !== undefined).map((k) => [k, fmt(latest[k])]) : [];
  const consent = Object.entries(p.consent || {}).map(([k, v]) => [k, v ? "✓" : "✗"]);
  const ids = [...(p.profile.user_ids || []), ...(p.profile.anonymous_ids || [])];
  $("#person").innerHTML = `<div class="grid" data-testid="profile">
    <div class="card"><h2>${esc(ids[0] || p.profile.person)}</h2>${table([
      ["person", esc(p.profile.person)], ["ids", esc(ids.join(", "))],
      [t("stage"), esc(p.stage ? t(p.stage) : "—")], [t("rfm"), esc(p.rfm_layer || "—")],
      [t("timezone"), esc(p.timezone)],
      [t("tags"), (p.tags || []).map((x) => `<span class="tag">${esc(x)}</span>`).join("") || "—"],
      [t("in_segments"), (p.segments || []).map((m) => `<span class="tag">${esc(m.name)}</span>`).join("") || "—"],
    ])}</div>
    <div class="card"><h2>${t("scores")}</h2>${table(scores)}<h2 style="margin-top:12px">${t("computed")}</h2>${table(computed)}</div>
    <div class="card"><h2>${t("traits")}</h2>${table(traits)}<h2 style="margin-top:12px">${t("consent")}</h2>${table(consent)}</div>
    <div class="card"><h2>${t("timeline")}</h2><table data-testid="timeline"><tr><th>${t("time")}</th><th>${t("event")}</th><th>${t("value")}</th></tr>
      ${(p.timeline || []).map((e) => `<tr><td>${esc(new Date(e.ts).toISOString().replace("T", " ").slice(0, 19))}</td><td>${esc(e.event)}</td><td>${e.value === null ? "" : fmt(e.value)}</td></tr>`).join("")}</table></div>
  </div>`;
}

async function segments() {
  const data = await api(`/api/projects/${encodeURIComponent(project())}/segments`);
  const list = data.segments || data || [];
  $("#view").innerHTML = `<h1>${t("segments")}</h1>${list.length ? `<div class="card"><table data-testid="segments">
    <tr><th>${t("name")}</th><th>${t("kind")}</th><th>${t("size")}</th><th>${t("evaluated")}</th></tr>
    ${list.map((s) => `<tr><td>${esc(s.name)}${s.tag ? ` <span class="tag">${t("tags")}</span>` : ""}</td>
      <td>${s.dynamic ? t("dynamic") : t("static")}</td><td>${fmt(s.size)}</td><td>${esc(s.evaluated_at || "")}</td></tr>`).join("")}
    </table></div>` : `<div class="empty">${t("no_segments")}</div>`}`;
}

async function settings() {
  const s = await api(`/api/projects/${encodeURIComponent(project())}/settings`);
  $("#view").innerHTML = `<h1>${t("settings")}</h1><div class="card">${table([
    [t("timezone_setting"), esc(s.timezone)],
    [t("defaults"), `<pre>${esc(JSON.stringify(s.defaults, null, 2))}</pre>`],
  ])}</div>`;
}

function placeholder(key) {
  $("#view").innerHTML = `<h1>${t(key)}</h1><div class="empty card">${t(key === "journeys" ? "journeys_soon" : "no_data")}</div>`;
}

// --- shell ---------------------------------------------------------------------------------

async function render() {
  charts.forEach((c) => c.dispose());
  charts = [];
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
    else if (page === "settings") await settings(params);
    else placeholder(page);
  } catch (e) {
    showError(e.message);
  }
  document.body.dataset.ready = page;
}

async function start() {
  const theme = localStorage.getItem("lodestar.theme") || (matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light");
  document.documentElement.dataset.theme = theme;
  $("#lang").addEventListener("click", () => {
    lang = lang === "zh" ? "en" : "zh";
    localStorage.setItem("lodestar.lang", lang);
    render();
  });
  $("#theme").addEventListener("click", () => {
    const next = document.documentElement.dataset.theme === "dark" ? "light" : "dark";
    document.documentElement.dataset.theme = next;
    localStorage.setItem("lodestar.theme", next);
    render();
  });
  try {
    const { projects } = await api("/api/admin/projects");
    $("#project").innerHTML = projects.map((p) => `<option>${esc(p.name)}</option>`).join("");
    const wanted = route().params.get("project") || localStorage.getItem("lodestar.project");
    if (wanted && projects.some((p) => p.name === wanted)) $("#project").value = wanted;
  } catch (e) {
    showError(e.message);
  }
  $("#project").addEventListener("change", () => {
    localStorage.setItem("lodestar.project", $("#project").value);
    go(route().page, { project: $("#project").value });
  });
  window.addEventListener("hashchange", render);
  window.addEventListener("resize", () => charts.forEach((c) => c.resize()));
  render();
}

start();
