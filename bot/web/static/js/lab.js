// Training (background job with status) and the chat panel: the writer plays the callee and sees
// the intent, the confidence and the grade the call would get so far.
"use strict";

(() => {
  const trainButton = document.getElementById("train-button");
  const trainStatus = document.getElementById("train-status");
  const trainProblems = document.getElementById("train-problems");
  const trainLog = document.getElementById("train-log");
  const currentModel = document.getElementById("current-model");
  const STATES = { idle: "尚未在本次会话中训练", running: "训练中…", succeeded: "训练完成", failed: "训练失败" };
  let polling = false;

  function renderTraining(s) {
    let text = STATES[s.state] || s.state;
    if (s.state === "running" && s.started_at) text += `（${s.started_by} 于 ${new Date(s.started_at).toLocaleTimeString("zh-CN", { hour12: false })} 开始）`;
    if (s.state === "succeeded") text += s.trained ? `：新模型 ${s.model}，用时 ${s.seconds} 秒` : `：话术没有变化，复用已有模型 ${s.model}`;
    if (s.state === "failed") text += `：${s.error || ""}`;
    trainStatus.textContent = text;
    trainStatus.className = s.state === "failed" ? "error-text" : "muted";
    trainProblems.replaceChildren(...(s.problems || []).map((p) => waihu.el("li", { class: "error", text: p })));
    trainLog.textContent = (s.log_tail || []).join("\n");
    if (s.current_model !== undefined) currentModel.textContent = s.current_model || "未训练（话术修改后需要重新训练）";
    trainButton.disabled = s.state === "running";
    document.getElementById("training").dataset.state = s.state;
  }

  async function pollTraining() {
    if (polling) return;
    polling = true;
    for (;;) {
      const { ok, data } = await waihu.api("GET", "/api/v1/script/train");
      if (!ok) { trainStatus.textContent = data.detail || "无法取得训练状态"; break; }
      renderTraining(data);
      if (data.state !== "running") break;
      await new Promise((resolve) => window.setTimeout(resolve, 1500));
    }
    polling = false;
  }

  trainButton.addEventListener("click", async () => {
    const { ok, data } = await waihu.api("POST", "/api/v1/script/train", { force: document.getElementById("train-force").checked });
    if (!ok) { trainStatus.textContent = data.detail || "无法开始训练"; trainStatus.className = "error-text"; return; }
    renderTraining(data);
    pollTraining();
  });
  pollTraining();

  // ---- chat ----
  const log = document.getElementById("chat-log");
  const sayForm = document.getElementById("chat-say");
  const textInput = document.getElementById("chat-text");
  const notice = document.getElementById("chat-notice");
  const gradeBox = document.getElementById("chat-grade");
  const newButton = document.getElementById("chat-new");
  let chatId = null;

  function bubble(kind, text, meta) {
    const node = waihu.el("div", { class: `bubble ${kind}` }, waihu.el("span", { class: "who", text: kind === "bot" ? "机器人" : (kind === "callee" ? "客户" : "") }),
                          waihu.el("span", { class: "text", text }));
    if (meta) node.append(waihu.el("span", { class: "meta", text: meta }));
    log.append(node);
    log.scrollTop = log.scrollHeight;
    return node;
  }

  function showReply(reply, heard) {
    if (heard !== undefined) {
      const meta = reply.intent ? `意图：${reply.intent_label || reply.intent}（${reply.intent}） 置信度 ${Number(reply.confidence).toFixed(2)}` : "（沉默）";
      bubble("callee", heard || "……", meta);
    }
    for (const line of reply.lines) bubble("bot", line.text, line.response);
    if (reply.grade) {
      document.getElementById("grade-value").textContent = reply.grade.label || "—";
      document.getElementById("grade-value").dataset.grade = reply.grade.grade || "";
      document.getElementById("grade-reason").textContent = reply.grade.reason || "";
      waihu.show(gradeBox, true);
    }
    if (reply.ended) {
      bubble("system", "（通话已结束）");
      waihu.show(sayForm, false);
    }
  }

  document.getElementById("chat-start").addEventListener("submit", async (event) => {
    event.preventDefault();
    newButton.disabled = true;
    log.replaceChildren();
    waihu.show(gradeBox, false);
    waihu.message(notice, "info", "正在接通（首次需要加载对话模型，约 15 秒）…");
    const { ok, data } = await waihu.api("POST", "/api/v1/script/chat", {
      variant: document.getElementById("chat-variant").value, surname: document.getElementById("chat-surname").value,
      gender: document.getElementById("chat-gender").value });
    newButton.disabled = false;
    if (!ok) { waihu.message(notice, "error", data.detail || "无法开始试聊"); return; }
    chatId = data.chat_id;
    waihu.message(notice, data.stale_model ? "warning" : "info", data.stale_model
      ? `注意：话术修改后还没有训练，本次试聊使用的是旧模型 ${data.model}` : `使用模型 ${data.model}（版本 ${data.variant}）`);
    showReply(data);
    if (!data.ended) { waihu.show(sayForm, true); textInput.focus(); }
  });

  sayForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!chatId) return;
    const text = textInput.value;
    textInput.value = "";
    document.getElementById("chat-send").disabled = true;
    const { ok, data } = await waihu.api("POST", `/api/v1/script/chat/${chatId}`, { text });
    document.getElementById("chat-send").disabled = false;
    if (!ok) { waihu.message(notice, "error", data.detail || "发送失败"); return; }
    showReply(data, data.heard);
    textInput.focus();
  });

  document.getElementById("chat-hangup").addEventListener("click", async () => {
    if (!chatId) return;
    const { ok, data } = await waihu.api("POST", `/api/v1/script/chat/${chatId}/hangup`, {});
    if (!ok) { waihu.message(notice, "error", data.detail || "挂断失败"); return; }
    showReply({ lines: [], grade: data.grade, ended: true });
  });
})();
