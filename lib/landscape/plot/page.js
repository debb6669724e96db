// The landscape page: draws one quantity of the embedded data with plotly, redraws on every control.
// Values are null at unfinished points; they stay null (gaps) through every transform.
"use strict";
const D = JSON.parse(document.getElementById("landscape-data").textContent);
const quantitySelect = document.getElementById("quantity");
const logBox = document.getElementById("log");
const zmaxBox = document.getElementById("zmax");
const is2d = D.y !== null;

function readHash() {
  const state = {};
  for (const part of location.hash.replace(/^#/, "").split("&")) {
    const [key, value] = part.split("=");
    if (key) state[key] = decodeURIComponent(value || "");
  }
  return state;
}

function writeHash() {
  const q = D.quantities[quantitySelect.value];
  history.replaceState(null, "", "#q=" + q.name + "&log=" + (logBox.checked ? 1 : 0) +
    "&zmax=" + encodeURIComponent(zmaxBox.value));
}

// On a log scale a value <= 0 has no place: a gap, like an unfinished point.
function scaled(v, log) {
  if (v === null) return null;
  if (!log) return v;
  return v > 0 ? Math.log10(v) : null;
}

function mapValues(values, f) {
  return is2d ? values.map(row => row.map(f)) : values.map(f);
}

function asText(v) {
  return v === null ? "not computed" : String(v);
}

function zmaxValue() {
  const v = parseFloat(zmaxBox.value);
  return Number.isFinite(v) ? v : null;
}

function axisTitle(q, log) {
  return log ? "log10(" + q.label + ")" : q.label;
}

function hoverTemplate(q) {
  return (is2d ? "x=%{x:.4g}<br>y=%{y:.4g}<br>" : "x=%{x:.4g}<br>") + q.label + "=%{text}<extra></extra>";
}

// Heights for the 3D surface: a point above zmax is lowered to it when a neighbour lies below zmax
// (the surface ends in a rim there) and dropped when all its neighbours are above too (no flat lid).
function rimmed(values, zmax) {
  if (zmax === null) return values;
  const low = (j, i) => j >= 0 && j < values.length && i >= 0 && i < values[j].length &&
    values[j][i] !== null && values[j][i] <= zmax;
  return values.map((row, j) => row.map((v, i) => {
    if (v === null || v <= zmax) return v;
    for (let dj = -1; dj <= 1; dj++) for (let di = -1; di <= 1; di++) if (low(j + dj, i + di)) return zmax;
    return null;
  }));
}

// Points whose eigenvalue run did not converge (q.unconverged: grid indices): an '×' on the map or curve.
function unconvergedTrace(q, curve) {
  if (!q.unconverged) return null;
  const xs = q.unconverged.map(p => D.x[is2d ? p[1] : p[0]]);
  const ys = q.unconverged.map(p => is2d ? D.y[p[0]] : curve[p[0]]);
  return {type: "scatter", mode: "markers", x: xs, y: ys, name: "did not converge (" + xs.length + ")",
    marker: {symbol: "x", size: 9, color: "red"}, hoverinfo: "skip"};
}

// The 3D surface ends in a rim at zmax; the 2D map clips its colours there instead.
function draw2d(q, log, zmax) {
  const cut = rimmed(q.values, zmax).map(row => row.map(v => scaled(v, log)));
  const clipped = mapValues(q.values, v => scaled(v !== null && zmax !== null ? Math.min(v, zmax) : v, log));
  const text = mapValues(q.values, asText);
  const title = axisTitle(q, log);
  const surface = {
    type: "surface", x: D.x, y: D.y, z: cut, text: text, hovertemplate: hoverTemplate(q),
    colorscale: "Viridis", colorbar: {title: {text: title}, len: 0.7},
    contours: {z: {show: true, usecolormap: true, project: {z: true}}},
  };
  const map = {
    type: "contour", x: D.x, y: D.y, z: clipped, text: text, hovertemplate: hoverTemplate(q),
    colorscale: "Viridis", contours: {coloring: "heatmap", showlabels: true}, ncontours: 25,
    colorbar: {title: {text: title}}, connectgaps: false,
  };
  const surfaceTraces = [surface];
  const mapTraces = [map];
  if (D.path) {
    const pathZ = q.path.map(v => scaled(v, log));
    surfaceTraces.push({type: "scatter3d", mode: "lines+markers", x: D.path.x, y: D.path.y, z: pathZ,
      line: {color: "red", width: 5}, marker: {size: 3, color: "red"}, name: "optimizer path",
      hoverinfo: "skip"});
    mapTraces.push({type: "scatter", mode: "lines+markers", x: D.path.x, y: D.path.y, name: "optimizer path",
      line: {color: "red"}, marker: {size: 5}, hoverinfo: "skip"});
  }
  const marks = unconvergedTrace(q, null);
  if (marks) mapTraces.push(marks);
  const camera = sessionStorage.getItem("landscape-camera");
  const scene = {xaxis: {title: {text: "x"}}, yaxis: {title: {text: "y"}}, zaxis: {title: {text: title}}};
  if (camera) scene.camera = JSON.parse(camera);
  Plotly.react("surface3d", surfaceTraces, {title: {text: q.label + " (drag to turn)"}, scene: scene,
    margin: {l: 0, r: 0, t: 40, b: 0}, showlegend: false});
  Plotly.react("map2d", mapTraces, {title: {text: q.label}, xaxis: {title: {text: "x"}},
    yaxis: {title: {text: "y"}}, showlegend: false, hovermode: "closest"});
}

function draw1d(q, log, zmax) {
  const y = q.values.map(v => scaled(v !== null && zmax !== null && v > zmax ? null : v, log));
  const traces = [{type: "scatter", mode: "lines+markers", x: D.x, y: y, text: q.values.map(asText),
    hovertemplate: hoverTemplate(q), connectgaps: false, marker: {size: 4}, name: q.label}];
  const marks = unconvergedTrace(q, y);
  if (marks) traces.push(marks);
  Plotly.react("map2d", traces, {title: {text: q.label}, xaxis: {title: {text: D.xlabel || "x"}},
    yaxis: {title: {text: axisTitle(q, log)}}, hovermode: "closest", showlegend: marks !== null});
}

function draw() {
  const q = D.quantities[quantitySelect.value];
  const log = logBox.checked;
  if (is2d) draw2d(q, log, zmaxValue()); else draw1d(q, log, zmaxValue());
  document.getElementById("note").textContent = q.note;
  writeHash();
}

function selectQuantity(resetClip) {
  const q = D.quantities[quantitySelect.value];
  if (resetClip) zmaxBox.value = q.top === null ? "" : String(Number(q.top.toPrecision(3)));
  draw();
}

function start() {
  D.quantities.forEach((q, i) => {
    const option = document.createElement("option");
    option.value = i;
    option.textContent = q.label;
    quantitySelect.appendChild(option);
  });
  if (!is2d) document.getElementById("surface3d").style.display = "none";
  const state = readHash();
  const named = D.quantities.findIndex(q => q.name === state.q);  // a reload keeps the reader's choice
  const index = named >= 0 ? named : D.quantities.findIndex(q => q.name === D.initial);
  quantitySelect.value = index >= 0 ? index : 0;
  logBox.checked = state.log === "1";
  selectQuantity(!("zmax" in state));
  if ("zmax" in state) { zmaxBox.value = state.zmax; draw(); }
  quantitySelect.addEventListener("change", () => selectQuantity(true));
  logBox.addEventListener("change", draw);
  zmaxBox.addEventListener("change", draw);
  if (is2d) {
    document.getElementById("surface3d").on("plotly_relayout", event => {
      if (event["scene.camera"]) sessionStorage.setItem("landscape-camera", JSON.stringify(event["scene.camera"]));
    });
  }
  if (RELOAD_SECS) {
    document.getElementById("live").textContent = "live: " + D.done + " of " + D.total +
      " points done; reloads every " + RELOAD_SECS + " s";
    setTimeout(() => location.reload(), RELOAD_SECS * 1000);
  }
}

window.landscapeView = {data: D, draw: draw};
start();
