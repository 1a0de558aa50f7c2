"""The two pages as the README shows them, at a desk's 1366×768, in a real headless Chromium.

Run with ``HOTLINE_SCREENSHOTS=docs/screenshots`` to refresh the README's images (the call-taker's
danger call is shot by tests/serve/test_page.py; the supervisor's queue here). Without the variable
these are ordinary checks that each page shows its content at that size."""
from __future__ import annotations

import pytest

from tests.factories import TINY
from tests.serve.test_page import DESK, browser, screenshot  # noqa: F401  (the module-scoped Chromium fixture)

CT, SV = "ct-readme-5e21", "sv-readme-93ab"
PHONE = "13812345678"

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def queue_server(start_server, tiny_model_dir):
    """Every routing needs review (threshold above 1): a queue of a dozen calls on both lines, one with a phone number."""
    srv = start_server(model_dir=tiny_model_dir, api_keys=f"{CT}:call_taker,{SV}:supervisor", review_threshold=1.01)
    texts = [t for texts in TINY.values() for t in texts[:2]][:11] + [f"手机号{PHONE}的人说楼道里有人拿刀打架"]
    items = [{"text": t, "call_id": f"readme-{i}"} for i, t in enumerate(texts)]
    r = srv.client.post("/v1/route/batch", json={"items": items}, headers={"Authorization": f"Bearer {CT}"})
    assert r.status_code == 200 and all(i["queued_for_review"] for i in r.json()["items"])
    return srv


def test_the_review_page_shows_the_masked_queue_at_a_desk_size(browser, queue_server):  # noqa: F811
    ctx = browser.new_context(viewport=DESK)
    page = ctx.new_page()
    page.goto(queue_server.url + "/review")
    page.wait_for_selector("#settings:not([hidden])")  # the API said 401: the page asks for the key
    page.fill("#apikey", SV)
    page.fill("#operator", "S001")
    page.click("#save-key")
    pending = queue_server.client.get("/v1/reviews/stats", headers={"Authorization": f"Bearer {SV}"}).json()["pending"]
    assert pending >= 5
    page.wait_for_function("n => document.querySelectorAll('#queue tbody tr').length === n", arg=pending)
    page.wait_for_selector("#detail:not([hidden])")
    text = page.inner_text("#queue")
    assert PHONE not in text and "[手机号]" in text  # masked text only
    screenshot(page, "review")
    ctx.close()
