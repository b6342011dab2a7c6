/* galprof survey report: sortable, filterable, paginated table of a batch run.
   Plain JavaScript, no dependencies; the data come from data.js (window.GALPROF_REPORT),
   loaded with a <script> tag so that the page works from file:// without a server. */
(function () {
  "use strict";
  var R = window.GALPROF_REPORT;
  var $ = function (id) { return document.getElementById(id); };
  var N = R.n, D = R.data;
  var state = { sortCol: null, sortDir: 1, page: 0, pageSize: 100, ranges: [], statuses: null, order: null, open: -1 };
  var FLAGS = { converged: "converged", degenerate: "degenerate", bound: "hit a bound", maxiter: "max iterations",
                failed: "failed" };

  function fmt(v) {
    if (v === null || v === undefined) return "";
    if (typeof v !== "number") return String(v);
    if (!isFinite(v)) return "nan";
    if (Number.isInteger(v) && Math.abs(v) < 1e9) return String(v);
    var a = Math.abs(v);
    if (a !== 0 && (a >= 1e5 || a < 1e-3)) return v.toExponential(3);
    return v.toFixed(a >= 100 ? 2 : (a >= 1 ? 3 : 4));
  }
  function esc(s) { return String(s).replace(/[&<>"]/g, function (c) { return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]; }); }

  /* ---- filtering and sorting: an index array, rebuilt on every change ---- */
  function passes(i) {
    if (state.statuses && !state.statuses[R.flag[i]]) return false;
    for (var k = 0; k < state.ranges.length; k++) {
      var f = state.ranges[k], v = D[f.col][i];
      if (v === null || typeof v !== "number" || !isFinite(v)) return false;
      if (f.min !== null && (f.strict ? !(v > f.min) : v < f.min)) return false;
      if (f.max !== null && v > f.max) return false;
    }
    return true;
  }
  function rebuild() {
    var idx = [];
    for (var i = 0; i < N; i++) if (passes(i)) idx.push(i);
    if (state.sortCol !== null) {
      var col = D[state.sortCol], dir = state.sortDir, str = R.kinds[state.sortCol] === "str";
      idx.sort(function (a, b) {
        var x = col[a], y = col[b];
        var xn = x === null || (!str && !isFinite(x)), yn = y === null || (!str && !isFinite(y));
        if (xn || yn) return xn === yn ? a - b : (xn ? 1 : -1); /* missing values last */
        if (str) { x = String(x); y = String(y); }
        return x < y ? -dir : (x > y ? dir : a - b);
      });
    }
    state.order = idx;
    var pages = Math.max(1, Math.ceil(idx.length / state.pageSize));
    if (state.page >= pages) state.page = pages - 1;
    render();
  }

  /* ---- drawing ---- */
  function header() {
    var tr = document.createElement("tr");
    var cols = ["#"].concat(R.thumbs ? ["thumbnail"] : [], R.show);
    cols.forEach(function (c) {
      var th = document.createElement("th");
      th.textContent = c;
      if (c === "#" || c === "thumbnail") { th.dataset.col = ""; th.style.cursor = "default"; }
      else {
        th.dataset.col = c;
        if (R.kinds[c] === "str") th.className = "s";
        th.title = "sort by " + c;
        th.addEventListener("click", function () { sortBy(c); });
      }
      tr.appendChild(th);
    });
    $("galaxies").tHead.appendChild(tr);
  }
  function sortBy(c) {
    if (state.sortCol === c) state.sortDir = -state.sortDir; else { state.sortCol = c; state.sortDir = 1; }
    var ths = $("galaxies").tHead.rows[0].cells;
    for (var k = 0; k < ths.length; k++) {
      if (ths[k].dataset.col === c) ths[k].setAttribute("aria-sort", state.sortDir > 0 ? "ascending" : "descending");
      else ths[k].removeAttribute("aria-sort");
    }
    state.page = 0;
    rebuild();
  }
  function render() {
    var idx = state.order, start = state.page * state.pageSize, stop = Math.min(idx.length, start + state.pageSize);
    var html = [];
    for (var p = start; p < stop; p++) {
      var i = idx[p], cells = ['<td>' + i + '</td>'];
      if (R.thumbs) cells.push('<td class="thumb"><img loading="lazy" alt="" src="thumbs/' + i + '.png" onerror="this.style.visibility=\'hidden\'"></td>');
      for (var k = 0; k < R.show.length; k++) {
        var c = R.show[k], v = D[c][i], cls = R.kinds[c] === "str" ? "s" : "";
        if (c === "STATUS") cls += " st-" + R.flag[i];
        cells.push('<td class="' + cls + '">' + esc(fmt(v)) + "</td>");
      }
      html.push('<tr data-index="' + i + '">' + cells.join("") + "</tr>");
    }
    $("galaxies").tBodies[0].innerHTML = html.join("");
    var pages = Math.max(1, Math.ceil(idx.length / state.pageSize));
    $("page-info").textContent = "page " + (state.page + 1) + " of " + pages;
    $("count").textContent = idx.length + " of " + N + " galaxies";
    $("prev").disabled = state.page === 0;
    $("next").disabled = state.page >= pages - 1;
    var act = [];
    state.ranges.forEach(function (f, k) {
      var t = f.col + (f.min !== null ? (f.strict ? " > " : " \u2265 ") + f.min : "") + (f.max !== null ? " \u2264 " + f.max : "");
      act.push('<span>' + esc(t) + '<button data-k="' + k + '" title="remove">\u00d7</button></span>');
    });
    $("active-filters").innerHTML = act.join("");
  }

  /* ---- detail view ---- */
  function openDetail(i) {
    state.open = i;
    $("detail-title").textContent = D.id[i];
    var fig = $("detail-figure"), hasFig = R.figures && R.figures[i];
    fig.className = hasFig ? "" : "thumbnail";
    fig.src = hasFig ? "figures/" + i + ".png" : "thumbs/" + i + ".png";
    fig.alt = "fit of " + D.id[i];
    $("detail-note").innerHTML = hasFig ? "" :
      "Thumbnail (data | model | residual). Full figure: <code>" + esc(R.command) + " --row '" + esc(D.id[i]) + "'</code>";
    var rows = ["<tr><th>parameter</th><th>value</th><th>error</th></tr>"];
    rows.push("<tr><td>STATUS</td><td class='st-" + R.flag[i] + "'>" + esc(D.STATUS ? D.STATUS[i] : "") + "</td><td></td></tr>");
    R.params.forEach(function (p) {
      rows.push("<tr><td>" + esc(p[0]) + "</td><td>" + esc(fmt(D[p[0]][i])) + "</td><td>" + (p[1] ? esc(fmt(D[p[1]][i])) : "") + "</td></tr>");
    });
    $("detail-params").innerHTML = rows.join("");
    $("detail").hidden = false;
    if (location.hash !== "#row=" + i) history.replaceState(null, "", "#row=" + i);
  }
  function closeDetail() {
    $("detail").hidden = true; state.open = -1;
    history.replaceState(null, "", location.pathname + location.search);
  }
  function step(d) {
    var pos = state.order.indexOf(state.open);
    if (pos >= 0 && pos + d >= 0 && pos + d < state.order.length) openDetail(state.order[pos + d]);
  }

  /* ---- controls ---- */
  function statusFromBoxes() {
    var boxes = document.querySelectorAll("input.status-filter"), all = true, s = {};
    for (var k = 0; k < boxes.length; k++) { s[boxes[k].value] = boxes[k].checked; all = all && boxes[k].checked; }
    state.statuses = all ? null : s;
  }
  function setStatuses(only) {
    var boxes = document.querySelectorAll("input.status-filter");
    for (var k = 0; k < boxes.length; k++) boxes[k].checked = !only || boxes[k].value === only;
    statusFromBoxes();
  }
  function num(id) { var v = $(id).value.trim(); return v === "" ? null : parseFloat(v); }
  function init() {
    $("title").textContent = R.title;
    header();
    var sel = $("range-column");
    R.show.forEach(function (c) { if (R.kinds[c] === "num") { var o = document.createElement("option"); o.value = c; o.textContent = c; sel.appendChild(o); } });
    document.querySelectorAll("input.status-filter").forEach(function (b) {
      b.addEventListener("change", function () { statusFromBoxes(); state.page = 0; rebuild(); });
    });
    $("range-add").addEventListener("click", function () {
      var lo = num("range-min"), hi = num("range-max");
      if (lo === null && hi === null) return;
      state.ranges.push({ col: sel.value, min: lo, max: hi, strict: false }); state.page = 0; rebuild();
    });
    $("active-filters").addEventListener("click", function (e) {
      if (e.target.dataset.k !== undefined) { state.ranges.splice(+e.target.dataset.k, 1); rebuild(); }
    });
    $("q-chi2").addEventListener("click", function () {
      if (!D.CHI2NU) return;
      state.ranges.push({ col: "CHI2NU", min: 2, max: null, strict: true }); state.page = 0; rebuild();
    });
    $("q-bound").addEventListener("click", function () { setStatuses("bound"); state.page = 0; rebuild(); });
    $("q-failed").addEventListener("click", function () { setStatuses("failed"); state.page = 0; rebuild(); });
    $("q-clear").addEventListener("click", function () { setStatuses(null); state.ranges = []; state.page = 0; rebuild(); });
    $("prev").addEventListener("click", function () { state.page--; render(); });
    $("next").addEventListener("click", function () { state.page++; render(); });
    $("page-size").addEventListener("change", function () { state.pageSize = +this.value; state.page = 0; rebuild(); });
    $("galaxies").tBodies[0].addEventListener("click", function (e) {
      var tr = e.target.closest("tr");
      if (tr) openDetail(+tr.dataset.index);
    });
    $("detail-close").addEventListener("click", closeDetail);
    $("detail-prev").addEventListener("click", function () { step(-1); });
    $("detail-next").addEventListener("click", function () { step(1); });
    $("detail").addEventListener("click", function (e) { if (e.target === this) closeDetail(); });
    document.addEventListener("keydown", function (e) {
      if (state.open < 0) return;
      if (e.key === "Escape") closeDetail();
      else if (e.key === "ArrowRight") step(1);
      else if (e.key === "ArrowLeft") step(-1);
    });
    rebuild();
    var m = /^#row=(\d+)$/.exec(location.hash);
    if (m && +m[1] < N) openDetail(+m[1]);
    document.body.dataset.ready = "1";
  }
  init();
})();
