// Segments (分群): a visual builder for the condition tree (groups of "all of" / "any of",
// each condition negatable), with its JSON alongside for the rarer fields, a live size
// preview, and the saved segments with their members, history and export.

import { $, STAGES, addText, api, authHeaders, esc, fmt, go, lang, project, showError, t, when } from "./core.js";

addText({
  en: {
    all_of: "All of", any_of: "Any of", add_condition: "+ Condition", add_group: "+ Group",
    remove: "Remove", not: "not", where: "where", add_where: "+ where (event property)", f_event_property: "property", json_view: "Advanced: the tree as JSON", apply_json: "Use this JSON",
    n_trait: "Trait", n_did: "Did an event", n_first_time: "Did it for the first time", n_stopped: "Stopped doing",
    n_restarted: "Came back to", n_in_segment: "In segment", n_computed: "Computed attribute", n_rfm: "RFM layer",
    n_sequence: "Did one event, then another", n_regularly: "Does it regularly", n_aggregate: "Aggregate of events",
    n_stage: "Lifecycle stage", n_score: "Model score", n_first_seen: "First seen", n_last_seen: "Last seen",
    f_property: "trait", f_value: "value", f_event: "event", f_min: "at least", f_max: "at most",
    f_days: "in the last (days)", f_active_days: "active days before", f_gap_days: "after a gap of (days)",
    f_segment: "segment", f_name: "attribute", f_first: "first", f_then: "then", f_within_days: "within (days)",
    f_weeks: "weeks in a row", f_min_per_week: "times a week", f_agg: "of", f_score: "score",
    f_before_days: "more than (days ago)",
    op_eq: "=", op_neq: "≠", op_gt: ">", op_gte: "≥", op_lt: "<", op_lte: "≤", op_contains: "contains",
    op_not_contains: "does not contain", op_in: "is one of", op_not_in: "is none of", op_is_set: "is set",
    op_is_not_set: "is not set", op_between: "between", op_within_days: "within days", op_before_days: "more than days ago",
    list_hint: "comma-separated",
  },
  zh: {
    all_of: "满足全部", any_of: "满足任一", add_condition: "+ 条件", add_group: "+ 条件组",
    remove: "删除", not: "非", where: "且事件属性", add_where: "+ 事件属性条件", f_event_property: "属性", json_view: "高级：条件树 JSON", apply_json: "使用此 JSON",
    n_trait: "用户属性", n_did: "做过事件", n_first_time: "首次做某事件", n_stopped: "不再做某事件",
    n_restarted: "重新开始做", n_in_segment: "属于分群", n_computed: "计算属性", n_rfm: "RFM 分层",
    n_sequence: "先做 A 再做 B", n_regularly: "规律地做", n_aggregate: "事件聚合值",
    n_stage: "生命周期阶段", n_score: "模型评分", n_first_seen: "首次出现", n_last_seen: "最近出现",
    f_property: "属性", f_value: "值", f_event: "事件", f_min: "至少", f_max: "至多",
    f_days: "最近（天）", f_active_days: "此前活跃天数", f_gap_days: "间隔至少（天）",
    f_segment: "分群", f_name: "属性", f_first: "先", f_then: "再", f_within_days: "间隔不超过（天）",
    f_weeks: "连续周数", f_min_per_week: "每周次数", f_agg: "聚合", f_score: "评分",
    f_before_days: "超过（天）以前",
    op_eq: "等于", op_neq: "不等于", op_gt: "大于", op_gte: "大于等于", op_lt: "小于", op_lte: "小于等于", op_contains: "包含",
    op_not_contains: "不包含", op_in: "属于", op_not_in: "不属于", op_is_set: "有值",
    op_is_not_set: "无值", op_between: "介于", op_within_days: "最近几天内", op_before_days: "几天以前",
    list_hint: "逗号分隔",
  },
});

const OPS = ["eq", "neq", "gt", "gte", "lt", "lte", "contains", "not_contains", "in", "not_in", "is_set", "is_not_set", "between", "within_days", "before_days"];
const NUMBER_OPS = ["eq", "neq", "gt", "gte", "lt", "lte", "between", "is_set", "is_not_set"];

/** Each leaf type's fields: [name, kind], kind one of event, trait, int, op, value, list… */
const FIELDS = {
  trait: [["property", "trait"], ["op", "op"], ["value", "value"]],
  did: [["event", "event"], ["min", "int"], ["max", "int"], ["days", "int"]],
  first_time: [["event", "event"], ["days", "int"]],
  stopped: [["event", "event"], ["days", "int"], ["active_days", "int"], ["min", "int"]],
  restarted: [["event", "event"], ["gap_days", "int"], ["days", "int"]],
  in_segment: [["segment", "segment"]],
  computed: [["name", "computed"], ["op", "op"], ["value", "value"]],
  rfm: [["in", "rfm"], ["days", "int"]],
  sequence: [["first", "event"], ["then", "event"], ["within_days", "int"], ["days", "int"]],
  regularly: [["event", "event"], ["weeks", "int"], ["min_per_week", "int"]],
  aggregate: [["agg", "agg"], ["event", "event"], ["days", "int"], ["op", "numop"], ["value", "value"]],
  stage: [["in", "stages"]],
  score: [["score", "score"], ["op", "numop"], ["value", "value"]],
  first_seen: [["within_days", "int"], ["before_days", "int"]],
  last_seen: [["within_days", "int"], ["before_days", "int"]],
};

/** A new leaf of a type, with values that make sense in this project. */
function fresh(type, schema) {
  const event = schema.events.find((e) => /order|purchase|购买|支付/i.test(e)) || schema.events[0] || "";
  return {
    trait: { type, property: schema.traits[0]?.key || "plan", op: "eq", value: "" },
    did: { type, event, min: 1, days: 30 },
    first_time: { type, event, days: 30 },
    stopped: { type, event, days: 30 },
    restarted: { type, event, gap_days: 30, days: 7 },
    in_segment: { type, segment: schema.segments[0]?.[0] ?? 0 },
    computed: { type, name: schema.computed[0] || "", op: "gt", value: 0 },
    rfm: { type, in: schema.rfm_layers.slice(0, 1).map((l) => l.key) },
    sequence: { type, first: schema.events[0] || "", then: event, within_days: 7 },
    regularly: { type, event, weeks: 4 },
    aggregate: { type, agg: "sum", event, days: 90, op: "gt", value: 0 },
    stage: { type, in: ["dormant"] },
    score: { type, score: "clv", op: "gt", value: 100 },
    first_seen: { type, within_days: 30 },
    last_seen: { type, before_days: 30 },
  }[type];
}

/** The node at a path (a list of keys) in the tree. */
function at(tree, path) {
  return path.reduce((n, k) => n[k], tree);
}

/** A value typed in, as JSON: numbers and true/false as such, lists for in / not_in / between. */
function parseValue(text, op) {
  const one = (s) => {
    const v = s.trim();
    if (v !== "" && Number.isFinite(Number(v))) return Number(v);
    if (v === "true" || v === "false") return v === "true";
    return v;
  };
  if (op === "in" || op === "not_in" || op === "between") return text.split(",").map(one).filter((v) => v !== "");
  return one(text);
}

function showValue(v) {
  return Array.isArray(v) ? v.join(", ") : v ?? "";
}

const options = (list, chosen) => list.map(([v, label]) => `<option value="${esc(v)}" ${String(v) === String(chosen) ? "selected" : ""}>${esc(label)}</option>`).join("");

/** The inputs of one field of a leaf at `path`. */
function field(node, [name, kind], path, schema) {
  const p = esc(JSON.stringify(path));
  const attrs = `data-path="${p}" data-field="${name}" data-testid="f-${name}"`;
  const label = kind === "op" || kind === "numop" || kind === "rfm" || kind === "stages" ? ""
    : kind === "prop" ? t("f_event_property") : t(`f_${name}`);
  const wrap = (inner) => `<label class="field">${label ? `<span class="muted">${esc(label)}</span>` : ""}${inner}</label>`;
  const value = node[name];
  switch (kind) {
    case "event":
      return wrap(`<input ${attrs} list="dl-events" value="${esc(value ?? "")}" size="16">`);
    case "trait":
      return wrap(`<input ${attrs} list="dl-traits" value="${esc(value ?? "")}" size="12">`);
    case "prop":
      return wrap(`<input ${attrs} value="${esc(value ?? "")}" size="12">`);
    case "int":
      return wrap(`<input ${attrs} data-kind="int" type="number" min="0" value="${value ?? ""}" style="width:5.5em">`);
    case "op":
    case "numop":
      return wrap(`<select ${attrs}>${options((kind === "op" ? OPS : NUMBER_OPS).map((o) => [o, t(`op_${o}`)]), value)}</select>`);
    case "value":
      if (node.op === "is_set" || node.op === "is_not_set") return "";
      return wrap(`<input ${attrs} data-kind="value" value="${esc(showValue(value))}" size="12" placeholder="${["in", "not_in", "between"].includes(node.op) ? t("list_hint") : ""}">`);
    case "agg":
      return wrap(`<select ${attrs}>${options(schema.segment_aggregates.map((a) => [a, a]), value)}</select>`);
    case "score":
      return wrap(`<select ${attrs}>${options(schema.scores.map((s) => [s, s]), value)}</select>`);
    case "computed":
      return wrap(`<select ${attrs}>${options(schema.computed.map((c) => [c, c]), value)}${schema.computed.includes(value) ? "" : `<option selected>${esc(value)}</option>`}</select>`);
    case "segment":
      return wrap(`<select ${attrs} data-kind="int">${options(schema.segments, value)}</select>`);
    case "rfm":
    case "stages": {
      const choices = kind === "rfm"
        ? schema.rfm_layers.map((l) => [l.key, lang === "zh" ? l.name_zh : l.name])
        : STAGES.map((s) => [s, t(s)]);
      return `<span class="checks">${choices.map(([k, l]) => `<label><input type="checkbox" data-path="${p}" data-field="${name}" data-kind="set" value="${esc(k)}" ${(value || []).includes(k) ? "checked" : ""} data-testid="c-${esc(k)}">${esc(l)}</label>`).join("")}</span>`;
    }
    default:
      return "";
  }
}

/** One node (a group or a leaf) at `path`, with its controls. */
function nodeHtml(node, path, schema, depth) {
  const p = esc(JSON.stringify(path));
  const negated = node.type === "not";
  const inner = negated ? node.node : node;
  const innerPath = negated ? [...path, "node"] : path;
  const ip = esc(JSON.stringify(innerPath));
  const notBox = `<label class="not"><input type="checkbox" data-not="${p}" ${negated ? "checked" : ""} data-testid="not">${t("not")}</label>`;
  const remove = depth ? `<button type="button" class="link" data-remove="${p}" data-testid="remove">✕</button>` : "";
  if (inner.type === "and" || inner.type === "or") {
    const key = inner.type === "and" ? "all" : "any";
    const children = inner[key].map((c, i) => nodeHtml(c, [...innerPath, key, i], schema, depth + 1)).join("");
    return `<div class="group" data-testid="group">
      <div class="row">${notBox}<select data-group="${ip}" data-testid="group-op">${options([["and", t("all_of")], ["or", t("any_of")]], inner.type)}</select>${remove}</div>
      <div class="children">${children}</div>
      <div class="row"><select data-new-type="${ip}" data-testid="new-type">${options(Object.keys(FIELDS).map((k) => [k, t(`n_${k}`)]), "did")}</select>
        <button type="button" data-add="${ip}" data-testid="add-condition">${t("add_condition")}</button>
        <button type="button" data-add-group="${ip}" data-testid="add-group">${t("add_group")}</button></div></div>`;
  }
  const fields = FIELDS[inner.type];
  if (!fields) {
    // A node this builder does not know: kept as it is, edited in the JSON.
    return `<div class="leaf row">${notBox}<code>${esc(JSON.stringify(inner))}</code>${remove}</div>`;
  }
  // `did` may count only events whose properties pass conditions (`where`).
  const where = inner.type === "did" ? `<div class="where">${(inner.where || []).map((c, i) => {
    const at = [...innerPath, "where", i];
    return `<span class="row" data-testid="where">${t("where")} ${field(c, ["property", "prop"], at, schema)}${field(c, ["op", "op"], at, schema)}${field(c, ["value", "value"], at, schema)}
      <button type="button" class="link" data-remove-where="${esc(JSON.stringify(at))}" data-testid="remove-where">✕</button></span>`;
  }).join("")}<button type="button" class="link add" data-add-where="${ip}" data-testid="add-where">${t("add_where")}</button></div>` : "";
  return `<div class="leaf" data-testid="leaf-${inner.type}"><div class="row">${notBox}<b>${t(`n_${inner.type}`)}</b>
    ${fields.map((f) => field(inner, f, innerPath, schema)).join("")}${remove}</div>${where}</div>`;
}

export function segmentBuilder() {
  return `<div class="card" style="margin-bottom:12px"><h2>${t("condition")}</h2>
    <div id="visual" data-testid="builder"></div>
    <datalist id="dl-events"></datalist><datalist id="dl-traits"></datalist>
    <details id="json-box"><summary>${t("json_view")}</summary>
      <textarea id="tree" rows="10" style="width:100%;font-family:monospace" data-testid="tree"></textarea>
      <button type="button" id="apply-json" data-testid="apply-json">${t("apply_json")}</button></details>
    <div class="row"><span class="muted">${t("preview_size")}:</span> <b data-testid="preview-size" id="psize">…</b>
      <input id="sname" placeholder="${t("segment_name")}" data-testid="segment-name">
      <button class="primary" id="save" type="button" data-testid="save-segment">${t("save")}</button></div></div>`;
}

export async function bindBuilder() {
  const schema = await api(`/api/projects/${encodeURIComponent(project())}/schema`);
  $("#dl-events").innerHTML = schema.events.map((e) => `<option value="${esc(e)}">`).join("");
  $("#dl-traits").innerHTML = schema.traits.map((k) => `<option value="${esc(k.key)}">`).join("");
  // A first tree that holds in this project (no events yet: no event to name).
  let tree = { type: "and", all: [...(schema.events.length ? [fresh("did", schema)] : []), fresh("stage", schema)] };
  const textarea = $("#tree");
  let timer = null;
  const preview = async () => {
    // The page may have been left while the preview waited.
    if (!$("#psize")) return;
    try {
      const r = await api(`/api/projects/${encodeURIComponent(project())}/segments/preview`, { condition: tree, sample: 0 });
      if (!$("#psize")) return;
      showError("");
      $("#psize").textContent = `${fmt(r.size)} ${t("of")} ${fmt(r.persons)}`;
      $("#psize").dataset.size = r.size;
    } catch (e) {
      if (!$("#psize")) return;
      $("#psize").textContent = "—";
      delete $("#psize").dataset.size;
      showError(e.message);
    }
  };
  const changed = (redraw) => {
    textarea.value = JSON.stringify(tree, null, 2);
    if (redraw) $("#visual").innerHTML = nodeHtml(tree, [], schema, 0);
    clearTimeout(timer);
    timer = setTimeout(preview, 250);
  };
  const visual = $("#visual");
  const path = (el, attr) => JSON.parse(el.getAttribute(attr));
  visual.addEventListener("input", (e) => {
    const el = e.target;
    if (!el.dataset.field) return;
    const node = at(tree, path(el, "data-path"));
    const name = el.dataset.field;
    if (el.dataset.kind === "set") {
      const set = new Set(node[name] || []);
      if (el.checked) set.add(el.value); else set.delete(el.value);
      node[name] = [...set];
    } else if (el.dataset.kind === "int") {
      if (el.value === "") delete node[name]; else node[name] = Math.max(0, Math.round(Number(el.value)));
    } else if (el.dataset.kind === "value") {
      node[name] = parseValue(el.value, node.op);
    } else {
      node[name] = el.value;
    }
    // A new comparison changes which value input fits.
    changed(name === "op");
  });
  visual.addEventListener("change", (e) => {
    const el = e.target;
    if (el.dataset.group) {
      const node = at(tree, path(el, "data-group"));
      const children = node.all || node.any;
      delete node.all; delete node.any;
      node.type = el.value;
      node[el.value === "and" ? "all" : "any"] = children;
      changed(true);
    } else if (el.dataset.not) {
      const p = path(el, "data-not");
      const node = at(tree, p);
      const next = node.type === "not" ? node.node : { type: "not", node };
      if (p.length) at(tree, p.slice(0, -1))[p[p.length - 1]] = next; else tree = next;
      changed(true);
    }
  });
  visual.addEventListener("click", (e) => {
    const el = e.target;
    const groupAt = (attr) => {
      const g = at(tree, path(el, attr));
      return g.all || g.any;
    };
    if (el.dataset.add) {
      const type = el.parentElement.querySelector("[data-new-type]").value;
      groupAt("data-add").push(fresh(type, schema));
      changed(true);
    } else if (el.dataset.addGroup) {
      groupAt("data-add-group").push({ type: "or", any: [fresh("did", schema)] });
      changed(true);
    } else if (el.dataset.addWhere) {
      const node = at(tree, path(el, "data-add-where"));
      node.where = [...(node.where || []), { property: "", op: "eq", value: "" }];
      changed(true);
    } else if (el.dataset.removeWhere) {
      const p = path(el, "data-remove-where");
      const node = at(tree, p.slice(0, -2));
      node.where.splice(p[p.length - 1], 1);
      if (!node.where.length) delete node.where;
      changed(true);
    } else if (el.dataset.remove) {
      const p = path(el, "data-remove");
      // The list holding it: the parent group's children (a negated child is removed whole).
      at(tree, p.slice(0, -1)).splice(p[p.length - 1], 1);
      changed(true);
    }
  });
  $("#apply-json").addEventListener("click", () => {
    try {
      tree = JSON.parse(textarea.value);
      showError("");
      changed(true);
    } catch (e) {
      showError(e.message);
    }
  });
  // Typing JSON previews it at once; the visual tree follows on "use this JSON" or when valid.
  textarea.addEventListener("input", () => {
    try {
      tree = JSON.parse(textarea.value);
    } catch (e) {
      return;
    }
    $("#visual").innerHTML = nodeHtml(tree, [], schema, 0);
    clearTimeout(timer);
    timer = setTimeout(preview, 250);
  });
  $("#save").addEventListener("click", async () => {
    try {
      const made = await api(`/api/projects/${encodeURIComponent(project())}/segments`, {
        name: $("#sname").value, condition: tree,
      });
      go("segments", { project: project(), id: made.id });
    } catch (e) {
      showError(e.message);
    }
  });
  changed(true);
  await preview();
}

export async function segments(params) {
  const base = `/api/projects/${encodeURIComponent(project())}/segments`;
  const data = await api(base);
  const list = data.segments || data || [];
  const chosen = list.find((s) => String(s.id) === params.get("id"));
  $("#view").innerHTML = `<h1>${t("segments")}</h1>${segmentBuilder()}${list.length ? `<div class="card"><table data-testid="segments">
    <tr><th>${t("name")}</th><th>${t("kind")}</th><th>${t("size")}</th><th>${t("evaluated")}</th></tr>
    ${list.map((s) => `<tr><td><a href="#/segments?project=${encodeURIComponent(project())}&id=${s.id}">${esc(s.name)}</a>${s.tag ? ` <span class="tag">${t("tags")}</span>` : ""}</td>
      <td>${s.dynamic ? t("dynamic") : t("static")}</td><td>${fmt(s.size)}</td><td>${s.evaluated_at ? esc(when(s.evaluated_at)) : ""}</td></tr>`).join("")}
    </table></div>` : `<div class="empty">${t("no_segments")}</div>`}<div id="members"></div>`;
  await bindBuilder();
  if (chosen) {
    const m = await api(`${base}/${chosen.id}/members?limit=50`);
    const members = m.members || [];
    $("#members").innerHTML = `<div class="card" style="margin-top:12px" data-testid="members"><h2>${esc(chosen.name)} · ${t("members")} (${fmt(chosen.size)})
      <a href="${base}/${chosen.id}/export?format=csv&attributes=email,city" data-testid="export" download>${t("export_csv")}</a></h2>
      ${members.map((p) => `<a class="tag" href="#/users?project=${encodeURIComponent(project())}&q=${p}">${p}</a>`).join("")}</div>`;
    // The link downloads with the admin token when this tab has one (a plain link cannot send it).
    $("[data-testid=export]").addEventListener("click", async (e) => {
      if (!Object.keys(authHeaders()).length) return;
      e.preventDefault();
      const res = await fetch(e.currentTarget.href, { headers: authHeaders() });
      if (!res.ok) {
        showError(`HTTP ${res.status}`);
        return;
      }
      const a = document.createElement("a");
      a.href = URL.createObjectURL(await res.blob());
      a.download = `${chosen.name}.csv`;
      a.click();
      URL.revokeObjectURL(a.href);
    });
    const events = await api(`/api/projects/${encodeURIComponent(project())}/segment_events?segment=${chosen.id}&limit=10000`);
    const rows = events.segment_events.slice(-50).reverse();
    $("#members").insertAdjacentHTML("beforeend", `<div class="card" style="margin-top:12px"><h2>${t("history")}</h2>
      <table data-testid="history">${rows.map((e) => `<tr><td>${esc(when(e.at))}</td>
        <td><a href="#/users?project=${encodeURIComponent(project())}&q=${e.person}">${e.person}</a></td><td>${t(e.event === "segment entered" ? "entered" : "exited")}</td></tr>`).join("")}</table></div>`);
  }
}
