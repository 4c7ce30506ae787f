// One study, live: progress, best-so-far, the trials table, learning curves, optimizers.

import { api, badge, bar, duration, elapsed, esc, num, poll } from "./util.js";

const FINISHED = new Set(["complete", "pruned", "failed"]);
const PAGE = 500;
const OPTIMIZER = "training.optimizer";
const PLOT_CONFIG = { displaylogo: false, responsive: true };
const LAYOUT = {
  margin: { l: 55, r: 15, t: 10, b: 40 },
  legend: { orientation: "h", y: -0.2 },
  paper_bgcolor: "rgba(0,0,0,0)",
  plot_bgcolor: "rgba(0,0,0,0)",
};

/** Render the study page into `root` and keep it live; returns the function that stops it. */
export function studyPage(root, studyId, onUnauthorized) {
  const base = `/api/v1/studies/${studyId}`;
  const state = {
    study: null,
    studyEtag: null,
    trials: new Map(), // by id, which is also the trials page's cursor
    cursor: 0,
    lastPage: { after: null, etag: null },
    details: new Map(), // by trial number: {data, etag} from GET trials/{number}
    selected: new Set(),
    sort: { key: "number", descending: false },
  };
  root.innerHTML = `
    <h1><span class="name"></span> <span class="status"></span></h1>
    <div class="card summary"></div>
    <div class="grid">
      <div class="card"><h2>Best so far</h2><div id="best-chart" class="chart"></div></div>
      <div class="card"><h2>Learning curves <span class="muted">(click trials to overlay)</span></h2>
        <div id="curves-chart" class="chart"></div></div>
      <div class="card"><h2>Optimizers <span class="muted">(best val_loss curve of each)</span></h2>
        <div id="optimizers-chart" class="chart"></div></div>
      <div class="card"><h2>Parameters against the objective</h2>
        <div id="parcoords-chart" class="chart"></div></div>
    </div>
    <div class="card boxes" hidden><h2>Coarse-to-fine boxes per round</h2><div></div></div>
    <div class="card" style="margin-top:1rem">
      <h2>Trials</h2>
      <div class="filters">
        <select name="state"><option value="">every state</option>
          ${["queued", "running", "complete", "pruned", "failed"].map((s) => `<option>${s}</option>`).join("")}
        </select>
        <input name="filter" type="search" placeholder="filter params or reason">
      </div>
      <div class="table-wrap"><table class="trials"><thead></thead><tbody></tbody></table></div>
    </div>
    <div class="card failed" style="margin-top:1rem" hidden><h2>Failed trials</h2><ul class="failures"></ul></div>`;
  const $ = (selector) => root.querySelector(selector);

  const trials = () => [...state.trials.values()].sort((a, b) => a.number - b.number);
  const direction = () => state.study.objectives[0].direction;
  const better = (a, b) => (direction() === "minimize" ? a < b : a > b);

  // There is no "changed since" query: trials are paged by insertion id, and a trial changes
  // only while queued or running. So each poll re-pages from just before the oldest trial
  // still in flight: that re-reads the in-flight trials (and the few finished since, which
  // were inserted after them) plus every new one, and nothing older. With parallelism p that
  // is about p trials a poll, whatever the study's size; when that page's ETag still holds
  // the answer is a bodiless 304.
  async function refreshTrials() {
    const open = [...state.trials.values()].filter((t) => !FINISHED.has(t.state)).map((t) => t.id);
    let after = open.length ? Math.min(...open) - 1 : state.cursor;
    let changed = false;
    for (;;) {
      const etag = state.lastPage.after === after ? state.lastPage.etag : null;
      const page = await api(`${base}/trials?after=${after}&limit=${PAGE}`, etag);
      if (page.data === null) break;
      for (const trial of page.data.data) state.trials.set(trial.id, trial);
      changed ||= page.data.data.length > 0;
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
      renderTable();
      renderFailures();
      renderParcoords();
      renderBoxes();
    }
    if (trialsChanged || curvesChanged) {
      renderCurves();
      renderOptimizers();
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
          <span class="muted">· ${counts || "none yet"}</span></div></div>
      <div><div class="muted">ETA</div><span class="eta">${s.eta_seconds === null ? "—" : duration(s.eta_seconds)}</span></div>
      <div><div class="muted">Elapsed</div>${duration(elapsed(s.created_at, s.finished_at))}</div>
      <div><div class="muted">Best</div><span class="best">${best}</span></div>
      <div><div class="muted">Objective</div>${objective}</div>
      <div><div class="muted">Team · strategy</div>${esc(s.team)} · ${esc(s.strategy)}</div>`;
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
    const layout = { ...LAYOUT, xaxis: { title: { text: "trial" } }, yaxis: { title: { text: state.study.objectives[0].metric } } };
    Plotly.react($("#best-chart"), data, layout, PLOT_CONFIG);
  }

  function curveTrace(number, metric, extra) {
    const curve = state.details.get(number)?.data.curve ?? [];
    const kept = curve.filter((point) => point[metric] !== undefined);
    return { type: "scatter", mode: "lines+markers", x: kept.map((p) => p.step), y: kept.map((p) => p[metric]), ...extra };
  }

  function renderCurves() {
    const data = [];
    for (const number of [...state.selected].sort((a, b) => a - b)) {
      data.push(curveTrace(number, "val_loss", { name: `#${number} val_loss`, legendgroup: number }));
      data.push(curveTrace(number, "train_loss", { name: `#${number} train_loss`, legendgroup: number, line: { dash: "dot" } }));
    }
    const layout = {
      ...LAYOUT,
      xaxis: { title: { text: "epoch" } },
      yaxis: { title: { text: "loss" } },
      annotations: data.length ? [] : [{ text: "Click a trial in the table to see its curves", showarrow: false, xref: "paper", yref: "paper", x: 0.5, y: 0.5 }],
    };
    Plotly.react($("#curves-chart"), data, layout, PLOT_CONFIG);
  }

  function renderOptimizers() {
    const data = [];
    for (const [optimizer, trial] of bestByOptimizer()) {
      const detail = state.details.get(trial.number)?.data;
      const name = optimizer ?? detail?.config?.training?.optimizer ?? "base optimizer";
      data.push(curveTrace(trial.number, "val_loss", { name: `${name} (#${trial.number})` }));
    }
    data.sort((a, b) => a.name.localeCompare(b.name));
    const layout = { ...LAYOUT, xaxis: { title: { text: "epoch" } }, yaxis: { title: { text: "val_loss" } } };
    Plotly.react($("#optimizers-chart"), data, layout, PLOT_CONFIG);
  }

  function renderParcoords() {
    const complete = trials().filter((t) => t.state === "complete" && t.value !== null);
    const names = [...new Set(complete.flatMap((t) => Object.keys(t.params)))].sort();
    const dimensions = names.map((name) => {
      const raw = complete.map((t) => t.params[name]);
      if (raw.every((v) => typeof v === "number" || v === undefined)) {
        return { label: name, values: raw.map((v) => v ?? NaN) };
      }
      // Categorical: plotted at their index, labelled with their value.
      const labels = [...new Set(raw.map(String))].sort();
      return { label: name, values: raw.map((v) => labels.indexOf(String(v))), tickvals: labels.map((_, i) => i), ticktext: labels };
    });
    const values = complete.map((t) => t.value);
    dimensions.push({ label: state.study.objectives[0].metric, values });
    const data = [{
      type: "parcoords", dimensions,
      line: { color: values, colorscale: "Viridis", reversescale: direction() === "minimize", showscale: true },
    }];
    Plotly.react($("#parcoords-chart"), data, { ...LAYOUT, margin: { l: 60, r: 60, t: 40, b: 20 } }, PLOT_CONFIG);
  }

  function renderBoxes() {
    const boxes = state.study.strategy_state?.boxes;
    $(".boxes").hidden = !boxes;
    if (!boxes) return;
    const names = Object.keys(boxes[0] ?? {});
    const range = (p) => (p.choices ? p.choices.map(esc).join(", ") : `${num(p.low)} … ${num(p.high)}${p.log ? " (log)" : ""}`);
    $(".boxes div").innerHTML = `<table><thead><tr><th>round</th>${names.map((n) => `<th>${esc(n)}</th>`).join("")}</tr></thead>
      <tbody>${boxes.map((box, i) => `<tr><td>${i + 1}</td>${names.map((n) => `<td>${box[n] ? range(box[n]) : "—"}</td>`).join("")}</tr>`).join("")}</tbody></table>`;
  }

  function columns() {
    const params = [...new Set(trials().flatMap((t) => Object.keys(t.params)))].sort();
    return [
      { key: "number", label: "#", get: (t) => t.number },
      { key: "state", label: "state", get: (t) => t.state, html: (t) => badge(t.state) },
      { key: "value", label: "value", get: (t) => t.value, html: (t) => num(t.value), numeric: true },
      ...params.map((p) => ({
        key: `param:${p}`, label: p, get: (t) => t.params[p],
        html: (t) => (typeof t.params[p] === "number" ? num(t.params[p]) : esc(t.params[p] ?? "—")),
        numeric: true,
      })),
      {
        key: "time", label: "time", numeric: true,
        get: (t) => (t.started_at ? elapsed(t.started_at, t.finished_at) : null),
        html: (t) => (t.started_at ? duration(elapsed(t.started_at, t.finished_at)) : "—"),
      },
      { key: "reason", label: "reason", get: (t) => t.reason ?? "" },
    ];
  }

  function renderTable() {
    const cols = columns();
    const { key, descending } = state.sort;
    const arrow = descending ? " ▼" : " ▲";
    $("thead").innerHTML = `<tr>${cols.map((c) => `<th data-key="${esc(c.key)}">${esc(c.label)}${c.key === key ? arrow : ""}</th>`).join("")}</tr>`;
    const stateFilter = $("select[name=state]").value;
    const text = $("input[name=filter]").value.toLowerCase();
    const sortBy = cols.find((c) => c.key === key) ?? cols[0];
    const rows = trials()
      .filter((t) => !stateFilter || t.state === stateFilter)
      .filter((t) => !text || `${JSON.stringify(t.params)} ${t.reason ?? ""}`.toLowerCase().includes(text))
      .sort((a, b) => compare(sortBy.get(a), sortBy.get(b)) * (descending ? -1 : 1));
    $("tbody").innerHTML = rows.map((t) => `
      <tr class="trial${state.selected.has(t.number) ? " selected" : ""}" data-number="${t.number}">
        ${cols.map((c) => `<td${c.numeric ? ' class="num"' : ""}>${c.html ? c.html(t) : esc(c.get(t))}</td>`).join("")}
      </tr>`).join("");
  }

  function renderFailures() {
    const failed = trials().filter((t) => t.state === "failed");
    $(".failed").hidden = failed.length === 0;
    $(".failures").innerHTML = failed.map((t) => `<li>trial ${t.number}: ${esc(t.reason ?? "no reason given")}</li>`).join("");
  }

  $("thead").addEventListener("click", (event) => {
    const key = event.target.closest("th")?.dataset.key;
    if (!key) return;
    state.sort = { key, descending: state.sort.key === key && !state.sort.descending };
    renderTable();
  });
  $("select[name=state]").addEventListener("change", renderTable);
  $("input[name=filter]").addEventListener("input", renderTable);
  $("tbody").addEventListener("click", async (event) => {
    const number = Number(event.target.closest("tr")?.dataset.number);
    if (Number.isNaN(number)) return;
    if (state.selected.has(number)) state.selected.delete(number);
    else state.selected.add(number);
    renderTable();
    await refreshDetail(number);
    renderCurves();
  });

  return poll(refresh, onUnauthorized);
}

/** Order for the table: missing values last, numbers as numbers, the rest as text. */
function compare(a, b) {
  if (a === b) return 0;
  if (a === null || a === undefined) return 1;
  if (b === null || b === undefined) return -1;
  if (typeof a === "number" && typeof b === "number") return a - b;
  return String(a).localeCompare(String(b));
}
