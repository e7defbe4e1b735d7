"""The plotly figure and the inlined script of :func:`colgraph.connectome.view`.

Traces (each with a ``meta`` the page's script reads): per frame and per area group (the
columns of one set of areas), ``B`` edge traces (one per attention bin: a WebGL line has one
colour and width) and one ``points`` trace; per frame, a 3-D sheet's ``mesh``; then two
colour-bar traces (no points). The script shows the traces of the slider's frame and the
dropdown's area, and answers clicks without touching a trace (a restyle makes plotly
recompute and redraw every WebGL trace: seconds at 10^5 columns): a clicked column's inputs
and outputs are layout shapes on a 2-D page and, on a 3-D page (scenes have no shapes), a
small plot of their own over the scene, its camera following the scene's.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .figures import _top_inputs

BINS = 6  # attention bins of the drawn edges (B)
EDGE_OPACITY = 0.75
VEIL = 0.7  # 2-D: how much a click's veil hides the rest (0: not at all, 1: fully)
NODE_SCALE, EDGE_SCALE = "Viridis", "Plasma"
FOCUS = (("inputs", "#1f77b4"), ("outputs", "#d62728"))


def figure(frames: list[str], arrays: list, names: list[str], kind: str, color: str,
           values: list[np.ndarray], hover: list[np.ndarray], hover_names: tuple[str, ...],
           top_k: int, faces, title: str, categories: list[str] | None):
    """``(plotly figure, the script's data)`` of the frames' edge arrays ``arrays``."""
    import plotly.graph_objects as go
    from plotly.colors import sample_colorscale

    from .figures import _layout

    a0 = arrays[0]
    three = kind == "3d"
    groups, member = _groups(a0, names)
    tops = [_top_inputs(a, top_k) for a in arrays]
    wmax = max([float(a.weight[t].max()) for a, t in zip(arrays, tops) if t.size] + [1e-12])
    values = [v.astype(float) for v in values]
    if categories is not None:  # areas: one colour each, columns in no area grey
        if any(np.isnan(v).any() for v in values):
            categories = categories + ["(no area)"]
            values = [np.where(np.isnan(v), len(categories) - 1, v) for v in values]
        scale = _discrete(len(categories))
        lo, hi = -0.5, len(categories) - 0.5
    else:
        scale = NODE_SCALE
        finite = np.concatenate([v[np.isfinite(v)] for v in values] + [np.zeros(0)])
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        hi = hi if hi > lo else lo + 1.0
    labels = [str(v) for v in a0.nodes]
    group_names = [", ".join(g) or "(no area)" for g in groups]
    fig = go.Figure()
    script: dict[str, Any] = {"frames": [], "initial": len(frames) - 1, "dims": 3 if three else 2,
                              "focus": [c for _, c in FOCUS]}
    Lines = go.Scatter3d if three else go.Scattergl
    drawn: list[np.ndarray] = []  # each frame's column positions on the page
    for f, (a, top) in enumerate(zip(arrays, tops)):
        xy = _layout(a.pos, a.areas)[0].astype(np.float32)  # (N, 2) or (N, 3)
        xy = xy[:, :3] if three else xy[:, :2]
        drawn.append(xy)
        src, dst, w = a.src[top], a.dst[top], a.weight[top]
        script["frames"].append({"src": _b64(src.astype(np.int32)),
                                 "dst": _b64(dst.astype(np.int32)),
                                 "w": _b64(w.astype(np.float32)), "xyz": _b64(xy)})
        edge_bin = np.minimum((w / wmax * BINS).astype(int), BINS - 1)
        visible = f == len(frames) - 1
        if three and faces is not None:
            fig.add_trace(go.Mesh3d(
                x=xy[:, 0], y=xy[:, 1], z=xy[:, 2], i=faces[:, 0], j=faces[:, 1],
                k=faces[:, 2], intensity=np.nan_to_num(values[f], nan=lo).astype(np.float32),
                colorscale=scale, cmin=lo, cmax=hi, showscale=False, opacity=0.45,
                hoverinfo="skip", flatshading=False, visible=visible,
                lighting={"ambient": 0.6, "diffuse": 0.6, "specular": 0.1},
                meta={"role": "mesh", "frame": f}, name="surface"))
        for g, group in enumerate(groups):
            for b in range(BINS):
                sel = (member[dst] == g) & (edge_bin == b)
                if not sel.any():
                    continue
                centre = (b + 0.5) / BINS
                fig.add_trace(Lines(
                    **_segments(xy, src[sel], dst[sel]), mode="lines", hoverinfo="skip",
                    line={"color": sample_colorscale(EDGE_SCALE, [centre])[0],
                          "width": 0.6 + 2.4 * centre}, opacity=EDGE_OPACITY, showlegend=False,
                    visible=visible, name=f"edges {b}",
                    meta={"role": "edges", "frame": f, "areas": list(group)}))
            idx = np.flatnonzero(member == g)
            custom = np.column_stack([idx, hover[f][idx], values[f][idx]]).astype(np.float32)
            text = [f"{labels[i]} ({group_names[g]})" for i in idx]
            fig.add_trace(_points(xy[idx], values[f][idx], lo, hi, scale, custom, text,
                                  hover_names, color, categories, three, visible,
                                  meta={"role": "points", "frame": f, "areas": list(group)}))
        if f:  # plasticity: the wiring grown / pruned since the previous snapshot
            _changes(fig, Lines, xy, a, arrays[f - 1], tops[f - 1], top, f, visible, groups,
                     member)
    _colour_bars(fig, three, lo, hi, scale, color, categories, wmax, arrays[-1].weight_name)
    _decorate(fig, frames, names, kind, arrays[-1], title, top_k, a0.n)
    script["colour"] = _colour_menu(fig, color, hover_names, scale, lo, hi, categories)
    if three:  # one box for the scene and the focus overlay (it must project alike)
        script["scene"] = _box(np.concatenate(drawn))
        fig.update_layout(scene=script["scene"])
    script["groups"] = group_names
    return fig, script


def _changes(fig, Lines, xy, a, before, top_before, top, f: int, visible: bool, groups,
             member: np.ndarray) -> None:
    """Frame ``f``'s drawn edges that the previous frame's graph did not have (grown), and
    the previous frame's drawn edges this frame's graph lacks (pruned): a trace per kind and
    area group of the target column (the area filter shows a group's), one legend entry per
    kind."""
    n = a.n
    now, then = a.src * n + a.dst, before.src * n + before.dst
    grown = top[~np.isin(now[top], then)]
    pruned = top_before[~np.isin(then[top_before], now)]
    for name, (src, dst), colour, dash in (
            ("grown", (a.src[grown], a.dst[grown]), "#2ca02c", "solid"),
            ("pruned", (before.src[pruned], before.dst[pruned]), "#d62728", "dot")):
        legend = True
        for g, group in enumerate(groups):
            sel = member[dst] == g
            if not sel.any():
                continue
            fig.add_trace(Lines(**_segments(xy, src[sel], dst[sel]), mode="lines",
                                hoverinfo="skip", visible=visible, opacity=1.0,
                                line={"color": colour, "width": 2.5, "dash": dash},
                                name=f"{name} since the previous snapshot ({src.size} drawn)",
                                legendgroup=f"{name} {f}", showlegend=legend,
                                meta={"role": "changes", "frame": f, "areas": list(group),
                                      "count": int(sel.sum())}))
            legend = False


def _groups(a, names: list[str]) -> tuple[list[tuple[str, ...]], np.ndarray]:
    """The columns' area sets (one ``points`` trace each) and each column's set."""
    sig = [[] for _ in range(a.n)]
    for n in names:
        for i in a.areas[n].tolist():
            sig[i].append(n)
    keys = sorted({tuple(s) for s in sig}, key=lambda s: (len(s) == 0, s))
    index = {k: g for g, k in enumerate(keys)}
    return keys, np.array([index[tuple(s)] for s in sig])


def _box(xyz: np.ndarray) -> dict[str, Any]:
    """A 3-D scene's fixed axis ranges (the points' box, 2 % margin) and aspect ratio (the
    box's proportions, as ``aspectmode="data"`` would compute them)."""
    lo, hi = xyz.min(0).astype(float), xyz.max(0).astype(float)
    pad = 0.02 * max(float((hi - lo).max()), 1e-9)
    lo, hi = lo - pad, hi + pad
    span = hi - lo
    ratio = span / span.max()
    scene: dict[str, Any] = {f"{k}axis": {"range": [lo[i], hi[i]], "autorange": False}
                             for i, k in enumerate("xyz")}
    scene.update(aspectmode="manual", aspectratio=dict(zip("xyz", ratio.tolist())))
    return scene


def _segments(xy: np.ndarray, src: np.ndarray, dst: np.ndarray) -> dict[str, np.ndarray]:
    """Line coordinates of edges ``src -> dst``: source, target, NaN (a gap), per edge."""
    seg = np.full((len(src), 3, xy.shape[1]), np.nan, dtype=np.float32)
    seg[:, 0], seg[:, 1] = xy[src], xy[dst]
    seg = seg.reshape(-1, xy.shape[1])
    return dict(zip("xyz", seg.T))


def _points(xy, value, lo, hi, scale, custom, text, hover_names, color, categories, three,
            visible, meta):
    import plotly.graph_objects as go

    rows = "".join(f"<br>{n}: %{{customdata[{j + 1}]:.4~g}}" for j, n in enumerate(hover_names))
    shown = "" if categories is not None or color in hover_names else \
        f"<br>{color}: %{{customdata[{len(hover_names) + 1}]:.4~g}}"
    marker = {"color": np.nan_to_num(value, nan=lo).astype(np.float32), "colorscale": scale,
              "cmin": lo, "cmax": hi, "size": 3 if three else 5, "showscale": False,
              "opacity": 1.0}
    kw = dict(x=xy[:, 0], y=xy[:, 1], mode="markers", marker=marker, customdata=custom,
              text=text, hovertemplate="column %{text}" + rows + shown + "<extra></extra>",
              showlegend=False, visible=visible, name="columns", meta=meta)
    if three:
        return go.Scatter3d(z=xy[:, 2], **kw)
    return go.Scattergl(**kw)


def _colour_bars(fig, three, lo, hi, scale, color, categories, wmax, weight_name) -> None:
    """Two traces without points, for their colour bars: the columns' metric, the edges'
    attention."""
    import plotly.graph_objects as go

    Trace = go.Scatter3d if three else go.Scattergl
    nan = {k: [np.nan] for k in ("xyz" if three else "xy")}
    bar = {"title": {"text": "area" if categories is not None else color, "side": "right"},
           "x": 1.0, "len": 0.9}
    if categories is not None:
        bar.update(tickvals=list(range(len(categories))), ticktext=categories)
    fig.add_trace(Trace(**nan, mode="markers", hoverinfo="skip", showlegend=False,
                        marker={"color": [lo], "cmin": lo, "cmax": hi, "colorscale": scale,
                                "showscale": True, "colorbar": bar}, name=f"{color} scale"))
    fig.add_trace(Trace(**nan, mode="markers", hoverinfo="skip", showlegend=False,
                        marker={"color": [0.0], "cmin": 0.0, "cmax": wmax,
                                "colorscale": EDGE_SCALE, "showscale": True,
                                "colorbar": {"title": {"text": f"edge weight ({weight_name})",
                                                       "side": "right"},
                                             "x": 1.12, "len": 0.9}},
                        name="edge scale"))


def _colour_menu(fig, color, hover_names, scale, lo, hi, categories) -> dict[str, Any]:
    """A dropdown of the columns' colour: the page's metric and the hover metrics (each a
    column of the points' ``customdata``: the page recolours without new data); what the
    page's script needs to recolour."""
    options = [color] + [m for m in hover_names if m != color]
    fig.layout.updatemenus += ({
        "buttons": [{"label": f"colour: {m}", "method": "skip", "args": [m]} for m in options],
        "direction": "down", "x": 0.16, "xanchor": "left", "y": 1.01, "yanchor": "bottom",
        "showactive": True, "active": 0, "name": "colour"},)
    column = {m: 1 + hover_names.index(m) for m in hover_names}
    column[color] = 1 + len(hover_names)  # the page's metric: the last column
    return {"column": column, "scale": NODE_SCALE,
            "initial": {"name": color, "scale": scale, "lo": lo, "hi": hi,
                        "ticks": categories}}


def _decorate(fig, frames, names, kind, a, title, top_k, n) -> None:
    """Title, axis labels, area labels, the area dropdown and the snapshot slider."""
    from .figures import _layout

    xlabel = "position within each area (areas side by side)" if kind == "areas" else "x"
    fig.update_layout(
        title={"text": f"{title}: {n} columns, the strongest {top_k} inputs of each "
                       f"(click a column: its inputs (blue) and outputs (red); double-click: "
                       f"all)",
               "font": {"size": 14}, "y": 0.985, "yref": "container"},
        template="plotly_white", margin={"l": 60, "r": 40, "t": 90, "b": 90},
        hovermode="closest", uirevision="view",
        legend={"orientation": "h", "x": 1.0, "xanchor": "right", "y": 1.01,
                "yanchor": "bottom"}, dragmode="pan" if kind != "3d" else "orbit")
    if kind == "3d":
        fig.update_layout(scene={"xaxis_title": "x", "yaxis_title": "y", "zaxis_title": "z"})
    else:
        fig.update_xaxes(title_text=xlabel, zeroline=False)
        fig.update_yaxes(title_text="y", scaleanchor="x", scaleratio=1, zeroline=False)
    if kind == "areas":
        xy = _layout(a.pos, a.areas)[0]
        for name in names:
            p = xy[a.areas[name]]
            fig.add_annotation(x=float(p[:, 0].mean()), y=float(p[:, 1].max()), text=name,
                               showarrow=False, yshift=12)
    buttons = [{"label": "all areas", "method": "skip", "args": [""]}]
    buttons += [{"label": name, "method": "skip", "args": [name]} for name in names]
    fig.update_layout(updatemenus=[{"buttons": buttons, "direction": "down", "x": 0.0,
                                    "xanchor": "left", "y": 1.01, "yanchor": "bottom",
                                    "showactive": True, "active": 0, "name": "areas"}])
    if len(frames) > 1:
        fig.update_layout(sliders=[{
            "active": len(frames) - 1, "pad": {"t": 40}, "len": 0.9, "x": 0.05,
            "currentvalue": {"prefix": "snapshot: "},
            "steps": [{"label": label, "method": "skip", "value": str(f), "args": [f]}
                      for f, label in enumerate(frames)]}])


def _discrete(count: int) -> list[list]:
    """A colour scale of ``count`` flat steps (area k at value k of [-0.5, count - 0.5])."""
    from plotly.colors import qualitative

    palette = qualitative.Plotly + qualitative.D3 + qualitative.Alphabet
    scale = []
    for k in range(count):
        c = palette[k % len(palette)]
        scale += [[k / count, c], [(k + 1) / count, c]]
    return scale


def _b64(x: np.ndarray) -> str:
    import base64

    return base64.b64encode(np.ascontiguousarray(x).tobytes()).decode("ascii")


def script(data: dict[str, Any]) -> str:
    """The page's script (run by plotly's ``post_script`` once the plot is drawn)."""
    import json

    return SCRIPT.replace("__DATA__", json.dumps(data, separators=(",", ":"))).replace(
        "__EDGE_OPACITY__", str(EDGE_OPACITY)).replace("__VEIL__", str(VEIL))


SCRIPT = r"""
var gd = document.getElementById('{plot_id}');
var M = __DATA__, EDGE_OPACITY = __EDGE_OPACITY__, VEIL = __VEIL__;
function dec(s, T) {
  var b = atob(s), u = new Uint8Array(b.length);
  for (var i = 0; i < b.length; i++) u[i] = b.charCodeAt(i);
  return new T(u.buffer);
}
var frames = M.frames.map(function (f) {
  return {src: dec(f.src, Int32Array), dst: dec(f.dst, Int32Array),
          w: dec(f.w, Float32Array), xyz: dec(f.xyz, Float32Array)};
});
var state = {frame: M.initial, area: '', focus: -1, colour: M.colour.initial.name};
function role(t) { return (t.meta && t.meta.role) || ''; }
function inArea(t) {
  var m = t.meta || {};
  return !state.area || !m.areas || m.areas.indexOf(state.area) >= 0;
}
function shown(t) {
  var r = role(t);
  if (r === '') return true;
  if (t.meta.frame !== state.frame) return false;
  // edges fade out instead (opacity 0): showing a hidden trace again recomputes it (seconds
  // at 10^5 columns), changing its opacity does not
  return r === 'edges' || r === 'changes' || inArea(t);
}
function opacity(t) {
  var r = role(t);
  if (r !== 'edges' && r !== 'changes') return undefined;
  return !inArea(t) ? 0 : (r === 'edges' ? EDGE_OPACITY : 1);
}
function wiring() {  // the clicked column's drawn inputs and outputs: [src, dst] pairs
  var f = frames[state.frame], c = state.focus, lines = [[], []];
  for (var e = 0; e < f.src.length; e++) {
    if (f.dst[e] === c) lines[0].push(f.src[e], f.dst[e]);
    else if (f.src[e] === c) lines[1].push(f.src[e], f.dst[e]);
  }
  gd.dataset.inputs = lines[0].length / 2;
  gd.dataset.outputs = lines[1].length / 2;
  return lines;
}
function at(i, d) { return frames[state.frame].xyz[i * M.dims + d]; }
function focusShapes(lines) {  // 2-D: a veil over the plot, a line per input / output, rings
  var c = state.focus, shapes = [{type: 'rect', xref: 'paper', yref: 'paper', x0: 0, y0: 0,
    x1: 1, y1: 1, fillcolor: 'white', opacity: VEIL, line: {width: 0}, layer: 'above'}];
  var ends = [c];
  [1, 0].forEach(function (which) {  // outputs, then inputs over them: both ways, two colours
    var l = lines[which];
    for (var i = 0; i < l.length; i += 2) {
      shapes.push({type: 'line', x0: at(l[i], 0), y0: at(l[i], 1), x1: at(l[i + 1], 0),
                   y1: at(l[i + 1], 1), layer: 'above',
                   line: {color: M.focus[which], width: which ? 6 : 2.5}});
      ends.push(l[i + which]);
    }
  });
  ends.forEach(function (i, k) {
    var r = k ? 5 : 8;
    shapes.push({type: 'circle', xsizemode: 'pixel', ysizemode: 'pixel', xanchor: at(i, 0),
                 yanchor: at(i, 1), x0: -r, x1: r, y0: -r, y1: r, layer: 'above',
                 line: {color: 'black', width: 2}});
  });
  return shapes;
}
// 3-D: the focus is a small plot of its own laid over the scene (inside plotly's WebGL
// container: above the scene, below the colour bars and hover labels), with the scene's
// box, size and camera, on a veil; it takes no mouse events
var overlay = null, overlayTraces = [];
function overlayLayout() {
  var L = gd._fullLayout, S = L._size, scene = JSON.parse(JSON.stringify(M.scene || {}));
  ['xaxis', 'yaxis', 'zaxis'].forEach(function (a) { scene[a].visible = false; });
  scene.camera = L.scene.camera;
  scene.domain = L.scene.domain;
  scene.bgcolor = 'rgba(0,0,0,0)';
  return {width: L.width, height: L.height, showlegend: false, paper_bgcolor: 'rgba(0,0,0,0)',
          margin: {l: S.l, r: S.r, t: S.t, b: S.b, pad: 0, autoexpand: false}, scene: scene};
}
function focusOverlay(lines) {
  if (!overlay) {
    overlay = document.createElement('div');
    overlay.className = 'colgraph-focus';
    overlay.style.cssText = 'position:absolute;left:0;top:0;pointer-events:none;' +
      'background:rgba(255,255,255,' + VEIL + ');';  // the veil (the plot's own is clear)
    gd.querySelector('.gl-container').appendChild(overlay);
  }
  overlay.style.display = state.focus < 0 ? 'none' : '';
  if (state.focus < 0) return Promise.resolve();
  var cols = [state.focus];
  overlayTraces = [1, 0].map(function (which) {  // outputs, then inputs over them
    var l = lines[which], t = {type: 'scatter3d', mode: 'lines', x: [], y: [], z: [],
      hoverinfo: 'skip', line: {color: M.focus[which], width: which ? 10 : 4}};
    for (var i = 0; i < l.length; i += 2) {
      ['x', 'y', 'z'].forEach(function (key, d) { t[key].push(at(l[i], d), at(l[i + 1], d), null); });
      cols.push(l[i + which]);
    }
    return t;
  });
  overlayTraces.push({type: 'scatter3d', mode: 'markers', hoverinfo: 'skip',
    x: cols.map(function (i) { return at(i, 0); }), y: cols.map(function (i) { return at(i, 1); }),
    z: cols.map(function (i) { return at(i, 2); }),
    marker: {size: 6, color: 'rgba(0,0,0,0)', line: {color: 'black', width: 2}}});
  return Plotly.react(overlay, overlayTraces, overlayLayout(),
                      {displayModeBar: false});  // (staticPlot: a scene without WebGL canvas)
}
function follow(ev) {  // the scene turned or the page resized: the overlay follows
  if (!overlay || state.focus < 0) return;
  if (ev && ev['scene.camera'] && Object.keys(ev).length === 1)
    Plotly.relayout(overlay, {'scene.camera': ev['scene.camera']});
  else Plotly.react(overlay, overlayTraces, overlayLayout());
}
function mark() {
  gd.dataset.frame = state.frame;
  gd.dataset.area = state.area;
  gd.dataset.focus = state.focus;
  gd.dataset.colour = state.colour;
  gd.dataset.ready = '1';
}
var drawn = {frame: state.frame, focus: -1};  // what the focus shows
function render() {
  // one restyle of what changes in the traces (a click changes none), then the focus when
  // the focus or the frame changed; undefined: that trace's value unchanged
  var upd = {visible: [], opacity: []}, changed = false, jobs = [];
  gd.data.forEach(function (t) {
    var v = shown(t), o = opacity(t);
    v = v === (t.visible !== false) ? undefined : v;
    o = o === undefined || o === t.opacity ? undefined : o;
    upd.visible.push(v);
    upd.opacity.push(o);
    changed = changed || v !== undefined || o !== undefined;
  });
  if (changed) jobs.push(Plotly.restyle(gd, upd));
  if (drawn.focus !== state.focus || (state.focus >= 0 && drawn.frame !== state.frame)) {
    var lines = state.focus >= 0 ? wiring() : [[], []];
    jobs.push(M.dims === 3 ? focusOverlay(lines) :
              Plotly.relayout(gd, {shapes: state.focus >= 0 ? focusShapes(lines) : []}));
    drawn = {frame: state.frame, focus: state.focus};
  }
  Promise.all(jobs).then(mark);
}
gd.on('plotly_relayouting', follow);
gd.on('plotly_relayout', follow);
gd.on('plotly_click', function (ev) {
  var p = ev && ev.points && ev.points[0];
  if (!p || role(p.data) !== 'points') return;
  var c = Math.round(p.customdata[0]);
  state.focus = state.focus === c ? -1 : c;
  render();
});
// a double click shows everything again (plotly's own, resetting the axes, is off: at 10^5
// columns it redraws every trace, seconds; the mode bar's home button still does it)
gd.addEventListener('dblclick', function () { if (state.focus >= 0) { state.focus = -1; render(); } });
gd.on('plotly_sliderchange', function (ev) {
  state.frame = parseInt(ev.step.value, 10);
  render();
});
function table(cd) {  // a [rows, columns] array as plotly holds it: base64 or nested
  if (cd && cd.bdata) {
    var a = dec(cd.bdata, Float32Array), cols = +String(cd.shape).split(',')[1];
    return {rows: a.length / cols, at: function (k, j) { return a[k * cols + j]; }};
  }
  return {rows: cd.length, at: function (k, j) { return cd[k][j]; }};
}
function recolour(name) {
  // the columns (and a 3-D surface) coloured by another metric, from the points' customdata;
  // one restyle of the points, meshes and the colour bar (plotly redraws every trace)
  var C = M.colour, init = name === C.initial.name, j = C.column[name], idx = [], upd = {};
  var keys = ['marker.color', 'marker.cmin', 'marker.cmax', 'marker.colorscale', 'intensity',
              'cmin', 'cmax', 'colorscale', 'marker.colorbar.title.text',
              'marker.colorbar.tickvals', 'marker.colorbar.ticktext'];
  keys.forEach(function (k) { upd[k] = []; });
  var lo = Infinity, hi = -Infinity, byFrame = {}, N = frames[0].xyz.length / M.dims;
  var tables = {};  // each points trace's customdata, decoded once
  gd.data.forEach(function (t, i) {  // (gd.data: every frame's; _fullData has the shown ones)
    if (role(t) !== 'points') return;
    var cd = tables[i] = table(t.customdata), v = byFrame[t.meta.frame] = byFrame[t.meta.frame] ||
      new Float32Array(N).fill(NaN);
    for (var k = 0; k < cd.rows; k++) {
      var x = cd.at(k, j);
      v[Math.round(cd.at(k, 0))] = x;
      if (isFinite(x)) { lo = Math.min(lo, x); hi = Math.max(hi, x); }
    }
  });
  if (init) { lo = C.initial.lo; hi = C.initial.hi; }
  else if (!(hi >= lo)) { lo = 0; hi = 1; }
  else if (hi === lo) hi = lo + 1;
  var scale = init ? C.initial.scale : C.scale, ticks = init ? C.initial.ticks : null;
  function colours(v, ids) {
    var out = new Float32Array(ids.length);
    for (var k = 0; k < ids.length; k++) { var x = v[ids[k]]; out[k] = isFinite(x) ? x : lo; }
    return out;
  }
  function put(t, i, values) {
    idx.push(i);
    keys.forEach(function (k) { upd[k].push(values[k]); });
  }
  gd.data.forEach(function (t, i) {
    var r = role(t);
    if (r === 'points') {
      var cd = tables[i], ids = [];
      for (var k = 0; k < cd.rows; k++) ids.push(Math.round(cd.at(k, 0)));
      put(t, i, {'marker.color': colours(byFrame[t.meta.frame], ids), 'marker.cmin': lo,
                 'marker.cmax': hi, 'marker.colorscale': scale});
    } else if (r === 'mesh') {
      var all = [];
      for (var c = 0; c < N; c++) all.push(c);
      put(t, i, {intensity: colours(byFrame[t.meta.frame], all), cmin: lo, cmax: hi,
                 colorscale: scale});
    } else if (t.name === C.initial.name + ' scale') {  // the columns' colour bar
      put(t, i, {'marker.cmin': lo, 'marker.cmax': hi, 'marker.colorscale': scale,
                 'marker.colorbar.title.text': init && ticks ? 'area' : name,
                 'marker.colorbar.tickvals': ticks ? ticks.map(function (x, k) { return k; }) : null,
                 'marker.colorbar.ticktext': ticks});
    }
  });
  state.colour = name;
  Plotly.restyle(gd, upd, idx).then(mark);
}
gd.on('plotly_buttonclicked', function (ev) {
  if (ev.menu.name === 'colour') return recolour(ev.button.args[0]);
  state.area = ev.button.args[0];
  render();
});
gd.dataset.columns = frames[0].xyz.length / M.dims;
mark();  // drawn as the figure says: the last frame, every area, no focus
"""
