"""The supervisor page at /review in a real headless Chromium, used as a supervisor would: open it,
give the key, filter, move with j/k, correct two cases with the keyboard, see the counts and charts change."""
from __future__ import annotations

import pytest

from serve.db import ReviewItem
from tests.factories import TINY
from tests.serve.test_page import browser  # noqa: F401  (the module-scoped Chromium fixture)

CT, SV = "ct-rpage-2c81f7", "sv-rpage-7a90d4"
PHONE = "13912345678"

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def review_server(start_server, tiny_model_dir):
    """Every routing needs review (threshold above 1); 16 calls on both lines, one with a phone number."""
    srv = start_server(model_dir=tiny_model_dir, api_keys=f"{CT}:call_taker,{SV}:supervisor", review_threshold=1.01)
    texts = [t for texts in TINY.values() for t in texts[:4]] + [f"手机号{PHONE}的人说楼道里有人打架"]
    items = [{"text": t, "call_id": f"rp-{i}"} for i, t in enumerate(texts)]
    r = srv.client.post("/v1/route/batch", json={"items": items}, headers={"Authorization": f"Bearer {CT}"})
    assert r.status_code == 200 and all(i["queued_for_review"] for i in r.json()["items"])
    return srv


def rows_text(page, column: int) -> list[str]:
    return page.eval_on_selector_all(f"#queue tbody tr td:nth-child({column})", "els => els.map(e => e.textContent)")


def wait_text(page, selector: str, value) -> None:
    page.wait_for_function("([s, v]) => document.querySelector(s).textContent === v", arg=[selector, str(value)])


def test_a_supervisor_filters_and_corrects_two_cases(browser, review_server):  # noqa: F811
    srv = review_server
    api = lambda path, **params: srv.client.get(path, params=params, headers={"Authorization": f"Bearer {SV}"}).json()  # noqa: E731
    before = api("/v1/reviews/stats")
    assert before["pending"] == 17 and before["decided"] == 0

    page = browser.new_page()
    page.goto(srv.url + "/review")
    assert page.title() == "热线分派助手 · 班长复核"
    page.wait_for_selector("#error:has-text('API 密钥')")  # the API said 401: the page asks for the key
    assert page.is_visible("#settings")
    page.fill("#apikey", SV)
    page.fill("#operator", "S003")
    page.click("#save-key")
    wait_text(page, "#count-pending", 17)
    # the queue and the counts load side by side (Promise.all): wait for the queue's rows too
    page.wait_for_function("n => document.querySelectorAll('#queue tbody tr').length === n", arg=17)
    assert page.locator("#queue tbody tr").count() == 17 and "共 17 条" in page.inner_text("#page-info")
    assert sum(page.eval_on_selector_all("#hist rect.bar", "els => els.map(e => Number(e.dataset.count))")) == 17
    assert page.locator("#rates rect.bar").count() == 0 and page.is_visible("#rates-empty")
    confidences = [float(c.rstrip("%")) for c in rows_text(page, 1)]
    assert confidences == sorted(confidences)  # least confident first

    # Filter: suggested line 110 only.
    n110 = api("/v1/reviews", channel="110")["total"]
    assert 0 < n110 < 17
    page.select_option("#f-channel", "110")
    page.wait_for_function("n => document.querySelectorAll('#queue tbody tr').length === n", arg=n110)
    assert set(rows_text(page, 2)) == {"110"}
    pii = [t for t in rows_text(page, 5) if "打架" in t and "手机号" in t]
    assert pii and all(PHONE not in t and "[手机号]" in t for t in pii)  # masked text only

    # The first case is selected with its reasons and alternatives; j/k move the selection.
    page.keyboard.press("Escape")  # leave the filter select
    selected = lambda: page.get_attribute("#queue tbody tr.selected", "data-id")  # noqa: E731
    ids = page.eval_on_selector_all("#queue tbody tr", "els => els.map(e => e.dataset.id)")
    assert selected() == ids[0]
    assert page.locator("#d-reasons li").count() >= 1 and page.locator("#d-alternatives tbody tr").count() >= 1
    page.keyboard.press("j")
    assert selected() == ids[1]
    page.keyboard.press("k")
    assert selected() == ids[0]

    # Enter alone saves nothing: no department is chosen until the supervisor chooses one.
    assert page.eval_on_selector("#d-target", "s => s.value") == ""
    page.keyboard.press("Enter")
    page.wait_for_selector("#action-status:has-text('请先按 1–9')")
    assert api("/v1/reviews/stats")["decided"] == 0

    # Correct two cases: 2 + Enter on the first, j, 1 + Enter on the (new) second.
    chosen = {}
    page.keyboard.press("2")
    assert page.eval_on_selector("#d-target", "s => s.selectedIndex") == 2  # option 0 is the placeholder
    chosen[ids[0]] = page.eval_on_selector("#d-target", "s => s.value")
    page.keyboard.press("Enter")
    wait_text(page, "#count-pending", 16)
    page.wait_for_function("n => document.querySelectorAll('#queue tbody tr').length === n", arg=n110 - 1)
    assert selected() == ids[1]  # the next case moved up and is selected
    page.keyboard.press("j")
    second = selected()
    assert second == ids[2]
    page.keyboard.press("1")
    chosen[second] = page.eval_on_selector("#d-target", "s => s.value")
    page.keyboard.press("Enter")
    wait_text(page, "#count-pending", 15)
    wait_text(page, "#count-corrected", 2)
    assert page.inner_text("#count-decided") == "2" and "100%" in page.inner_text("#rate-corrected")
    assert "已改判为" in page.inner_text("#action-status")

    # The charts follow: the histogram counts the pending cases, the rate chart the corrected ones.
    assert sum(page.eval_on_selector_all("#hist rect.bar", "els => els.map(e => Number(e.dataset.count))")) == 15
    bars = page.eval_on_selector_all("#rates rect.bar", "els => els.map(e => [e.dataset.key, +e.dataset.corrected, +e.dataset.decided])")
    with srv.app.state.db.session() as s:
        decided = {str(i): s.get(ReviewItem, int(i)) for i in chosen}
    suggested = {}
    for item in decided.values():
        suggested[item.department] = suggested.get(item.department, 0) + 1
    assert {k: (c, d) for k, c, d in bars} == {k: (n, n) for k, n in suggested.items()}

    # What was stored: the chosen departments, decided by the operator and role, never the key.
    for rid, item in decided.items():
        assert item.status == "decided" and item.decision == "correct" and item.decided_department == chosen[rid] != item.department
        assert item.decided_by.startswith("S003 supervisor key#") and SV not in item.decided_by
    st = api("/v1/reviews/stats")
    assert (st["pending"], st["decided"], st["corrected"]) == (15, 2, 2)

    # Confirming with c counts as decided but not corrected.
    page.keyboard.press("c")
    wait_text(page, "#count-decided", 3)
    assert page.inner_text("#count-corrected") == "2" and page.inner_text("#count-pending") == "14"

    # The decided filter shows the three decisions; a decided case is not changed by a key press.
    page.select_option("#f-status", "decided")
    page.wait_for_function("() => document.querySelectorAll('#queue tbody tr').length === 3")
    assert sorted(rows_text(page, 6)) == ["改判", "改判", "确认建议"]
    page.keyboard.press("Escape")
    page.keyboard.press("c")
    page.wait_for_selector("#action-status:has-text('重新打开')")
    assert api("/v1/reviews/stats")["decided"] == 3
    page.close()
