"""The 转办督办 panel of /review in a real headless Chromium shows the window's three-way consults (counts
by outcome and by the line that kept the call, per day; the latest ones, masked) and the department a
return named on the sending side; recorded through the real API, and followed when a new consult
comes in (the page's clock moved on 31 s)."""
from __future__ import annotations

import uuid

import pytest

from tests.serve.test_page import browser  # noqa: F401  (the module-scoped Chromium fixture)

CT, SV, P110 = "ct-cpage-52b1", "sv-cpage-0d8e", "p110-cpage-a3f6"
PHONE = "13912345678"

pytestmark = pytest.mark.browser


def h(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def consult_page_server(start_server, tiny_model_dir):
    return start_server(model_dir=tiny_model_dir, api_keys=f"{CT}:call_taker,{SV}:supervisor,{P110}:partner@110")


def rows(page, table: str) -> list[list[str]]:
    return page.eval_on_selector_all(f"#{table} tbody tr", "trs => trs.map(tr => [...tr.cells].map(td => td.textContent))")


def test_the_panel_shows_consult_counts_and_the_latest_consults(browser, consult_page_server):  # noqa: F811
    srv, run = consult_page_server, uuid.uuid4().hex[:8].replace("1", "a")

    def consult(i: int, **body) -> dict:
        r = srv.client.post("/v1/consults", json={"call_id": f"cpage-{run}-{i}", "from_line": "12345", "summary": "来电人称邻居吵架", **body},
                            headers=h(CT))
        assert r.status_code == 201, r.text
        return r.json()

    agreed = {"outcome": "agreed", "agreed_by": "110 接警员老周", "reason": f"来电人{PHONE}称对方拿着刀"}
    kept_110 = consult(1, kept_by_line="110", department="police_public_order", **agreed)
    consult(2, kept_by_line="12345", with_line="110", department="convenience", **{**agreed, "reason": "邻里纠纷，12345 受理"})
    consult(3, outcome="still_unclear")
    r = srv.client.post(f"/v1/transfers/{kept_110['transfer_order_id']}/return",  # 110 sends it back, naming a 12345 department
                        json={"reason": "经核实无人持刀", "department": "convenience"}, headers=h(P110))
    assert r.status_code == 200, r.text
    names = {d["code"]: d["name"] for d in srv.client.get("/v1/model", headers=h(SV)).json()["taxonomy"]["departments"]}

    page = browser.new_page()
    page.clock.install()
    page.goto(srv.url + "/review")
    page.fill("#apikey", SV)
    page.click("#save-key")
    page.wait_for_function("() => document.querySelector('#s-consults-total').textContent === '3'")
    assert page.inner_text("#s-consults-by") == "（协商一致 2，仍不明确 1；12345 受理 2，110 受理 1）"
    heads = page.eval_on_selector_all("#s-consult-days-head th", "ths => ths.map(th => th.textContent)")
    assert heads == ["日期", "协商一致", "仍不明确", "12345 受理", "110 受理", "合计"]
    days = rows(page, "s-consult-days")
    assert len(days) == 7 and days[0][1:] == ["2", "1", "2", "1", "3"] and all(d[1:] == ["0"] * 5 for d in days[1:])  # today first
    latest = rows(page, "s-consults")
    assert [x[1:6] for x in latest] == [
        ["12345", "12345", "仍不明确，首接方保留", "", ""],
        ["12345", "12345", "协商一致", "110 接警员老周", names["convenience"]],
        ["12345", "110", "协商一致", "110 接警员老周", names["police_public_order"]],
    ]
    assert latest[2][6] == "来电人[手机号]称对方拿着刀" and PHONE not in page.inner_text("#supervision")
    [ret] = rows(page, "s-returns")
    assert ret[1] == f"#{kept_110['transfer_order_id']}" and ret[6] == names["convenience"]  # the department the return named
    page.click(f"#s-returns tbody tr[data-order='{kept_110['transfer_order_id']}']")
    page.wait_for_selector("#s-order", state="visible")
    assert rows(page, "s-history")[-1][4] == "经核实无人持刀；应由派出方：" + names["convenience"]

    consult(4, outcome="still_unclear")
    page.clock.fast_forward(31_000)
    page.wait_for_function("() => document.querySelector('#s-consults-total').textContent === '4'")
    assert rows(page, "s-consult-days")[0][1:] == ["2", "2", "3", "1", "4"] and len(rows(page, "s-consults")) == 4
    assert page.is_hidden("#s-consults-empty") and page.is_hidden("#s-error")
    page.close()
