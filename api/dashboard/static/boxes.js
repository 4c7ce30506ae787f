// coarse_to_fine's box of every round over the trials: the trials on the first two numeric
// parameters (or the first one against the objective), each round's box drawn as a rectangle.

import { axes, note, onTrialClick, PLOT_CONFIG, shortNames } from "./charts.js";

const ROUND_COLORS = ["#1d2330", "#cf3b3b", "#c98a14", "#2e9d5b", "#7a3fd1", "#2f6fdf"];

/** Draw (or update) the chart in `element`; `open(number)` runs when a point is clicked. */
export function renderBoxes(element, boxes, trials, metric, minimize, open) {
  const first = boxes[0] ?? {};
  const [x, y] = Object.keys(first).filter((name) => first[name].low !== undefined);
  if (x === undefined) {
    Plotly.react(element, [], axes("", "", { annotations: note("No numeric parameter to draw") }), PLOT_CONFIG);
    return;
  }
  const yOf = (t) => (y === undefined ? t.value : t.params[y]);
  const shown = trials.filter((t) => typeof t.params[x] === "number" && typeof yOf(t) === "number");
  const points = (chosen, marker, name) => ({
    type: "scatter", mode: "markers", name, marker,
    x: chosen.map((t) => t.params[x]),
    y: chosen.map(yOf),
    customdata: chosen.map((t) => t.number),
    text: chosen.map((t) => `trial ${t.number}: ${t.state}${t.value === null ? "" : ` ${metric} ${t.value.toPrecision(4)}`}`),
    hoverinfo: "text+x+y",
  });
  const complete = shown.filter((t) => t.state === "complete" && t.value !== null);
  const data = [
    points(shown.filter((t) => !complete.includes(t)), { color: "#98a2b3", size: 6 }, "no value"),
    points(complete, {
      size: 8, color: complete.map((t) => t.value), colorscale: "Viridis", reversescale: minimize,
      showscale: true, colorbar: { title: { text: metric }, thickness: 12 },
    }, "complete"),
  ];
  const [xLabel, yLabel] = shortNames(y === undefined ? [x] : [x, y]);
  const layout = axes(xLabel, y === undefined ? metric : yLabel, {
    showlegend: false,
    shapes: boxes.map((box, i) => rectangle(box, i, x, y)),
  });
  layout.xaxis.type = first[x].log ? "log" : "linear";
  if (y !== undefined) layout.yaxis.type = first[y].log ? "log" : "linear";
  Plotly.react(element, data, layout, PLOT_CONFIG);
  onTrialClick(element, open);
}

/** Round `i`'s box on the parameters `x` and `y` (or spanning the height, without `y`). */
function rectangle(box, i, x, y) {
  const color = ROUND_COLORS[i % ROUND_COLORS.length];
  return {
    type: "rect", xref: "x", yref: y === undefined ? "paper" : "y",
    x0: box[x].low, x1: box[x].high,
    y0: y === undefined ? 0 : box[y].low, y1: y === undefined ? 1 : box[y].high,
    line: { color, width: 2, dash: i ? "solid" : "dot" },
    fillcolor: "rgba(0,0,0,0)",
    label: { text: `round ${i + 1}`, textposition: "top left", font: { size: 11, color } },
  };
}
