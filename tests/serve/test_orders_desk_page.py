"""The work-order desk (/orders, 工单台) in a real headless Chromium against a real server: the whole life
cycle from both sides. 110 (a partner key, over HTTP) sends orders to 12345 and returns 12345's; on the
page 12345 accepts, handles, writes back, closes and resends; a stale page gets the 409 in Chinese and
the order reloaded; the database refusing a step (a real 503) keeps what was typed, and the retry goes
through. The API is asked afterwards what was recorded (state, department, operator in the history)."""
from __future__ import annotations

import uuid

import pytest

from tests.serve.test_page import DESK, browser, screenshot  # noqa: F401  (browser is the module-scoped Chromium fixture)
from tests.serve.test_page_orders import refusing

pytestmark = pytest.mark.browser
CT, SV, P110 = "ct-desk-6a1f", "sv-desk-2d94", "p110-desk-c3b7"
PHONE = "13912345678"


def h(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def srv(start_server, tiny_model_dir):
    return start_server(model_dir=tiny_model_dir, api_keys=f"{CT}:call_taker,{SV}:supervisor:王班长,{P110}:partner@110")


def create(srv, key: str, from_line: str, to_line: str, department: str, urgency: str = "normal", summary: str = "来电人称小区停水三天") -> dict:
    body = {"call_id": f"desk-{uuid.uuid4().hex[:10]}", "from_line": from_line, "to_line": to_line, "department": department,
            "urgency": urgency, "summary": summary}
    r = srv.client.post("/v1/transfers", json=body, headers=h(key))
    assert r.status_code == 201, r.text
    return r.json()


def act(srv, key: str, order: dict, action: str, body: dict | None = None) -> dict:
    r = srv.client.post(f"/v1/transfers/{order['id']}/{action}", json=body, headers=h(key))
    assert r.status_code == 200, r.text
    return r.json()


def get(srv, order: dict, key: str = CT) -> dict:
    r = srv.client.get(f"/v1/transfers/{order['id']}", headers=h(key))
    assert r.status_code == 200, r.text
    return r.json()


def desk(browser, srv, key: str = CT, name: str | None = "12345-0018"):  # noqa: F811
    """The desk at 1366×768 with ``key`` saved in the tab and the operator's name remembered by the browser."""
    ctx = browser.new_context(viewport=DESK)
    ctx.add_init_script(f"sessionStorage.setItem('hotline-desk-key', '{key}')" + (f"; localStorage.setItem('hotline-desk-operator', '{name}')" if name else ""))
    page = ctx.new_page()
    return page


def line_departments(srv, line: str) -> list[str]:
    taxonomy = srv.client.get("/v1/model", headers=h(CT)).json()["taxonomy"]["departments"]
    return sorted(d["code"] for d in taxonomy if d["channel"] == line)


def ids(page, table: str) -> list[int]:
    return [int(x) for x in page.eval_on_selector_all(f"#{table} tbody tr", "trs => trs.map(tr => tr.dataset.order)")]


def buttons(page) -> list[str]:
    return page.eval_on_selector_all("#o-actions button", "bs => bs.map(b => b.dataset.action)")


def open_order(page, order: dict, table: str) -> None:
    page.wait_for_selector(f"#{table} tbody tr[data-order='{order['id']}']")
    page.click(f"#{table} tbody tr[data-order='{order['id']}']")
    page.wait_for_selector(f"#detail[data-order='{order['id']}']")


def wait_state(page, state: str) -> None:
    page.wait_for_function("s => document.querySelector('#detail').dataset.state === s", arg=state)


def test_an_order_from_110_is_accepted_handled_and_written_back_on_the_page(browser, srv):  # noqa: F811
    normal = create(srv, P110, "110", "12345", "utilities", summary=f"来电人称小区停水三天，联系电话{PHONE}")
    urgent = create(srv, P110, "110", "12345", "convenience", urgency="110_first", summary="路口井盖丢失，已有人受伤")
    page = desk(browser, srv)
    page.clock.install()
    page.goto(srv.url + "/orders")
    page.wait_for_selector(f"#incoming tbody tr[data-order='{normal['id']}']")
    assert page.title() == "热线分派助手 · 工单台" and page.is_hidden("#error")
    order = ids(page, "incoming")
    assert order.index(urgent["id"]) < order.index(normal["id"])  # 110 先行 first
    row = page.inner_text(f"#incoming tbody tr[data-order='{normal['id']}']")
    assert "110→12345" in row and "已派出" in row and "[手机号]" in row and PHONE not in page.content()  # masked, as stored
    assert "110 先行" in page.inner_text(f"#incoming tbody tr[data-order='{urgent['id']}']")
    assert int(page.inner_text("#count-incoming")) >= 2 and "操作人：12345-0018" in page.inner_text("#who")

    open_order(page, normal, "incoming")
    assert buttons(page) == get(srv, normal)["allowed_actions"] == ["accept", "return"]
    assert "[手机号]" in page.inner_text("#o-summary") and [r for r in page.eval_on_selector_all(
        "#o-history tbody tr td:nth-child(2)", "tds => tds.map(t => t.textContent)")] == ["派单"]
    page.click("#act-accept")
    wait_state(page, "accepted")
    assert buttons(page) == ["handle"] and "已接收" in page.inner_text("#o-status")
    page.click("#act-handle")
    wait_state(page, "handled")
    page.click("#act-write_back")
    page.wait_for_selector("#f-write_back:not([hidden])")
    codes = page.eval_on_selector_all("#wb-dept option", "os => os.map(o => o.value).filter(Boolean)")
    assert sorted(codes) == line_departments(srv, "12345") and "police_criminal" not in codes  # the home line's departments only
    page.click("#wb-submit")  # nothing typed: the page asks, the server is not called
    assert "请填写处置结果" in page.inner_text("#o-status") and get(srv, normal)["state"] == "handled"
    page.fill("#wb-result", f"已联系供水公司抢修，回访电话{PHONE}")
    page.select_option("#wb-dept", "convenience")
    page.click("#wb-submit")
    wait_state(page, "written_back")

    o = get(srv, normal, P110)  # what 110 sees now
    assert (o["state"], o["handled_department"], o["allowed_actions"]) == ("written_back", "convenience", ["close"])
    assert o["result"].startswith("已联系供水公司抢修") and PHONE not in o["result"]
    steps = [(e["action"], e["line"]) for e in o["history"]]
    assert steps == [("create", "110"), ("accept", "12345"), ("handle", "12345"), ("write_back", "12345")]
    assert all(e["actor"].startswith("12345-0018 call_taker key#") for e in o["history"][1:])
    assert page.is_hidden("#o-actions button") and page.is_visible("#o-none")
    page.wait_for_function("id => !document.querySelector(`#incoming tbody tr[data-order='${id}']`)", arg=normal["id"])

    # 110 sends another order meanwhile: the list shows it by itself within 15 s
    later = create(srv, P110, "110", "12345", "utilities")
    page.clock.fast_forward(16_000)
    page.wait_for_selector(f"#incoming tbody tr[data-order='{later['id']}']")
    page.context.close()


def test_a_returned_order_shows_under_our_own_with_the_reason_and_is_closed_on_the_page(browser, srv):  # noqa: F811
    waiting = create(srv, CT, "12345", "110", "police_public_order", summary="楼下有人深夜聚众喧哗")
    returned = create(srv, CT, "12345", "110", "police_criminal", summary="邻居家漏水淹到楼下")
    act(srv, P110, returned, "return", {"reason": f"漏水属物业和供水职责，业主电话{PHONE}", "department": "utilities", "operator": "110-0032"})
    create(srv, P110, "110", "12345", "convenience", urgency="110_first", summary="路口井盖丢失，已有人受伤")  # the other list, for the picture
    page = desk(browser, srv, SV, name=None)  # the supervisor's key names its owner: no name asked
    page.goto(srv.url + "/orders")
    page.wait_for_selector(f"#outgoing tbody tr[data-order='{returned['id']}'].returned")
    assert page.inner_text("#who") == "操作人：王班长" and page.is_hidden("#operator-label") and page.is_hidden("#settings")
    out = ids(page, "outgoing")
    assert out[0] == returned["id"] and waiting["id"] in out  # returned first
    note = page.inner_text(f"#outgoing tbody tr[data-order='{returned['id']}'] td.text")
    names = {d["code"]: d["name"] for d in srv.client.get("/v1/model", headers=h(SV)).json()["taxonomy"]["departments"]}
    assert note.startswith("退回原因：漏水属物业和供水职责") and "[手机号]" in note and PHONE not in note and names["utilities"] in note
    assert int(page.inner_text("#count-returned")) >= 1

    open_order(page, returned, "outgoing")
    assert buttons(page) == get(srv, returned)["allowed_actions"] == ["close", "resend"]
    banner = page.inner_text("#o-returned")
    assert banner.startswith("已被 110 退回：漏水属物业和供水职责") and names["utilities"] in banner
    page.click("#act-close")
    page.wait_for_selector("#f-close:not([hidden])")
    assert sorted(page.eval_on_selector_all("#close-dept option", "os => os.map(o => o.value).filter(Boolean)")) == line_departments(srv, "12345")
    page.select_option("#close-dept", "utilities")
    screenshot(page, "orders-desk")
    page.click("#close-submit")
    wait_state(page, "closed")
    o = get(srv, returned, P110)
    last = o["history"][-1]
    assert (o["state"], last["action"], last["detail"]) == ("closed", "close", {"department": "utilities"})
    assert last["actor"].startswith("王班长 supervisor key#") and last["line"] == "12345"
    page.wait_for_function("id => !document.querySelector(`#outgoing tbody tr[data-order='${id}']`)", arg=returned["id"])
    page.context.close()


def test_a_stale_page_gets_the_409_in_chinese_keeps_the_text_and_reloads_the_order(browser, srv):  # noqa: F811
    incoming = create(srv, P110, "110", "12345", "utilities")
    outgoing = create(srv, CT, "12345", "110", "police_criminal")
    act(srv, P110, outgoing, "return", {"reason": "重复派单"})
    page = desk(browser, srv)
    page.goto(srv.url + "/orders")

    open_order(page, incoming, "incoming")
    page.click("#act-return")
    page.fill("#return-reason", "不属于本市职责")
    act(srv, CT, incoming, "accept")  # a colleague took it meanwhile
    page.click("#return-submit")
    page.wait_for_selector("#o-status:has-text('操作未完成')")
    assert "当前状态为“已接收”" in page.inner_text("#o-status") and "HTTP" not in page.inner_text("#o-status")
    wait_state(page, "accepted")
    assert buttons(page) == ["handle"] and page.input_value("#return-reason") == "不属于本市职责"
    assert get(srv, incoming)["state"] == "accepted"

    open_order(page, outgoing, "outgoing")
    assert buttons(page) == ["close", "resend"]
    act(srv, CT, outgoing, "resend")
    page.click("#act-resend")
    page.wait_for_selector("#o-status:has-text('当前状态为“已派出”')")
    wait_state(page, "sent")
    assert buttons(page) == [] and page.is_visible("#o-none")
    assert [e["action"] for e in get(srv, outgoing)["history"]] == ["create", "return", "resend"]  # one resend, not two
    page.context.close()


def test_a_503_keeps_what_was_typed_and_the_retry_writes_back(browser, srv):  # noqa: F811
    o = create(srv, P110, "110", "12345", "utilities")
    act(srv, CT, o, "accept")
    act(srv, CT, o, "handle")
    page = desk(browser, srv)
    page.goto(srv.url + "/orders")
    open_order(page, o, "incoming")
    page.click("#act-write_back")
    page.fill("#wb-result", "已派维修人员到场")
    page.select_option("#wb-dept", "utilities")
    with refusing(srv, "transfer_events"):
        page.click("#wb-submit")
        page.wait_for_selector("#o-status:has-text('数据库暂不可用')")
    text = page.inner_text("#o-status")
    assert "反馈回写”未完成" in text and "已填写的内容仍保留" in text
    assert (page.input_value("#wb-result"), page.input_value("#wb-dept")) == ("已派维修人员到场", "utilities")
    assert page.is_visible("#f-write_back") and page.is_enabled("#wb-submit") and get(srv, o)["state"] == "handled"  # nothing half-stored
    page.click("#wb-submit")  # the retry, as typed
    wait_state(page, "written_back")
    assert get(srv, o)["handled_department"] == "utilities"
    page.context.close()


def test_a_wrong_key_is_said_in_chinese(browser, srv):  # noqa: F811
    page = desk(browser, srv, key="not-a-key")
    page.goto(srv.url + "/orders")
    page.wait_for_selector("#error:has-text('需要有效的 API 密钥')")
    assert page.is_visible("#settings") and ids(page, "incoming") == []
    page.context.close()


def test_the_call_taker_and_review_pages_link_to_the_desk(srv):
    for path in ("/", "/review"):
        assert 'href="/orders"' in srv.client.get(path).text
    r = srv.client.get("/orders")
    assert r.status_code == 200 and "工单台" in r.text and "default-src 'self'" in r.headers["content-security-policy"]


def test_the_list_says_which_line_the_key_acts_for(srv):
    """The desk learns its own line (HOTLINE_HOME_LINE for the platform's keys) from the list's answer."""
    assert srv.client.get("/v1/transfers?limit=1", headers=h(CT)).json()["line"] == "12345"
    assert srv.client.get("/v1/transfers?limit=1", headers=h(P110)).json()["line"] == "110"
