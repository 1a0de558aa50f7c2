"""The call-taker page's transfer orders and consult form in a real headless Chromium against a real
server: 一键转接 creates an order and shows its number; a three-way consult's outcome is recorded
through the form (and by its default button); the database refusing (a real 503), a 403 and a 409
are said in Chinese and nothing typed is lost, and the retry goes through."""
from __future__ import annotations

from contextlib import contextmanager

import pytest
from sqlalchemy import text as sql

from serve.transfers.consults import ConsultOutcome
from serve.transfers.tables import TransferOrder
from tests.serve.test_page import DANGER_OVERRIDE, KEY, browser, desk, screenshot  # noqa: F401  (browser is a fixture)

pytestmark = pytest.mark.browser
CONSULT = "工单编号123《关于小区门口有人打架的问题》处理结果不满意"  # the tiny model's answer: 三方通话 with 110


@pytest.fixture(scope="module")
def srv(start_server, tiny_model_dir):
    return start_server(model_dir=tiny_model_dir, api_keys=f"{KEY}:call_taker:李接线")


@contextmanager
def refusing(srv, table: str):
    """The server's database refuses every new row of ``table`` (a trigger) until the block ends."""
    with srv.app.state.db.engine.begin() as c:
        c.execute(sql(f"CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table} BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END"))
    try:
        yield
    finally:
        with srv.app.state.db.engine.begin() as c:
            c.execute(sql(f"DROP TRIGGER refuse_{table}"))


def order(srv, order_id: int) -> dict:
    r = srv.client.get(f"/v1/transfers/{order_id}", headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code == 200, r.text
    return r.json()


def consults(srv, call_id: str | None = None) -> list[ConsultOutcome]:
    with srv.app.state.db.session() as s:
        q = s.query(ConsultOutcome)
        return q.filter_by(call_id=call_id).all() if call_id else q.all()


def test_one_click_transfer_creates_an_order_and_shows_its_number(browser, srv):
    page = desk(browser, srv, permissions=["clipboard-read", "clipboard-write"])
    page.fill("#summary", DANGER_OVERRIDE)
    page.wait_for_selector("#transfer:not([hidden])")
    page.click("#transfer")
    page.wait_for_selector("#action-status:has-text('已转接至')")
    page.wait_for_selector("#order:not([hidden])")
    oid = int(page.get_attribute("#order", "data-order-id"))
    o = order(srv, oid)
    assert f"转办工单 #{oid}" in page.inner_text("#order") and "已派出" in page.inner_text("#order") and f"#{oid}" in page.inner_text("#action-status")
    assert (o["from_line"], o["to_line"], o["urgency"], o["state"]) == ("12345", "110", "110_first", "sent")
    assert o["call_id"].startswith("web-") and o["summary"] == DANGER_OVERRIDE  # masked server-side (nothing personal in this one)
    assert o["decision"]["action"] == "110_first" and o["model_version"] == srv.app.state.models.current.version
    assert "call_taker key#" in o["history"][0]["actor"]
    from serve.db import Feedback

    with srv.app.state.db.session() as s:  # the route + feedback record keeps working beside the order
        fb = s.query(Feedback).filter_by(call_id=o["call_id"]).one()
        assert fb.final_channel == "110"
    page.click("#next-call")
    assert page.is_hidden("#order")
    page.context.close()


def test_the_database_refusing_the_order_is_said_in_chinese_and_the_retry_makes_one_order(browser, srv):
    page = desk(browser, srv)
    page.fill("#summary", DANGER_OVERRIDE)
    page.wait_for_selector("#transfer:not([hidden])")
    with refusing(srv, "transfer_orders"):
        page.click("#transfer")
        page.wait_for_selector("#action-status:has-text('数据库暂不可用')")
    status = page.inner_text("#action-status")
    assert "转办工单未保存" in status and "已保留" in status and "HTTP" not in status
    assert page.input_value("#summary") == DANGER_OVERRIDE and page.is_enabled("#transfer") and page.is_hidden("#order")
    assert page.is_enabled("#accept") and "down" not in page.get_attribute("#status", "class")  # routing still works: no outage
    page.click("#transfer")  # the retry
    page.wait_for_selector("#order:not([hidden])")
    call_id = order(srv, int(page.get_attribute("#order", "data-order-id")))["call_id"]
    with srv.app.state.db.session() as s:
        assert s.query(TransferOrder).filter_by(call_id=call_id).count() == 1
    page.context.close()


def test_a_consult_outcome_recorded_through_the_form_makes_its_order(browser, srv):
    page = desk(browser, srv)
    page.fill("#summary", CONSULT)
    page.wait_for_selector("#action[data-action='consult']")
    page.wait_for_selector("#consult-form:not([hidden])")
    assert page.is_hidden("#transfer")  # a consult first: no one-click transfer
    options = page.eval_on_selector_all("#consult-kept option", "els => els.map(e => e.value)")
    assert options == ["12345", "110"]
    page.select_option("#consult-kept", "110")
    page.click("#consult-save")  # nothing typed yet: the page asks, the server is not called
    assert "请填写对方同意人和原因" in page.inner_text("#consult-status")
    page.fill("#consult-agreed", "110 接警员老周 0032")
    page.fill("#consult-reason", "来电人确认对方手持木棍在门口，110 受理")
    assert page.inner_text("#consult-status") == ""  # typing answers the request: the hint goes
    codes = page.eval_on_selector_all("#consult-department option", "els => els.map(e => e.value)")
    assert "police_public_order" in codes and "utilities" not in codes  # only the keeping line's departments
    page.select_option("#consult-department", "police_public_order")
    page.check("#consult-urgent")
    screenshot(page, "calltaker-consult")
    page.click("#consult-save")
    page.wait_for_selector("#consult-status:has-text('已记录三方通话结果')")
    page.wait_for_selector("#order:not([hidden])")
    oid = int(page.get_attribute("#order", "data-order-id"))
    o = order(srv, oid)
    (c,) = consults(srv, o["call_id"])
    assert (c.kept_by_line, c.still_unclear, c.department, c.agreed_by, c.transfer_order_id) == ("110", False, "police_public_order", "110 接警员老周 0032", oid)
    assert c.call_taker.startswith("李接线 call_taker key#") and "木棍" in c.reason
    assert (o["to_line"], o["urgency"], o["department"], o["decision"]["consult_id"]) == ("110", "110_first", "police_public_order", c.id)
    assert f"#{oid}" in page.inner_text("#consult-status") and "110 报警服务台" in page.inner_text("#consult-status")
    assert not page.is_enabled("#consult-save")  # recorded once
    page.context.close()


def test_the_default_button_records_that_the_first_line_keeps_the_call(browser, srv):
    page = desk(browser, srv)
    before = len(consults(srv))
    page.fill("#summary", CONSULT)
    page.wait_for_selector("#consult-form:not([hidden])")
    page.click("#consult-default")
    page.wait_for_selector("#consult-status:has-text('首接方（12345）保留')")
    after = consults(srv)
    assert len(after) == before + 1
    c = max(after, key=lambda x: x.id)
    assert (c.still_unclear, c.kept_by_line, c.from_line, c.with_line, c.transfer_order_id) == (True, "12345", "12345", "110", None)
    assert c.reason == "仍不明确，首接方保留" and page.is_hidden("#order")
    page.context.close()


def test_a_503_on_the_consult_is_shown_and_the_form_is_kept(browser, srv):
    page = desk(browser, srv)
    page.fill("#summary", CONSULT)
    page.wait_for_selector("#consult-form:not([hidden])")
    page.select_option("#consult-kept", "110")
    page.fill("#consult-agreed", "老周")
    page.fill("#consult-reason", "对方同意由 110 受理")
    with refusing(srv, "consult_outcomes"):
        page.click("#consult-save")
        page.wait_for_selector("#consult-status:has-text('数据库暂不可用')")
    assert "三方通话结果未保存" in page.inner_text("#consult-status") and "已保留" in page.inner_text("#consult-status")
    assert (page.input_value("#consult-agreed"), page.input_value("#consult-reason"), page.input_value("#consult-kept")) == ("老周", "对方同意由 110 受理", "110")
    assert page.input_value("#summary") == CONSULT and page.is_enabled("#consult-save") and page.is_enabled("#consult-default")
    assert not consults(srv) or all(c.agreed_by != "老周" for c in consults(srv))  # nothing half-stored
    page.click("#consult-save")  # the retry, as typed
    page.wait_for_selector("#consult-status:has-text('已记录三方通话结果')")
    assert page.is_visible("#order")
    page.context.close()


def test_a_403_and_a_409_are_said_in_chinese(browser, srv):
    # this platform's keys act for 12345: a desk set to 110 may not record a consult of 110's calls (a real 403)
    page = desk(browser, srv, line="110")
    page.fill("#summary", CONSULT)
    page.wait_for_selector("#consult-form:not([hidden])")
    assert page.eval_on_selector_all("#consult-kept option", "els => els.map(e => e.value)") == ["110", "12345"]
    page.click("#consult-default")
    page.wait_for_selector("#consult-status:has-text('未完成')")
    assert "此密钥代表 12345 线" in page.inner_text("#consult-status") and page.is_enabled("#consult-default")
    # the same call recorded elsewhere with another outcome meanwhile (a real 409)
    page.select_option("#received-on", "12345")
    page.fill("#summary", CONSULT + "，已三方通话")
    page.wait_for_function("() => [...document.querySelectorAll('#consult-kept option')].map(o => o.value).join() === '12345,110'")
    call_id = page.evaluate("() => callId")
    r = srv.client.post("/v1/consults", json={"call_id": call_id, "outcome": "still_unclear", "summary": CONSULT},
                        headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code == 201
    page.select_option("#consult-kept", "110")
    page.fill("#consult-agreed", "老周")
    page.fill("#consult-reason", "由 110 受理")
    page.click("#consult-save")
    page.wait_for_selector("#consult-status:has-text('冲突')")
    assert "已记录" in page.inner_text("#consult-status") and page.input_value("#consult-reason") == "由 110 受理"
    assert consults(srv, call_id)[0].still_unclear is True  # the first outcome stands
    page.context.close()


def test_a_403_on_one_click_transfer_is_said_in_chinese_and_nothing_is_recorded(browser, srv):
    """A desk set to 110 on this 12345 platform: the transfer of a 12345 matter from 110 is refused (a real 403)."""
    page = desk(browser, srv, line="110")
    before = srv.counts()
    page.fill("#summary", "家里停水了，什么时候来水")
    page.wait_for_selector("#transfer:not([hidden])")
    page.click("#transfer")
    page.wait_for_selector("#action-status:has-text('未完成')")
    status = page.inner_text("#action-status")
    assert "此密钥代表 12345 线" in status and "已保留" in status
    assert page.is_enabled("#transfer") and page.is_hidden("#order") and page.input_value("#summary") == "家里停水了，什么时候来水"
    assert srv.counts() == before  # no route or feedback recorded for a transfer that did not happen
    page.context.close()
