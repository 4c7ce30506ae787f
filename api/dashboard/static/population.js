// pbt's population: each member's objective at the end of every interval, joined to the point
// its state came from. A member that went on from its own state continues its line; one that
// copied another's is joined to the copied member's point by a dashed line, its marker a
// diamond, and its hover says what it copied and what changed.

import { axes, note, onTrialClick, PLOT_CONFIG, shortNames } from "./charts.js";

const COLORS = ["#2f6fdf", "#cf3b3b", "#2e9d5b", "#c98a14", "#7a3fd1", "#1d2330", "#d1457a", "#3fa7b5"];

/** Draw (or update) the chart in `element`; `open(number)` runs when a point is clicked. */
export function renderPopulation(element, trials, metric, open) {
  // A lost trial's retry carries its lineage: the later one stands for the member.
  const latest = new Map();
  for (const trial of trials) {
    const lineage = trial.lineage;
    if (lineage && trial.value !== null) latest.set(`${lineage.generation}/${lineage.member}`, trial);
  }
  const points = [...latest.values()];
  if (!points.length) {
    Plotly.react(element, [], axes("epoch", metric, { annotations: note("No member has finished an interval yet") }), PLOT_CONFIG);
    return;
  }
  const byNumber = new Map(trials.map((t) => [t.number, t]));
  const members = [...new Set(points.map((t) => t.lineage.member))].sort((a, b) => a - b);
  const color = (member) => COLORS[member % COLORS.length];
  const data = [];
  for (const member of members) {
    const own = points.filter((t) => t.lineage.member === member);
    for (const copied of [false, true]) {
      const x = [];
      const y = [];
      for (const trial of own.filter((t) => ("copied" in t.lineage) === copied)) {
        const parent = byNumber.get(trial.lineage.parent);
        if (!parent || parent.value === null) continue;
        x.push(parent.lineage.until, trial.lineage.until, null);
        y.push(parent.value, trial.value, null);
      }
      data.push({
        type: "scatter", mode: "lines", x, y, hoverinfo: "skip", showlegend: false,
        name: `member ${member}${copied ? " (copies)" : ""}`,
        line: { color: color(member), width: copied ? 1.5 : 2, dash: copied ? "dash" : "solid" },
      });
    }
    data.push({
      type: "scatter", mode: "markers", name: `member ${member}`,
      x: own.map((t) => t.lineage.until), y: own.map((t) => t.value),
      customdata: own.map((t) => t.number),
      marker: { color: color(member), size: 8, symbol: own.map((t) => ("copied" in t.lineage ? "diamond" : "circle")) },
      text: own.map((t) => describe(t, metric)), hoverinfo: "text",
    });
  }
  Plotly.react(element, data, axes("epoch", metric, { showlegend: true }), PLOT_CONFIG);
  onTrialClick(element, open);
}

/** A point's hover: its trial, member and value, and for a copy whose state and what changed. */
function describe(trial, metric) {
  const { member, generation, copied, changed } = trial.lineage;
  let text = `trial ${trial.number}: member ${member}, generation ${generation}, ${metric} ${trial.value.toPrecision(4)}`;
  if (copied !== undefined) {
    const names = Object.keys(changed ?? {});
    const short = shortNames(names);
    const changes = names.map((name, i) => `${short[i]} ${fmt(changed[name][0])} → ${fmt(changed[name][1])}`);
    text += `<br>copied member ${copied}${changes.length ? `: ${changes.join(", ")}` : ""}`;
  }
  return text;
}

const fmt = (value) => (typeof value === "number" ? String(Number(value.toPrecision(3))) : String(value));
