// Trainers: what the workers offer, with each config's settings, enough to write a study file
// for one without reading its code.

import { api, esc, poll, when } from "./util.js";

/** Render the trainers page into `root` and keep it current; returns the function that stops it. */
export function trainersPage(root, onUnauthorized) {
  root.innerHTML = `
    <h1>Trainers</h1>
    <p class="muted">Installed on the workers by whoever runs them. A study file names one as
      <code>trainer: NAME</code>, fixes its settings in <code>config:</code> and searches them in
      <code>space:</code> by dotted path.</p>
    <div class="trainers"></div>
    <p class="muted empty" hidden>No worker has offered a trainer yet: start one with
      <code>hpsearch worker</code> (or <code>hpsearch serve</code>).</p>`;
  const $ = (selector) => root.querySelector(selector);
  let shown = null;

  return poll(async () => {
    const { data } = await api("/api/v1/trainers");
    const text = JSON.stringify(data);
    if (text === shown) return; // nothing new: leave the page as the user is reading it
    shown = text;
    $(".trainers").innerHTML = data.map(trainerCard).join("");
    $(".empty").hidden = data.length > 0;
  }, onUnauthorized);
}

function trainerCard(t) {
  const live = t.workers
    ? `${t.workers} live worker${t.workers === 1 ? "" : "s"} on ${hostList(t.hosts)}`
    : `<span class="badge failed">offline</span> offered by no live worker: its studies wait for one`;
  const metrics = (names) => names.map((m) => `<code>${esc(m)}</code>`).join(" ") || "—";
  return `<div class="card trainer" data-trainer="${esc(t.name)}">
    <h2>${esc(t.name)} <span class="muted">version ${esc(t.version)}</span></h2>
    <div class="summary">
      <div><div class="muted">Workers</div><span class="live">${live}</span></div>
      <div><div class="muted">Last seen</div>${when(t.last_seen_at)}</div>
      <div><div class="muted">Metrics per step</div><span class="step-metrics">${metrics(t.step_metrics)}</span></div>
      <div><div class="muted">Final metrics</div><span class="final-metrics">${metrics(t.final_metrics)}</span></div>
    </div>
    <div class="table-wrap"><table class="settings">
      <thead><tr><th>setting</th><th>type</th><th>default</th><th>bounds</th><th>description</th></tr></thead>
      <tbody>${t.settings.map(settingRow).join("")}</tbody>
    </table></div>
  </div>`;
}

/** Hosts with how many workers each runs, e.g. "gpu-1 (×2), gpu-2". */
function hostList(hosts) {
  const counts = new Map();
  for (const host of hosts) counts.set(host, (counts.get(host) ?? 0) + 1);
  return [...counts].map(([host, n]) => `${esc(host)}${n > 1 ? ` (×${n})` : ""}`).join(", ");
}

function settingRow(s) {
  const given = s.required ? `<span class="muted">required</span>` : `<code>${esc(JSON.stringify(s.default))}</code>`;
  return `<tr data-setting="${esc(s.path)}">
    <td><code>${esc(s.path)}</code></td><td class="type">${esc(s.type)}</td><td class="default">${given}</td>
    <td class="bounds">${esc(s.bounds ?? "")}</td><td class="description">${esc(s.description ?? "")}</td>
  </tr>`;
}
