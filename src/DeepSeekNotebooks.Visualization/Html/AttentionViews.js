/* DeepSeekNotebooks attention views: BertViz-style head view and model view (after bertviz/head_view.js and
   bertviz/model_view.js) in plain SVG, no library, no network. Each view's data is the JSON element #<root>-data;
   every input string reaches the DOM through textContent. Defined once per page: window.dsnAttentionViews. */
if (!window.dsnAttentionViews) (function () {
  'use strict';
  var NS = 'http://www.w3.org/2000/svg';
  // d3.schemeCategory10, BertViz's head (head view) and layer (model view) colours; beyond 10, golden-angle hues.
  var CAT10 = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];
  function color(i) { return i < 10 ? CAT10[i] : 'hsl(' + ((i * 137.508) % 360).toFixed(1) + ',65%,45%)'; }
  function vis(s) { return String(s).replace(/\r/g, '\u240d').replace(/\n/g, '\u21b5').replace(/\t/g, '\u2192'); }
  function el(tag, text, cls) { var e = document.createElement(tag); if (text != null) e.textContent = text; if (cls) e.className = cls; return e; }
  function svgEl(tag, attrs, parent) {
    var e = document.createElementNS(NS, tag);
    for (var k in attrs) if (Object.prototype.hasOwnProperty.call(attrs, k)) e.setAttribute(k, String(attrs[k]));
    if (parent) parent.appendChild(e);
    return e;
  }
  function svgText(text, attrs, parent) { var t = svgEl('text', attrs, parent); t.textContent = text; return t; }
  function fmt(x, d) { return Number(x).toFixed(d); }
  function shorten(s, n) { return s.length > n ? s.slice(0, n - 1) + '\u2026' : s; }
  var CSS =
    '.dsn-attn-view{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;color:#222;margin:.4rem 0}' +
    '.dsn-attn-view .dsn-av-title{font-weight:600;font-size:1rem;margin:.2rem 0}' +
    '.dsn-attn-view .dsn-av-note{font-size:12px;color:#555;margin:.2rem 0 .4rem;max-width:60rem}' +
    '.dsn-attn-view .dsn-av-controls{font-size:13px;margin:.2rem 0}.dsn-attn-view select{margin-left:.3rem}' +
    '.dsn-attn-view svg text{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;white-space:pre;user-select:none}' +
    '.dsn-attn-view .dsn-av-tok{cursor:default}.dsn-attn-view .dsn-hv-check,.dsn-attn-view .dsn-mv-click{cursor:pointer}' +
    '.dsn-attn-view .dsn-mv-wrap{display:flex;flex-wrap:wrap;gap:1rem;align-items:flex-start}' +
    '.dsn-attn-view .dsn-mv-detail{border:2px solid #ccc;border-radius:6px;padding:.3rem .5rem;background:#fff}' +
    '.dsn-attn-view .dsn-mv-detail button{margin-left:.8rem;font-size:12px}';
  function ensureCss() {
    if (document.getElementById('dsn-attn-views-css')) return;
    var s = document.createElement('style'); s.id = 'dsn-attn-views-css'; s.textContent = CSS;
    (document.head || document.body).appendChild(s);
  }
  function load(rootId) {
    ensureCss();
    var root = document.getElementById(rootId);
    var data = JSON.parse(document.getElementById(rootId + '-data').textContent);
    return { root: root, D: data };
  }
  function fail(root, e) {
    var d = el('div', 'Attention view error: ' + (e && e.message ? e.message : String(e)));
    d.style.color = '#b00'; root.appendChild(d);
    throw e;
  }
  /* weight of (q, k) in sparse rows [[k, w, k, w, ...], ...]; 0 when below the threshold */
  function weightAt(rows, q, k) {
    var r = rows[q];
    for (var i = 0; i < r.length; i += 2) if (r[i] === k) return r[i + 1];
    return 0;
  }
  function geometry(N) {
    var bh = N > 64 ? 14 : N > 32 ? 18 : 22;
    return { bh: bh, fs: Math.round(bh * 0.68) };
  }
  function tokenWidth(tokens, fs) {
    var m = 0; tokens.forEach(function (t) { m = Math.max(m, Math.min(t.length, 18)); });
    return Math.max(50, Math.round(m * fs * 0.62) + 14);
  }

  /* ---------------------------------------------------------------- head view */
  function head(rootId) {
    var o = load(rootId), root = o.root, D = o.D;
    try {
      var N = D.tokens.length, H = D.heads, S = D.scale;
      var tok = D.tokens.map(vis), label = tok.map(function (t) { return shorten(t, 18); });
      var state = { li: D.layer, sel: D.selected.slice() };
      var g = geometry(N), BH = g.bh, FS = g.fs, BW = tokenWidth(tok, FS), MW = 160, CHK = 18;
      var width = 2 * BW + MW, perRow = Math.max(1, Math.floor(width / (CHK + 3)));
      var CHKH = Math.ceil(H / perRow) * (CHK + 3), HEAD = CHKH + 22, TOP = HEAD + 6;

      var title = el('div', null, 'dsn-av-title'); root.appendChild(title);
      var controls = el('div', null, 'dsn-av-controls'); root.appendChild(controls);
      var select = null;
      if (D.layers.length > 1) {
        var lab = el('label', 'Layer'); select = el('select'); select.className = 'dsn-hv-layer';
        D.layers.forEach(function (l, i) { var op = el('option', 'layer ' + l); op.value = String(i); select.appendChild(op); });
        select.value = String(state.li); lab.appendChild(select); controls.appendChild(lab);
      }
      controls.appendChild(el('span', '  Heads: click a colour square to show/hide that head, double-click to show only it (again: all). Hover a token to see only its lines.'));
      var note = el('div', null, 'dsn-av-note'); root.appendChild(note);
      var svg = svgEl('svg', { width: width + 8, height: TOP + N * BH + 4, class: 'dsn-hv-svg', role: 'img' });
      root.appendChild(svg);

      function active() { return state.sel.reduce(function (a, v) { return v ? a + 1 : a; }, 0); }
      function rowY(i) { return TOP + i * BH + BH / 2; }
      var linesG, checks = [], boxesL, boxesR, bgs = { q: [], k: [] };

      function headerText() {
        var l = D.layers[state.li], st = D.stats[state.li];
        title.textContent = D.title + ' \u2014 layer ' + l + ': query tokens (left) attend to key tokens (right)';
        note.textContent = 'One line per (head, query, key) with weight \u2265 ' + D.threshold + '; line opacity = weight \u00f7 number of selected heads (as BertViz), colour = head. ' +
          st.kept + ' lines drawn; ' + st.dropped + ' non-zero weights below the threshold not drawn (' +
          fmt(st.totalMass > 0 ? 100 * st.droppedMass / st.totalMass : 0, 2) + '% of this layer\'s attention mass).';
      }
      function updateHeads() {
        var a = active();
        checks.forEach(function (c, h) { c.setAttribute('fill-opacity', state.sel[h] ? '1' : '0.22'); c.setAttribute('aria-checked', state.sel[h] ? 'true' : 'false'); });
        Array.prototype.forEach.call(linesG.childNodes, function (hg) {
          var h = +hg.getAttribute('data-head');
          hg.style.display = state.sel[h] ? '' : 'none';
          Array.prototype.forEach.call(hg.childNodes, function (ln) { ln.setAttribute('stroke-opacity', (+ln.getAttribute('data-w') / S / Math.max(1, a)).toFixed(4)); });
        });
      }
      function clearFocus() {
        linesG.removeAttribute('visibility');
        Array.prototype.forEach.call(linesG.querySelectorAll('line[visibility]'), function (ln) { ln.removeAttribute('visibility'); });
        while (boxesL.firstChild) boxesL.removeChild(boxesL.firstChild);
        while (boxesR.firstChild) boxesR.removeChild(boxesR.firstChild);
        bgs.q.concat(bgs.k).forEach(function (b) { b.setAttribute('fill-opacity', '0'); });
        root.removeAttribute('data-focus');
      }
      function focus(side, i) {
        clearFocus();
        (side === 'q' ? bgs.q : bgs.k)[i].setAttribute('fill-opacity', '1');
        linesG.setAttribute('visibility', 'hidden');
        Array.prototype.forEach.call(linesG.querySelectorAll('line[data-' + side + '="' + i + '"]'), function (ln) { ln.setAttribute('visibility', 'visible'); });
        // boxes beside the other column: one per selected head, opacity = that head's weight (BertViz)
        var heads = [], a = D.attn[state.li], x0 = side === 'q' ? BW + MW : 0, box = side === 'q' ? boxesR : boxesL;
        for (var h = 0; h < H; h++) if (state.sel[h]) heads.push(h);
        var w = BW / Math.max(1, heads.length);
        heads.forEach(function (h, j) {
          for (var t = 0; t < N; t++) {
            var v = side === 'q' ? weightAt(a[h], i, t) : weightAt(a[h], t, i);
            if (v <= 0) continue;
            svgEl('rect', { x: x0 + j * w, y: TOP + t * BH, width: w, height: BH, fill: color(h), 'fill-opacity': (v / S).toFixed(4), 'data-head': h }, box);
          }
        });
        root.setAttribute('data-focus', side + i);
      }
      function column(side, x0) {
        var colG = svgEl('g', { class: 'dsn-hv-col', 'data-side': side }, svg);
        for (var i = 0; i < N; i++) (function (i) {
          var tg = svgEl('g', { class: 'dsn-av-tok', 'data-side': side, 'data-i': i }, colG);
          bgs[side].push(svgEl('rect', { x: x0, y: TOP + i * BH, width: BW, height: BH, fill: '#d3d3d3', 'fill-opacity': 0 }, tg));
          var t = svgText(label[i], side === 'q'
            ? { x: x0 + BW - 6, y: TOP + i * BH + BH / 2, 'text-anchor': 'end', 'dominant-baseline': 'central', 'font-size': FS }
            : { x: x0 + 6, y: TOP + i * BH + BH / 2, 'text-anchor': 'start', 'dominant-baseline': 'central', 'font-size': FS }, tg);
          var tip = svgEl('title', {}, t); tip.textContent = '#' + i + ' ' + D.tokens[i];
          tg.addEventListener('mouseover', function () { focus(side, i); });
        })(i);
        colG.addEventListener('mouseleave', clearFocus);
      }
      function render() {
        while (svg.firstChild) svg.removeChild(svg.firstChild);
        checks = []; bgs = { q: [], k: [] };
        headerText();
        for (var h = 0; h < H; h++) (function (h) {
          var c = svgEl('rect', { class: 'dsn-hv-check', 'data-head': h, role: 'checkbox', x: (h % perRow) * (CHK + 3), y: Math.floor(h / perRow) * (CHK + 3), width: CHK, height: CHK, fill: color(h), stroke: '#555', 'stroke-width': 0.5 }, svg);
          var tip = svgEl('title', {}, c); tip.textContent = 'head ' + h + ' (click: show/hide, double-click: only this head)';
          c.addEventListener('click', function () {
            if (state.sel[h] && active() === 1) return;      // never hide the last head (BertViz)
            state.sel[h] = !state.sel[h]; clearFocus(); updateHeads();
          });
          c.addEventListener('dblclick', function () {
            if (state.sel[h] && active() === 1) state.sel = state.sel.map(function () { return true; });
            else state.sel = state.sel.map(function (_, j) { return j === h; });
            clearFocus(); updateHeads();
          });
          checks.push(c);
        })(h);
        svgText('query (attending)', { x: BW - 6, y: CHKH + 14, 'text-anchor': 'end', 'font-size': 12, fill: '#555', class: 'dsn-av-axis' }, svg);
        svgText('key (attended to)', { x: BW + MW + 6, y: CHKH + 14, 'text-anchor': 'start', 'font-size': 12, fill: '#555', class: 'dsn-av-axis' }, svg);
        boxesL = svgEl('g', { class: 'dsn-hv-boxes', 'data-side': 'k' }, svg);
        boxesR = svgEl('g', { class: 'dsn-hv-boxes', 'data-side': 'q' }, svg);
        column('q', 0); column('k', BW + MW);
        linesG = svgEl('g', { class: 'dsn-hv-lines', 'pointer-events': 'none' }, svg);
        var a = D.attn[state.li];
        for (var h2 = 0; h2 < H; h2++) {
          var hg = svgEl('g', { 'data-head': h2 }, linesG), rows = a[h2], c2 = color(h2);
          for (var q = 0; q < N; q++) {
            var r = rows[q];
            for (var j = 0; j < r.length; j += 2)
              svgEl('line', { x1: BW, y1: rowY(q), x2: BW + MW, y2: rowY(r[j]), stroke: c2, 'stroke-width': 2, 'data-q': q, 'data-k': r[j], 'data-w': r[j + 1] }, hg);
          }
        }
        updateHeads();
      }
      if (select) select.addEventListener('change', function () { state.li = +select.value; render(); });
      render();
      root.dsnView = { state: state, render: render, focus: focus, clearFocus: clearFocus };
      root.setAttribute('data-dsn-ready', '1');
    } catch (e) { fail(root, e); }
  }

  /* ---------------------------------------------------------------- model view */
  function model(rootId) {
    var o = load(rootId), root = o.root, D = o.D;
    try {
      var N = D.tokens.length, S = D.scale, L = D.layers.length, H = D.heads.length, C = D.cells, B = D.block;
      var tok = D.tokens.map(vis);
      var TW = Math.max(56, Math.min(110, Math.floor(900 / H))), TH = TW, PAD = 4, LEFT = 58, TOPH = 22;
      var cellH = (TH - 2 * PAD) / C;
      var title = el('div', D.title + ' \u2014 every layer \u00d7 head: query positions (left edge of a thumbnail) attend to key positions (right edge); click a thumbnail to enlarge it', 'dsn-av-title');
      root.appendChild(title);
      var pooled = B > 1
        ? 'Thumbnails pool blocks of ' + B + ' consecutive positions into ' + C + ' \u00d7 ' + C + ' cells (' +
          (D.pooling === 'max' ? 'cell = largest weight in its block' : 'cell = mean attention mass from a query of the block to the key block') + '). '
        : 'Thumbnails are at full resolution (one line per query\u2013key pair). ';
      root.appendChild(el('div', pooled + 'Lines with weight \u2265 ' + D.threshold + ' are drawn (opacity = weight, colour = layer); ' +
        D.dropped + ' non-zero weights below it are not. ' +
        (D.attn ? 'The enlarged head is at full resolution.' : 'The enlarged head shows the pooled cells (the full-resolution grid would be too large for one page).'), 'dsn-av-note'));
      var wrap = el('div', null, 'dsn-mv-wrap'); root.appendChild(wrap);
      var gridW = LEFT + H * (TW + 4), gridH = TOPH + L * (TH + 4);
      var svg = svgEl('svg', { width: gridW, height: gridH, class: 'dsn-mv-grid', role: 'img' }, wrap);
      var detail = el('div', null, 'dsn-mv-detail'); detail.style.display = 'none'; wrap.appendChild(detail);
      svgText('head \u2192', { x: 4, y: 14, 'font-size': 11, fill: '#555', class: 'dsn-av-axis' }, svg);
      D.heads.forEach(function (h, hi) { svgText(String(h), { x: LEFT + hi * (TW + 4) + TW / 2, y: 14, 'text-anchor': 'middle', 'font-size': 11, fill: '#555' }, svg); });
      var frames = {}, state = { open: null };
      D.layers.forEach(function (l, li) {
        var y = TOPH + li * (TH + 4);
        svgText('layer ' + l, { x: 4, y: y + TH / 2, 'dominant-baseline': 'central', 'font-size': 11, fill: color(l), class: 'dsn-av-axis' }, svg);
        D.heads.forEach(function (h, hi) {
          var x = LEFT + hi * (TW + 4);
          var tg = svgEl('g', { class: 'dsn-mv-thumb', 'data-layer': l, 'data-head': h }, svg);
          var frame = svgEl('rect', { x: x, y: y, width: TW, height: TH, fill: '#fff', stroke: color(l), 'stroke-width': 2, 'stroke-opacity': 0.15 }, tg);
          frames[li + ',' + hi] = frame;
          var rows = D.thumbs[li][hi], sw = Math.max(0.6, Math.min(3, cellH * 0.6));
          for (var q = 0; q < rows.length; q++) {
            var r = rows[q];
            for (var j = 0; j < r.length; j += 2)
              svgEl('line', { x1: x + PAD, y1: y + PAD + (q + 0.5) * cellH, x2: x + TW - PAD, y2: y + PAD + (r[j] + 0.5) * cellH,
                stroke: color(l), 'stroke-width': sw, 'stroke-opacity': (r[j + 1] / S).toFixed(4) }, tg);
          }
          var click = svgEl('rect', { class: 'dsn-mv-click', x: x, y: y, width: TW, height: TH, fill: '#fff', 'fill-opacity': 0, 'data-layer': l, 'data-head': h }, tg);
          var tip = svgEl('title', {}, click); tip.textContent = 'layer ' + l + ', head ' + h + ' (click to enlarge)';
          click.addEventListener('click', function () { toggle(li, hi); });
        });
      });
      function close() {
        if (state.open) frames[state.open].setAttribute('stroke-opacity', '0.15');
        state.open = null; detail.style.display = 'none'; while (detail.firstChild) detail.removeChild(detail.firstChild);
        root.removeAttribute('data-open');
      }
      function toggle(li, hi) {
        var key = li + ',' + hi;
        if (state.open === key) { close(); return; }
        close();
        state.open = key; frames[key].setAttribute('stroke-opacity', '0.9');
        var l = D.layers[li], h = D.heads[hi], full = !!D.attn;
        var rows = full ? D.attn[li][hi] : D.thumbs[li][hi];
        var labels = full ? tok : [];
        if (!full) for (var c = 0; c < C; c++) labels.push('#' + (c * B) + '\u2013' + Math.min(N - 1, c * B + B - 1) + ' ' + tok[c * B]);
        var n = labels.length, g = geometry(n), BH = g.bh, FS = g.fs, BW = tokenWidth(labels, FS), MW = 140, TOP = 22;
        var head = el('div', null, 'dsn-av-title');
        var heading = el('span', 'Layer ' + l + ', head ' + h, 'dsn-mv-heading'); heading.style.color = color(l);
        head.appendChild(heading);
        var btn = el('button', 'close'); btn.type = 'button'; btn.addEventListener('click', close); head.appendChild(btn);
        detail.appendChild(head);
        detail.appendChild(el('div', 'Hover a query token (left) to see only its lines.' + (full ? '' : ' Rows are blocks of ' + B + ' positions.'), 'dsn-av-note'));
        detail.style.borderColor = color(l);
        var dsvg = svgEl('svg', { width: 2 * BW + MW + 8, height: TOP + n * BH + 4, class: 'dsn-mv-detail-svg' });
        detail.appendChild(dsvg);
        svgText('query', { x: BW - 6, y: 14, 'text-anchor': 'end', 'font-size': 12, fill: '#555', class: 'dsn-av-axis' }, dsvg);
        svgText('key', { x: BW + MW + 6, y: 14, 'text-anchor': 'start', 'font-size': 12, fill: '#555', class: 'dsn-av-axis' }, dsvg);
        var groups = [], bgs = [];
        var linesG = svgEl('g', { class: 'dsn-mv-lines', 'pointer-events': 'none' }, dsvg);
        for (var q = 0; q < n; q++) {
          var lg = svgEl('g', { 'data-q': q }, linesG), r = rows[q];
          for (var j = 0; j < r.length; j += 2)
            svgEl('line', { x1: BW, y1: TOP + (q + 0.5) * BH, x2: BW + MW, y2: TOP + (r[j] + 0.5) * BH, stroke: color(l), 'stroke-width': 2, 'stroke-opacity': (r[j + 1] / S).toFixed(4), 'data-q': q, 'data-k': r[j] }, lg);
          groups.push(lg);
        }
        var leftG = svgEl('g', { class: 'dsn-hv-col', 'data-side': 'q' }, dsvg);
        labels.forEach(function (t, i) {
          var tg = svgEl('g', { class: 'dsn-av-tok', 'data-side': 'q', 'data-i': i }, leftG);
          bgs.push(svgEl('rect', { x: 0, y: TOP + i * BH, width: BW, height: BH, fill: color(l), 'fill-opacity': 0 }, tg));
          var te = svgText(shorten(t, 24), { x: BW - 6, y: TOP + (i + 0.5) * BH, 'text-anchor': 'end', 'dominant-baseline': 'central', 'font-size': FS }, tg);
          var tip = svgEl('title', {}, te); tip.textContent = full ? '#' + i + ' ' + D.tokens[i] : t;
          tg.addEventListener('mouseover', function () {
            bgs.forEach(function (b, k) { b.setAttribute('fill-opacity', k === i ? '0.25' : '0'); });
            groups.forEach(function (gq, k) { gq.style.display = k === i ? '' : 'none'; });
            root.setAttribute('data-focus', 'q' + i);
          });
        });
        leftG.addEventListener('mouseleave', function () {
          bgs.forEach(function (b) { b.setAttribute('fill-opacity', '0'); });
          groups.forEach(function (gq) { gq.style.display = ''; });
          root.removeAttribute('data-focus');
        });
        labels.forEach(function (t, i) {
          svgText(shorten(t, 24), { x: BW + MW + 6, y: TOP + (i + 0.5) * BH, 'text-anchor': 'start', 'dominant-baseline': 'central', 'font-size': FS, class: 'dsn-av-tok' }, dsvg);
        });
        detail.style.display = '';
        root.setAttribute('data-open', l + ',' + h);
      }
      root.dsnView = { state: state, toggle: toggle, close: close };
      root.setAttribute('data-dsn-ready', '1');
    } catch (e) { fail(root, e); }
  }

  window.dsnAttentionViews = { head: head, model: model };
})();
