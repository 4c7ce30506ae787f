// The trials table: sortable, filterable, and one page of rows at a time, so that a study of
// 10,000 trials puts 100 rows in the DOM rather than 10,000.

import { badge, duration, elapsed, esc, num } from "./util.js";

const ROWS = 100;
const STATES = ["queued", "running", "complete", "pruned", "failed"];

/**
 * Build the table into `root`; answers `render(trials, selected)` to call when either changed.
 * `onSelect(number)` runs when a row is clicked; a trial's number links to `link(number)`.
 */
export function trialsTable(root, { onSelect, link }) {
  root.innerHTML = `
    <div class="filters">
      <select name="state"><option value="">every state</option>
        ${STATES.map((s) => `<option>${s}</option>`).join("")}</select>
      <input name="filter" type="search" placeholder="filter params or reason">
      <span class="pager"><button type="button" name="previous">‹</button>
        <span class="rows muted"></span><button type="button" name="next">›</button></span>
    </div>
    <div class="table-wrap"><table class="trials"><thead></thead><tbody></tbody></table></div>`;
  const $ = (selector) => root.querySelector(selector);
  const view = { sort: { key: "number", descending: false }, page: 0, trials: [], selected: new Set() };

  function render(trials = view.trials, selected = view.selected) {
    Object.assign(view, { trials, selected });
    const cols = columns(trials, link);
    const { key, descending } = view.sort;
    const arrow = descending ? " ▼" : " ▲";
    $("thead").innerHTML = `<tr>${cols.map((c) => `<th data-key="${esc(c.key)}">${esc(c.label)}${c.key === key ? arrow : ""}</th>`).join("")}</tr>`;
    const rows = filtered(trials);
    const sortBy = cols.find((c) => c.key === key) ?? cols[0];
    rows.sort((a, b) => compare(sortBy.get(a), sortBy.get(b), descending));
    const pages = Math.max(1, Math.ceil(rows.length / ROWS));
    view.page = Math.min(view.page, pages - 1);
    const shown = rows.slice(view.page * ROWS, (view.page + 1) * ROWS);
    $(".rows").textContent = rows.length ? `${view.page * ROWS + 1}–${view.page * ROWS + shown.length} of ${rows.length}` : "none";
    $("button[name=previous]").disabled = view.page === 0;
    $("button[name=next]").disabled = view.page >= pages - 1;
    $("tbody").innerHTML = shown.map((t) => `
      <tr class="trial${selected.has(t.number) ? " selected" : ""}" data-number="${t.number}">
        ${cols.map((c) => `<td${c.numeric ? ' class="num"' : ""}>${c.html ? c.html(t) : esc(c.get(t))}</td>`).join("")}
      </tr>`).join("");
  }

  function filtered(trials) {
    const state = $("select[name=state]").value;
    const text = $("input[name=filter]").value.toLowerCase();
    return trials
      .filter((t) => !state || t.state === state)
      .filter((t) => !text || `${JSON.stringify(t.params)} ${t.reason ?? ""}`.toLowerCase().includes(text));
  }

  const again = (page) => () => {
    view.page = page();
    render();
  };
  $("thead").addEventListener("click", (event) => {
    const key = event.target.closest("th")?.dataset.key;
    if (!key) return;
    view.sort = { key, descending: view.sort.key === key && !view.sort.descending };
    render();
  });
  $("select[name=state]").addEventListener("change", again(() => 0));
  $("input[name=filter]").addEventListener("input", again(() => 0));
  $("button[name=previous]").addEventListener("click", again(() => view.page - 1));
  $("button[name=next]").addEventListener("click", again(() => view.page + 1));
  $("tbody").addEventListener("click", (event) => {
    if (event.target.closest("a")) return; // the number's link opens the trial page
    const number = Number(event.target.closest("tr")?.dataset.number);
    if (!Number.isNaN(number)) onSelect(number);
  });
  return render;
}

function columns(trials, link) {
  const params = [...new Set(trials.flatMap((t) => Object.keys(t.params)))].sort();
  return [
    { key: "number", label: "#", get: (t) => t.number, html: (t) => `<a href="${link(t.number)}">${t.number}</a>` },
    { key: "state", label: "state", get: (t) => t.state, html: (t) => badge(t.state) },
    { key: "value", label: "value", get: (t) => t.value, html: (t) => num(t.value), numeric: true },
    ...params.map((p) => ({
      key: `param:${p}`, label: p, get: (t) => t.params[p],
      html: (t) => cell(t.params[p]),
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

/** A parameter's value: numbers rounded, text as it is, lists (e.g. hidden sizes) as JSON. */
function cell(value) {
  if (value === null || value === undefined) return "—";
  if (typeof value === "number") return num(value);
  return esc(typeof value === "string" ? value : JSON.stringify(value));
}

/** Order for the table: missing values last either way, numbers as numbers, the rest as text. */
function compare(a, b, descending) {
  if (a === b) return 0;
  if (a === null || a === undefined) return 1;
  if (b === null || b === undefined) return -1;
  const order = typeof a === "number" && typeof b === "number" ? a - b : String(a).localeCompare(String(b));
  return descending ? -order : order;
}
