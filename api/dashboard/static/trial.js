// One trial: its params, the full config it ran with, its curves, its state and timings (with
// the traceback of an exception that ended it), and what to do with it (publish as a preset,
// copy as a study file). Live while it runs.

import { axes, curveTrace, note, PLOT_CONFIG } from "./charts.js";
import { publishForm } from "./publish.js";
import { studyFileText } from "./study-file.js";
import { FINISHED, api, badge, duration, elapsed, esc, num, poll, when } from "./util.js";

/** Render trial `number` of study `studyId` into `root`; returns the function that stops it. */
export function trialPage(root, studyId, number, onUnauthorized) {
  const base = `/api/v1/studies/${studyId}`;
  const held = { study: null, studyEtag: null, trial: null, trialEtag: null };
  root.innerHTML = `
    <p class="crumbs"><a class="study-link" href="#/studies/${studyId}">study</a> › trial ${number}</p>
    <h1>Trial ${number} <span class="status"></span></h1>
    <div class="card summary"></div>
    <div class="card traceback-card" hidden><h2>Traceback <span class="muted">(its last lines, as the worker printed them)</span></h2><pre class="traceback"></pre></div>
    <div class="grid">
      <div class="card"><h2>Losses</h2><div id="loss-chart" class="chart"></div></div>
      <div class="card"><h2 class="metric-title">Metric</h2><div id="metric-chart" class="chart"></div></div>
      <div class="card"><h2>Params</h2><table class="params"></table></div>
      <div class="card"><h2>Base config <span class="muted">(what it trained with)</span></h2><pre class="config"></pre></div>
      <div class="card"><h2>Publish as preset</h2><div class="publish-box"></div></div>
      <div class="card"><h2>Copy as study file</h2>
        <p class="muted">A study of one trial that reruns exactly this config (JSON is YAML too).</p>
        <button type="button" name="copy">Copy as study file</button> <span class="copied muted"></span>
        <pre class="study-file" hidden></pre></div>
    </div>`;
  const $ = (selector) => root.querySelector(selector);
  publishForm($(".publish-box"), studyId, number);

  $("button[name=copy]").addEventListener("click", async () => {
    const text = studyFileText(held.study, held.trial);
    $(".study-file").textContent = text;
    $(".study-file").hidden = false;
    try {
      await navigator.clipboard.writeText(text);
      $(".copied").textContent = "Copied to the clipboard.";
    } catch {
      $(".copied").textContent = "The browser refused the clipboard: copy it from below.";
    }
  });

  async function refresh() {
    const study = await api(base, held.studyEtag);
    if (study.data !== null) [held.study, held.studyEtag] = [study.data, study.etag];
    const trial = await api(`${base}/trials/${number}`, held.trialEtag);
    if (trial.data !== null || study.data !== null) {
      if (trial.data !== null) [held.trial, held.trialEtag] = [trial.data, trial.etag];
      render();
    }
    return FINISHED.has(held.trial?.state); // a finished trial is final: nothing more to fetch
  }

  function render() {
    const { study, trial } = held;
    $(".study-link").textContent = study.name;
    $(".status").innerHTML = badge(trial.state);
    $(".summary").innerHTML = summary(study, trial);
    $(".traceback").textContent = trial.traceback ?? "";
    $(".traceback-card").hidden = !trial.traceback;
    $(".params").innerHTML = Object.entries(trial.params)
      .map(([k, v]) => `<tr><th>${esc(k)}</th><td class="num">${typeof v === "number" ? num(v) : esc(JSON.stringify(v))}</td></tr>`)
      .join("") || `<tr><td class="muted">No searched params: the base config as it is.</td></tr>`;
    $(".config").textContent = trial.config ? JSON.stringify(trial.config, null, 2) : "No valid config: see the reason.";
    $("button[name=copy]").disabled = !trial.config;
    renderCurves(study, trial);
  }

  function renderCurves(study, trial) {
    const empty = trial.curve.length ? [] : note("No epoch reported yet");
    const losses = [
      curveTrace(trial.curve, "val_loss", { name: "val_loss" }),
      curveTrace(trial.curve, "train_loss", { name: "train_loss", line: { dash: "dot" } }),
    ];
    Plotly.react($("#loss-chart"), losses, axes("epoch", "loss", { annotations: empty }), PLOT_CONFIG);
    const metrics = study.objectives.map((o) => o.metric).filter((m) => trial.curve.some((p) => p[m] !== undefined));
    const metric = metrics[0] ?? (trial.curve.some((p) => p.val_accuracy !== undefined) ? "val_accuracy" : "val_rmse");
    $(".metric-title").textContent = metric;
    Plotly.react($("#metric-chart"), [curveTrace(trial.curve, metric, { name: metric })], axes("epoch", metric, { annotations: empty }), PLOT_CONFIG);
  }

  return poll(refresh, onUnauthorized);
}

function summary(study, trial) {
  const values = Object.entries(trial.values ?? {}).map(([k, v]) => `${esc(k)} ${num(v)}`).join(" · ");
  const ran = trial.started_at ? duration(elapsed(trial.started_at, trial.finished_at)) : "—";
  const item = (label, html) => `<div><div class="muted">${label}</div>${html}</div>`;
  return [
    item("State", `<span class="state">${esc(trial.state)}</span>${trial.reason ? `: <span class="reason">${esc(trial.reason)}</span>` : ""}`),
    item(`Value (${esc(study.objectives[0].metric)})`, `<span class="value">${num(trial.value)}</span>`),
    item("Values", values || "—"),
    item("Queued", when(trial.queued_at)),
    item("Started", when(trial.started_at)),
    item("Finished", when(trial.finished_at)),
    item("Ran for", ran),
    item("Worker", esc(trial.worker ?? "—")),
  ].join("");
}
