// Script editor: line numbers, save with optimistic concurrency, problems at their line,
// the conflict view (the writer's text is never thrown away), and the diff to the published version.
"use strict";

(() => {
  const data = JSON.parse(document.getElementById("file-data").textContent);
  const editor = document.getElementById("editor");
  const gutter = document.getElementById("gutter");
  const status = document.getElementById("save-status");
  const problemsBox = document.getElementById("problems");
  const problemList = document.getElementById("problem-list");
  const versionLabel = document.getElementById("version-label");
  const conflict = document.getElementById("conflict");
  let version = data.version;
  let savedText = editor.value;
  let latestVersion = null;
  let markedLines = new Map();

  function renderGutter() {
    const count = editor.value.split("\n").length;
    const lines = [];
    for (let i = 1; i <= count; i++) {
      const span = document.createElement("span");
      span.textContent = String(i);
      span.dataset.line = String(i);
      const mark = markedLines.get(i);
      if (mark) { span.className = mark; span.title = "这一行有问题，见下方校验结果"; }
      lines.push(span);
    }
    gutter.replaceChildren(...lines);
    gutter.scrollTop = editor.scrollTop;
  }

  editor.addEventListener("input", renderGutter);
  editor.addEventListener("scroll", () => { gutter.scrollTop = editor.scrollTop; });
  editor.addEventListener("keydown", (event) => {
    if (event.key === "Tab") {  // two spaces, as YAML wants
      event.preventDefault();
      editor.setRangeText("  ", editor.selectionStart, editor.selectionEnd, "end");
      renderGutter();
    }
    if ((event.ctrlKey || event.metaKey) && event.key === "s") { event.preventDefault(); save(); }
  });
  window.addEventListener("beforeunload", (event) => {
    if (editor.value !== savedText) { event.preventDefault(); event.returnValue = ""; }
  });

  function goToLine(line) {
    const lines = editor.value.split("\n");
    let offset = 0;
    for (let i = 0; i < Math.min(line - 1, lines.length); i++) offset += lines[i].length + 1;
    editor.focus();
    editor.setSelectionRange(offset, offset + (lines[line - 1] || "").length);
    const lineHeight = parseFloat(getComputedStyle(editor).lineHeight) || 18;
    editor.scrollTop = Math.max(0, (line - 4) * lineHeight);
  }

  function showProblems(problems, jump) {
    markedLines = new Map();
    const items = problems.map((p) => {
      const here = p.file === data.path;
      if (here && p.line) {
        for (let line = p.first_line || p.line; line <= p.line; line++) {
          const current = markedLines.get(line);
          if (p.severity === "error" || !current) markedLines.set(line, p.severity === "error" ? "error" : "warning");
        }
      }
      const where = p.file ? `dialogs/${p.file}${p.line ? " 第 " + p.line + " 行" : ""}` : "整个项目";
      const tag = p.severity === "error" ? (p.new ? "新错误" : "已有错误") : "提示";
      const item = waihu.el("li", { class: `${p.severity}${p.new ? " new" : ""}` },
        waihu.el("span", { class: "tag", text: tag }), waihu.el("span", { class: "where", text: where }),
        waihu.el("span", { class: "message", text: p.message }));
      if (here && p.line) {
        item.classList.add("jump");
        item.dataset.line = String(p.line);
        item.title = "点击跳到这一行";
        item.addEventListener("click", () => goToLine(p.line));
      }
      return item;
    });
    problemList.replaceChildren(...items);
    waihu.show(problemsBox, items.length > 0);
    renderGutter();
    if (jump) {
      const first = problems.find((p) => p.file === data.path && p.line && p.new && p.severity === "error");
      if (first) goToLine(first.first_line || first.line);
    }
  }

  async function save(baseOverride) {
    const body = { path: data.path, text: editor.value, base_version: baseOverride || version,
                   allow_errors: document.getElementById("allow-errors").checked };
    waihu.message(status, "info", "正在校验并保存…");
    const { ok, status: code, data: result } = await waihu.api("PUT", "/api/v1/script/file", body);
    if (ok) {
      version = result.version;
      savedText = body.text;
      versionLabel.textContent = `版本 ${version.slice(0, 8)}`;
      waihu.show(conflict, false);
      const warnings = result.problems.filter((p) => p.severity === "warning" && p.file === data.path).length;
      const existing = result.problems.filter((p) => p.severity === "error").length;
      waihu.message(status, "success", `已保存 dialogs/${data.path}。` +
        (result.new_errors ? `注意：保存时带有 ${result.new_errors} 个新错误。` : "校验通过，没有引入新错误。") +
        (warnings ? `本文件有 ${warnings} 条提示。` : "") + (existing && !result.new_errors ? `项目中仍有 ${existing} 个已有错误。` : ""));
      showProblems(result.problems);
      return;
    }
    if (code === 409) return showConflict(result);
    waihu.message(status, "error", result.detail || `保存失败（${code}）`);
    if (result.problems) showProblems(result.problems, true);
  }

  function showConflict(result) {
    latestVersion = result.current_version;
    document.getElementById("conflict-version").textContent = latestVersion.slice(0, 8);
    document.getElementById("conflict-text").value = result.current_text;
    document.getElementById("conflict-diff").replaceChildren(...lineDiff(result.current_text, editor.value));
    waihu.message(status, "error", result.detail);
    waihu.show(conflict, true);
  }

  document.getElementById("conflict-keep-mine").addEventListener("click", () => save(latestVersion));
  document.getElementById("conflict-take-theirs").addEventListener("click", () => {
    if (!window.confirm("载入最新内容会替换编辑框中的文本，确定吗？（可先复制您的文本）")) return;
    editor.value = document.getElementById("conflict-text").value;
    version = latestVersion;
    savedText = editor.value;
    versionLabel.textContent = `版本 ${version.slice(0, 8)}`;
    waihu.show(conflict, false);
    waihu.message(status, "info", "已载入最新内容");
    renderGutter();
  });

  document.getElementById("save-button").addEventListener("click", () => save());
  document.getElementById("check-button").addEventListener("click", async () => {
    waihu.message(status, "info", "正在校验…");
    const { ok, data: result } = await waihu.api("POST", "/api/v1/script/check", { path: data.path, text: editor.value });
    if (!ok) return waihu.message(status, "error", result.detail || "校验失败");
    waihu.message(status, result.new_errors ? "error" : "success",
                  result.new_errors ? `这次修改会引入 ${result.new_errors} 个错误（未保存）` : "校验通过（未保存）");
    showProblems(result.problems, true);
  });

  document.getElementById("diff-button").addEventListener("click", async () => {
    const panel = document.getElementById("diff-panel");
    const output = document.getElementById("diff-output");
    const { ok, data: result } = await waihu.api("GET", `/api/v1/script/diff?path=${encodeURIComponent(data.path)}`);
    if (!ok) return waihu.message(status, "error", result.detail || "无法取得差异");
    const title = document.getElementById("diff-title");
    if (result.publication_id === null) {
      title.textContent = "尚未发布过任何版本，没有可对比的已发布文本";
      output.replaceChildren();
    } else {
      title.textContent = `与已发布版本 #${result.publication_id}（${result.published_by}）的差异（已保存的文本）`;
      output.replaceChildren(...(result.changed ? result.lines.map((l) => waihu.el("span", { class: l.kind, text: l.text + "\n" }))
                                                : [waihu.el("span", { class: "ctx", text: "与已发布版本相同" })]));
    }
    waihu.show(panel, true);
  });

  // A small line diff (longest common subsequence) for the conflict view.
  function lineDiff(oldText, newText) {
    const a = oldText.split("\n"), b = newText.split("\n");
    const n = a.length, m = b.length;
    if (n * m > 4000000) return [waihu.el("span", { class: "ctx", text: "文件太大，无法在浏览器中对比；请对照左侧最新内容手动合并。" })];
    const table = new Uint32Array((n + 1) * (m + 1));
    for (let i = n - 1; i >= 0; i--) {
      for (let j = m - 1; j >= 0; j--) {
        table[i * (m + 1) + j] = a[i] === b[j] ? table[(i + 1) * (m + 1) + j + 1] + 1
          : Math.max(table[(i + 1) * (m + 1) + j], table[i * (m + 1) + j + 1]);
      }
    }
    const out = [];
    let i = 0, j = 0;
    while (i < n || j < m) {
      if (i < n && j < m && a[i] === b[j]) { i++; j++; continue; }
      if (i < n && (j >= m || table[(i + 1) * (m + 1) + j] >= table[i * (m + 1) + j + 1])) {
        out.push(waihu.el("span", { class: "del", text: `-${i + 1}: ${a[i]}\n` })); i++;
      } else {
        out.push(waihu.el("span", { class: "add", text: `+${j + 1}: ${b[j]}\n` })); j++;
      }
    }
    return out.length ? out : [waihu.el("span", { class: "ctx", text: "两份文本相同" })];
  }

  renderGutter();
})();
