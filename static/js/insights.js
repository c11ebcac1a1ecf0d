// Dashboards: draws every <canvas data-chart="ID"> from the JSON in <script id="ID"> with Chart.js
// (served from static/vendor/chartjs, no CDN). Runs on load and after htmx swaps the dashboard for
// another range. Synthetic (generated) points are drawn dashed (lines) or pale (bars); each chart also
// has a table with the same numbers, so nothing depends on seeing the canvas.
(() => {
  "use strict";
  const PALETTE = ["#1f5fbf", "#17663a", "#a4262c", "#8a5a00", "#6b3fa0", "#0f7c8c"];
  const reducedMotion = window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches;

  function formatter(unit) {
    const number = new Intl.NumberFormat(undefined, {maximumFractionDigits: unit === "OPEN" ? 4 : 1});
    return (value) => (value === null || value === undefined ? "–" : number.format(value) + (unit === "%" ? "%" : ""));
  }

  function datasetFor(series, index, data) {
    const color = PALETTE[index % PALETTE.length];
    const synthetic = data.synthetic || [];
    const dataset = {label: series.label, data: series.values, borderColor: color, backgroundColor: color};
    if (data.kind === "bar") {
      dataset.backgroundColor = (ctx) => (synthetic[ctx.dataIndex] ? color + "59" : color);
      dataset.borderWidth = 0;
    } else {
      dataset.borderWidth = 2;
      dataset.pointRadius = data.labels.length > 45 ? 0 : 2;
      dataset.tension = 0.2;
      dataset.spanGaps = true;
      dataset.segment = {
        borderDash: (ctx) => (synthetic[ctx.p0DataIndex] || synthetic[ctx.p1DataIndex] ? [6, 4] : undefined),
      };
    }
    return dataset;
  }

  function draw(canvas) {
    const source = document.getElementById(canvas.dataset.chart);
    if (!source || typeof window.Chart === "undefined") return;
    const data = JSON.parse(source.textContent);
    const existing = window.Chart.getChart(canvas);
    if (existing) existing.destroy();
    const format = formatter(data.unit);
    const synthetic = data.synthetic || [];
    new window.Chart(canvas, {
      type: data.kind === "bar" ? "bar" : "line",
      data: {labels: data.labels, datasets: data.series.map((s, i) => datasetFor(s, i, data))},
      options: {
        animation: reducedMotion ? false : {duration: 250},
        responsive: true,
        maintainAspectRatio: false,
        interaction: {mode: "index", intersect: false},
        scales: {
          // Flat date labels with room between them: Chart.js measures the skipping against the canvas width, not the
          // narrower plot area, so the padding keeps a year of daily labels from running into each other.
          x: {stacked: !!data.stacked, ticks: {autoSkip: true, autoSkipPadding: 24, maxTicksLimit: 8, maxRotation: 0}},
          y: {
            stacked: !!data.stacked, beginAtZero: true, suggestedMax: data.unit === "%" ? 100 : undefined,
            ticks: {callback: (value) => format(value)}, title: {display: true, text: data.unit},
          },
        },
        plugins: {
          legend: {position: "bottom", labels: {boxWidth: 12}},
          tooltip: {
            callbacks: {
              label: (item) => `${item.dataset.label}: ${format(item.raw)}${data.unit === "OPEN" ? " OPEN" : ""}`,
              footer: (items) => (items.length && synthetic[items[0].dataIndex] ? "synthetic (generated history)" : ""),
            },
          },
        },
      },
    });
    canvas.dataset.drawn = "true";
  }

  function drawAll(root) {
    (root || document).querySelectorAll("canvas[data-chart]").forEach(draw);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", () => drawAll(document));
  } else {
    drawAll(document);
  }
  document.addEventListener("htmx:afterSettle", (event) => drawAll(event.detail && event.detail.elt));
})();
