"""The call-taker page in a real headless Chromium (Debian's /usr/bin/chromium driven by Playwright)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"]
KEY = "ct-page-4b1d"

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists() and not shutil.which("chromium"):
        pytest.skip("chromium is not installed (`apt-get install chromium`, or `make browser`)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM if CHROMIUM.exists() else shutil.which("chromium")), args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def page_server(start_server, tiny_model_dir):
    return start_server(model_dir=tiny_model_dir, api_keys=f"{KEY}:call_taker")


def test_typing_a_danger_word_shows_110_and_the_reason(browser, page_server):
    page = browser.new_page()
    page.goto(page_server.url + "/")
    assert page.title().startswith("热线分派助手")
    # The page asks for the key once the API says 401.
    page.fill("#summary", "有人问")
    page.wait_for_selector("#error:has-text('API 密钥')")
    assert page.is_visible("#settings")
    page.fill("#apikey", KEY)
    page.click("#save-key")
    page.select_option("#received-on", "12345")
    page.fill("#summary", "")
    page.type("#summary", "楼道里有人拿刀砍人，地上有血", delay=15)  # typed like a person: debounced previews
    page.wait_for_selector("#channel:has-text('110')")
    # One action banner: 110 先行 with the one-click transfer, not two banners.
    page.wait_for_selector("#action[data-action='110_first']")
    action = page.inner_text("#action")
    assert "110 先行" in action and "一键转接" in action and page.locator(".banner.danger").count() == 1
    reasons = page.inner_text("#reasons")
    assert "危险信号" in reasons and "刀" in reasons
    assert "线路把握" in page.inner_text(".suggestion") and "部门把握" in page.inner_text(".suggestion")
    assert "120" in page.inner_text("#links")
    assert page.inner_text("#department")  # a Chinese department name
    assert page_server.counts()["routed_calls"] == 0  # previews are not stored

    # A follow-up of an earlier ticket that mentions a fight: a three-way consult, not 110 先行.
    page.fill("#summary", "工单编号123《关于小区门口有人打架的问题》处理结果不满意")
    page.wait_for_selector("#action[data-action='consult']")
    assert "三方通话" in page.inner_text("#action") and not page.is_visible(".banner.danger")

    # Replacing the text by an everyday matter: the suggestion follows and the action banner goes.
    page.fill("#summary", "家里停水了，什么时候来水")
    page.wait_for_selector("#channel:has-text('12345')")
    page.wait_for_selector("#action", state="hidden")
    assert page.locator("#alternatives tbody tr").count() >= 1

    # Accepting records the final routing and the feedback.
    page.click("#accept")
    page.wait_for_selector("#action-status:has-text('已按建议分派')")
    rows = page_server.counts()
    assert rows["routed_calls"] == 1 and rows["feedback"] == 1
    page.close()


def test_status_shows_the_model_version(browser, page_server):
    page = browser.new_page()
    page.goto(page_server.url + "/")
    page.wait_for_selector("#status.ok")
    assert page_server.app.state.models.current.version in page.inner_text("#status")
    page.close()


def test_an_outage_shows_at_once_in_chinese_and_disables_acting(browser, start_server, tiny_model_dir):
    srv = start_server(model_dir=tiny_model_dir)
    page = browser.new_page()
    page.goto(srv.url + "/")
    page.wait_for_selector("#status.ok")
    page.fill("#summary", "家里停水了，什么时候来水")
    page.wait_for_selector("#channel:has-text('12345')")
    assert page.is_enabled("#accept")
    srv.stop()  # the server goes down mid-call
    page.fill("#summary", "家里停水了，什么时候来水，已经两天了")
    page.wait_for_selector("#status.down")
    assert "服务中断" in page.inner_text("#status")
    err = page.inner_text("#error")
    assert "服务中断" in err and "人工分派" in err and "Failed to fetch" not in err
    assert not page.is_enabled("#accept") and not page.is_enabled("#correct")
    assert "stale" in page.get_attribute("#result", "class")
    page.close()
