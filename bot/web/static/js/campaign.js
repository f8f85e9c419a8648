// Live campaign progress: polls the JSON endpoint every 2 s and updates the numbers in place.
"use strict";

(() => {
  const section = document.getElementById("progress");
  const updated = document.getElementById("progress-updated");
  const badge = document.getElementById("status-badge");
  const INTERVAL_MS = 2000;

  function render(data) {
    section.querySelectorAll("[data-field]").forEach((node) => { node.textContent = data[node.dataset.field]; });
    section.querySelectorAll("[data-grade]").forEach((node) => { node.textContent = data.grades[node.dataset.grade] || 0; });
    section.querySelector('[data-share="connected"]').textContent = `接通率 ${waihu.percent(data.connected, data.dialled)}`;
    badge.textContent = data.status_label;
    badge.className = `badge ${data.status}`;
    const body = section.querySelector("#outcomes tbody");
    const rows = Object.entries(data.outcomes).map(([code, n]) => waihu.el("tr", {},
      waihu.el("td", { text: data.outcome_labels[code] || code }), waihu.el("td", { class: "num", text: String(n) }),
      waihu.el("td", { class: "num", text: waihu.percent(n, data.dialled) })));
    if (!rows.length) rows.push(waihu.el("tr", {}, waihu.el("td", { colspan: "3", class: "muted", text: "还没有拨打记录" })));
    body.replaceChildren(...rows);
    updated.textContent = `（${new Date().toLocaleTimeString("zh-CN", { hour12: false })} 更新，每 2 秒自动刷新）`;
    section.dataset.updates = String(Number(section.dataset.updates || 0) + 1);
  }

  async function poll() {
    const { ok, status, data } = await waihu.api("GET", section.dataset.url);
    if (ok) render(data);
    else updated.textContent = status === 401 ? "（登录已过期，请刷新页面重新登录）" : `（刷新失败：${data.detail || status}）`;
    if (status !== 401) window.setTimeout(poll, INTERVAL_MS);
  }
  window.setTimeout(poll, INTERVAL_MS);
})();
