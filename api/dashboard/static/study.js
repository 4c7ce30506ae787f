// One study, live: progress, best-so-far, the trials table, learning curves, optimizers,
// parameter importances, the Pareto front of a multi-objective study and coarse_to_fine's
// boxes. Polls incrementally (ETags, a trials cursor) and redraws charts in place with
// Plotly.react.

import { armKey, numericParams, renderBoxes as renderBoxes$ } from "./boxes.js";
import { axes, curveTrace, note, onTrialClick, PLOT_CONFIG } from "./charts.js";
import { renderImportances } from "./importances.js";
import { renderPareto } from "./pareto.js";
import { renderPopulation } from "./population.js";
import { renderParcoords as renderParcoords$ } from "./parcoords.js";
import { trialsTable } from "./table.js";
import { FINISHED, api, badge, bar, duration, elapsed, esc, num, poll } from "./util.js";

const PAGE = 1000; // the API's largest: a 10,000-trial study loads in 10 requests
const OPTIMIZER = "training.optimizer";
// Importances are asked for when the complete count changed, and no more often than this:
// each new count costs the API a fresh PED-ANOVA.
const IMPORTANCES_MS = 10_000;

/** Render the study page into `root` and keep it live; returns the function that stops it. */
export function studyPage(root, studyId, onUnauthorized) {
  const base = `/api/v1/studies/${studyId}`;
  const state = {
    study: null,
    studyEtag: null,
    trials: new Map(), // by number, which is also the trials page's cursor
    cursor: -1, // trials are numbered from 0
    lastPage: { after: null, etag: null },
    details: new Map(), // by trial number: {data, etag} from GET trials/{number}
    sorted: null, // the trials by number, rebuilt only when a page brought some
    selected: new Set(),
    importances: { etag: null, complete: null, at: 0 }, // what the chart shows, and when asked
    ranked: [], // the parameters, most important first, once importances are known
    boxAxes: { x: null, y: null, arm: "all" }, // the box chart's choices (null: the default)
  };
  const trialLink = (number) => `#/studies/${studyId}/trials/${number}`;
  const open = (number) => {
    location.hash = trialLink(number);
  };
  root.innerHTML = `
    <h1><span class="name"></span> <span class="status"></span></h1>
    <div class="card summary"></div>
    <div class="grid">
      <div class="card"><h2>Best so far</h2><div id="best-chart" class="chart"></div></div>
      <div class="card"><h2>Learning curves <span class="muted">(click trials to overlay)</span></h2>
        <div id="curves-chart" class="chart"></div></div>
      <div class="card"><h2>Optimizers <span class="muted">(best <span class="optimizers-metric">val_loss</span> curve of each; its trials)</span></h2>
        <div id="optimizers-chart" class="chart"></div></div>
      <div class="card"><h2>Parameters against the objective</h2>
        <div id="parcoords-chart" class="chart"></div></div>
      <div class="card"><h2>Parameter importances <span class="muted">(Optuna's PED-ANOVA)</span></h2>
        <div id="importances-chart" class="chart"></div></div>
      <div class="card pareto" hidden><h2>Pareto front <span class="muted">(click a point to open its trial)</span></h2>
        <div id="pareto-chart" class="chart"></div></div>
    </div>
    <div class="card boxes" style="margin-top:1rem" hidden>
      <h2>Coarse-to-fine boxes per round and arm <span class="muted">(each labelled with its round's epochs; trials coloured by objective; click one to open it)</span></h2>
      <div class="box-controls">
        <label>x <select class="box-x"></select></label> <label>y <select class="box-y"></select></label>
        <label>arm <select class="box-arm"></select></label></div>
      <div id="boxes-chart" class="chart"></div><p class="boxes-result"></p><div class="boxes-table"></div></div>
    <div class="card population" style="margin-top:1rem" hidden>
      <h2>Population <span class="muted">(pbt: each member's objective after every interval; dashed lines and diamonds are copies of a better member)</span></h2>
      <div id="population-chart" class="chart"></div></div>
    <div class="card" style="margin-top:1rem">
      <h2>Trials <span class="muted">(click a row for its curves, its number to open it)</span></h2>
      <div class="trials-table"></div>
    </div>
    <div class="card failures-card" style="margin-top:1rem" hidden><h2>Failed trials</h2><ul class="failures"></ul></div>`;
  const $ = (selector) => root.querySelector(selector);

  const renderTable = trialsTable($(".trials-table"), { onSelect: select, link: trialLink });

  const trials = () => (state.sorted ??= [...state.trials.values()].sort((a, b) => a.number - b.number));
  const direction = () => state.study.objectives[0].direction;
  const better = (a, b) => (direction() === "minimize" ? a < b : a > b);

  // There is no "changed since" query: trials are paged by number, and a trial changes
  // only while queued or running. So each poll re-pages from just before the oldest trial
  // still in flight: that re-reads the in-flight trials (and the few finished since, which
  // were inserted after them) plus every new one, and nothing older. With parallelism p that
  // is about p trials a poll, whatever the study's size; when that page's ETag still holds
  // the answer is a bodiless 304.
  async function refreshTrials() {
    const open = [...state.trials.values()].filter((t) => !FINISHED.has(t.state)).map((t) => t.number);
    let after = open.length ? Math.min(...open) - 1 : state.cursor;
    let changed = false;
    for (;;) {
      const etag = state.lastPage.after === after ? state.lastPage.etag : null;
      const page = await api(`${base}/trials?after=${after}&limit=${PAGE}`, etag);
      if (page.data === null) break;
      for (const trial of page.data.data) state.trials.set(trial.number, trial);
      if (page.data.data.length) [changed, state.sorted] = [true, null];
      state.cursor = Math.max(state.cursor, page.data.next_cursor);
      if (page.data.data.length < PAGE) {
        // Only a last (short) page's ETag says "nothing new": a full one has more after it.
        state.lastPage = { after, etag: page.etag };
        break;
      }
      after = page.data.next_cursor;
    }
    return changed;
  }

  /** Fetch a trial's curve unless a finished one is cached; true when it changed. */
  async function refreshDetail(number) {
    const cached = state.details.get(number);
    if (cached && FINISHED.has(cached.data.state)) return false;
    const answer = await api(`${base}/trials/${number}`, cached?.etag);
    if (answer.data === null) return false;
    state.details.set(number, answer);
    return true;
  }

  /** How many trials each optimizer had, by optimizer (null: the study's base one). */
  function trialsByOptimizer() {
    const counts = new Map();
    for (const trial of trials()) {
      const optimizer = trial.params[OPTIMIZER] ?? null;
      counts.set(optimizer, (counts.get(optimizer) ?? 0) + 1);
    }
    return counts;
  }

  /** The best complete trial of each optimizer, by optimizer (null: the study's base one). */
  function bestByOptimizer() {
    const best = new Map();
    for (const trial of trials()) {
      if (trial.state !== "complete" || trial.value === null) continue;
      const optimizer = trial.params[OPTIMIZER] ?? null;
      const held = best.get(optimizer);
      if (!held || better(trial.value, held.value)) best.set(optimizer, trial);
    }
    return best;
  }

  async function refresh() {
    const study = await api(base, state.studyEtag);
    if (study.data !== null) [state.study, state.studyEtag] = [study.data, study.etag];
    const trialsChanged = await refreshTrials();
    const wanted = [...state.selected, ...[...bestByOptimizer().values()].map((t) => t.number)];
    let curvesChanged = false;
    for (const number of new Set(wanted)) curvesChanged = (await refreshDetail(number)) || curvesChanged;
    if (study.data !== null) renderSummary();
    if (study.data !== null || trialsChanged) {
      renderBest();
      renderTable(trials(), state.selected);
      renderFailures();
      renderParcoords();
      renderPareto$();
      renderBoxes();
      renderPopulation$();
    }
    if (trialsChanged || curvesChanged) {
      renderCurves();
      renderOptimizers();
    }
    await refreshImportances();
  }

  /** Ask for the importances when the complete count moved and the last ask is old enough. */
  async function refreshImportances() {
    const held = state.importances;
    const complete = state.study.trials_by_state.complete ?? 0;
    if (complete === held.complete || Date.now() - held.at < IMPORTANCES_MS) return;
    const answer = await api(`${base}/importances`, held.etag);
    state.importances = { etag: answer.etag, complete, at: Date.now() };
    if (answer.data !== null) {
      renderImportances($("#importances-chart"), answer.data);
      state.ranked = Object.keys(answer.data.importances);
      renderBoxes(); // its default axes are the two most important numeric parameters
    }
  }

  function renderSummary() {
    const s = state.study;
    $(".name").textContent = s.name;
    $(".status").innerHTML = badge(s.status);
    const counts = Object.entries(s.trials_by_state).map(([k, v]) => `${v} ${esc(k)}`).join(" · ");
    const objective = s.objectives.map((o) => `${esc(o.direction)} ${esc(o.metric)}`).join(", ");
    const best = s.best_trial ? `${num(s.best_trial.value)} (trial ${s.best_trial.number})` : "—";
    $(".summary").innerHTML = `
      <div style="flex:1 1 320px">${bar(s.trials_finished, s.budget_trials, true)}
        <div><span class="progress-text">${s.trials_finished} / ${s.budget_trials} trials</span>
          <span class="muted">· ${counts || "none yet"}</span>
          ${s.trials_imported ? `<span class="muted imported">· ${s.trials_imported} imported (history, not in the budget)</span>` : ""}</div></div>
      <div><div class="muted">ETA</div><span class="eta">${s.eta_seconds === null ? "—" : duration(s.eta_seconds)}</span></div>
      <div><div class="muted">Elapsed</div>${duration(elapsed(s.created_at, s.finished_at))}</div>
      <div><div class="muted">Best</div><span class="best">${best}</span></div>
      <div><div class="muted">Objective</div>${objective}</div>
      <div><div class="muted">Team · strategy · trainer</div>${esc(s.team)} · ${esc(s.strategy)} · ${esc(s.trainer)}</div>
      ${s.waiting ? `<div class="waiting"><div class="muted">Waiting</div>${esc(s.waiting)}</div>` : ""}`;
  }

  function renderBest() {
    const all = trials();
    const valued = all.filter((t) => t.value !== null);
    const values = valued.map((t) => t.value);
    // Failed trials have no value: they are drawn at the worst value seen, so they still show.
    const worst = values.length ? (direction() === "minimize" ? Math.max(...values) : Math.min(...values)) : 0;
    const points = (states, marker, name) => {
      const chosen = all.filter((t) => states.includes(t.state) && (t.value !== null || t.state === "failed"));
      return {
        type: "scatter", mode: "markers", name, marker,
        x: chosen.map((t) => t.number),
        y: chosen.map((t) => t.value ?? worst),
        customdata: chosen.map((t) => t.number),
        text: chosen.map((t) => `trial ${t.number}: ${t.state}${t.reason ? ` (${t.reason})` : ""}`),
        hoverinfo: "text+y",
      };
    };
    const line = { x: [], y: [] };
    let best = null;
    for (const t of valued.filter((t) => t.state === "complete")) {
      if (best === null || better(t.value, best)) best = t.value;
      line.x.push(t.number);
      line.y.push(best);
    }
    const data = [
      points(["complete"], { color: "#2f6fdf", size: 7 }, "complete"),
      points(["pruned"], { color: "#c98a14", symbol: "diamond-open", size: 8 }, "pruned"),
      points(["failed"], { color: "#cf3b3b", symbol: "x", size: 9 }, "failed"),
      { ...line, type: "scatter", mode: "lines", line: { shape: "hv", color: "#1d2330" }, name: "best so far" },
    ];
    Plotly.react($("#best-chart"), data, axes("trial", state.study.objectives[0].metric), PLOT_CONFIG);
    onTrialClick($("#best-chart"), open);
  }

  const curveOf = (number) => state.details.get(number)?.data.curve;

  function renderPareto$() {
    const multi = state.study.objectives.length > 1;
    $(".pareto").hidden = !multi;
    if (multi) renderPareto($("#pareto-chart"), state.study, trials(), open);
  }

  function renderCurves() {
    const data = [];
    for (const number of [...state.selected].sort((a, b) => a - b)) {
      data.push(curveTrace(curveOf(number), "val_loss", { name: `#${number} val_loss`, legendgroup: number }));
      data.push(curveTrace(curveOf(number), "train_loss", { name: `#${number} train_loss`, legendgroup: number, line: { dash: "dot" } }));
    }
    const layout = axes("epoch", "loss", { annotations: data.length ? [] : note("Click a trial in the table to see its curves") });
    Plotly.react($("#curves-chart"), data, layout, PLOT_CONFIG);
  }

  function renderOptimizers() {
    const best = bestByOptimizer();
    const counts = trialsByOptimizer();
    const metric = curveMetric([...best.values()].map((t) => curveOf(t.number)));
    const data = [];
    for (const [optimizer, trial] of best) {
      const detail = state.details.get(trial.number)?.data;
      const name = optimizer ?? detail?.config?.training?.optimizer ?? "base optimizer";
      const count = counts.get(optimizer);
      const label = `${name} (#${trial.number}; ${count} trial${count === 1 ? "" : "s"})`;
      data.push(curveTrace(curveOf(trial.number), metric, { name: label }));
    }
    data.sort((a, b) => a.name.localeCompare(b.name));
    $(".optimizers-metric").textContent = metric;
    Plotly.react($("#optimizers-chart"), data, axes("epoch", metric), PLOT_CONFIG);
  }

  /** The objective's metric when the curves have it; val_loss for one reported only at the
   * end (test_accuracy, train_seconds). */
  function curveMetric(curves) {
    const objective = state.study.objectives[0].metric;
    const reported = curves.some((curve) => (curve ?? []).some((point) => point[objective] != null));
    return reported ? objective : "val_loss";
  }

  function renderParcoords() {
    renderParcoords$($("#parcoords-chart"), trials(), state.study.objectives[0].metric, direction() === "minimize");
  }

  function renderBoxes() {
    const strategyState = state.study.strategy_state ?? {};
    const rounds = strategyState.rounds;
    $(".boxes").hidden = !rounds?.length;
    if (!rounds?.length) return;
    const armParam = strategyState.arm ?? null;
    const arms = Object.keys(rounds[0].arms);
    const numeric = numericParams(rounds, state.ranked);
    const chosen = state.boxAxes;
    const x = numeric.includes(chosen.x) ? chosen.x : numeric[0];
    const y = numeric.includes(chosen.y) && chosen.y !== x ? chosen.y : numeric.find((n) => n !== x);
    const arm = arms.includes(chosen.arm) ? chosen.arm : "all";
    fillSelect($(".box-x"), numeric, x, (v) => (state.boxAxes.x = v));
    fillSelect($(".box-y"), numeric, y, (v) => (state.boxAxes.y = v));
    fillSelect($(".box-arm"), ["all", ...arms], arm, (v) => (state.boxAxes.arm = v));
    $(".box-arm").parentElement.hidden = armParam === null;
    const metric = state.study.objectives[0].metric;
    renderBoxes$($("#boxes-chart"), rounds, armParam, trials(), metric, direction() === "minimize", open, { x, y, arm });
    const names = [...new Set(rounds.flatMap((r) => Object.values(r.arms).flatMap((box) => Object.keys(box))))];
    const range = (p) => (p.choices ? p.choices.map((c) => esc(armKey(c))).join(", ") : `${num(p.low)} … ${num(p.high)}${p.log ? " (log)" : ""}`);
    const epochs = (r) => `${r.epochs ?? "all"} (${num(r.fraction)})`;
    $(".boxes-table").innerHTML = `<table><thead><tr><th>round</th><th>trials</th><th>epochs</th><th>arm</th>${names.map((n) => `<th>${esc(n)}</th>`).join("")}</tr></thead>
      <tbody>${rounds.flatMap((r) => Object.entries(r.arms).map(([name, box]) => `<tr><td>${r.round}</td><td>${r.trials}${r.promoted ? ` (${r.promoted} promoted)` : ""}</td><td>${epochs(r)}</td><td>${esc(name)}</td>${names.map((n) => `<td>${box[n] ? range(box[n]) : "—"}</td>`).join("")}</tr>`)).join("")}</tbody></table>`;
    $(".boxes-result").innerHTML = boxesResult(strategyState.result, armParam);
  }

  /** The strategy's result: the winning arm and each arm's best, at the epochs it reached. */
  function boxesResult(result, armParam) {
    if (!result?.winner) return "";
    const arms = Object.entries(result.arms).map(([name, a]) => {
      const best = a.best_trial === null ? "no complete trial" : `<a href="${trialLink(a.best_trial)}">trial ${a.best_trial}</a>: ${num(a.value)} at ${a.epochs} epochs`;
      const dropped = a.dropped_after_round === null ? "" : ` (dropped after round ${a.dropped_after_round})`;
      return `<li>${esc(name)}: ${best}${dropped}</li>`;
    });
    const winner = armParam === null ? "" : `<strong>${esc(result.winner)}</strong> won (${esc(armParam)}). `;
    return `${winner}Best per arm:<ul class="arms">${arms.join("")}</ul>`;
  }

  /** Fill `select` with `options` (once per change of them), `value` selected; `set` and a
   * redraw when the user picks another. */
  function fillSelect(select, options, value, set) {
    const wanted = options.join("\n");
    if (select.dataset.options !== wanted) {
      select.dataset.options = wanted;
      select.innerHTML = options.map((o) => `<option value="${esc(o)}">${esc(o)}</option>`).join("");
      select.onchange = () => {
        set(select.value);
        renderBoxes();
      };
    }
    select.value = value ?? "";
  }

  function renderPopulation$() {
    const pbt = state.study.strategy_state?.generations !== undefined;
    $(".population").hidden = !pbt;
    if (pbt) renderPopulation($("#population-chart"), trials(), state.study.objectives[0].metric, open);
  }

  function renderFailures() {
    const failed = trials().filter((t) => t.state === "failed");
    $(".failures-card").hidden = failed.length === 0;
    $(".failures").innerHTML = failed.map((t) => `<li><a href="${trialLink(t.number)}">trial ${t.number}</a>: ${esc(t.reason ?? "no reason given")}</li>`).join("");
  }

  async function select(number) {
    if (state.selected.has(number)) state.selected.delete(number);
    else state.selected.add(number);
    renderTable(trials(), state.selected);
    await refreshDetail(number);
    renderCurves();
  }

  return poll(refresh, onUnauthorized);
}
