/* provwh web UI: draws the charts of a page with the vendored Apache ECharts.
 *
 * Each <figure class="chart" data-chart="KIND" data-src="/ui-data/..."> is filled from its JSON:
 * KIND timeline (Gantt), telemetry (CPU, memory), graph (task DAG, data lineage, a task's
 * upstream / downstream). When drawn the figure gets data-drawn="true" (or "empty", "error")
 * and counts of what it drew (data-mode, data-rows, data-bars, data-points, data-nodes,
 * data-edges). Nothing is loaded from elsewhere than this server.
 */
(function () {
  "use strict";

  var STATUS = {
    FINISHED: "#4C78A8", ERROR: "#E45756", RUNNING: "#F58518",
    SUBMITTED: "#B279A2", WAITING: "#EECA3B"
  };
  var OTHER = "#9D9D9D";
  var EDGE = { parent: "#888888", explicit: "#3A6EA5", dataflow: "#54A24B" };

  function colorOf(status) { return STATUS[status] || OTHER; }

  function esc(s) {
    return String(s).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }

  function notes(fig, lines) {
    var cap = fig.querySelector("figcaption");
    if (cap) { cap.textContent = (lines || []).join(" "); }
  }

  function empty(fig, text) {
    var plot = fig.querySelector(".plot");
    plot.style.height = "auto";
    plot.innerHTML = '<p class="muted">' + esc(text) + "</p>";
    fig.dataset.drawn = "empty";
  }

  function chartIn(fig, height) {
    var plot = fig.querySelector(".plot");
    if (height) { plot.style.height = height + "px"; }
    var old = echarts.getInstanceByDom(plot);
    if (old) { old.dispose(); }
    plot.innerHTML = "";
    var chart = echarts.init(plot, null, { renderer: "canvas" });
    window.addEventListener("resize", function () { chart.resize(); });
    return chart;
  }

  // --- timeline (Gantt) -------------------------------------------------------------------

  function renderBar(params, api) {
    var row = api.value(0);
    var a = api.coord([api.value(1), row]);
    var b = api.coord([api.value(2), row]);
    var h = api.size([0, 1])[1] * 0.7;
    var cs = params.coordSys;
    var shape = echarts.graphic.clipRectByRect(
      { x: a[0], y: a[1] - h / 2, width: Math.max(b[0] - a[0], 1.5), height: h },
      { x: cs.x, y: cs.y, width: cs.width, height: cs.height }
    );
    return shape && { type: "rect", shape: shape, style: api.style() };
  }

  function timeline(fig, d) {
    fig.dataset.mode = d.mode;
    fig.dataset.rows = d.rows.length;
    fig.dataset.bars = d.bars.length;
    notes(fig, d.notes);
    if (!d.bars.length) { return empty(fig, "No task with start and end times."); }
    var chart = chartIn(fig, Math.max(140, d.rows.length * 22 + 80));
    var series = d.statuses.map(function (s) {
      return {
        type: "custom", name: s, renderItem: renderBar, itemStyle: { color: colorOf(s) },
        encode: { x: [1, 2], y: 0 },
        data: d.bars.filter(function (b) { return String(b[3]) === s; })
      };
    });
    chart.setOption({
      animation: false,
      legend: { top: 0, right: 10 },
      grid: { left: 10, right: 30, top: 30, bottom: 45, containLabel: true },
      tooltip: {
        formatter: function (p) {
          var v = p.value, row = d.rows[v[0]];
          return esc(row) + "<br>" + esc(v[3]) + ": " + v[1] + " – " + v[2] + " " + d.unit +
            (v[4] ? "<br><code>" + esc(v[4]) + "</code>" : "");
        }
      },
      dataZoom: [{ type: "inside", xAxisIndex: 0, filterMode: "weakFilter" }],
      xAxis: {
        type: "value", min: 0,
        name: "time since the first task started (" + d.unit + ")",
        nameLocation: "middle", nameGap: 28
      },
      yAxis: {
        type: "category", data: d.rows, inverse: true,
        axisLabel: { width: 220, overflow: "truncate" }
      },
      series: series
    });
    chart.on("click", function (p) {
      if (p.value && p.value[4]) { window.location.href = "/tasks/" + encodeURIComponent(p.value[4]); }
    });
    return chart;
  }

  // --- telemetry --------------------------------------------------------------------------

  function telemetry(fig, d) {
    fig.dataset.points = d.points;
    notes(fig, d.notes);
    if (!d.points) { return empty(fig, "No telemetry was captured for these tasks."); }
    var chart = chartIn(fig);
    function line(name, data, x, y, color) {
      return {
        type: "line", name: name, xAxisIndex: x, yAxisIndex: y, showSymbol: d.points <= 200,
        symbolSize: 4, connectNulls: true, lineStyle: { width: 1.5 }, itemStyle: { color: color },
        data: d.x.map(function (t, i) { return [t, data[i]]; })
      };
    }
    var xname = "time since the first reading (" + d.unit + ")";
    chart.setOption({
      animation: false,
      tooltip: { trigger: "axis" },
      axisPointer: { link: [{ xAxisIndex: "all" }] },
      legend: { top: 0 },
      grid: [
        { left: 60, right: 60, top: 40, height: 140 },
        { left: 60, right: 60, top: 240, height: 140 }
      ],
      title: [
        { text: "CPU", left: 4, top: 22, textStyle: { fontSize: 12 } },
        { text: "Memory", left: 4, top: 222, textStyle: { fontSize: 12 } }
      ],
      xAxis: [
        { type: "value", gridIndex: 0, min: "dataMin", max: "dataMax" },
        { type: "value", gridIndex: 1, min: "dataMin", max: "dataMax", name: xname,
          nameLocation: "middle", nameGap: 26 }
      ],
      yAxis: [
        { type: "value", gridIndex: 0, name: "%" },
        { type: "value", gridIndex: 1, name: "GiB", scale: true },
        { type: "value", gridIndex: 1, name: "MiB", scale: true, position: "right",
          splitLine: { show: false } }
      ],
      dataZoom: [{ type: "inside", xAxisIndex: [0, 1] }],
      series: [
        line("system CPU %", d.cpu, 0, 0, "#4C78A8"),
        line("process CPU %", d.proc_cpu, 0, 0, "#F58518"),
        line("system memory used (GiB)", d.mem_used_gib, 1, 1, "#4C78A8"),
        line("process RSS (MiB)", d.rss_mib, 1, 2, "#E45756")
      ]
    });
    return chart;
  }

  // --- graphs -----------------------------------------------------------------------------

  function graph(fig, d) {
    fig.dataset.mode = d.mode;
    fig.dataset.nodes = d.nodes.length;
    fig.dataset.edges = d.edges.length;
    var kinds = {};
    d.edges.forEach(function (e) { kinds[e.kind] = true; });
    var legend = Object.keys(kinds).sort().map(function (k) {
      return k + (k === "parent" ? " (solid)" : " (dashed)");
    });
    notes(fig, d.notes.concat(legend.length ? ["Edges: " + legend.join(", ") + "."] : []));
    if (!d.nodes.length) { return empty(fig, "No tasks."); }
    var chart = chartIn(fig);
    var labels = d.nodes.length <= 120;
    chart.setOption({
      animation: false,
      tooltip: {
        formatter: function (p) {
          if (p.dataType === "edge") {
            return esc(p.data.source) + " → " + esc(p.data.target) + "<br>" + esc(p.data.kind) +
              (p.data.count > 1 ? " ×" + p.data.count : "");
          }
          return esc(p.data.title);
        }
      },
      series: [{
        type: "graph", layout: "none", roam: true, edgeSymbol: ["none", "arrow"],
        edgeSymbolSize: 7, lineStyle: { curveness: 0.08, opacity: 0.8 },
        label: {
          show: labels, position: "bottom", fontSize: 11,
          formatter: function (p) { return p.data.label; }
        },
        emphasis: { focus: "adjacency" },
        data: d.nodes.map(function (n) {
          return {
            name: n.id, x: n.x * 220, y: n.y * 70, symbolSize: n.focus ? n.size + 10 : n.size,
            label: n.label, title: n.title, url: n.url,
            itemStyle: {
              color: n.color, borderColor: n.focus ? "#1d2330" : (n.outside ? "#555" : "#fff"),
              borderWidth: n.focus || n.outside ? 2 : 1, borderType: n.outside ? "dashed" : "solid",
              opacity: n.outside ? 0.6 : 1
            }
          };
        }),
        links: d.edges.map(function (e) {
          return {
            source: e.src, target: e.dst, kind: e.kind, count: e.count,
            lineStyle: {
              color: EDGE[e.kind] || OTHER, type: e.kind === "parent" ? "solid" : "dashed",
              width: 1 + 0.8 * Math.log10(e.count)
            },
            label: { show: e.count > 1, formatter: String(e.count), fontSize: 10 }
          };
        })
      }]
    });
    chart.on("click", function (p) {
      if (p.dataType === "node" && p.data.url) { window.location.href = p.data.url; }
    });
    return chart;
  }

  var DRAW = { timeline: timeline, telemetry: telemetry, graph: graph };

  function load(fig, src) {
    fig.dataset.drawn = "loading";
    return fetch(src, { headers: { Accept: "application/json" } })
      .then(function (r) {
        if (!r.ok) { throw new Error("HTTP " + r.status); }
        return r.json();
      })
      .then(function (data) {
        var chart = DRAW[fig.dataset.chart](fig, data);
        if (chart) {
          fig.dataset.drawn = "true";
        }
      })
      .catch(function (err) {
        fig.dataset.drawn = "error";
        empty(fig, "Could not draw this chart: " + err.message);
        fig.dataset.drawn = "error";
      });
  }

  function depthControls() {
    document.querySelectorAll("form[data-depth-for]").forEach(function (form) {
      var fig = document.getElementById(form.dataset.depthFor);
      var select = form.querySelector("select");
      function redraw(ev) {
        if (ev) { ev.preventDefault(); }
        var src = new URL(fig.dataset.src, window.location.href);
        src.searchParams.set("depth", select.value);
        fig.dataset.src = src.pathname + src.search;
        var here = new URL(window.location.href);
        here.searchParams.set("depth", select.value);
        window.history.replaceState(null, "", here.pathname + here.search + here.hash);
        load(fig, fig.dataset.src);
      }
      select.addEventListener("change", redraw);
      form.addEventListener("submit", redraw);
    });
  }

  function start() {
    if (typeof echarts === "undefined") { return; }
    document.querySelectorAll("figure.chart[data-chart]").forEach(function (fig) {
      load(fig, fig.dataset.src);
    });
    depthControls();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
