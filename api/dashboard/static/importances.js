// How much each parameter mattered to the first objective, as the API computes it (Optuna's
// PED-ANOVA): one horizontal bar per parameter, the largest on top.

import { axes, note, PLOT_CONFIG, shortNames } from "./charts.js";

/** Draw (or update) the chart in `element` from a GET studies/{id}/importances answer. */
export function renderImportances(element, answer) {
  const entries = Object.entries(answer.importances).reverse(); // Plotly draws bottom-up
  const names = entries.map(([name]) => name);
  const data = entries.length
    ? [{
        type: "bar", orientation: "h",
        x: entries.map(([, share]) => share),
        y: shortNames(names),
        customdata: names,
        hovertemplate: "%{customdata}: %{x:.3f}<extra></extra>",
        marker: { color: "#2f6fdf" },
      }]
    : [];
  const layout = axes(`share of ${answer.metric} (${answer.trials_used} trials)`, "", {
    margin: { l: 110, r: 15, t: 10, b: 40 },
    annotations: entries.length ? [] : note(answer.reason ?? "No importances yet"),
  });
  layout.xaxis.rangemode = "tozero";
  layout.yaxis.automargin = true;
  Plotly.react(element, data, layout, PLOT_CONFIG);
}
