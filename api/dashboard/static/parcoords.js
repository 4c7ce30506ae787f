// Parallel coordinates of the complete trials: one axis per parameter, then the objective.
// A trial without a conditional parameter still has its line: it crosses that axis at
// "not set", below the values (or after the choices). Log-ranged numbers get a log axis.

import { axes, PLOT_CONFIG, shortNames, tick } from "./charts.js";

const MISSING = "not set";
const TICKS = 5;

/** Draw (or update) the chart in `element`. */
export function renderParcoords(element, trials, metric, minimize) {
  const complete = trials.filter((t) => t.state === "complete" && t.value !== null);
  const names = [...new Set(complete.flatMap((t) => Object.keys(t.params)))].sort();
  const labels = shortNames([...names, metric]);
  const dimensions = names.map((name, i) => dimension(labels[i], complete.map((t) => t.params[name])));
  const values = complete.map((t) => t.value);
  dimensions.push({ label: labels.at(-1), values });
  const data = [{
    type: "parcoords", dimensions, labelfont: { size: 12 }, tickfont: { size: 10 },
    line: { color: values, colorscale: "Viridis", reversescale: minimize, showscale: true },
  }];
  Plotly.react(element, data, axes("", "", { margin: { l: 60, r: 60, t: 40, b: 20 } }), PLOT_CONFIG);
}

function dimension(label, raw) {
  const present = raw.filter((v) => v !== undefined && v !== null);
  if (present.every((v) => typeof v === "number")) return numeric(label, raw, present);
  // Categorical: plotted at their index, labelled with their value; "not set" last.
  const choices = [...new Set(present.map(String))].sort();
  if (present.length < raw.length) choices.push(MISSING);
  return {
    label,
    values: raw.map((v) => choices.indexOf(v === undefined || v === null ? MISSING : String(v))),
    tickvals: choices.map((_, i) => i),
    ticktext: choices,
  };
}

function numeric(label, raw, present) {
  let [low, high] = [Infinity, -Infinity];
  for (const v of present) [low, high] = [Math.min(low, v), Math.max(high, v)];
  const log = low > 0 && high / low >= 100;
  if (!log && present.length === raw.length) return { label, values: raw }; // Plotly's own ticks
  const at = log ? Math.log10 : (v) => v;
  const [a, b] = present.length ? [at(low), at(high)] : [0, 1];
  const ticks = Array.from({ length: TICKS }, (_, i) => a + ((b - a) * i) / (TICKS - 1));
  const ticktext = ticks.map((t) => tick(log ? 10 ** t : t));
  const missing = a - 0.15 * (b - a || 1);
  const lacking = present.length < raw.length;
  return {
    label,
    values: raw.map((v) => (v === undefined || v === null ? missing : at(v))),
    range: [lacking ? missing : a, b],
    tickvals: lacking ? [missing, ...ticks] : ticks,
    ticktext: lacking ? [MISSING, ...ticktext] : ticktext,
  };
}
