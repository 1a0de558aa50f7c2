"""The 转办督办 panel of the supervisor page (/review) in a real headless Chromium: orders created and
advanced through the real API show up as an overdue row (most overdue first), a returned order's
(masked) reason, and the day's volumes each way; the panel refreshes itself (the page's clock is
moved on 31 s) and follows a write-back and a new return."""
from __future__ import annotations

import json
import os
import time
import uuid

import pytest

from tests.serve.test_page import ROOT, browser  # noqa: F401  (the module-scoped Chromium fixture)

CT, SV, P110 = "ct-spage-41d8", "sv-spage-9c03", "p110-spage-7e25"
PHONE = "13912345678"

pytestmark = pytest.mark.browser


def h(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def sup_page_server(start_server, tiny_model_dir, tmp_path_factory):
    limits = tmp_path_factory.mktemp("limits") / "limits.yaml"
    # 110 先行 overdue after 0.6 s; one department the tiny taxonomy does not have (the page says so)
    limits.write_text("110_first: 0.01\nnormal: 1440\ndepartments:\n  公安局交通警察支队: {normal: 120}\n", encoding="utf-8")
    return start_server(model_dir=tiny_model_dir, api_keys=f"{CT}:call_taker,{SV}:supervisor,{P110}:partner@110", transfer_limits_path=limits)


def rows(page, table: str) -> list[list[str]]:
    return page.eval_on_selector_all(f"#{table} tbody tr", "trs => trs.map(tr => [...tr.cells].map(td => td.textContent))")


def test_the_panel_shows_overdue_orders_returns_with_reasons_and_volumes(browser, sup_page_server):  # noqa: F811
    srv, run = sup_page_server, uuid.uuid4().hex[:8]

    def order(i, department, urgency) -> dict:
        body = {"call_id": f"spage-{run}-{i}", "from_line": "12345", "to_line": "110", "department": department, "urgency": urgency,
                "summary": "来电人称楼下有人持刀打架"}
        r = srv.client.post("/v1/transfers", json=body, headers=h(CT))
        assert r.status_code == 201, r.text
        return r.json()

    def act(o, action, body=None):
        r = srv.client.post(f"/v1/transfers/{o['id']}/{action}", json=body, headers=h(P110))
        assert r.status_code == 200, r.text

    late = order(1, "police_criminal", "110_first")
    returned = order(2, "utilities", "normal")
    act(returned, "return", {"reason": f"不属于公安职责，请联系业主{PHONE}"})
    time.sleep(1.0)
    names = {d["code"]: d["name"] for d in srv.client.get("/v1/model", headers=h(SV)).json()["taxonomy"]["departments"]}

    page = browser.new_page()
    page.clock.install()  # the page's timers run on a clock the test can move on
    page.goto(srv.url + "/review")
    page.wait_for_selector("#s-error:has-text('班长或管理员密钥')")  # no key yet: the panel says what it needs
    page.fill("#apikey", SV)
    page.fill("#operator", "S007")
    page.click("#save-key")
    page.wait_for_selector(f"#s-overdue tbody tr[data-order='{late['id']}']")
    assert page.is_hidden("#s-error") and page.inner_text("#s-overdue-total") == "1"
    [row] = rows(page, "s-overdue")
    assert row[:6] == [f"#{late['id']}", "12345→110", names["police_criminal"], "110 先行", "已派出", "110"] and row[6].startswith("超时")
    assert "110 先行 1" in page.inner_text("#s-overdue-by")

    reasons = rows(page, "s-reasons")
    assert len(reasons) == 1 and reasons[0][1] == "1" and reasons[0][0].startswith("不属于公安职责")
    assert PHONE not in reasons[0][0] and "[手机号]" in reasons[0][0]  # masked text only
    [ret] = rows(page, "s-returns")
    assert ret[1:6] == [f"#{returned['id']}", "12345→110", names["utilities"], reasons[0][0], "已退回"]
    assert page.inner_text("#s-returns-total") == "1"

    # A click on the returned order's row shows its whole history, masked.
    assert page.is_hidden("#s-order")
    page.click(f"#s-returns tbody tr[data-order='{returned['id']}']")
    page.wait_for_selector("#s-order", state="visible")
    assert page.inner_text("#s-order-title").startswith(f"工单 #{returned['id']} · 12345→110 · {names['utilities']} · 已退回")
    history = rows(page, "s-history")
    assert [r[1:3] for r in history] == [["派单", "12345"], ["退回", "110"]] and history[1][4] == reasons[0][0]
    assert history[1][3].startswith("partner key#") and P110 not in page.inner_text("#s-order")
    page.click("#s-order-close")
    assert page.is_hidden("#s-order")

    heads = page.eval_on_selector_all("#s-daily-head th", "ths => ths.map(th => th.textContent)")
    assert heads == ["日期", "12345→110", "110→12345", "合计"]
    daily = rows(page, "s-daily")
    assert len(daily) == 7 and daily[0][1:] == ["2", "0", "2"] and all(r[1:] == ["0", "0", "0"] for r in daily[1:])  # today first
    assert {r[0]: r[1:] for r in rows(page, "s-depts")} == {names["police_criminal"]: ["1", "0", "1"], names["utilities"]: ["1", "0", "1"]}
    assert "110 先行 不足 1 分钟" in page.inner_text("#s-limits") and "另有 1 个部门单独设定" in page.inner_text("#s-limits")
    assert page.is_visible("#s-limits-unknown") and "公安局交通警察支队" in page.inner_text("#s-limits-unknown")
    if os.environ.get("HOTLINE_SCREENSHOTS"):  # the README's image of the panel
        page.set_viewport_size({"width": 1366, "height": 768})
        page.locator("#supervision").screenshot(path=str(ROOT / os.environ["HOTLINE_SCREENSHOTS"] / "review-transfers.png"))

    # Meanwhile 110 writes the late order back and returns a new one; 31 s later the panel shows it by itself.
    for action, body in [("accept", None), ("handle", None), ("write_back", {"result": "已出警", "handled_department": "police_criminal"})]:
        act(late, action, body)
    again = order(3, "convenience", "normal")
    act(again, "return", {"reason": "重复派单"})
    page.clock.fast_forward(31_000)
    page.wait_for_function("() => document.querySelector('#s-returns-total').textContent === '2'")
    assert page.inner_text("#s-overdue-total") == "0" and page.is_visible("#s-overdue-empty") and rows(page, "s-overdue") == []
    assert sorted(r[0] for r in rows(page, "s-reasons")) == sorted([reasons[0][0], "重复派单"])
    assert rows(page, "s-returns")[0][1] == f"#{again['id']}"  # newest first
    assert rows(page, "s-daily")[0][1:] == ["3", "0", "3"]
    assert SV not in json.dumps(rows(page, "s-returns")) and page.is_hidden("#error")
    page.select_option("#s-days", "1")  # the window: today only
    page.wait_for_function("() => document.querySelectorAll('#s-daily tbody tr').length === 1")
    assert rows(page, "s-daily")[0][1:] == ["3", "0", "3"] and page.inner_text("#s-returns-total") == "2"
    page.close()
