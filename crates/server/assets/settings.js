// Settings (设置): the projects and their write keys (shown masked; a rotated key is shown
// once), the project's time zone, forms for its lifecycle rules, RFM layers, North Star and
// computed attributes (each writes its key of `defaults` back through PUT …/settings, which
// checks it and names a bad field), and every default as raw JSON under "advanced".

import { $, addText, api, esc, lang, project, put, showError, t } from "./core.js";

addText({
  en: {
    set_projects: "Projects and write keys", set_created: "Created", set_key: "Write key",
    set_key_note: "Keys are stored only as hashes: the list shows the first characters of each. Rotating gives a new key, shown once, and the old key stops working at once.",
    set_current: "this project", set_rotate: "Rotate key",
    set_rotate_confirm: "Give project “{name}” a new write key? The current key stops working at once: every SDK and import that uses it must switch to the new one.",
    set_new_key: "New write key of {name} (shown once — store it now; the old key no longer works)",
    set_new_name: "lowercase letters, digits, _ and -",
    set_zone_title: "Time zone for analyses", set_zone_help: "An IANA name such as Asia/Shanghai or Europe/Berlin.",
    set_not_saved: "Not saved: ", set_remove: "Remove",
    set_stages: "Lifecycle stages",
    set_stages_help: "How users are placed in the onboarding, growth, maturity, dormant, churned and resurrected stages.",
    set_rules: "Rules", set_preset_ecommerce: "Preset: e-commerce", set_preset_saas: "Preset: SaaS",
    set_preset_education: "Preset: education", set_custom: "Own rules",
    set_conversion_event: "Conversion event",
    set_activity_events: "Activity events (comma-separated; empty: any event)",
    set_dormant_days: "Dormant after (days without activity)",
    set_churn_days: "Churned after (days without activity)",
    set_mature_conversions: "Mature at (conversions)",
    set_resurrected_days: "Resurrected for (days after returning)",
    set_rfm: "RFM layers", set_purchase_events: "Purchase events (comma-separated)",
    set_any_value: "Any event with a value counts as a purchase",
    set_scheme: "Scheme", set_scheme_segments: "Named layers (the rules below)",
    set_scheme_eight: "Eight classes (R, F, M high or low)",
    set_layers_help: "Each layer is a rectangle of the R × F score grid (scores 1 to 5); a buyer goes to the first layer that holds their scores.",
    set_layer_key: "Key", set_layer_name: "Name (English)", set_layer_name_zh: "Name (中文)",
    set_r_from: "R from", set_r_to: "R to", set_f_from: "F from", set_f_to: "F to",
    set_add_layer: "Add layer", set_reset_layers: "Default layers",
    set_ns_help: "The metric the team steers by, and the drivers whose changes explain it (the overview shows both).",
    set_metric: "Metric", set_drivers: "Drivers (at most 5)", set_measure: "Measure",
    set_any_event: "any event", set_add_driver: "Add driver", set_remove_ns: "Remove the North Star",
    set_interval: "Interval", set_default_week: "default (week)", set_hour: "hour", set_day: "day",
    set_week: "week", set_month: "month",
    set_math_total: "events", set_math_unique: "users", set_math_per_person_avg: "events per user",
    set_math_sum: "sum of values", set_math_avg: "mean value", set_math_min: "least value",
    set_math_max: "greatest value",
    set_computed_help: "Values computed per user from their events: shown on profiles, usable in segments.",
    set_agg: "Aggregate", set_property: "Property", set_property_ph: "the event value",
    set_days: "Last days", set_days_ph: "all history", set_add_attr: "Add attribute",
    set_agg_count: "number of events", set_agg_sum: "sum of values", set_agg_avg: "mean value",
    set_agg_min: "least value", set_agg_max: "greatest value", set_agg_first: "first value",
    set_agg_last: "latest value", set_agg_most_frequent: "most frequent value",
    set_agg_distinct_count: "number of distinct values", set_agg_days_active: "days with events",
    set_agg_first_time: "time of the first event", set_agg_last_time: "time of the latest event",
    set_advanced: "Advanced: every default parameter as JSON",
    set_advanced_help: "Also NPS, the analyses pinned to the overview, and the defaults of any analysis.",
  },
  zh: {
    set_projects: "项目与写入密钥", set_created: "创建时间", set_key: "写入密钥",
    set_key_note: "密钥只以哈希形式保存：列表只显示每个密钥的前几位。轮换会生成新密钥（仅显示一次），旧密钥立即失效。",
    set_current: "当前项目", set_rotate: "轮换密钥",
    set_rotate_confirm: "为项目“{name}”生成新的写入密钥？当前密钥将立即失效：所有使用它的 SDK 与导入任务都需改用新密钥。",
    set_new_key: "{name} 的新写入密钥（仅显示一次，请立即保存；旧密钥已失效）",
    set_new_name: "小写字母、数字、_ 和 -",
    set_zone_title: "分析所用时区", set_zone_help: "IANA 时区名，例如 Asia/Shanghai、Europe/Berlin。",
    set_not_saved: "未保存：", set_remove: "删除",
    set_stages: "生命周期阶段规则",
    set_stages_help: "用户如何划入导入期、成长期、成熟期、休眠期、流失期与回流。",
    set_rules: "规则", set_preset_ecommerce: "预设：电商", set_preset_saas: "预设：SaaS",
    set_preset_education: "预设：在线教育", set_custom: "自定义规则",
    set_conversion_event: "关键转化事件",
    set_activity_events: "活跃事件（逗号分隔；留空表示任意事件）",
    set_dormant_days: "无活跃多少天后进入休眠期",
    set_churn_days: "无活跃多少天后进入流失期",
    set_mature_conversions: "转化多少次后进入成熟期",
    set_resurrected_days: "回流后多少天内算作回流",
    set_rfm: "RFM 分层", set_purchase_events: "购买事件（逗号分隔）",
    set_any_value: "任何带金额的事件都算作购买",
    set_scheme: "分层方案", set_scheme_segments: "命名分层（按下方规则）",
    set_scheme_eight: "八类客户（R、F、M 高低）",
    set_layers_help: "每个分层是 R × F 评分网格（1 到 5 分）中的一个矩形；客户归入第一个包含其评分的分层。",
    set_layer_key: "标识", set_layer_name: "英文名称", set_layer_name_zh: "中文名称",
    set_r_from: "R 最低", set_r_to: "R 最高", set_f_from: "F 最低", set_f_to: "F 最高",
    set_add_layer: "添加分层", set_reset_layers: "恢复默认分层",
    set_ns_help: "团队据以决策的核心指标，以及解释其变化的驱动因素（概览页会显示两者）。",
    set_metric: "指标", set_drivers: "驱动因素（最多 5 个）", set_measure: "计算方式",
    set_any_event: "任意事件", set_add_driver: "添加驱动因素", set_remove_ns: "删除北极星指标",
    set_interval: "周期", set_default_week: "默认（周）", set_hour: "小时", set_day: "天",
    set_week: "周", set_month: "月",
    set_math_total: "事件次数", set_math_unique: "去重人数", set_math_per_person_avg: "人均次数",
    set_math_sum: "数值总和", set_math_avg: "数值平均", set_math_min: "数值最小",
    set_math_max: "数值最大",
    set_computed_help: "根据事件为每位用户计算的值：显示在用户画像中，可用于分群。",
    set_agg: "聚合方式", set_property: "属性", set_property_ph: "事件数值",
    set_days: "最近天数", set_days_ph: "全部历史", set_add_attr: "添加属性",
    set_agg_count: "事件次数", set_agg_sum: "数值求和", set_agg_avg: "平均值", set_agg_min: "最小值",
    set_agg_max: "最大值", set_agg_first: "首次的值", set_agg_last: "最近的值",
    set_agg_most_frequent: "最常见的值", set_agg_distinct_count: "不同值的个数",
    set_agg_days_active: "活跃天数", set_agg_first_time: "首次发生时间", set_agg_last_time: "最近发生时间",
    set_advanced: "高级：以 JSON 编辑全部默认参数",
    set_advanced_help: "也包括 NPS、固定到概览的分析，以及任意分析的默认参数。",
  },
});

// The server's built-in choices (`GET …/schema`): the stage presets, to show what one means
// and to start editing from; the default RFM layers; the computed attributes' aggregates.
let builtins = { stage_presets: [], rfm_default_layers: [], computed_aggregates: [] };
// The measures trends' `Math` accepts.
const MATHS = ["total", "unique", "per_person_avg", "sum", "avg", "min", "max"];

const settingsPath = () => `/api/projects/${encodeURIComponent(project())}/settings`;
const options = (values, label) => values.map((v) => [v, label(v)]);

// --- inputs --------------------------------------------------------------------------------
// An input is described by {key, label, type ("text", "number", "checkbox"), options
// ([[value, label]]), placeholder, field}; `field` is where the server names it in an error,
// relative to the form's `defaults.<key>` (a list row's is prefixed with the row's index).

function input(c, value) {
  const attrs = `data-key="${c.key}" data-field="${esc(c.field ?? c.key)}" aria-label="${esc(c.label)}"`;
  if (c.options) {
    const chosen = value ?? c.options[0][0];
    return `<select ${attrs}>${c.options.map(([v, label]) =>
      `<option value="${esc(v)}"${v === chosen ? " selected" : ""}>${esc(label)}</option>`).join("")}</select>`;
  }
  if (c.type === "checkbox") return `<input type="checkbox" ${attrs}${value ? " checked" : ""}>`;
  const num = c.type === "number" ? ` class="n" min="${c.min ?? 0}"${c.max ? ` max="${c.max}"` : ""} step="1"` : "";
  return `<input type="${c.type || "text"}" ${attrs}${num} value="${esc(value ?? "")}" placeholder="${esc(c.placeholder || "")}">`;
}

/** A labelled input on its own line. */
const field = (c, value) => `<label class="stack"><span>${esc(c.label)}</span>${input(c, value)}</label>`;

/** An input's value: a number (null when empty), a boolean, or trimmed text. */
function read(el) {
  if (el.type === "checkbox") return el.checked;
  if (el.type === "number") return el.value === "" ? null : Number(el.value);
  return el.value.trim();
}

const valueOf = (form, key) => read(form.querySelector(`[data-key="${key}"]`));
const list = (text) => text.split(",").map((s) => s.trim()).filter(Boolean);

/** Sets `obj[key]` unless the value is empty (the server's default applies). */
function optional(obj, key, value) {
  if (value !== "" && value !== null && value !== undefined) obj[key] = value;
  else delete obj[key];
  return obj;
}

// --- list editors: a table row per item, with add and remove ------------------------------

function rowHtml(cols, item) {
  return `<tr>${cols.map((c) => `<td>${input(c, item[c.key])}</td>`).join("")}
    <td><button type="button" data-remove>${t("set_remove")}</button></td></tr>`;
}

function listTable(cols, items, testid) {
  return `<div class="scroll"><table class="edit" data-testid="${testid}"><thead><tr>${cols.map((c) => `<th>${esc(c.label)}</th>`).join("")}<th></th></tr></thead>
    <tbody>${items.map((it) => rowHtml(cols, it)).join("")}</tbody></table></div>`;
}

function bindList(form, cols, blank) {
  const body = form.querySelector("table.edit tbody");
  body.addEventListener("click", (e) => {
    if (e.target.matches("[data-remove]")) e.target.closest("tr").remove();
  });
  form.querySelector("[data-add]").addEventListener("click", () => body.insertAdjacentHTML("beforeend", rowHtml(cols, blank)));
}

/** The rows' values by key; renumbers their fields (`prefix[i].…`) for the server's errors. */
function readRows(form, prefix) {
  return [...form.querySelectorAll("table.edit tbody tr")].map((tr, i) => {
    const row = {};
    for (const el of tr.querySelectorAll("[data-key]")) {
      el.dataset.field = `${prefix}[${i}].${el.dataset.key.replace(/_(lo|hi)$/, "")}`;
      row[el.dataset.key] = read(el);
    }
    return row;
  });
}

// --- saving --------------------------------------------------------------------------------

function status(form, text, bad) {
  const box = form.querySelector(".status");
  box.textContent = text;
  box.classList.toggle("bad", bad);
}

/** Marks the inputs the server's error names. `put` ends its message with "(field)", e.g.
 * "(defaults.rfm.layers[0].r)"; `prefix` is the form's part of it ("defaults.rfm"). */
function markField(form, prefix, message) {
  const named = /\(([\w.[\]]+)\)$/.exec(message)?.[1] || "";
  const rel = named.startsWith(prefix) ? named.slice(prefix.length).replace(/^\./, "") : named;
  if (!rel) return;
  const hit = [...form.querySelectorAll("[data-field]")].filter((el) => {
    const f = el.dataset.field;
    return rel === f || rel.startsWith(`${f}.`) || rel.startsWith(`${f}[`);
  });
  hit.forEach((el) => el.classList.add("invalid"));
  hit[0]?.focus();
}

/** Saves `change(fresh settings)` (read just before, so other keys stay as they are now) and
 * says so in the form, or shows the server's error there with the field marked. */
async function save(form, prefix, change) {
  form.querySelectorAll(".invalid").forEach((el) => el.classList.remove("invalid"));
  status(form, "", false);
  try {
    const saved = await put(settingsPath(), change(await api(settingsPath())));
    $("#defaults").value = JSON.stringify(saved.defaults, null, 2);
    status(form, t("saved"), false);
    return saved;
  } catch (e) {
    status(form, `${t("set_not_saved")}${e.message}`, true);
    markField(form, prefix, e.message);
    return null;
  }
}

/** Saves one key of `defaults` as `update` makes it from its value now (parameters the form
 * does not show are kept); undefined removes the key. */
function saveDefault(form, key, update) {
  return save(form, `defaults.${key}`, (fresh) => {
    const defaults = { ...fresh.defaults };
    const value = update(defaults[key]);
    if (value === undefined) delete defaults[key];
    else defaults[key] = value;
    return { ...fresh, defaults };
  });
}

const card = (testid, title, help, body) => `<section class="card" data-testid="${testid}">
  <h2>${esc(title)}</h2>${help ? `<p class="muted">${esc(help)}</p>` : ""}${body}</section>`;
const saveRow = (extra = "") => `<div class="row">${extra}<button class="primary" type="button" data-save>${t("save")}</button>
  <span class="status" role="status"></span></div>`;

// --- projects and write keys ---------------------------------------------------------------

async function loadProjects() {
  const { projects } = await api("/api/admin/projects");
  const when = (ms) => new Date(ms).toLocaleString(lang === "zh" ? "zh-CN" : "en-US");
  $("#project-rows").innerHTML = projects.map((p) => `<tr data-testid="project-${esc(p.name)}">
    <td>${esc(p.name)}${p.name === project() ? ` <span class="tag">${t("set_current")}</span>` : ""}</td>
    <td>${esc(when(p.created_at))}</td><td>${esc(p.time_zone)}</td>
    <td><code data-testid="key-hint">${esc(p.key_hint)}…</code></td>
    <td><button type="button" data-rotate="${esc(p.name)}" data-testid="rotate-${esc(p.name)}">${t("set_rotate")}</button></td></tr>`).join("");
}

function projectsCard() {
  return card("projects", t("set_projects"), t("set_key_note"), `<div class="scroll"><table>
    <thead><tr><th>${t("name")}</th><th>${t("set_created")}</th><th>${t("timezone_setting")}</th><th>${t("set_key")}</th><th></th></tr></thead>
    <tbody id="project-rows"></tbody></table></div><div id="rotated"></div>
    <h3>${t("new_project")}</h3>
    <div class="row"><input id="pname" data-testid="new-project" aria-label="${esc(t("new_project"))}" placeholder="${esc(t("set_new_name"))}">
    <button id="create" type="button" data-testid="create-project">${t("create")}</button></div><div id="key"></div>`);
}

function bindProjects() {
  $("#project-rows").addEventListener("click", async (e) => {
    const name = e.target.dataset.rotate;
    if (!name || !confirm(t("set_rotate_confirm").replace("{name}", name))) return;
    try {
      const made = await api(`/api/admin/projects/${encodeURIComponent(name)}/rotate_key`, {});
      $("#rotated").innerHTML = `<div class="newkey">${esc(t("set_new_key").replace("{name}", name))}:
        <code data-testid="new-key">${esc(made.write_key)}</code></div>`;
      showError("");
      await loadProjects();
    } catch (err) {
      showError(err.message);
    }
  });
  $("#create").addEventListener("click", async () => {
    try {
      const made = await api("/api/admin/projects", { name: $("#pname").value });
      $("#key").innerHTML = `<div class="newkey">${t("write_key_once")}: <code data-testid="write-key">${esc(made.write_key)}</code></div>`;
      const opt = document.createElement("option");
      opt.textContent = made.project?.name || $("#pname").value;
      $("#project").appendChild(opt);
      showError("");
      await loadProjects();
    } catch (e) {
      showError(e.message);
    }
  });
}

// --- time zone -----------------------------------------------------------------------------

function zoneCard(s) {
  return card("form-timezone", t("set_zone_title"), t("set_zone_help"),
    `<div class="row"><label>${t("timezone_setting")} <input id="tz" value="${esc(s.timezone)}" data-field="timezone" data-testid="timezone"></label></div>${saveRow()}`);
}

function bindZone() {
  const form = $("[data-testid=form-timezone]");
  form.querySelector("[data-save]").addEventListener("click", () =>
    save(form, "", (fresh) => ({ ...fresh, timezone: $("#tz").value.trim() })));
}

// --- lifecycle stages (defaults.stages: a preset or rules) ---------------------------------

const ruleFields = () => [
  { key: "conversion_event", label: "set_conversion_event" },
  { key: "activity_events", label: "set_activity_events", placeholder: "set_any_event" },
  { key: "dormant_days", label: "set_dormant_days", type: "number", min: 1 },
  { key: "churn_days", label: "set_churn_days", type: "number", min: 1 },
  { key: "mature_conversions", label: "set_mature_conversions", type: "number", min: 2 },
  { key: "resurrected_days", label: "set_resurrected_days", type: "number", min: 1 },
].map((c) => ({ ...c, label: t(c.label), placeholder: c.placeholder && t(c.placeholder) }));

function presetRules(name) {
  return builtins.stage_presets.find(([preset]) => preset === name)[1];
}

function stagesCard(d) {
  const mode = d.rules ? "custom" : d.preset || "ecommerce";
  const rules = d.rules || presetRules(mode);
  const modes = [...builtins.stage_presets.map(([p]) => [p, t(`set_preset_${p}`)]), ["custom", t("set_custom")]];
  return card("form-stages", t("set_stages"), t("set_stages_help"), `<div class="fields">
    ${field({ key: "mode", field: "preset", label: t("set_rules"), options: modes }, mode)}
    ${ruleFields().map((c) => field(c, c.key === "activity_events" ? (rules.activity_events || []).join(", ") : rules[c.key])).join("")}
    </div>${saveRow()}`);
}

function bindStages() {
  const form = $("[data-testid=form-stages]");
  const mode = form.querySelector("[data-key=mode]");
  const fields = ruleFields();
  const show = () => {
    const preset = mode.value !== "custom";
    for (const c of fields) {
      const el = form.querySelector(`[data-key=${c.key}]`);
      el.disabled = preset;
      if (preset) el.value = c.key === "activity_events" ? "" : presetRules(mode.value)[c.key];
    }
  };
  mode.addEventListener("change", show);
  show();
  form.querySelector("[data-save]").addEventListener("click", () => saveDefault(form, "stages", (now) => {
    const next = { ...now };
    if (mode.value === "custom") {
      const rules = {};
      for (const c of fields) rules[c.key] = valueOf(form, c.key);
      rules.activity_events = list(rules.activity_events);
      next.rules = rules;
      delete next.preset;
    } else {
      next.preset = mode.value;
      delete next.rules;
    }
    return next;
  }));
}

// --- RFM (defaults.rfm: purchase events, scheme, layers) -----------------------------------

const LAYER_COLS = () => [
  { key: "key", label: t("set_layer_key") },
  { key: "name", label: t("set_layer_name") },
  { key: "name_zh", label: t("set_layer_name_zh") },
  { key: "r_lo", label: t("set_r_from"), type: "number", min: 1, max: 5 },
  { key: "r_hi", label: t("set_r_to"), type: "number", min: 1, max: 5 },
  { key: "f_lo", label: t("set_f_from"), type: "number", min: 1, max: 5 },
  { key: "f_hi", label: t("set_f_to"), type: "number", min: 1, max: 5 },
];
const layerRow = (l) => ({ ...l, r_lo: l.r[0], r_hi: l.r[1], f_lo: l.f[0], f_hi: l.f[1] });

function rfmCard(d) {
  const events = d.purchase_events;
  const schemes = [["segments", t("set_scheme_segments")], ["eight", t("set_scheme_eight")]];
  return card("form-rfm", t("set_rfm"), "", `<div class="fields">
    ${field({ key: "purchase_events", label: t("set_purchase_events"), placeholder: "Order Completed" }, (events || []).join(", "))}
    <label class="check">${input({ key: "any_value", field: "purchase_events", label: t("set_any_value"), type: "checkbox" }, events?.length === 0)} ${t("set_any_value")}</label>
    ${field({ key: "scheme", label: t("set_scheme"), options: schemes }, d.scheme)}</div>
    <div data-part="layers"><p class="muted">${t("set_layers_help")}</p>
    ${listTable(LAYER_COLS(), (d.layers || builtins.rfm_default_layers).map(layerRow), "layers")}</div>
    ${saveRow(`<button type="button" data-add>${t("set_add_layer")}</button><button type="button" data-reset>${t("set_reset_layers")}</button>`)}`);
}

function bindRfm() {
  const form = $("[data-testid=form-rfm]");
  const cols = LAYER_COLS();
  bindList(form, cols, { r_lo: 1, r_hi: 5, f_lo: 1, f_hi: 5 });
  form.querySelector("[data-reset]").addEventListener("click", () => {
    form.querySelector("table.edit tbody").innerHTML = builtins.rfm_default_layers.map((l) => rowHtml(cols, layerRow(l))).join("");
  });
  const any = form.querySelector("[data-key=any_value]");
  const scheme = form.querySelector("[data-key=scheme]");
  const show = () => {
    form.querySelector("[data-key=purchase_events]").disabled = any.checked;
    form.querySelector("[data-part=layers]").hidden = scheme.value !== "segments";
    form.querySelector("[data-add]").hidden = form.querySelector("[data-reset]").hidden = scheme.value !== "segments";
  };
  any.addEventListener("change", show);
  scheme.addEventListener("change", show);
  show();
  form.querySelector("[data-save]").addEventListener("click", () => saveDefault(form, "rfm", (now) => {
    const next = { ...now };
    const events = list(valueOf(form, "purchase_events"));
    optional(next, "purchase_events", any.checked ? [] : events.length ? events : undefined);
    optional(next, "scheme", scheme.value === "segments" ? undefined : scheme.value);
    const layers = readRows(form, "layers").map((r) => ({ key: r.key, name: r.name, name_zh: r.name_zh, r: [r.r_lo, r.r_hi], f: [r.f_lo, r.f_hi] }));
    // The built-in layers stay the server's (they may improve); others are the project's.
    const own = scheme.value === "segments" && JSON.stringify(layers) !== JSON.stringify(builtins.rfm_default_layers);
    optional(next, "layers", own ? layers : undefined);
    return Object.keys(next).length ? next : undefined;
  }));
}

// --- North Star (defaults.north_star: metric, drivers, interval) ---------------------------

const SERIES_COLS = () => [
  { key: "name", label: t("name") },
  { key: "event", label: t("event"), placeholder: t("set_any_event") },
  { key: "math", label: t("set_measure"), options: options(MATHS, (m) => t(`set_math_${m}`)) },
];

/** A series as the schema has it: no empty name or event (absent: the default, any event). */
const series = (r) => ({ ...optional(optional({}, "name", r.name), "event", r.event), math: r.math });

function northStarCard(d) {
  const metric = { math: "unique", ...d.metric };
  const intervals = [["", t("set_default_week")], ...options(["hour", "day", "week", "month"], (i) => t(`set_${i}`))];
  return card("form-north-star", t("north_star"), t("set_ns_help"), `<h3>${t("set_metric")}</h3><div class="fields">
    ${SERIES_COLS().map((c) => field({ ...c, key: `metric_${c.key}`, field: `metric.${c.key}` }, metric[c.key])).join("")}
    ${field({ key: "interval", label: t("set_interval"), options: intervals }, d.interval || "")}</div>
    <h3>${t("set_drivers")}</h3>${listTable(SERIES_COLS(), (d.drivers || []).map((x) => ({ math: "unique", ...x })), "drivers")}
    ${saveRow(`<button type="button" data-add>${t("set_add_driver")}</button><button type="button" data-clear>${t("set_remove_ns")}</button>`)}`);
}

function bindNorthStar() {
  const form = $("[data-testid=form-north-star]");
  bindList(form, SERIES_COLS(), { math: "unique" });
  form.querySelector("[data-save]").addEventListener("click", () => saveDefault(form, "north_star", (now) => {
    const metric = series({ name: valueOf(form, "metric_name"), event: valueOf(form, "metric_event"), math: valueOf(form, "metric_math") });
    return optional({ ...now, metric, drivers: readRows(form, "drivers").map(series) }, "interval", valueOf(form, "interval"));
  }));
  form.querySelector("[data-clear]").addEventListener("click", async () => {
    const saved = await saveDefault(form, "north_star", () => undefined);
    if (!saved) return;
    renderForms(saved);
    status($("[data-testid=form-north-star]"), t("saved"), false);
  });
}

// --- computed attributes (defaults.computed: a list) ---------------------------------------

const COMPUTED_COLS = () => [
  { key: "name", label: t("name"), placeholder: "spend_90d" },
  { key: "agg", label: t("set_agg"), options: options(builtins.computed_aggregates, (a) => `${a} — ${t(`set_agg_${a}`)}`) },
  { key: "event", label: t("event"), placeholder: t("set_any_event") },
  { key: "property", label: t("set_property"), placeholder: t("set_property_ph") },
  { key: "days", label: t("set_days"), type: "number", min: 1, placeholder: t("set_days_ph") },
];

function computedCard(defs) {
  return card("form-computed", t("computed"), t("set_computed_help"),
    `${listTable(COMPUTED_COLS(), defs, "computed")}${saveRow(`<button type="button" data-add>${t("set_add_attr")}</button>`)}`);
}

function bindComputed() {
  const form = $("[data-testid=form-computed]");
  bindList(form, COMPUTED_COLS(), { agg: "count" });
  form.querySelector("[data-save]").addEventListener("click", () => {
    const defs = readRows(form, "").map((r) => {
      const def = { name: r.name, agg: r.agg };
      for (const k of ["event", "property", "days"]) optional(def, k, r[k]);
      return def;
    });
    return saveDefault(form, "computed", () => (defs.length ? defs : undefined));
  });
}

// --- the page ------------------------------------------------------------------------------

/** The forms of the defaults, from `s` (again after the raw JSON was saved). */
function renderForms(s) {
  const d = s.defaults || {};
  $("#forms").innerHTML = stagesCard(d.stages || {}) + rfmCard(d.rfm || {}) + northStarCard(d.north_star || {})
    + computedCard(d.computed || []);
  bindStages();
  bindRfm();
  bindNorthStar();
  bindComputed();
}

export async function settings() {
  const [s, schema] = await Promise.all([
    api(settingsPath()), api(`/api/projects/${encodeURIComponent(project())}/schema`),
  ]);
  builtins = schema;
  $("#view").innerHTML = `<h1>${t("settings")}</h1><div class="settings">
    ${projectsCard()}${zoneCard(s)}<div id="forms" class="settings"></div>
    <details class="card advanced" data-testid="advanced"><summary>${t("set_advanced")}</summary>
    <p class="muted">${t("set_advanced_help")}</p>
    <h2>${t("defaults")} <span class="muted">(computed, stages, rfm, north_star, nps, dashboard …)</span></h2>
    <textarea id="defaults" rows="18" data-testid="defaults" aria-label="${esc(t("defaults"))}">${esc(JSON.stringify(s.defaults, null, 2))}</textarea>
    <div class="row"><button class="primary" id="save-settings" type="button" data-testid="save-settings">${t("save_settings")}</button><span id="saved" class="muted"></span></div></details></div>`;
  renderForms(s);
  bindProjects();
  bindZone();
  $("#save-settings").addEventListener("click", async () => {
    try {
      const saved = await put(settingsPath(), { timezone: $("#tz").value, defaults: JSON.parse($("#defaults").value) });
      showError("");
      renderForms(saved);
      $("#saved").textContent = t("settings_saved");
    } catch (e) {
      showError(e.message);
    }
  });
  await loadProjects();
}
