// Lead-pack upload: drag and drop, XHR upload progress, the validation summary, the rejects download.
"use strict";

(() => {
  const form = document.getElementById("upload-form");
  const zone = document.getElementById("dropzone");
  const input = document.getElementById("file-input");
  const chosen = document.getElementById("chosen-file");
  const progress = document.getElementById("upload-progress");
  const status = document.getElementById("upload-status");
  const errorBox = document.getElementById("upload-error");
  const result = document.getElementById("upload-result");
  const button = document.getElementById("upload-button");
  const limit = Number(form.dataset.limit);
  let file = null;

  function choose(candidate) {
    file = candidate || null;
    chosen.textContent = file ? `已选择：${file.name}（${waihu.mb(file.size)}）` : "";
    waihu.show(errorBox, false);
    const packName = document.getElementById("pack-name");
    if (file && !packName.value) packName.value = file.name.replace(/\.[^.]+$/, "");
  }

  zone.addEventListener("click", () => input.click());
  zone.addEventListener("keydown", (event) => { if (event.key === "Enter" || event.key === " ") input.click(); });
  input.addEventListener("change", () => choose(input.files[0]));
  ["dragenter", "dragover"].forEach((name) => zone.addEventListener(name, (event) => {
    event.preventDefault();
    zone.classList.add("over");
  }));
  ["dragleave", "drop"].forEach((name) => zone.addEventListener(name, () => zone.classList.remove("over")));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    if (event.dataTransfer.files.length) choose(event.dataTransfer.files[0]);
  });

  function fail(text) {
    waihu.message(errorBox, "error", text);
    waihu.show(progress, false);
    status.textContent = "";
    button.disabled = false;
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    waihu.show(result, false);
    if (!file) return fail("请先选择或拖入一个名单文件");
    if (file.size > limit) {
      return fail(`文件太大：上传上限为 ${form.dataset.limitMb} MB（这个文件 ${waihu.mb(file.size)}）。请把名单拆成几个文件分别上传。`);
    }
    const data = new FormData(form);
    data.set("file", file, file.name);
    if (!form.querySelector('[name="first_party"]').checked) data.delete("first_party");
    if (!form.querySelector('[name="replace"]').checked) {
      data.delete("replace");
    } else if (!window.confirm(`将删除同一文件或名为“${data.get("pack")}”的已有名单（连同其线索和拒收行）后重新导入；已拨打过的名单不能替换。确定吗？`)) {
      return;
    }
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/v1/lead-packs");
    xhr.setRequestHeader("X-CSRF-Token", waihu.csrf());
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.addEventListener("progress", (e) => {
      if (!e.lengthComputable) return;
      progress.value = Math.round(100 * e.loaded / e.total);
      status.textContent = `已上传 ${progress.value}%（${waihu.mb(e.loaded)} / ${waihu.mb(e.total)}）`;
      if (e.loaded === e.total) status.textContent = "上传完成，服务器正在校验、去重、过滤免打扰名单…";
    });
    xhr.addEventListener("load", () => {
      let body = {};
      try { body = JSON.parse(xhr.responseText); } catch (error) { body = {}; }
      button.disabled = false;
      waihu.show(progress, false);
      if (xhr.status >= 200 && xhr.status < 300) {
        status.textContent = "校验完成";
        render(body);
      } else {
        const details = (body.details || []).join("；");
        fail(`上传未完成：${body.detail || "服务器返回 " + xhr.status}${details ? "（" + details + "）" : ""}`);
      }
    });
    xhr.addEventListener("error", () => fail("上传中断：无法连接服务器，请检查网络后重试"));
    button.disabled = true;
    progress.value = 0;
    waihu.show(progress, true);
    status.textContent = "开始上传…";
    xhr.send(data);
  });

  function stat(label, value) {
    return waihu.el("div", { class: "stat" }, waihu.el("span", { class: "label", text: label }),
                    waihu.el("span", { class: "value", text: String(value) }));
  }

  function render(summary) {
    document.getElementById("result-pack").textContent = `${summary.pack}（${summary.file}，${summary.format}）`;
    waihu.show(document.getElementById("result-already"), summary.already_uploaded);
    const hints = document.getElementById("result-hints");
    hints.replaceChildren(...(summary.hints || []).map((hint) => waihu.el("li", { text: `怎样修正：${hint}` })));
    waihu.show(hints, Boolean(summary.hints && summary.hints.length));
    const stats = document.getElementById("result-stats");
    stats.replaceChildren(stat("总行数", summary.rows), stat("接收", summary.accepted),
                          stat("拒收", summary.rejected_total), stat("文件内/已有重复", summary.duplicates),
                          stat("免打扰命中", summary.dnc), stat("座机（已接收，无法加企业微信）", summary.landlines),
                          stat("空行（跳过）", summary.blank_rows));
    const body = document.querySelector("#result-rejects tbody");
    body.replaceChildren(...Object.entries(summary.rejected).map(([code, n]) => waihu.el("tr", {},
      waihu.el("td", { text: summary.rejected_labels[code] || code }), waihu.el("td", {}, waihu.el("code", { text: code })),
      waihu.el("td", { class: "num", text: String(n) }))));
    if (!Object.keys(summary.rejected).length) {
      body.append(waihu.el("tr", {}, waihu.el("td", { colspan: "3", class: "muted", text: "没有拒收行" })));
    }
    const columns = Object.entries(summary.columns).map(([field, column]) => `${field} ← ${column}`).join("，");
    document.getElementById("result-columns").textContent = columns ? `识别的列：${columns}` : "";
    const notes = document.getElementById("result-notes");
    notes.replaceChildren(...summary.notes.map((note) => waihu.el("li", { text: note })));
    if (summary.replaced) notes.append(waihu.el("li", { text: `已替换原名单“${summary.replaced}”` }));
    if (summary.audiences_created.length) {
      notes.append(waihu.el("li", { text: `新建的人群包：${summary.audiences_created.join("、")}` }));
    }
    const link = document.getElementById("result-rejects-link");
    if (summary.rejects_url) link.href = summary.rejects_url;
    waihu.show(link, Boolean(summary.rejects_url));
    waihu.show(result, true);
  }
})();
