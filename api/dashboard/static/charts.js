// What every chart of the dashboard shares: Plotly's options, and a metric's curve as a trace.

export const PLOT_CONFIG = { displaylogo: false, responsive: true };
export const LAYOUT = {
  margin: { l: 55, r: 15, t: 10, b: 40 },
  legend: { orientation: "h", y: -0.2 },
  paper_bgcolor: "rgba(0,0,0,0)",
  plot_bgcolor: "rgba(0,0,0,0)",
};

/** A layout with titled axes. */
export function axes(x, y, extra = {}) {
  return { ...LAYOUT, xaxis: { title: { text: x } }, yaxis: { title: { text: y } }, ...extra };
}

/** A centred note on an empty chart. */
export function note(text) {
  return [{ text, showarrow: false, xref: "paper", yref: "paper", x: 0.5, y: 0.5 }];
}

/** One metric of a learning curve ([{step, metric: value, ...}]) as a line, epochs on x. */
export function curveTrace(curve, metric, extra) {
  const kept = (curve ?? []).filter((point) => point[metric] !== undefined && point[metric] !== null);
  return { type: "scatter", mode: "lines+markers", x: kept.map((p) => p.step), y: kept.map((p) => p[metric]), ...extra };
}

/** Call `open(number)` when a point carrying a trial number in its customdata is clicked. */
export function onTrialClick(element, open) {
  if (element.dataset.clickable) return; // Plotly.react keeps listeners: bind once
  element.dataset.clickable = "1";
  element.on("plotly_click", (event) => {
    const number = event.points?.[0]?.customdata;
    if (Number.isInteger(number)) open(number);
  });
}

/** Each dotted name's last segment, or as many last segments as keep it apart from the others
 * ("training.learning_rate" → "learning_rate"): long names overlap on crowded axes. */
export function shortNames(names) {
  const tail = (name, n) => name.split(".").slice(-n).join(".");
  return names.map((name) => {
    let n = 1;
    while (n < name.split(".").length && names.some((other) => other !== name && tail(other, n) === tail(name, n))) n += 1;
    return tail(name, n);
  });
}

/** A tick's text: two significant digits, without trailing zeros (0.001, 2.5e-7, 120). */
export function tick(value) {
  return String(Number(value.toPrecision(2)));
}
