// Presets: your teams' and public ones, every version with where it came from, and its export.

import { api, describe, download, esc, num, poll, when } from "./util.js";

/** Render the presets page into `root` and keep it current; returns the function that stops it. */
export function presetsPage(root, onUnauthorized) {
  root.innerHTML = `
    <h1>Presets</h1>
    <p class="muted">Published from a trial's page. A study file takes one as
      <code>warm_start: {preset: team/name@version}</code>.</p>
    <p class="export-error error" role="alert"></p>
    <div class="presets"></div>
    <p class="muted empty" hidden>No presets yet: open a complete trial and publish it.</p>`;
  const $ = (selector) => root.querySelector(selector);
  let shown = null;

  root.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-export]");
    if (!button) return;
    const { ref, format } = button.dataset;
    const [path, version] = ref.split("@");
    $(".export-error").textContent = "";
    try {
      await download(`/api/v1/presets/${path}/${version}/export?format=${format}`, `${path.replace("/", "-")}-${version}.${format}`);
    } catch (error) {
      $(".export-error").textContent = `${ref}: ${describe(error)}`;
    }
  });

  return poll(async () => {
    const { data } = await api("/api/v1/presets");
    const text = JSON.stringify(data.data);
    if (text === shown) return; // nothing new: leave the page as the user is reading it
    shown = text;
    const groups = new Map();
    for (const p of data.data) groups.set(`${p.team}/${p.name}`, [...(groups.get(`${p.team}/${p.name}`) ?? []), p]);
    $(".presets").innerHTML = [...groups].map(([name, versions]) => presetCard(name, versions)).join("");
    $(".empty").hidden = groups.size > 0;
  }, onUnauthorized);
}

function presetCard(name, versions) {
  const latest = versions.at(-1);
  return `<div class="card preset" data-preset="${esc(name)}">
    <h2>${esc(name)} <span class="badge">${esc(latest.visibility)}</span>
      <span class="muted">${versions.length} version${versions.length === 1 ? "" : "s"}</span></h2>
    <div class="table-wrap"><table class="versions">
      <thead><tr><th>version</th><th>visibility</th><th>from</th><th>dataset hash</th><th>values</th>
        <th>engine</th><th>created</th><th>export</th></tr></thead>
      <tbody>${versions.map(versionRow).join("")}</tbody>
    </table></div>
  </div>`;
}

function versionRow(p) {
  const from = p.study_id === null
    ? "—"
    : `<a href="#/studies/${p.study_id}">study ${p.study_id}</a>${p.trial_number === null ? "" : `, <a href="#/studies/${p.study_id}/trials/${p.trial_number}">trial ${p.trial_number}</a>`}`;
  const values = Object.entries(p.values ?? {}).map(([k, v]) => `${esc(k)} ${num(v)}`).join("<br>");
  const exports = ["json", "yaml"]
    .map((f) => `<button type="button" data-export data-ref="${esc(p.ref)}" data-format="${f}">${f.toUpperCase()}</button>`)
    .join(" ");
  return `<tr data-ref="${esc(p.ref)}">
    <td>${esc(p.ref)}</td><td>${esc(p.visibility)}</td><td class="from">${from}</td>
    <td><code title="${esc(p.dataset_hash)}">${esc((p.dataset_hash ?? "—").slice(0, 12))}</code></td>
    <td class="values">${values || "—"}</td><td>${esc(p.engine_version)}</td>
    <td>${esc(p.created_by ?? "—")}<br><span class="muted">${when(p.created_at)}</span></td>
    <td>${exports}</td>
  </tr>`;
}
