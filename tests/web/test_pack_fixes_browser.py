"""Issue 16, items 1 and 2 in a real browser (Chromium): the upload page shows how to fix a file
without a consent column, ops tick 替换已有名单 (and confirm) to upload it again, then delete the
pack after its confirmation page. Screenshots in tests/artifacts/screenshots/ (ops-4…ops-7)."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest

from tests.db_fixtures import db, database_url, keyring, migrated_engine  # noqa: F401
from tests.web.conftest import console  # noqa: F401
from tests.web.test_e2e import browser, drop_file, no_unmasked_phone, page_for, shot  # noqa: F401

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def export_without_consent(path: Path, rows: int = 200) -> Path:
    with path.open("w", encoding="gbk", newline="") as handle:
        csv.writer(handle).writerows([["姓名", "手机号", "城市", "人群包"]]
                                     + [["王伟", str(13800000000 + i * 7919), "上海", "车主-华东"] for i in range(rows)])
    return path


def test_ops_fix_replace_and_delete_a_pack_in_the_browser(page_for, console, tmp_path):
    data = export_without_consent(tmp_path / "车主导出.csv").read_bytes()
    page = page_for("ops")
    page.goto(f"{console.url}/ops/packs")
    drop_file(page, "#dropzone", "车主导出.csv", data)
    page.fill("#pack-name", "2026-11-车主")
    page.click("#upload-button")
    page.wait_for_selector("#upload-result:not([hidden])")
    hints = page.inner_text("#result-hints")
    assert "200 行中有 200 行缺少授权记录" in hints and "留资时间" in hints and "第一方线索" in hints
    assert "--map consent_at=<列名>" in hints and "替换已有名单" in hints
    no_unmasked_phone(page)
    shot(page, "ops-4-upload-says-how-to-fix")

    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.accept()))
    page.click("text=更多选项")
    page.check('input[name="first_party"]')
    page.fill('input[name="consent_basis"]', "官网留资表单勾选授权 v3")
    page.check("#replace")
    drop_file(page, "#dropzone", "车主导出.csv", data)
    page.click("#upload-button")
    page.wait_for_function("() => document.getElementById('result-hints').hidden")
    assert dialogs and "将删除同一文件或名为“2026-11-车主”的已有名单" in dialogs[0]
    stats = page.inner_text("#result-stats")
    assert "接收\n200" in stats and "已替换原名单“2026-11-车主”" in page.inner_text("#result-notes")
    shot(page, "ops-5-upload-replaced")

    page.goto(f"{console.url}/ops/packs")
    page.click("#packs-table a.delete-pack")
    page.wait_for_url("**/ops/packs/*/delete")
    assert "将删除这个名单的 200 条线索和 0 条拒收行" in page.inner_text("#delete-confirm")
    shot(page, "ops-6-delete-pack-confirm")
    page.click("#delete-button")
    page.wait_for_url("**/ops/packs")
    assert "已删除名单“2026-11-车主”：200 条线索、0 条拒收行" in page.inner_text("main")
    assert "还没有上传过名单" in page.inner_text("#packs-table")
    shot(page, "ops-7-pack-deleted")
