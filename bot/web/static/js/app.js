// Shared helpers for every page: CSRF header on fetch(), JSON calls, small DOM helpers.
"use strict";

const waihu = (() => {
  const csrf = () => document.querySelector('meta[name="csrf-token"]').content;

  async function api(method, url, body) {
    const options = { method, headers: { "Accept": "application/json", "X-CSRF-Token": csrf() }, credentials: "same-origin" };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(url, options);
    } catch (error) {
      return { ok: false, status: 0, data: { detail: "无法连接服务器，请检查网络后重试" } };
    }
    let data = {};
    try { data = await response.json(); } catch (error) { data = {}; }
    if (response.status === 401) {
      data.detail = data.detail || "登录已过期，请重新登录";
    }
    return { ok: response.ok, status: response.status, data };
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else node.setAttribute(key, value);
    }
    for (const child of children) {
      if (child !== null && child !== undefined) node.append(child);
    }
    return node;
  }

  function show(node, visible) { node.hidden = !visible; }

  function message(node, kind, text) {
    node.className = "flash " + kind;
    node.textContent = text;
    node.hidden = !text;
  }

  function percent(part, whole) { return whole ? (100 * part / whole).toFixed(1) + "%" : "—"; }

  function mb(bytes) { return (bytes / (1024 * 1024)).toFixed(1) + " MB"; }

  document.addEventListener("click", (event) => {
    const back = event.target.closest("[data-back]");
    if (back && history.length > 1) { event.preventDefault(); history.back(); }
  });

  document.addEventListener("submit", (event) => {
    const button = event.submitter;
    if (button && button.dataset.action === "stop" && !window.confirm("停止后任务不能再恢复，确定停止吗？")) {
      event.preventDefault();
    }
  });

  return { api, csrf, el, show, message, percent, mb };
})();
