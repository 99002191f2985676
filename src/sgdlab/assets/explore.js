/* sgdlab explorable figures: draws the frames that sgdlab's engine computed at render time (embedded
   as JSON in each figure) as SVG. No library, no network. Loaded once per page; figures found by class. */
(function () {
  "use strict";
  if (window.sgdlabExplore) return;
  var NS = "http://www.w3.org/2000/svg";
  var C = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"];

  function el(tag, attrs, parent, text) {
    var e = document.createElementNS(NS, tag);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    if (parent) parent.appendChild(e);
    return e;
  }
  function fmt(v, digits) {
    if (v === null || !isFinite(v)) return "–";
    if (v === 0) return "0";
    var a = Math.abs(v);
    if (a >= 1e-3 && a < 1e4) return String(+v.toPrecision(digits || 3));
    return v.toExponential((digits || 3) - 1);
  }
  function ok(v) { return v !== null && isFinite(v); }
  // The figure's words in the page's language: an English template ("diverged at step {0}") looked up in
  // spec.words (the translations sgdlab.i18n embeds; none for English), its {0}, {1}… filled in.
  function words(spec) {
    var table = spec.words || {};
    return function (text) {
      var args = arguments;
      return (table[text] || text).replace(/\{(\d)\}/g, function (m, i) { return args[+i + 1]; });
    };
  }

  // An axes box: x/y maps from data to pixels (log or linear), with house-style grid and ticks.
  function axes(svg, box, xr, yr, opt) {
    var lx = !!opt.xlog, ly = !!opt.ylog;
    function tr(v, log) { return log ? Math.log10(v) : v; }
    var X = function (v) { return box.x + (tr(v, lx) - tr(xr[0], lx)) / (tr(xr[1], lx) - tr(xr[0], lx)) * box.w; };
    var Y = function (v) { return box.y + box.h - (tr(v, ly) - tr(yr[0], ly)) / (tr(yr[1], ly) - tr(yr[0], ly)) * box.h; };
    var g = el("g", {}, svg);
    var yt = ticks(yr, ly, 5), xt = ticks(xr, lx, opt.xticks || 5);
    yt.forEach(function (t) {
      var y = Y(t);
      el("line", {x1: box.x, x2: box.x + box.w, y1: y, y2: y, stroke: "#b0b0b0", "stroke-opacity": 0.3}, g);
      el("text", {x: box.x - 4, y: y + 4, "text-anchor": "end", "font-size": 10}, g, tickLabel(t, yt, ly));
    });
    xt.forEach(function (t) {
      var x = X(t);
      el("line", {x1: x, x2: x, y1: box.y, y2: box.y + box.h, stroke: "#b0b0b0", "stroke-opacity": 0.3}, g);
      el("text", {x: x, y: box.y + box.h + 13, "text-anchor": "middle", "font-size": 10}, g, tickLabel(t, xt, lx));
    });
    el("path", {d: "M" + box.x + "," + box.y + "V" + (box.y + box.h) + "H" + (box.x + box.w),
                fill: "none", stroke: "#000", "stroke-width": 0.8}, g);
    if (opt.xlabel) el("text", {x: box.x + box.w / 2, y: box.y + box.h + 27, "text-anchor": "middle",
                                "font-size": 10.5}, g, opt.xlabel);
    if (opt.title) el("text", {x: box.x + box.w / 2, y: box.y - 8, "text-anchor": "middle", "font-size": 11}, g, opt.title);
    var id = "sxclip" + Math.random().toString(36).slice(2);
    var cp = el("clipPath", {id: id}, el("defs", {}, svg));
    el("rect", {x: box.x, y: box.y, width: box.w, height: box.h}, cp);
    return {X: X, Y: Y, g: el("g", {"clip-path": "url(#" + id + ")"}, svg), box: box};
  }
  // Labels with as many decimals as the tick spacing needs (matplotlib's ScalarFormatter, roughly).
  function tickLabel(t, all, log) {
    if (t === 0) return "0";
    if (log) return Math.abs(Math.log10(t)) < 3 ? String(t) : "1e" + Math.round(Math.log10(t));
    var step = all.length > 1 ? Math.abs(all[1] - all[0]) : Math.abs(t), big = Math.max.apply(null, all.map(Math.abs));
    if (big >= 1e4 || big < 1e-2) return t.toExponential(Math.max(0, Math.ceil(Math.log10(big / step) - 1e-9)));
    return t.toFixed(Math.max(0, -Math.floor(Math.log10(step) + 1e-9)));
  }
  function ticks(r, log, n) {
    var out = [], lo = Math.min(r[0], r[1]), hi = Math.max(r[0], r[1]);
    if (log) {
      var a = Math.ceil(Math.log10(lo)), b = Math.floor(Math.log10(hi)), stride = Math.max(1, Math.ceil((b - a + 1) / n));
      for (var e = a; e <= b; e += stride) out.push(Math.pow(10, e));
      return out;
    }
    var step = Math.pow(10, Math.floor(Math.log10((hi - lo) / n)));
    [1, 2, 2.5, 5, 10].some(function (m) { if ((hi - lo) / (step * m) <= n) { step *= m; return true; } return false; });
    for (var t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) out.push(Math.abs(t) < step * 1e-9 ? 0 : t);
    return out;
  }
  // A polyline through the finite points; a non-finite value ends a segment (a run that blew up).
  function line(ax, xs, ys, style) {
    var d = "", pen = false;
    for (var i = 0; i < xs.length; i++) {
      if (!ok(xs[i]) || !ok(ys[i])) { pen = false; continue; }
      var x = ax.X(xs[i]), y = ax.Y(ys[i]);
      if (!isFinite(x) || !isFinite(y)) { pen = false; continue; }
      x = Math.max(-1e4, Math.min(1e4, x)); y = Math.max(-1e4, Math.min(1e4, y));
      d += (pen ? "L" : "M") + x.toFixed(1) + "," + y.toFixed(1); pen = true;
    }
    var attrs = {d: d || "M0,0", fill: "none", stroke: style.color || C[0], "stroke-width": style.width || 1.2};
    if (style.dash) attrs["stroke-dasharray"] = style.dash;
    return el("path", attrs, ax.g);
  }
  function dots(ax, xs, ys, color, r, square) {
    for (var i = 0; i < xs.length; i++) {
      if (!ok(xs[i]) || !ok(ys[i])) continue;
      var x = ax.X(xs[i]), y = ax.Y(ys[i]);
      if (square) el("rect", {x: x - r, y: y - r, width: 2 * r, height: 2 * r, fill: "none", stroke: color}, ax.g);
      else el("circle", {cx: x, cy: y, r: r, fill: color}, ax.g);
    }
  }
  function legend(svg, x, y, items) {
    items.forEach(function (it, i) {
      var yy = y + 13 * i;
      var a = {x1: x, x2: x + 18, y1: yy, y2: yy, stroke: it.color, "stroke-width": 1.4};
      if (it.dash) a["stroke-dasharray"] = it.dash;
      el("line", a, svg);
      el("text", {x: x + 22, y: yy + 3.5, "font-size": 9.5}, svg, it.label);
    });
  }
  function clear(svg) { while (svg.firstChild) svg.removeChild(svg.firstChild); }
  function note(ax, text) {
    el("text", {x: ax.box.x + ax.box.w / 2, y: ax.box.y + ax.box.h / 2, "text-anchor": "middle",
                "font-size": 12, fill: C[1], "font-weight": 600}, ax.g.parentNode, text);
  }

  // Chapter 2: w − w* over the last epochs, and the loss above the floor per epoch.
  function drawFloor(root, s, st) {
    var nl = s.lrs.length, i = st.lr, f = s.frames, W = words(s);
    var k = ((((st.schedule * 2 + st.labels) * 2 + st.model) * 2 + st.sampling) * nl) + i;
    var svgs = root.querySelectorAll("svg.sx-panel");
    var wstar = f.w_star[k], div = f.diverged[k], dw = f.dw[k], steps = [];
    for (var t = 0; t < dw.length; t++) steps.push(s.last_step - dw.length + 1 + t);
    clear(svgs[0]);
    var lo = 0, hi = 0;
    dw.forEach(function (v) { if (ok(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); } });
    if (div >= 0) { lo = -1; hi = 1; }  // nothing to draw: a neutral axis under the message
    var span = Math.max(hi - lo, 1e-12), pad = 0.12 * span;
    var a = axes(svgs[0], {x: 58, y: 22, w: 284, h: 170}, [steps[0], steps[steps.length - 1]], [lo - pad, hi + pad],
                 {xlabel: W("step (last {0} epochs)", s.show_epochs), title: W("w − w*, after every step")});
    line(a, [steps[0], steps[steps.length - 1]], [0, 0], {color: "#000", dash: "4 3", width: 1});
    if (div >= 0) note(a, W("diverged at step {0}", div));
    else {
      line(a, steps, dw, {color: C[0], width: 1});
      dots(a, steps, dw, C[0], 2);
      var ends = [], endw = [];
      for (var j = 0; j < steps.length; j += s.steps_per_epoch) { ends.push(steps[j]); endw.push(dw[j]); }
      dots(a, ends, endw, C[0], 3.5, true);
    }
    legend(svgs[0], 70, 236, [{color: C[0], label: W("w − w* (squares: epoch ends)")},
                              {color: "#000", dash: "4 3", label: W("w* (least squares)")}]);

    clear(svgs[1]);
    var floor = f.floor[k], ex = [], ep = [];
    s.loss_epochs.forEach(function (e, j) {
      var v = f.gap[k][j];
      ep.push(e);
      ex.push(v === null ? null : Math.max(v, s.gap_range[0]));
    });
    var b = axes(svgs[1], {x: 58, y: 22, w: 284, h: 170}, [0, s.loss_epochs[s.loss_epochs.length - 1]], s.gap_range,
                 {ylog: true, xlabel: W("epoch"), title: W("loss − floor (floor {0})", fmt(floor, 3))});
    line(b, ep, ex, {color: C[0], width: 1.2});
    dots(b, ep, ex, C[0], 1.6);  // the epochs kept (log-spaced): the line only joins them
    if (div >= 0) note(b, W("loss overflows: diverged"));
    legend(svgs[1], 70, 236, [{color: C[0], label: W("{0} (bottom: ≤ {1})", s.schedules[st.schedule], fmt(s.gap_range[0], 1))}]);

    var r = root.querySelector(".sx-readout");
    var head = "η = " + fmt(s.lrs[i], 3) + " · w* = " + fmt(wstar, 5) + " · ";
    if (div >= 0) {
      r.innerHTML = "";
      r.appendChild(document.createTextNode(head));
      var sp = document.createElement("span"); sp.className = "sx-diverged";
      sp.textContent = W("diverged at step {0} (epoch {1}): the loss became inf", div, Math.floor(div / s.steps_per_epoch) + 1);
      r.appendChild(sp);
    } else {
      r.textContent = head + W("cycle width {0} · offset {1} (last {2} epochs) · final loss {3} (floor {4})",
        fmt(f.width[k], 3), fmt(f.offset[k], 3), s.tail, fmt(f.final[k], 4), fmt(floor, 4));
    }
  }

  // Chapter 3: a gradient-descent path on the level sets, and one norm's steepest direction at θ0.
  function drawSteps(root, s, st) {
    var p = s.problems[st.problem], k = st.ratio, n = st.norm, W = words(s);
    var svg = root.querySelector("svg.sx-panel");
    clear(svg);
    var v = p.view;
    var a = axes(svg, {x: 58, y: 22, w: 300, h: 300}, [v[0], v[1]], [v[2], v[3]],
                 {xlabel: p.xlabel, title: s.problem_names[st.problem], xticks: 4});
    el("text", {x: 14, y: 172, "font-size": 10.5, transform: "rotate(-90 14 172)", "text-anchor": "middle"}, svg, p.ylabel);
    p.levels.forEach(function (lv) { line(a, lv[0], lv[1], {color: "#888", width: 0.7}); });
    var ball = p.balls[n];
    line(a, ball[0], ball[1], {color: C[1], width: 1.2});
    var s0 = p.start, d = p.dirs[n], g = p.dirs[0];  // dirs[0]: ℓ2, that is −∇f/‖∇f‖ at the ball's radius
    line(a, [s0[0], s0[0] + g[0]], [s0[1], s0[1] + g[1]], {color: "#000", width: 1, dash: "3 2"});
    arrow(a, s0, [s0[0] + d[0], s0[1] + d[1]], C[1]);
    var path = p.paths[k], div = p.diverged[k], out = -1;
    for (var j = 0; j < path[0].length && out < 0; j++)  // the first iterate outside the picture
      if (!(path[0][j] >= v[0] && path[0][j] <= v[1] && path[1][j] >= v[2] && path[1][j] <= v[3])) out = j;
    var xs = out < 0 ? path[0] : path[0].slice(0, out + 1), ys = out < 0 ? path[1] : path[1].slice(0, out + 1);
    line(a, xs, ys, {color: C[0], width: 1.1});
    dots(a, xs, ys, C[0], 2.2);
    el("path", {d: star(a.X(p.optimum[0]), a.Y(p.optimum[1]), 6), fill: "#000"}, a.g);
    legend(svg, 62, 362, [{color: C[0], label: W("gradient descent, first {0} steps", path[0].length - 1)},
                          {color: C[1], label: W("{0} ball and its steepest unit step", s.norms[n])},
                          {color: "#000", dash: "3 2", label: W("−∇f (scaled to the ℓ2 radius)")}]);
    var r = root.querySelector(".sx-readout");
    r.textContent = "η·L = " + fmt(s.ratios[k], 3) + " (η = " + fmt(p.lrs[k], 3) + ", 2/L = " + fmt(2 / p.L, 3) +
      ", κ = " + fmt(p.kappa, 3) + ") · ";
    var sp = document.createElement("span");
    if (div >= 0) {
      sp.className = "sx-diverged";
      sp.textContent = (out > 0 ? W("leaves the picture at step {0}; ", out) : "") +
        W("diverged: the float32 loss overflowed at step {0}", div);
    }
    else sp.textContent = W("excess loss after {0} steps {1}", s.steps, fmt(p.excess[k], 3));
    r.appendChild(sp);
  }
  function arrow(ax, from, to, color) {
    var x0 = ax.X(from[0]), y0 = ax.Y(from[1]), x1 = ax.X(to[0]), y1 = ax.Y(to[1]);
    var t = Math.atan2(y1 - y0, x1 - x0), h = 7;
    el("path", {d: "M" + x0 + "," + y0 + "L" + x1 + "," + y1, stroke: color, "stroke-width": 2, fill: "none"}, ax.g);
    el("path", {d: "M" + x1 + "," + y1 + "L" + (x1 - h * Math.cos(t - 0.4)) + "," + (y1 - h * Math.sin(t - 0.4)) +
                   "L" + (x1 - h * Math.cos(t + 0.4)) + "," + (y1 - h * Math.sin(t + 0.4)) + "Z", fill: color}, ax.g);
  }
  function star(x, y, r) {
    var d = "";
    for (var i = 0; i < 10; i++) {
      var a = -Math.PI / 2 + i * Math.PI / 5, rr = i % 2 ? r * 0.45 : r;
      d += (i ? "L" : "M") + (x + rr * Math.cos(a)).toFixed(1) + "," + (y + rr * Math.sin(a)).toFixed(1);
    }
    return d + "Z";
  }

  var KINDS = {floor: drawFloor, steps: drawSteps};

  function init(root) {
    if (root.getAttribute("data-ready")) return;
    root.setAttribute("data-ready", "1");
    var spec = JSON.parse(root.querySelector("script.sx-data").textContent);
    var controls = root.querySelectorAll("[data-control]");
    function state() {
      var st = {};
      controls.forEach(function (c) { st[c.getAttribute("data-control")] = +c.value; });
      return st;
    }
    function redraw() {
      controls.forEach(function (c) {
        if (c.type !== "range") return;
        var names = JSON.parse(c.getAttribute("data-labels")), out = c.parentNode.querySelector("output");
        out.textContent = names[+c.value];
        c.setAttribute("aria-valuetext", names[+c.value]);
      });
      KINDS[spec.kind](root, spec, state());
    }
    controls.forEach(function (c) { c.addEventListener("input", redraw); c.addEventListener("change", redraw); });
    redraw();
  }
  function initAll() { document.querySelectorAll(".sgdlab-explore").forEach(init); }
  window.sgdlabExplore = initAll;
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", initAll);
  else initAll();
})();
