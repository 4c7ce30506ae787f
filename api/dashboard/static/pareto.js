// The Pareto front of a study with two (or more) objectives: every complete trial on the first
// two, the front highlighted and joined in order.

import { axes, note, onTrialClick, PLOT_CONFIG } from "./charts.js";

/** Draw (or update) the chart in `element`; `open(number)` runs when a point is clicked. */
export function renderPareto(element, study, trials, open) {
  const [x, y] = study.objectives.map((o) => o.metric);
  const onFront = new Set((study.pareto_front ?? []).map((t) => t.number));
  const has = (t) => typeof t.values?.[x] === "number" && typeof t.values?.[y] === "number";
  const complete = trials.filter((t) => t.state === "complete" && has(t));
  const front = complete.filter((t) => onFront.has(t.number)).sort((a, b) => a.values[x] - b.values[x] || a.values[y] - b.values[y]);
  const points = (chosen, extra) => ({
    type: "scatter",
    x: chosen.map((t) => t.values[x]),
    y: chosen.map((t) => t.values[y]),
    customdata: chosen.map((t) => t.number),
    text: chosen.map((t) => `trial ${t.number}`),
    hoverinfo: "text+x+y",
    ...extra,
  });
  const data = [
    points(complete.filter((t) => !onFront.has(t.number)), { mode: "markers", name: "dominated", marker: { color: "#98a2b3", size: 7 } }),
    points(front, { mode: "lines+markers", name: "Pareto front", marker: { color: "#cf3b3b", size: 10 }, line: { color: "#cf3b3b", shape: "linear" } }),
  ];
  const title = (o) => `${o.metric} (${o.direction === "minimize" ? "min" : "max"})`;
  const layout = axes(title(study.objectives[0]), title(study.objectives[1]), {
    annotations: complete.length ? [] : note("No complete trial yet"),
  });
  Plotly.react(element, data, layout, PLOT_CONFIG);
  onTrialClick(element, open);
}
