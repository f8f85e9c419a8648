// A/B comparison charts from the experiments report (Chart.js, vendored): each arm's rate with its
// interval, and each arm's lift over the control arm over time with its interval band.
"use strict";

(() => {
  const source = document.getElementById("report-data");
  if (!source || typeof Chart === "undefined") return;
  const report = JSON.parse(source.textContent);
  const picker = document.getElementById("chart-metric");
  const COLORS = ["#1f6feb", "#d97706", "#16a34a", "#9333ea", "#dc2626", "#0891b2"];
  const charts = [];
  Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
  Chart.defaults.animation = false;

  const metricOf = (key) => report.metrics.find((m) => m.key === key);
  const scale = (metric) => (metric.unit === "percent" ? 100 : 1);
  const unitText = (metric) => ({ percent: "%", seconds: " 秒", yuan: " 元" }[metric.unit] || "");
  const fixed = (v, digits) => (v === null || v === undefined ? null : Number(v.toFixed(digits)));

  function rateChart(canvas, factor, metric) {
    const arms = factor.overall.arms;
    const k = scale(metric);
    return new Chart(canvas, {
      data: {
        labels: arms.map((a) => a.arm + (a.control ? "（对照）" : "")),
        datasets: [
          { type: "bar", label: "区间", data: arms.map((a) => [fixed(a.metrics[metric.key].ci[0] * k, 2), fixed(a.metrics[metric.key].ci[1] * k, 2)]),
            backgroundColor: arms.map((_, i) => COLORS[i % COLORS.length] + "40"), borderColor: arms.map((_, i) => COLORS[i % COLORS.length]),
            borderWidth: 1, barPercentage: 0.35, order: 2 },
          { type: "line", label: metric.label, data: arms.map((a) => fixed(a.metrics[metric.key].value * k, 2)), showLine: false,
            pointRadius: 7, pointStyle: "rectRot", backgroundColor: "#111827", borderColor: "#111827", order: 1 },
        ],
      },
      options: {
        responsive: true, maintainAspectRatio: false,
        plugins: { legend: { position: "bottom" },
          tooltip: { callbacks: { label: (ctx) => Array.isArray(ctx.raw) ? `区间 ${ctx.raw[0]}${unitText(metric)} ~ ${ctx.raw[1]}${unitText(metric)}`
                                                                          : `${metric.label} ${ctx.raw}${unitText(metric)}` } } },
        scales: { y: { beginAtZero: true, ticks: { callback: (v) => v + unitText(metric) }, title: { display: true, text: metric.label } } },
      },
    });
  }

  function liftChart(canvas, factor, metric) {
    const days = factor.daily.map((d) => d.day);
    const others = factor.overall.arms.filter((a) => !a.control).map((a) => a.arm);
    const datasets = [];
    others.forEach((arm, i) => {
      const color = COLORS[(i + 1) % COLORS.length];
      const point = (d, pick) => {
        const entry = ((d.lift[metric.key] || {})[arm]) || null;
        if (!entry || entry.lift === null || entry.error) return null;
        return fixed(pick(entry) * 100, 2);
      };
      datasets.push({ label: `${arm} 区间下限`, data: factor.daily.map((d) => point(d, (e) => e.ci[0])), borderColor: color + "55",
                      borderWidth: 1, pointRadius: 0, fill: false, band: true });
      datasets.push({ label: `${arm} 区间上限`, data: factor.daily.map((d) => point(d, (e) => e.ci[1])), borderColor: color + "55",
                      backgroundColor: color + "22", borderWidth: 1, pointRadius: 0, fill: "-1", band: true });
      datasets.push({ label: `${arm} 相对 ${factor.control} 的提升`, data: factor.daily.map((d) => point(d, (e) => e.lift)),
                      borderColor: color, backgroundColor: color, borderWidth: 2, pointRadius: 3, fill: false });
    });
    datasets.push({ label: "无差异", data: days.map(() => 0), borderColor: "#9ca3af", borderDash: [4, 4], borderWidth: 1, pointRadius: 0, band: true });
    // Early days have very wide intervals; scale to the lifts and the latest interval so the lines stay readable.
    const lifts = datasets.filter((d) => !d.band).flatMap((d) => d.data).filter((v) => v !== null);
    const latest = datasets.filter((d) => d.band && d.data.length).map((d) => d.data[d.data.length - 1]).filter((v) => v !== null);
    const bound = Math.max(20, 1.5 * Math.max(0, ...lifts.map(Math.abs), ...latest.map(Math.abs)));
    return new Chart(canvas, {
      type: "line",
      data: { labels: days, datasets },
      options: {
        responsive: true, maintainAspectRatio: false, spanGaps: false,
        plugins: { legend: { position: "bottom", labels: { filter: (item, data) => !data.datasets[item.datasetIndex].band } },
                   tooltip: { filter: (item) => !item.dataset.band, callbacks: { label: (ctx) => `${ctx.dataset.label} ${ctx.raw}%` } } },
        scales: { y: { min: -Math.ceil(bound), max: Math.ceil(bound), ticks: { callback: (v) => v + "%" },
                       title: { display: true, text: `${metric.label} 相对提升` } } },
      },
    });
  }

  function draw() {
    charts.splice(0).forEach((chart) => chart.destroy());
    const metric = metricOf(picker ? picker.value : report.metrics[0].key);
    for (const factor of report.factors) {
      const rate = document.getElementById(`rate-${factor.factor}`);
      const lift = document.getElementById(`lift-${factor.factor}`);
      if (rate) charts.push(rateChart(rate, factor, metric));
      if (lift) charts.push(liftChart(lift, factor, metric));
    }
    document.body.dataset.charts = String(charts.length);
  }

  if (picker) picker.addEventListener("change", draw);
  draw();
})();
