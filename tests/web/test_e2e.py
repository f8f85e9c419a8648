"""Each role's main task in a real headless Chromium (Debian's package, driven by Playwright)
against the real server and database:

* ops drag a lead pack onto the page, watch it upload, read the summary, download the rejects,
  create a campaign, start it, and watch the real dialer's calls come in without reloading;
* a writer edits a script line, sees the validation error at its line, fixes it and saves,
  is told about a colleague's concurrent save without losing their text, and tries the robot;
* a manager opens the A/B comparison and sees the charts, the call list and a transcript.

Screenshots go to tests/artifacts/screenshots/ (git-ignored); their paths are printed.
"""
from __future__ import annotations

import asyncio
import base64
import re
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.campaigns.models import CallAttempt, Campaign
from bot.core.db.engine import session_scope
from tests.db_fixtures import db, database_url, keyring, migrated_engine  # noqa: F401
from tests.web.conftest import MOBILE, PASSWORDS, USERS, console, seed_graded_calls, write_lead_csv  # noqa: F401

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed in the venv")

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = Path(__file__).resolve().parents[1] / "artifacts" / "screenshots"
# Tuesday 2026-11-24 09:35 in Shanghai: inside the morning calling window.
DIAL_START = datetime(2026, 11, 24, 1, 35, tzinfo=timezone.utc)

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (make setup installs it)")
    with playwright_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture()
def page_for(browser, console):
    """A fresh browser context per user; any JavaScript error on a page fails the test."""
    contexts, errors = [], []

    def open_page(role: str):
        context = browser.new_context(viewport={"width": 1360, "height": 900}, locale="zh-CN",
                                      timezone_id="Asia/Shanghai", accept_downloads=True)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(30_000)
        page.on("pageerror", lambda error: errors.append(f"{role}: {error}"))
        page.on("console", lambda message: errors.append(f"{role}: {message.text}")
                if message.type == "error" and "status of 4" not in message.text else None)
        page.goto(f"{console.url}/login")
        page.fill('input[name="name"]', USERS[role])
        page.fill('input[name="password"]', PASSWORDS[role])
        page.click('button[type="submit"]')
        page.wait_for_url(f"{console.url}/")
        return page

    yield open_page
    for context in contexts:
        context.close()
    assert not errors, errors


def shot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path


def no_unmasked_phone(page) -> None:
    found = MOBILE.findall(page.content())
    assert not found, f"unmasked phone numbers on {page.url}: {found[:3]}"


def drop_file(page, selector: str, name: str, data: bytes) -> None:
    """A real drag and drop: a DataTransfer holding the file, dropped on the zone."""
    transfer = page.evaluate_handle(
        """([name, b64]) => { const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
                              const transfer = new DataTransfer();
                              transfer.items.add(new File([bytes], name, { type: "text/csv" }));
                              return transfer; }""", [name, base64.b64encode(data).decode("ascii")])
    page.dispatch_event(selector, "dragenter", {"dataTransfer": transfer})
    page.dispatch_event(selector, "drop", {"dataTransfer": transfer})


class BackgroundDialer:
    """The real dialer (planner → T-0 check → simulator carrier → dialogue model → grading →
    call log) on a simulated clock running 30× real time, in its own thread."""

    def __init__(self, engine, agent, keyring, minutes: int) -> None:
        self.engine, self.agent, self.keyring, self.minutes = engine, agent, keyring, minutes
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run()), name="e2e-dialer", daemon=True)
        self.error: BaseException | None = None

    async def _run(self) -> None:
        from bot.dialing.dialer import Dialer
        from telephony.simulator.carrier import SimulatorCarrier
        from telephony.clock import SimClock

        try:
            clock = SimClock(start=DIAL_START, speed=30)
            dialer = Dialer(self.engine, self.agent, SimulatorCarrier(clock=clock, seed=11), self.keyring,
                            now=clock.now, worker="e2e", sleep=clock.sleep)  # paced by the campaign's CPS and lines
            calls = []
            for _minute in range(self.minutes):
                for plan in dialer.plan():
                    calls += [asyncio.ensure_future(dialer.dial(attempt_id)) for attempt_id in plan.created]
                await clock.sleep(60)
            await asyncio.gather(*calls)
        except BaseException as exc:  # reported by the test
            self.error = exc

    def start(self) -> "BackgroundDialer":
        self.thread.start()
        return self

    def join(self, timeout: float) -> None:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the dialer did not finish"
        if self.error:
            raise self.error


def test_ops_upload_a_pack_and_start_a_campaign(browser, page_for, console, db, keyring, dialogue_agent, tmp_path):
    started = time.perf_counter()
    anonymous = browser.new_page(locale="zh-CN")
    anonymous.goto(f"{console.url}/ops/packs")
    assert "/login?next=/ops/packs" in anonymous.url and "请先登录" in anonymous.inner_text("main")
    shot(anonymous, "ops-0-login")
    anonymous.close()
    page = page_for("ops")
    shot(page, "ops-0-home")
    page.click("text=线索名单")
    page.wait_for_url("**/ops/packs")
    csv_file = write_lead_csv(tmp_path / "车主名单.csv", 36, first_number=13810000000, bad_rows=4)
    drop_file(page, "#dropzone", "车主名单.csv", csv_file.read_bytes())
    assert "已选择：车主名单.csv" in page.inner_text("#chosen-file")
    page.fill("#pack-name", "2026-11-车主")
    page.fill("#audience", "车主-华东")
    page.click("#upload-button")
    page.wait_for_selector("#upload-result:not([hidden])")
    stats = page.inner_text("#result-stats")
    assert "总行数\n40" in stats and "接收\n36" in stats and "拒收\n4" in stats
    assert "手机号无效" in page.inner_text("#result-rejects") and "缺少授权记录" in page.inner_text("#result-rejects")
    assert page.inner_text("#upload-status") == "校验完成"
    no_unmasked_phone(page)
    shot(page, "ops-1-upload-summary")
    with page.expect_download() as download_info:
        page.click("#result-rejects-link")
    rejects = Path(download_info.value.path()).read_text(encoding="utf-8-sig")
    assert rejects.count("\n") == 5 and "phone_invalid" in rejects and not MOBILE.search(rejects)

    page.click("text=外呼任务")
    page.fill('input[name="name"]', "双十一-车主-网页")
    page.check('input[name="packs"][value="2026-11-车主"]')
    page.check('input[name="variants"][value="standard"]')
    page.check('input[name="variants"][value="benefit_first"]')
    page.fill('input[name="lines"]', "8")
    page.fill('input[name="cps"]', "5")
    page.fill('input[name="incentive"]', "一份免费的驾乘意外险")
    page.click('#campaign-form button[type="submit"]')
    page.wait_for_url("**/ops/campaigns/*")
    assert "草稿" in page.inner_text("#status-badge")
    page.click('button[data-action="start"]')
    page.wait_for_selector("text=已启动，当前状态：进行中")
    assert page.inner_text("#status-badge") == "进行中"
    assert page.inner_text('[data-field="leads"]') == "36"
    assert page.inner_text('[data-field="dialled"]') == "0"
    page.evaluate("() => { window.__sameDocument = true; }")  # gone if the page reloads

    dialer = BackgroundDialer(db, dialogue_agent, keyring, minutes=12).start()
    seen: set[int] = set()
    deadline = time.monotonic() + 180
    mid_call_shot = False
    while dialer.thread.is_alive() and time.monotonic() < deadline:
        seen.add(int(page.inner_text('[data-field="dialled"]')))
        if not mid_call_shot and int(page.inner_text('[data-field="in_flight"]')) > 0:
            shot(page, "ops-2-campaign-dialling")  # lines in use while calls run
            mid_call_shot = True
        page.wait_for_timeout(500)
    dialer.join(30)
    with session_scope(db) as session:
        campaign_id = session.execute(select(Campaign.id).where(Campaign.name == "双十一-车主-网页")).scalar_one()
        dialled = session.execute(select(func.count()).select_from(CallAttempt)
                                  .where(CallAttempt.campaign_id == campaign_id, CallAttempt.outcome.is_not(None),
                                         CallAttempt.status == "completed")).scalar_one()
    assert dialled > 0
    page.locator('[data-field="dialled"]', has_text=re.compile(rf"^{dialled}$")).wait_for(timeout=10_000)
    assert page.evaluate("() => window.__sameDocument === true"), "progress updated without reloading"
    assert len(seen) >= 2, f"the page showed the count growing, not only the end: {sorted(seen)}"
    assert int(page.get_attribute("#progress", "data-updates")) >= 3
    grades = sum(int(page.inner_text(f'[data-grade="{g}"]')) for g in "ABCD")
    assert grades == int(page.inner_text('[data-field="connected"]'))
    no_unmasked_phone(page)
    shot(page, "ops-3-campaign-live-progress")
    page.click('button[data-action="pause"]')
    page.wait_for_selector("text=已暂停，当前状态：已暂停")
    print(f"ops flow: {time.perf_counter() - started:.1f} s, progress values seen {sorted(seen)}, dialled {dialled}")


OPENING = '    - text: "请问您现在方便听我说一分钟吗？"'


def test_writer_edits_a_line_sees_the_error_then_saves(page_for, console, dialogs_copy):
    started = time.perf_counter()
    page = page_for("writer")
    page.click("text=话术编辑")
    page.wait_for_url("**/script")
    assert page.inner_text("#file-path") == "dialogs/domain/responses.yml"
    original = page.input_value("#editor")
    line = original.splitlines().index(OPENING) + 1
    broken = original.replace(OPENING, '    - text: "请问您现在方便听我说一分钟吗？', 1)  # the closing quote is gone
    page.fill("#editor", broken)
    page.click("#save-button")
    page.locator("#save-status", has_text="未保存").wait_for()
    problem = page.locator("#problem-list li.error.new").first
    assert f"第 {line}–" in problem.inner_text() and "YAML 格式错误" in problem.inner_text()
    assert page.locator(f'#gutter span[data-line="{line}"].error').count() == 1
    assert (dialogs_copy.root / "domain/responses.yml").read_text(encoding="utf-8") == original
    shot(page, "writer-1-validation-error-at-line")

    # A rule the lint knows: a closing line must carry the AI label.
    no_label = original.replace("本次通话由AI合成语音完成，祝您生活愉快", "祝您生活愉快", 1)
    label_line = next(i for i, (a, b) in enumerate(zip(original.splitlines(), no_label.splitlines()), start=1) if a != b)
    page.fill("#editor", no_label)
    page.click("#save-button")
    page.locator("#problem-list li.error.new", has_text="lacks the AI label").wait_for()
    assert f"第 {label_line} 行" in page.inner_text("#problem-list li.error.new")

    fixed = original.replace("请问您现在方便听我说一分钟吗？", "请问您现在方便听我说半分钟吗？", 1)
    page.fill("#editor", fixed)
    page.click("#save-button")
    page.locator("#save-status", has_text="已保存").wait_for()
    assert "校验通过，没有引入新错误" in page.inner_text("#save-status")
    assert (dialogs_copy.root / "domain/responses.yml").read_text(encoding="utf-8") == fixed
    shot(page, "writer-2-passing-save")

    # A colleague saves the same file meanwhile; this writer's next save is told, and keeps its text.
    colleague = page_for("admin")
    colleague.goto(f"{console.url}/script?path=domain/responses.yml")
    colleague.fill("#editor", fixed.replace("半分钟", "两分钟"))
    colleague.click("#save-button")
    colleague.locator("#save-status", has_text="已保存").wait_for()
    mine = fixed.replace("半分钟", "三十秒")
    page.fill("#editor", mine)
    page.click("#save-button")
    page.wait_for_selector("#conflict:not([hidden])")
    assert "已被其他人修改" in page.inner_text("#save-status") and "没有丢失" in page.inner_text("#save-status")
    assert page.input_value("#editor") == mine, "the writer's text stays in the editor"
    assert "两分钟" in page.input_value("#conflict-text")
    assert "+" in page.inner_text("#conflict-diff") and "三十秒" in page.inner_text("#conflict-diff")
    shot(page, "writer-3-concurrent-edit-conflict")
    page.click("#conflict-keep-mine")
    page.locator("#save-status", has_text="已保存").wait_for()
    assert (dialogs_copy.root / "domain/responses.yml").read_text(encoding="utf-8") == mine

    page.click("#diff-button")
    page.wait_for_selector("#diff-panel:not([hidden])")
    assert "尚未发布过" in page.inner_text("#diff-title")
    print(f"writer flow: {time.perf_counter() - started:.1f} s")


def test_writer_tries_the_robot_in_the_chat_panel(page_for, console):
    page = page_for("writer")
    page.click("text=训练与试聊")
    page.select_option("#chat-variant", "benefit_first")
    page.click("#chat-new")
    page.wait_for_selector("#chat-say:not([hidden])", timeout=120_000)
    assert page.locator(".bubble.bot").count() >= 1
    page.fill("#chat-text", "你是机器人吗")
    page.click("#chat-send")
    page.locator(".bubble.callee .meta", has_text="ask_is_robot").wait_for()
    assert "置信度" in page.inner_text(".bubble.callee .meta")
    page.fill("#chat-text", "可以，你加我微信吧")
    page.click("#chat-send")
    page.wait_for_selector("text=（通话已结束）")
    assert page.inner_text("#grade-value") == "A 有明确意向"
    shot(page, "writer-4-chat-panel")


def test_manager_opens_the_comparison_and_sees_the_charts(page_for, console, db, keyring, tmp_path):
    campaign_id = seed_graded_calls(db, keyring, tmp_path, leads=800)
    page = page_for("manager")
    started = time.perf_counter()
    page.click("text=A/B 对比")
    page.wait_for_url("**/reports")
    if page.locator("#report-empty").count():
        assert "暂无实验数据" in page.inner_text("#report-empty")
        shot(page, "manager-1-comparison-empty")
        pytest.skip("bot.experiments.report is not available: the page shows its empty state")
    page.wait_for_selector("body[data-charts='4']")
    render_seconds = time.perf_counter() - started
    for factor in ("script", "time_slot"):
        for kind in ("rate", "lift"):
            box = page.locator(f"#{kind}-{factor}").bounding_box()
            assert box and box["width"] > 300 and box["height"] > 200
    assert page.locator("[data-srm]").count() == 2 and "样本比例" in page.inner_text("[data-srm] >> nth=0")
    assert "对照组为standard" in page.inner_text("#report-summary")
    assert page.locator(".hints li").count() >= 4
    shot(page, "manager-1-ab-comparison-charts")
    # Issue 16: the script cannot move pickup (its connect rate is a check), every verdict says
    # why, and the report downloads as Excel.
    script_section = page.locator("section.factor[data-factor='script']")
    assert script_section.locator("[data-check='connect_rate']").count() == 1
    assert "核对项" in script_section.locator("[data-checks]").inner_text()
    assert script_section.locator(".hints li[data-decision='check']").count() >= 1
    with page.expect_download() as download_info:
        page.click("#report-exports a[href*='comparison.xlsx']")
    assert download_info.value.suggested_filename.endswith("A-B对比.xlsx")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    script_section.screenshot(path=str(SCREENSHOTS / "manager-1b-script-checks-and-reasons.png"))
    page.select_option("#chart-metric", "ab_rate")
    page.wait_for_selector("body[data-charts='4']")
    page.select_option('select[name="factor"]', "script")
    page.click("#report-filters button[type='submit']")
    page.wait_for_selector("body[data-charts='2']")
    shot(page, "manager-2-comparison-script-only")

    page.click("text=通话记录")
    page.select_option('select[name="grade"]', "A")
    page.click("form.filters button[type='submit']")
    page.wait_for_url("**grade=A**")
    rows = page.locator("#calls-table tbody tr")
    assert rows.count() > 5 and all("****" in rows.nth(i).locator(".phone").inner_text() for i in range(rows.count()))
    no_unmasked_phone(page)
    with page.expect_download() as download_info:
        page.click("#calls-exports >> text=CSV")
    assert download_info.value.suggested_filename.endswith("通话记录.csv")
    shot(page, "manager-3-call-list")
    page.locator("#calls-table a", has_text="对话").first.click()
    page.wait_for_selector("ol.transcript")
    assert page.locator(".turn").count() >= 3 and "意图" in page.inner_text("ol.transcript")
    no_unmasked_phone(page)
    shot(page, "manager-4-transcript")
    page.click("text=企微漏斗")
    page.wait_for_url("**/wecom")
    no_unmasked_phone(page)
    shot(page, "manager-5-wecom-funnel")
    print(f"manager: comparison with charts in {render_seconds:.2f} s for {campaign_id and 800} leads")
