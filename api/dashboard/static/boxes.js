// coarse_to_fine's boxes over the trials: every round's box of every arm (each choice of the
// arm parameter, the optimizer above all) as a rectangle on two numeric parameters, labelled
// with the round's epochs; the trials as points coloured by the objective.

import { axes, note, onTrialClick, PLOT_CONFIG, shortNames } from "./charts.js";

const ARM_COLORS = ["#2f6fdf", "#cf3b3b", "#2e9d5b", "#c98a14", "#7a3fd1", "#1d2330", "#d4508f", "#3aa6b9"];

/** The numeric parameters of the boxes, most important first (`importance`: names in order
 * of importance; the others follow in the space's order). */
export function numericParams(rounds, importance = []) {
  const box = Object.values(rounds[0]?.arms ?? {})[0] ?? {};
  const numeric = Object.keys(box).filter((name) => box[name].low !== undefined);
  const ranked = importance.filter((name) => numeric.includes(name));
  return [...ranked, ...numeric.filter((name) => !ranked.includes(name))];
}

/** Draw (or update) the chart in `element` on the parameters `x` and `y` (y undefined: the
 * objective on y), the boxes of `arm` only unless it is "all"; `open(number)` runs when a
 * point is clicked. */
export function renderBoxes(element, rounds, armParam, trials, metric, minimize, open, { x, y, arm }) {
  if (x === undefined) {
    Plotly.react(element, [], axes("", "", { annotations: note("No numeric parameter to draw") }), PLOT_CONFIG);
    return;
  }
  const arms = Object.keys(rounds[0].arms);
  const inArm = (t) => arm === "all" || armParam === null || armKey(t.params[armParam]) === arm;
  const yOf = (t) => (y === undefined ? t.value : t.params[y]);
  const shown = trials.filter((t) => inArm(t) && typeof t.params[x] === "number" && typeof yOf(t) === "number");
  const epochsOf = (t) => t.params["training.epochs"];
  const points = (chosen, marker, name) => ({
    type: "scatter", mode: "markers", name, marker,
    x: chosen.map((t) => t.params[x]),
    y: chosen.map(yOf),
    customdata: chosen.map((t) => t.number),
    text: chosen.map((t) => `trial ${t.number}: ${t.state}${t.value === null ? "" : ` ${metric} ${t.value.toPrecision(4)}`}`
      + `${armParam ? ` · ${armKey(t.params[armParam])}` : ""}${epochsOf(t) ? ` · ${epochsOf(t)} epochs` : ""}`),
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
  const shapes = [];
  for (const round of rounds) {
    for (const [name, box] of Object.entries(round.arms)) {
      if ((arm === "all" || name === arm) && box[x] && (y === undefined || box[y])) {
        shapes.push(rectangle(box, round, name, arms.indexOf(name), x, y, armParam !== null));
      }
    }
  }
  const [xLabel, yLabel] = shortNames(y === undefined ? [x] : [x, y]);
  const layout = axes(xLabel, y === undefined ? metric : yLabel, { showlegend: false, shapes });
  const first = Object.values(rounds[0].arms)[0];
  layout.xaxis.type = first[x].log ? "log" : "linear";
  if (y !== undefined) layout.yaxis.type = first[y].log ? "log" : "linear";
  Plotly.react(element, data, layout, PLOT_CONFIG);
  onTrialClick(element, open);
}

/** A choice of the arm parameter as the strategy names its arm (lists as JSON). */
export function armKey(choice) {
  return typeof choice === "string" ? choice : JSON.stringify(choice);
}

/** The box of arm `name` in `round` on `x` and `y` (spanning the height, without `y`):
 * coloured by arm, dotted in the first round, labelled with the arm, round and epochs. */
function rectangle(box, round, name, index, x, y, named) {
  const color = ARM_COLORS[index % ARM_COLORS.length];
  const label = `${named ? `${name} · ` : ""}round ${round.round} · ${round.epochs ?? "all"} ep`;
  return {
    type: "rect", xref: "x", yref: y === undefined ? "paper" : "y",
    x0: box[x].low, x1: box[x].high,
    y0: y === undefined ? 0 : box[y].low, y1: y === undefined ? 1 : box[y].high,
    line: { color, width: 1 + round.round / 2, dash: round.round === 1 ? "dot" : "solid" },
    fillcolor: "rgba(0,0,0,0)",
    label: { text: label, textposition: "top left", font: { size: 10, color } },
  };
}
