"""Bad input through the console, on a live server: oversized and wrong-type uploads, invalid
YAML and rule-breaking script edits (refused at their line, nothing written), and two writers
saving the same file (the second is told, the first save is kept, the second text comes back
with the current one so it can be merged)."""
from __future__ import annotations

import html
import io
import zipfile

import pytest
from sqlalchemy import func, select

from bot.core.db.engine import session_scope
from bot.leads.models import Lead, LeadPack
from tests.db_fixtures import db, database_url, keyring, migrated_engine  # noqa: F401
from tests.web.conftest import clients, console, write_lead_csv  # noqa: F401

OPENING_LINE = '    - text: "请问您现在方便听我说一分钟吗？"'


def lead_count(db) -> int:
    with session_scope(db) as session:
        return session.execute(select(func.count()).select_from(Lead)).scalar_one()


# ---- uploads --------------------------------------------------------------------------------

def test_an_oversized_upload_is_refused_before_it_is_read(console, clients, db, tmp_path):
    ops = clients("ops")
    limit = console.app.state.config.max_upload_bytes
    big = write_lead_csv(tmp_path / "big.csv", 60_000, first_number=13300000000)
    assert big.stat().st_size > limit
    response = ops.post("/api/v1/lead-packs", data={"pack": "太大"},
                        files={"file": ("big.csv", big.read_bytes(), "text/csv")})
    assert response.status_code == 413
    assert "文件太大：上传上限为 2 MB" in response.json()["detail"]
    assert lead_count(db) == 0

    # Without a Content-Length (chunked), the body is counted while it streams and cut off.
    def chunks():
        boundary = b"--x\r\n"
        yield boundary + b'Content-Disposition: form-data; name="pack"\r\n\r\nchunked\r\n'
        yield boundary + b'Content-Disposition: form-data; name="file"; filename="big.csv"\r\n\r\n'
        data = big.read_bytes()
        for start in range(0, len(data), 256 * 1024):
            yield data[start:start + 256 * 1024]
        yield b"\r\n--x--\r\n"

    streamed = ops.http.post("/api/v1/lead-packs", content=chunks(),
                             headers={**ops.headers(), "Content-Type": "multipart/form-data; boundary=x"})
    assert streamed.status_code == 413 and "文件太大" in streamed.json()["detail"]
    assert lead_count(db) == 0


@pytest.mark.parametrize("name, content, expected", [
    ("photo.png", b"\x89PNG\r\n\x1a\n" + bytes(200), "不支持的文件类型“.png”"),
    ("old.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(200), "旧版 Excel 97-2003（.xls）"),
    ("renamed.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(200), "内容不是文本表格"),
    ("fake.xlsx", "手机号,姓名\n13812345678,张三\n".encode(), "内容不是 Excel 工作簿"),
    ("empty.csv", b"", "空文件"),
])
def test_wrong_file_types_get_a_clear_chinese_message(console, clients, db, name, content, expected):
    ops = clients("ops")
    response = ops.post("/api/v1/lead-packs", data={"pack": "坏文件"},
                        files={"file": (name, content, "application/octet-stream")})
    assert response.status_code in (400, 415), response.text
    assert expected in response.json()["detail"]
    with session_scope(db) as session:
        assert session.execute(select(func.count()).select_from(LeadPack)).scalar_one() == 0


def test_a_broken_spreadsheet_names_the_uploaded_file_not_a_temp_path(console, clients, tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:  # a zip, not a workbook
        archive.writestr("hello.txt", "not a workbook")
    response = clients("ops").post("/api/v1/lead-packs", data={"pack": "坏表格"},
                                   files={"file": ("名单.xlsx", buffer.getvalue(), "application/octet-stream")})
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert "名单.xlsx" in detail and "waihu-upload-" not in detail and "/tmp" not in detail


def test_a_good_upload_reports_every_row(console, clients, db, tmp_path):
    path = write_lead_csv(tmp_path / "ok.csv", 20, first_number=13400000000, bad_rows=3)
    response = clients("ops").post("/api/v1/lead-packs", data={"pack": "好名单", "audience": "车主-华东"},
                                   files={"file": ("ok.csv", path.read_bytes(), "text/csv")})
    assert response.status_code == 200, response.text
    summary = response.json()
    assert (summary["rows"], summary["accepted"], summary["rejected_total"]) == (23, 20, 3)
    assert summary["rejected_labels"]["phone_invalid"] == "手机号无效"
    assert lead_count(db) == 20


# ---- script edits ---------------------------------------------------------------------------

def load(writer, path: str) -> dict:
    response = writer.get(f"/api/v1/script/file?path={path}", headers={"Accept": "application/json"})
    assert response.status_code == 200
    return response.json()


def test_invalid_yaml_is_refused_at_its_line_and_nothing_is_written(console, clients, dialogs_copy):
    writer = clients("writer")
    original = load(writer, "domain/responses.yml")
    broken = original["text"].replace(OPENING_LINE, '    - text: "请问您现在方便听我说一分钟吗？', 1)
    response = writer.put("/api/v1/script/file", json={"path": "domain/responses.yml", "text": broken,
                                                       "base_version": original["version"]})
    assert response.status_code == 422
    body = response.json()
    problem = body["problems"][0]
    assert problem["file"] == "domain/responses.yml" and problem["new"] and problem["severity"] == "error"
    # The broken line: where the good-time question stands in the shipped file.
    line = next(n for n, text in enumerate(original["text"].splitlines(), start=1) if text == OPENING_LINE.rstrip("\n"))
    assert problem["first_line"] == line and f"YAML 格式错误（第 {line}–" in problem["message"]
    assert "未保存" in body["detail"]
    assert (dialogs_copy.root / "domain/responses.yml").read_text(encoding="utf-8") == original["text"]


def test_an_edit_breaking_a_script_rule_is_refused_at_its_line(console, clients, dialogs_copy):
    writer = clients("writer")
    original = load(writer, "domain/responses.yml")
    lines = original["text"].splitlines()
    number = next(i for i, line in enumerate(lines, start=1) if "本次通话由AI合成语音完成，祝您生活愉快" in line)
    lines[number - 1] = lines[number - 1].replace("本次通话由AI合成语音完成，", "")  # closing line loses the AI label
    response = writer.put("/api/v1/script/file", json={"path": "domain/responses.yml", "text": "\n".join(lines) + "\n",
                                                       "base_version": original["version"]})
    assert response.status_code == 422
    new = [p for p in response.json()["problems"] if p["new"]]
    assert [(p["file"], p["line"]) for p in new] == [("domain/responses.yml", number)]
    assert "lacks the AI label" in new[0]["message"]
    assert (dialogs_copy.root / "domain/responses.yml").read_text(encoding="utf-8") == original["text"]
    # "save anyway" is possible, on purpose (a multi-file change), and says what it let in
    forced = writer.put("/api/v1/script/file", json={"path": "domain/responses.yml", "text": "\n".join(lines) + "\n",
                                                     "base_version": original["version"], "allow_errors": True})
    assert forced.status_code == 200 and forced.json()["new_errors"] == 1


def test_a_renamed_response_is_caught_in_the_rules_file(console, clients):
    writer = clients("writer")
    original = load(writer, "domain/responses.yml")
    renamed = original["text"].replace("  utter_ask_good_time:", "  utter_ask_good_moment:", 1)
    response = writer.post("/api/v1/script/check", json={"path": "domain/responses.yml", "text": renamed})
    assert response.status_code == 200
    new = [p for p in response.json()["problems"] if p["new"]]
    assert any(p["file"] == "data/rules.yml" and "utter_ask_good_time" in p["message"] and p["line"] for p in new)


def test_two_writers_save_the_same_file(console, clients, dialogs_copy):
    first, second = clients("writer"), clients("admin")
    base = load(first, "domain/responses.yml")
    assert load(second, "domain/responses.yml")["version"] == base["version"]
    mine = base["text"].replace("一分钟", "半分钟")
    theirs = base["text"].replace("一分钟", "两分钟")
    saved = first.put("/api/v1/script/file", json={"path": "domain/responses.yml", "text": mine,
                                                   "base_version": base["version"]})
    assert saved.status_code == 200 and saved.json()["version"] != base["version"]
    late = second.put("/api/v1/script/file", json={"path": "domain/responses.yml", "text": theirs,
                                                   "base_version": base["version"]})
    assert late.status_code == 409
    conflict = late.json()
    assert "已被其他人修改" in conflict["detail"] and "没有丢失" in conflict["detail"]
    assert conflict["current_text"] == mine and conflict["current_version"] == saved.json()["version"]
    assert (dialogs_copy.root / "domain/responses.yml").read_text(encoding="utf-8") == mine
    # Having merged, the second writer saves on top of the version they were shown.
    merged = mine.replace("请问您现在方便", "请问您现在是否方便")
    again = second.put("/api/v1/script/file", json={"path": "domain/responses.yml", "text": merged,
                                                    "base_version": conflict["current_version"]})
    assert again.status_code == 200
    assert (dialogs_copy.root / "domain/responses.yml").read_text(encoding="utf-8") == merged


def test_only_script_files_can_be_opened(console, clients):
    writer = clients("writer")
    for path in ("../bot/settings.py", "/etc/passwd", "domain/../../README.md", "models/x.tar.gz", "domain/new.yml"):
        response = writer.get("/api/v1/script/file", params={"path": path}, headers={"Accept": "application/json"})
        assert response.status_code == 400 and "不是可编辑的话术文件" in response.json()["detail"], path
        saved = writer.put("/api/v1/script/file", json={"path": path, "text": "x", "base_version": "0"})
        assert saved.status_code == 400, path


def test_campaign_form_errors_keep_what_was_typed(console, clients):
    ops = clients("ops")
    page = ops.http.post("/ops/campaigns", data={"csrf_token": ops.csrf, "name": "无名单任务", "lines": "abc", "cps": "2"})
    assert page.status_code == 400 and "线路数需要整数" in page.text and 'value="无名单任务"' in page.text
    page = ops.http.post("/ops/campaigns", data={"csrf_token": ops.csrf, "name": "时段不合规", "lines": "5", "cps": "1",
                                                 "packs": "没有这个名单", "slots": "深夜=22:00-23:00"})
    assert page.status_code == 400 and "外呼任务未创建" in page.text


def test_campaign_form_reports_every_problem_at_once(console, clients):
    """Issue 16 item 6: several bad slots and other bad fields are all listed in one answer,
    each naming the field, the value and what to do."""
    ops = clients("ops")
    page = ops.http.post("/ops/campaigns", data={
        "csrf_token": ops.csrf, "name": "多处错误", "lines": "abc", "cps": "0", "holdout": "百分之五",
        "slots": "上午=09:30-12:00\n夜间=20:00-22:00\n清晨=07:00-09:00\n中午=12点-14点",
        "incentive_arms": "红包=十元红包", "variants": ["standard", "benefit_first"], "weight_standard": "abc",
        "weight_benefit_first": "2"})
    assert page.status_code == 400 and 'value="多处错误"' in page.text
    text = html.unescape(page.text)
    assert "外呼任务未创建：共 9 个问题" in text, text
    for needle in ["最大并发线路“abc”：线路数需要整数", "每秒新呼叫数“0”：每秒呼叫数需大于 0",
                   "留出对照比例“百分之五”：留出对照比例需要数字",
                   "拨打时段“夜间=20:00-22:00”：超出合规拨打窗口 09:30-12:00, 14:00-20:00",
                   "拨打时段“清晨=07:00-09:00”：超出合规拨打窗口", "时段只能收窄、不能放宽，请改在窗口内",
                   "拨打时段“中午=12点-14点”：窗口“12点-14点”不是 开始-结束",
                   "利益点 A/B“红包=十元红包”：请注明用于哪个人群包", "线索名单：请至少选择一个线索名单",
                   "话术版本“standard:abc”：话术版本的权重需要数字"]:
        assert needle in text, needle
    assert text.count("<li>") >= 9 and "benefit_first:2" not in text


def test_filters_with_bad_dates_are_explained(console, clients):
    manager = clients("manager")
    page = manager.get("/calls?since=yesterday")
    assert page.status_code == 400 and "不是日期" in page.text
    assert manager.get("/calls?since=&until=").status_code == 200


def test_json_bodies_with_wrong_fields_are_named(console, clients):
    ops = clients("ops")
    response = ops.post("/api/v1/campaigns", json={"name": "x", "lines": "many"})
    assert response.status_code == 422
    assert "packs" in response.json()["detail"] and "lines" in response.json()["detail"]


def test_names_with_markup_are_shown_as_text(console, clients, db, keyring, tmp_path):
    from tests.web.conftest import upload_pack

    evil = '</script><script>alert("x")</script>'
    upload_pack(db, keyring, write_lead_csv(tmp_path / "x.csv", 3, first_number=13200000000), "p-" + evil)
    ops = clients("ops")
    created = ops.post("/api/v1/campaigns", json={"name": "c-" + evil, "packs": ["p-" + evil],
                                                  "variants": [{"name": "standard"}, {"name": "benefit_first"}]})
    assert created.status_code == 201
    assert ops.post("/api/v1/audiences", json={"name": "a-<img src=x onerror=alert(1)>"}).status_code == 201
    pages = [ops.get("/ops/campaigns").text, ops.get(f"/ops/campaigns/{created.json()['id']}").text,
             ops.get("/ops/audiences").text, ops.get("/ops/packs").text,
             clients("manager").get(f"/reports?campaign_id={created.json()['id']}").text]
    for html in pages:
        assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;/script&gt;&lt;script&gt;alert" in pages[0]
