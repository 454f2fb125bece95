/* DeepSeekNotebooks one-file dashboard. Data comes from the JSON element #dsn-dashboard-data; every input string
   reaches the DOM through textContent, and reaches plotly (which renders pseudo-HTML) through esc(). */
(function () {
  'use strict';
  var errBox = document.getElementById('dsn-errors');
  function fail(e) { errBox.textContent = 'Dashboard error: ' + (e && e.message ? e.message : String(e)); throw e; }
  var D;
  try { D = JSON.parse(document.getElementById('dsn-dashboard-data').textContent); } catch (e) { fail(e); }
  var ENT = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&#34;', "'": '&#39;' };
  function esc(s) { return String(s).replace(/[&<>"']/g, function (c) { return ENT[c]; }); }
  function vis(s) { return String(s).replace(/\r/g, '\u240d').replace(/\n/g, '\u21b5').replace(/\t/g, '\u2192'); }
  function el(tag, text, cls) { var e = document.createElement(tag); if (text != null) e.textContent = text; if (cls) e.className = cls; return e; }
  function fmt(v) { return v == null ? 'n/a' : (Math.abs(v) >= 1e-3 || v === 0 ? v.toFixed(4) : v.toExponential(2)); }

  var N = D.tokens.length;
  var tokVis = D.tokens.map(vis);
  var tokPlot = tokVis.map(function (t) { return esc(t); });
  // axis tick labels: shortened (the hover and the token text show the full token)
  var tokTick = tokVis.map(function (t) { return esc(t.length > 14 ? t.slice(0, 13) + '\u2026' : t); });
  var idx = []; for (var i = 0; i < N; i++) idx.push(i);
  var CFG = { responsive: true, displaylogo: false };
  var hoverText = N <= 160;
  var state = { layer: 0, head: 0, method: 0, rlayer: 0, token: N - 1 };

  function tokAxis(title, reversed) {
    var a = { title: { text: title }, tickmode: 'array', tickvals: idx, ticktext: tokTick, automargin: true, showgrid: false };
    if (reversed) a.autorange = 'reversed';
    if (N > 40) { a.tickfont = { size: 8 }; }
    return a;
  }
  function option(sel, value, label) { var o = document.createElement('option'); o.value = String(value); o.textContent = label; sel.appendChild(o); }
  function missing(id, what) { var d = document.getElementById(id); d.textContent = ''; d.appendChild(el('div', what + ' not provided for this input.', 'dsn-missing')); }
  function rowShape(q, n) {
    return { type: 'rect', xref: 'x', yref: 'y', x0: -0.5, x1: n - 0.5, y0: q - 0.5, y1: q + 0.5, line: { color: '#000', width: 2 }, fillcolor: 'rgba(0,0,0,0)' };
  }
  function pairText() {
    if (!hoverText) return undefined;
    var t = [];
    for (var q = 0; q < N; q++) { var r = []; for (var k = 0; k < N; k++) r.push('query #' + q + ' ' + tokPlot[q] + '<br>key #' + k + ' ' + tokPlot[k]); t.push(r); }
    return t;
  }
  var PAIRS = pairText();

  // ---------- controls
  var selLayer = document.getElementById('dsn-layer'), selHead = document.getElementById('dsn-head');
  var selMethod = document.getElementById('dsn-method'), selRoute = document.getElementById('dsn-route-layer');
  var slider = document.getElementById('dsn-token');
  var A = D.attention || [];
  for (var l = 0; l < A.length; l++) option(selLayer, l, 'layer ' + l);
  if (!A.length) { option(selLayer, -1, 'n/a'); selLayer.disabled = true; }
  function fillHeads() {
    selHead.textContent = '';
    var H = A.length ? A[state.layer].length : 0;
    for (var h = 0; h < H; h++) option(selHead, h, 'head ' + h);
    if (H) option(selHead, -1, 'mean over heads');
    else { option(selHead, -1, 'n/a'); selHead.disabled = true; }
    if (state.head >= H) state.head = 0;
    selHead.value = String(state.head);
  }
  fillHeads();
  var M = D.attributions || [];
  M.forEach(function (m, i) { option(selMethod, i, m.method); });
  if (!M.length) { option(selMethod, -1, 'n/a'); selMethod.disabled = true; }
  var R = D.routing || [];
  R.forEach(function (r, i) { option(selRoute, i, 'layer ' + r.layer); });
  if (!R.length) { option(selRoute, -1, 'n/a'); selRoute.disabled = true; }
  slider.max = String(N - 1); slider.value = String(state.token);

  // ---------- attention
  function attnMatrix() {
    var heads = A[state.layer];
    if (state.head >= 0) return heads[state.head];
    var z = [];
    for (var q = 0; q < N; q++) {
      var r = [];
      for (var k = 0; k < N; k++) { var s = 0, c = 0; for (var h = 0; h < heads.length; h++) { var v = heads[h][q][k]; if (v != null) { s += v; c++; } } r.push(c ? s / c : null); }
      z.push(r);
    }
    return z;
  }
  function drawAttention() {
    if (!A.length) { missing('dsn-attn', 'Attention'); return Promise.resolve(); }
    var headLabel = state.head >= 0 ? 'head ' + state.head : 'mean over ' + A[state.layer].length + ' heads';
    var trace = { type: 'heatmap', z: attnMatrix(), x: idx, y: idx, colorscale: 'Viridis', zmin: 0,
      colorbar: { title: { text: 'attention weight', side: 'right' } },
      hovertemplate: (PAIRS ? '%{text}<br>' : 'query %{y}, key %{x}<br>') + 'weight = %{z:.4f}<extra></extra>' };
    if (PAIRS) trace.text = PAIRS;
    var layout = { title: { text: 'Attention \u2014 layer ' + state.layer + ', ' + headLabel },
      xaxis: tokAxis('key token (attended to)'), yaxis: tokAxis('query token (attending)', true),
      shapes: [rowShape(state.token, N)], margin: { t: 50 } };
    return Plotly.react('dsn-attn', [trace], layout, CFG);
  }
  // ---------- rollout
  function drawRollout() {
    if (!D.rollout) { missing('dsn-rollout', 'Attention rollout'); return Promise.resolve(); }
    var trace = { type: 'heatmap', z: D.rollout, x: idx, y: idx, colorscale: 'Viridis', zmin: 0,
      colorbar: { title: { text: 'rollout weight (cumulative attention)', side: 'right' } },
      hovertemplate: (PAIRS ? '%{text}<br>' : 'query %{y}, key %{x}<br>') + 'rollout = %{z:.4f}<extra></extra>' };
    if (PAIRS) trace.text = PAIRS;
    return Plotly.react('dsn-rollout', [trace], {
      title: { text: 'Attention rollout (all layers, heads averaged, with residual)' },
      xaxis: tokAxis('source token'), yaxis: tokAxis('output position', true),
      shapes: [rowShape(state.token, N)], margin: { t: 50 } }, CFG);
  }
  // ---------- attribution
  function colorFor(s, max) {
    if (s == null || !isFinite(s)) return 'rgb(200,200,200)';
    var t = max > 0 ? Math.max(-1, Math.min(1, s / max)) : 0;
    var end = t >= 0 ? [214, 39, 40] : [31, 119, 180], a = Math.abs(t);
    function mix(c) { return Math.round(255 + (c - 255) * a); }
    return 'rgb(' + mix(end[0]) + ',' + mix(end[1]) + ',' + mix(end[2]) + ')';
  }
  function drawAttribution() {
    var title = document.getElementById('dsn-attr-title');
    var box = document.getElementById('dsn-attr-text'), legend = document.getElementById('dsn-attr-legend');
    box.textContent = ''; legend.textContent = '';
    if (!M.length) { title.textContent = 'Attribution'; missing('dsn-attr-bar', 'Attribution'); return Promise.resolve(); }
    var m = M[state.method], max = 0;
    m.scores.forEach(function (s) { if (s != null && isFinite(s)) max = Math.max(max, Math.abs(s)); });
    title.textContent = 'Attribution \u2014 ' + m.method + ' (token colour = score)';
    m.scores.forEach(function (s, i) {
      var span = el('span', tokVis[i], 'dsn-tok' + (i === state.token ? ' sel' : ''));
      span.style.background = colorFor(s, max);
      span.title = '#' + i + ' ' + D.tokens[i] + ': ' + fmt(s);
      span.setAttribute('data-index', String(i));
      span.addEventListener('click', function () { setToken(i); });
      box.appendChild(span);
    });
    legend.appendChild(el('span', m.method + ' score:'));
    legend.appendChild(el('span', '\u2212' + max.toPrecision(4)));
    legend.appendChild(el('span', null, 'dsn-grad'));
    legend.appendChild(el('span', '+' + max.toPrecision(4)));
    legend.appendChild(el('span', '(blue = negative, white = 0, red = positive; click a token to select it)'));
    var trace = { type: 'bar', x: idx, y: m.scores, marker: { color: m.scores.map(function (s) { return colorFor(s, max); }),
      line: { color: idx.map(function (i) { return i === state.token ? '#000' : '#999'; }), width: idx.map(function (i) { return i === state.token ? 2.5 : 0.5; }) } },
      text: tokPlot, textposition: 'none', hovertemplate: '#%{x} %{text}<br>score = %{y:.4g}<extra></extra>' };
    return Plotly.react('dsn-attr-bar', [trace], { title: { text: esc(m.method) + ' attribution per token' },
      xaxis: tokAxis('token'), yaxis: { title: { text: 'attribution score' }, zeroline: true }, margin: { t: 50 } }, CFG);
  }
  // ---------- routing
  function drawRouting() {
    var tbox = document.getElementById('dsn-route-token'); tbox.textContent = '';
    if (!R.length) { missing('dsn-route', 'MoE routing'); return Promise.resolve(); }
    var r = R[state.rlayer], E = Math.max(D.routedExperts, 1), z = [], txt = [];
    for (var t = 0; t < N; t++) {
      var row = [], trow = []; for (var e = 0; e < E; e++) { row.push(null); trow.push(''); }
      var tr = r.tokens[t];
      tr.experts.forEach(function (e, k) { row[e] = tr.weights[k]; trow[e] = 'rank ' + (k + 1); });
      z.push(row); txt.push(trow);
    }
    var trace = { type: 'heatmap', z: z, text: txt, y: idx, colorscale: 'YlOrRd', reversescale: true, zmin: 0, xgap: 1, ygap: 1,
      colorbar: { title: { text: 'routing (gate) weight; blank = not selected', side: 'right' } },
      customdata: tokPlot.map(function (t) { var a = []; for (var e = 0; e < E; e++) a.push(t); return a; }),
      hovertemplate: 'token #%{y} %{customdata}<br>expert %{x} (%{text})<br>weight = %{z:.4f}<extra></extra>' };
    var p = Plotly.react('dsn-route', [trace], { title: { text: 'Routing \u2014 MoE layer ' + r.layer + ': experts chosen per token' },
      xaxis: { title: { text: 'routed expert id' } }, yaxis: tokAxis('token', true), shapes: [{ type: 'rect', xref: 'paper', yref: 'y', x0: 0, x1: 1,
        y0: state.token - 0.5, y1: state.token + 0.5, line: { color: '#000', width: 2 }, fillcolor: 'rgba(0,0,0,0)' }], margin: { t: 50 } }, CFG);
    // table: the selected token in every MoE layer
    document.getElementById('dsn-route-token-title').textContent = 'Routing of token #' + state.token + ' ' + tokVis[state.token] + ' in every MoE layer';
    var table = el('table', null, 'dsn-route'), head = el('tr');
    head.appendChild(el('th', 'MoE layer')); head.appendChild(el('th', 'experts (weight), by rank'));
    table.appendChild(head);
    R.forEach(function (rl) {
      var tr = rl.tokens[state.token], row = el('tr');
      row.appendChild(el('td', String(rl.layer)));
      row.appendChild(el('td', tr.experts.map(function (e, k) { return 'E' + e + ' (' + fmt(tr.weights[k]) + ')'; }).join(', ')));
      table.appendChild(row);
    });
    tbox.appendChild(table);
    return p;
  }

  function setToken(t) {
    state.token = t; slider.value = String(t);
    document.getElementById('dsn-token-index').textContent = String(t);
    document.getElementById('dsn-token-text').textContent = tokVis[t];
    return Promise.all([drawAttention(), drawRollout(), drawAttribution(), drawRouting()]);
  }
  selLayer.addEventListener('change', function () { state.layer = +selLayer.value; fillHeads(); drawAttention(); });
  selHead.addEventListener('change', function () { state.head = +selHead.value; drawAttention(); });
  selMethod.addEventListener('change', function () { state.method = +selMethod.value; drawAttribution(); });
  selRoute.addEventListener('change', function () { state.rlayer = +selRoute.value; drawRouting(); });
  slider.addEventListener('input', function () { setToken(+slider.value); });

  window.dsnDashboard = { data: D, state: state, setToken: setToken };
  setToken(state.token).then(function () { document.body.setAttribute('data-dsn-ready', '1'); }, fail);
})();
