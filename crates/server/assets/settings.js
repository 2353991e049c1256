// Settings (设置): the project's time zone and defaults, and new projects.

import { $, api, esc, put, project, showError, t } from "./core.js";

export async function settings() {
  const base = `/api/projects/${encodeURIComponent(project())}/settings`;
  const s = await api(base);
  $("#view").innerHTML = `<h1>${t("settings")}</h1><div class="card">
    <label>${t("timezone_setting")} <input id="tz" value="${esc(s.timezone)}" data-testid="timezone"></label>
    <h2 style="margin-top:12px">${t("defaults")} <span class="muted">(computed, stages, rfm, north_star, nps, dashboard …)</span></h2>
    <textarea id="defaults" rows="18" style="width:100%;font-family:monospace" data-testid="defaults">${esc(JSON.stringify(s.defaults, null, 2))}</textarea>
    <div class="row"><button class="primary" id="save-settings" data-testid="save-settings">${t("save_settings")}</button><span id="saved" class="muted"></span></div></div>
    <div class="card" style="margin-top:12px"><h2>${t("new_project")}</h2>
    <div class="row"><input id="pname" data-testid="new-project"><button id="create" data-testid="create-project">${t("create")}</button></div><div id="key"></div></div>`;
  $("#save-settings").addEventListener("click", async () => {
    try {
      await put(base, { timezone: $("#tz").value, defaults: JSON.parse($("#defaults").value) });
      showError("");
      $("#saved").textContent = t("settings_saved");
    } catch (e) {
      showError(e.message);
    }
  });
  $("#create").addEventListener("click", async () => {
    try {
      const made = await api("/api/admin/projects", { name: $("#pname").value });
      $("#key").innerHTML = `<div>${t("write_key_once")}: <code data-testid="write-key">${esc(made.write_key)}</code></div>`;
      const opt = document.createElement("option");
      opt.textContent = made.project?.name || $("#pname").value;
      $("#project").appendChild(opt);
    } catch (e) {
      showError(e.message);
    }
  });
}
