// Shared by the dashboard's pages: texts (English / 中文), the route, API calls and charts.

const TEXT = {
  en: {
    overview: "Overview", users: "Users", analyses: "Analyses", segments: "Segments",
    journeys: "Journeys", settings: "Settings", lang: "中文",
    stages_now: "Users by lifecycle stage", flows: "Stage flows", lifecycle: "New / returning / resurrecting / dormant",
    revenue: "Revenue", from: "From", to: "To", apply: "Apply",
    onboarding: "Onboarding", growth: "Growth", maturity: "Maturity", dormant: "Dormant",
    churned: "Churned", resurrected: "Resurrected",
    new: "New", returning: "Returning", resurrecting: "Resurrecting", not_arrived: "Not yet arrived",
    search: "User id, anonymous id, person id, or trait=value", find: "Find", matches: "Persons with", not_found: "Nobody has that id.",
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
    funnel: "Funnel", retention: "Retention", rfm_grid: "RFM", trends: "Trends",
    paths: "Paths", stickiness: "Stickiness", nps: "NPS", kfactor: "K-factor", start: "Start event",
    promoters: "Promoters", passives: "Passives", detractors: "Detractors", invitations: "Invitations",
    k: "K-factor", conversions: "Conversions", north_star: "North Star", drivers: "Drivers (share of the metric's weekly changes explained)",
    clv: "CLV", clv_total: "Predicted CLV (12 months)", customers: "Customers", mean_p_alive: "Mean P(alive)",
    clv_hist: "CLV distribution", p_alive_map: "Mean P(alive) by purchases (x) and weeks since first purchase at the last one (y)",
    pin: "Pin to overview", pinned: "Pinned analyses", unpin: "Unpin", edit: "Edit", save_settings: "Save settings",
    settings_saved: "Settings saved.", new_project: "New project", create: "Create",
    write_key_once: "Write key (shown once — store it now)",
    alert_high: "above its usual range", alert_low: "below its usual range", usual: "usual",
    history: "Entries and exits", entered: "entered", exited: "exited", no_north_star: "No North Star defined yet (Settings: defaults.north_star).",
    steps: "Steps (comma-separated)", window: "Window", run: "Run", persons: "Persons",
    conversion: "Conversion", dropped: "Dropped", save_dropped: "Save as segment",
    start_event: "Start event", return_event: "Return event", interval: "Interval",
    cohort: "Cohort", layer: "Layer", share: "Share", monetary: "Monetary", series: "Event",
    math: "Measure", condition: "Conditions", preview: "Preview", save: "Save",
    members: "Members", export_csv: "Export CSV", segment_name: "Segment name",
    preview_size: "Members now", of: "of", saved: "Saved.", add: "Add",
  },
  zh: {
    overview: "概览", users: "用户", analyses: "分析", segments: "分群",
    journeys: "流程", settings: "设置", lang: "English",
    stages_now: "各生命周期阶段用户数", flows: "阶段流转", lifecycle: "新增 / 留存 / 回流 / 沉睡",
    revenue: "收入", from: "开始", to: "结束", apply: "应用",
    onboarding: "导入期", growth: "成长期", maturity: "成熟期", dormant: "休眠期",
    churned: "流失期", resurrected: "回流",
    new: "新增", returning: "留存", resurrecting: "回流", not_arrived: "尚未到来",
    search: "用户 ID、匿名 ID、人员编号，或 属性=值", find: "查询", matches: "满足条件的用户", not_found: "没有用户使用该 ID。",
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
    funnel: "漏斗", retention: "留存", rfm_grid: "RFM", trends: "趋势",
    paths: "路径", stickiness: "粘性", nps: "NPS", kfactor: "K 因子", start: "起始事件",
    promoters: "推荐者", passives: "中立者", detractors: "贬损者", invitations: "邀请数",
    k: "K 因子", conversions: "转化数", north_star: "北极星指标", drivers: "驱动因素（解释指标每周变化的比例）",
    clv: "CLV", clv_total: "预测 CLV（12 个月）", customers: "客户数", mean_p_alive: "平均存活概率",
    clv_hist: "CLV 分布", p_alive_map: "按购买次数（x）与最近一次购买时的周数（y）的平均存活概率",
    pin: "固定到概览", pinned: "已固定的分析", unpin: "取消固定", edit: "编辑", save_settings: "保存设置",
    settings_saved: "设置已保存。", new_project: "新建项目", create: "创建",
    write_key_once: "写入密钥（仅显示一次，请立即保存）",
    alert_high: "高于正常范围", alert_low: "低于正常范围", usual: "正常范围",
    history: "进入与退出记录", entered: "进入", exited: "退出", no_north_star: "尚未定义北极星指标（设置：defaults.north_star）。",
    steps: "步骤（逗号分隔）", window: "转化窗口", run: "计算", persons: "人数",
    conversion: "转化率", dropped: "流失", save_dropped: "保存为分群",
    start_event: "起始事件", return_event: "回访事件", interval: "周期",
    cohort: "同期群", layer: "分层", share: "占比", monetary: "消费额", series: "事件",
    math: "指标", condition: "条件", preview: "预览", save: "保存",
    members: "成员", export_csv: "导出 CSV", segment_name: "分群名称",
    preview_size: "当前人数", of: "/", saved: "已保存。", add: "添加",
  },
};

export const PAGES = ["overview", "users", "analyses", "segments", "journeys", "settings"];
export const STAGES = ["onboarding", "growth", "maturity", "dormant", "churned", "resurrected"];

export let lang = localStorage.getItem("lodestar.lang") || (navigator.language.startsWith("zh") ? "zh" : "en");
let charts = [];

/** Switches the language (kept in the browser). */
export function setLang(next) {
  lang = next;
  localStorage.setItem("lodestar.lang", lang);
}

/** Adds a page's own texts to the table (both languages). */
export function addText(more) {
  for (const l of Object.keys(more)) Object.assign(TEXT[l], more[l]);
}

/** Fits the charts to their boxes (after the window or a box changed size). */
export function resizeCharts() {
  charts.forEach((c) => c.resize());
}

/** Disposes the charts of the page being left. */
export function disposeCharts() {
  charts.forEach((c) => c.dispose());
  charts = [];
}

export const t = (key) => (TEXT[lang] && TEXT[lang][key]) || TEXT.en[key] || key;
export const $ = (sel) => document.querySelector(sel);
export const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
// (`n + 0` turns -0, which some sums give, into 0.)
export const fmt = (n) => (typeof n === "number" ? (n + 0).toLocaleString(lang === "zh" ? "zh-CN" : "en-US", { maximumFractionDigits: 2 }) : esc(n));

/** The route: page, its parameters (from the hash) and the rest of the path. */
export function route() {
  const [path, query] = location.hash.replace(/^#\/?/, "").split("?");
  const parts = (path || "overview").split("/");
  return { page: parts[0] || "overview", rest: parts.slice(1), params: new URLSearchParams(query || "") };
}

export function go(page, params, rest = []) {
  const q = new URLSearchParams(params);
  location.hash = `#/${[page, ...rest].join("/")}?${q}`;
}

export function showError(message) {
  const box = $("#error");
  box.textContent = message;
  box.hidden = !message;
}

/** Calls the API; errors become plain words (the server's message names the field). */
export async function api(path, body) {
  return call(path, body === undefined ? "GET" : "POST", body);
}

const TOKEN = "lodestar.admin_token";

/** The admin token given on this tab (kept for the session only), as request headers. */
export function authHeaders() {
  const token = sessionStorage.getItem(TOKEN);
  return token ? { authorization: `Bearer ${token}` } : {};
}

export function setToken(token) {
  if (token) sessionStorage.setItem(TOKEN, token); else sessionStorage.removeItem(TOKEN);
}

/** One API call; errors become plain words (the server's message names the field), and
 * carry the HTTP status (401: the admin token is needed). */
export async function call(path, method, body) {
  let res;
  try {
    res = await fetch(path, {
      method,
      headers: { ...authHeaders(), ...(body === undefined ? {} : { "content-type": "application/json" }) },
      body: body === undefined ? undefined : JSON.stringify(body),
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

export function project() {
  return route().params.get("project") || $("#project").value;
}

export function analysis(kind, params) {
  return api(`/api/projects/${encodeURIComponent(project())}/analyses/${kind}`, params);
}

export function chart(el, option) {
  const c = echarts.init(el, document.documentElement.dataset.theme === "dark" ? "dark" : null);
  // No animation: the numbers are there at once (and screenshots show them whole).
  c.setOption({ backgroundColor: "transparent", animation: false, ...option });
  charts.push(c);
  return c;
}

/** An instant (ms) as UTC `YYYY-MM-DD HH:MM`, or "—" for none. */
export const when = (ms) => (ms ? new Date(ms).toISOString().replace("T", " ").slice(0, 16) : "—");

export function day(d) {
  return d.toISOString().slice(0, 10);
}

/** The page's date range: from the URL, else the 90 days up to yesterday. */
export function range(params) {
  const yesterday = new Date(Date.now() - 86400000);
  const to = params.get("to") || day(yesterday);
  const from = params.get("from") || day(new Date(Date.parse(to) - 89 * 86400000));
  return { from, to };
}

export function rangeForm(page, params, from, to) {
  return `<form class="row" id="range">
    <label>${t("from")} <input type="date" name="from" value="${from}" data-testid="from"></label>
    <label>${t("to")} <input type="date" name="to" value="${to}" data-testid="to"></label>
    <button class="primary" type="submit">${t("apply")}</button></form>`;
}

export function bindRange(page, params) {
  $("#range").addEventListener("submit", (e) => {
    e.preventDefault();
    const f = new FormData(e.target);
    go(page, { ...Object.fromEntries(params), from: f.get("from"), to: f.get("to") });
  });
}

export function table(rows) {
  if (!rows.length) return `<div class="muted">${t("none")}</div>`;
  return `<table>${rows.map(([k, v]) => `<tr><th>${esc(k)}</th><td>${v}</td></tr>`).join("")}</table>`;
}

/** Pins an analysis (its URL) to the overview: kept in the project's settings. */
export async function pin(title, route) {
  const base = `/api/projects/${encodeURIComponent(project())}/settings`;
  const settings = await api(base);
  const pins = (settings.defaults.dashboard || []).filter((p) => p.route !== route);
  pins.push({ title, route });
  await put(base, { ...settings, defaults: { ...settings.defaults, dashboard: pins } });
  go("overview", { project: project() });
}

export async function put(path, body) {
  return call(path, "PUT", body);
}
