"""The supervisor page at /review in a real headless Chromium (issue 18, items 6–8): digits beside the
alternatives and type-to-filter with the keyboard only; cases routed with an earlier taxonomy after
another model is served; what a rule decision's number means; identical summaries as one row with a
count (a correction applies to the group), text search, bulk confirm, claims between two
supervisors, the reviewer's name (from the key, or asked once and remembered) and the history."""
from __future__ import annotations

import re

import pytest

from tests.factories import TINY, tiny_rows, write_jsonl
from tests.serve.test_page import browser  # noqa: F401  (the module-scoped Chromium fixture)

CT, SVA, SVB = "ct-rpw-41be07", "sv-rpw-9c2d15", "sv-rpw-77e0a3"
KEYS = f"{CT}:call_taker,{SVA}:supervisor:王班长,{SVB}:supervisor"
A, B = {"Authorization": f"Bearer {SVA}"}, {"Authorization": f"Bearer {SVB}"}
SAME = "水压太低洗不了澡"  # not among the seeded TINY texts: exactly three identical summaries
OVERRIDE = "家里停水了，有人拿刀要砍人"  # the tiny model says utilities; the danger rule says 110

pytestmark = pytest.mark.browser


def seed(srv, prefix: str) -> None:
    texts = [t for texts in TINY.values() for t in texts[:3]] + [SAME] * 3 + [OVERRIDE]
    items = [{"text": t, "call_id": f"{prefix}-{i}"} for i, t in enumerate(texts)]
    r = srv.client.post("/v1/route/batch", json={"items": items}, headers={"Authorization": f"Bearer {CT}"})
    assert r.status_code == 200 and all(i["queued_for_review"] for i in r.json()["items"]), r.text


@pytest.fixture
def srv(start_server, tiny_model_dir, request):
    """A fresh server per test (the tests decide cases), every routing queued for review."""
    s = start_server(model_dir=tiny_model_dir, api_keys=KEYS, review_threshold=1.01)
    seed(s, request.node.name[:20])
    return s


def api(srv, path, headers=A, **params):
    r = srv.client.get(path, params=params, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def open_page(browser, srv, key, name=None, context=None):  # noqa: F811
    page = (context or browser).new_page()
    page.goto(srv.url + "/review")
    page.wait_for_selector("#error:has-text('API 密钥')")
    page.fill("#apikey", key)
    if name is not None:
        page.fill("#operator", name)
    page.click("#save-key")
    page.wait_for_function("() => document.querySelectorAll('#queue tbody tr').length > 0 && !!document.querySelector('#queue tbody tr.selected')")
    page.keyboard.press("Escape")
    return page


def selected_id(page) -> int:
    return int(page.get_attribute("#queue tbody tr.selected", "data-id"))


def select_row(page, rid: int) -> None:
    page.click(f"#queue tbody tr[data-id='{rid}'] td:nth-child(2)")
    page.wait_for_function("id => document.querySelector('#queue tbody tr.selected').dataset.id === String(id)", arg=rid)


def wait_claimed(srv, rid, who):
    import time
    for _ in range(100):
        if api(srv, f"/v1/reviews/{rid}").get("claimed_by") == who:
            return
        time.sleep(0.05)
    raise AssertionError(f"case {rid} was not claimed by {who}")


# --------------------------------------------------------------------------------------------------
def test_digits_beside_alternatives_and_type_to_filter_with_the_keyboard_only(browser, srv):  # noqa: F811
    page = open_page(browser, srv, SVA)
    assert page.inner_text("#reviewer") == "复核人：王班长" and not page.is_visible("#operator-label")  # the key names its owner
    rid = selected_id(page)
    # each alternative shows the digit that picks it in the correction list
    alts = page.eval_on_selector_all("#d-alternatives tbody tr", "rows => rows.map(r => [r.cells[0].textContent, r.cells[1].textContent])")
    assert alts and all(k for k, _ in alts)
    for k, name in alts:
        page.keyboard.press(k)
        label = page.eval_on_selector("#d-target", "s => s.options[s.selectedIndex].textContent")
        assert label.startswith(f"{k} · {name}"), (k, name, label)

    # 16 choices, digits reach 9: type part of a name to find one beyond them, arrows + Enter choose it
    codes = page.eval_on_selector("#d-target", "s => [...s.options].map(o => o.value).filter(Boolean)")
    assert len(codes) == 16
    names = {d["code"]: d["name"] for d in api(srv, "/v1/model")["taxonomy"]["departments"]}
    target = codes[12]
    page.keyboard.press("t")
    assert page.evaluate("() => document.activeElement.id") == "d-search"
    page.keyboard.type(names[target][:1])
    shown = page.eval_on_selector("#d-target", "s => [...s.options].map(o => o.value).filter(Boolean)")
    assert target in shown and all(names[c][:1] in names[c] for c in shown) and len(shown) < 16
    while page.eval_on_selector("#d-target", "s => s.value") != target:
        page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")  # chooses; the page gets the focus back
    assert page.evaluate("() => document.activeElement.tagName") == "BODY"
    assert page.eval_on_selector("#d-target", "s => s.value") == target and "按 Enter 保存" in page.inner_text("#action-status")
    page.keyboard.press("Enter")  # saves
    page.wait_for_selector("#action-status:has-text('已改判为')")
    got = api(srv, f"/v1/reviews/{rid}")
    assert got["decision"] == "correct" and got["decided_department"] == target

    # by code as well; Escape leaves the search without choosing anything
    rid = selected_id(page)
    page.keyboard.press("t")
    page.keyboard.type("consul")
    assert page.eval_on_selector("#d-target", "s => [...s.options].map(o => o.value).filter(Boolean)") == ["consultation"]
    page.keyboard.press("Escape")
    assert page.eval_on_selector("#d-target", "s => s.value") == "" and api(srv, f"/v1/reviews/{rid}")["status"] == "pending"
    page.close()


def test_a_rule_decision_says_what_its_number_means(browser, srv):  # noqa: F811
    item = next(i for i in api(srv, "/v1/reviews", limit=200)["items"] if "拿刀要砍人" in i["text_masked"])  # stored normalised (，→ ,)
    assert item["source"] == "override" and item["model_department"] == "utilities"
    model_p = next(a["probability"] for a in item["alternatives"] if a["department"] == "utilities")
    assert model_p > 0.5 > item["confidence"]
    page = open_page(browser, srv, SVA)
    assert page.inner_text(f"#queue tbody tr[data-id='{item['id']}'] td.conf") == "规则"
    select_row(page, item["id"])
    assert page.inner_text("#d-confidence") == "规则判定（110 先行）"
    assert "置信度" not in page.inner_text("#d-confidence")
    assert page.inner_text("#d-model-view") == f"模型认为：{item['model_department_name']} {int(model_p * 100 + 0.5)}%"  # JS Math.round
    page.close()


def test_groups_search_and_bulk_confirm(browser, srv):  # noqa: F811
    page = open_page(browser, srv, SVA)
    total = api(srv, "/v1/reviews", limit=200)["total"]
    rows = page.locator("#queue tbody tr").count()
    assert rows == total - 2  # three identical summaries, one row
    same = page.get_attribute(f"#queue tbody tr[data-group='3']", "data-id")
    assert page.inner_text(f"#queue tbody tr[data-id='{same}'] td.text .count") == "×3"

    # search by text
    page.fill("#f-q", "停水")
    page.click("#apply")
    page.wait_for_function("() => [...document.querySelectorAll('#queue tbody tr td.text')].every(td => td.textContent.includes('停水'))")
    assert page.locator("#queue tbody tr").count() == 2  # 家里停水了什么时候来水 and OVERRIDE
    page.fill("#f-q", "洗不了")
    page.click("#apply")
    page.wait_for_function("() => document.querySelectorAll('#queue tbody tr').length === 1")

    # a correction on the group row applies to all three
    select_row(page, int(same))
    assert "相同摘要共 3 件" in page.inner_text("#d-group")
    page.keyboard.press("Escape")
    page.keyboard.press("1")
    chosen = page.eval_on_selector("#d-target", "s => s.value")
    page.keyboard.press("Enter")
    page.wait_for_selector("#action-status:has-text('同组另 2 件')", state="attached")  # the queue of this search is now empty
    decided = api(srv, "/v1/reviews", status="decided", q=SAME)["items"]
    assert len(decided) == 3 and {d["decided_department"] for d in decided} == {chosen}

    # bulk confirm: tick two cases (x on the selected one, a click on another), confirm both
    page.fill("#f-q", "")
    page.click("#apply")
    page.wait_for_function("n => document.querySelectorAll('#queue tbody tr').length === n", arg=rows - 1)
    ids = page.eval_on_selector_all("#queue tbody tr", "rs => rs.map(r => Number(r.dataset.id))")
    page.keyboard.press("Escape")
    select_row(page, ids[0])
    page.keyboard.press("x")
    page.click(f"#queue tbody tr[data-id='{ids[3]}'] input.pick")
    assert page.inner_text("#bulk-count") == "2"
    page.click("#bulk-confirm")
    page.wait_for_selector("#bulk-status:has-text('已确认 2 件')")
    for rid in (ids[0], ids[3]):
        got = api(srv, f"/v1/reviews/{rid}")
        assert got["decision"] == "confirm" and got["decided_by"].startswith("王班长")
    assert api(srv, f"/v1/reviews/{ids[1]}")["status"] == "pending"
    page.wait_for_function("n => document.querySelectorAll('#queue tbody tr').length === n", arg=rows - 3)

    # the history lists what 王班长 decided: 1 + 2 group + 2 bulk
    page.wait_for_function("() => document.querySelectorAll('#h-table tbody tr').length === 5")
    assert set(page.eval_on_selector_all("#h-table td.who", "els => els.map(e => e.textContent)")) == {"王班长"}
    hows = page.eval_on_selector_all("#h-table tbody tr td:nth-child(5)", "els => els.map(e => e.textContent)")
    assert sorted(hows) == sorted(["单件", "整组", "整组", "批量确认", "批量确认"])
    page.close()


def test_two_supervisors_claims_names_and_history(browser, srv):  # noqa: F811
    a = open_page(browser, srv, SVA)
    first = selected_id(a)
    wait_claimed(srv, first, "王班长")

    ctx = browser.new_context()
    b = ctx.new_page()
    b.goto(srv.url + "/review")
    b.wait_for_selector("#error:has-text('API 密钥')")
    b.fill("#apikey", SVB)
    b.click("#save-key")
    # an unnamed key: the page asks for a name once
    b.wait_for_selector("#name-prompt:has-text('姓名或工号')")
    assert b.is_visible("#settings") and b.is_visible("#operator-label")
    b.fill("#operator", "S007")
    b.click("#save-key")
    b.wait_for_function("() => document.querySelector('#reviewer').textContent === '复核人：S007'")
    b.keyboard.press("Escape")

    # B opens the case A holds: told who works on it, can neither confirm nor correct
    select_row(b, first)
    b.wait_for_selector("#d-claim:has-text('王班长')")
    assert b.is_disabled("#confirm") and b.is_disabled("#save-correct")
    assert "王班长 处理中" in b.inner_text(f"#queue tbody tr[data-id='{first}']")
    b.keyboard.press("c")
    assert api(srv, f"/v1/reviews/{first}")["status"] == "pending"

    # A moves on (the claim is released); B opens the case again and confirms it
    a.keyboard.press("j")
    wait_claimed(srv, first, None)
    second = selected_id(a)
    select_row(b, second)
    b.wait_for_selector("#d-claim:has-text('王班长')")
    select_row(b, first)
    b.wait_for_function("() => document.querySelector('#d-claim').hidden")
    wait_claimed(srv, first, "S007")
    b.keyboard.press("c")
    b.wait_for_selector("#action-status:has-text('已确认建议')")
    got = api(srv, f"/v1/reviews/{first}")
    assert got["decision"] == "confirm" and got["decided_by"].startswith("S007 supervisor key#")

    # B's history shows it; A sees S007 among the reviewers
    b.wait_for_function("() => document.querySelectorAll('#h-table tbody tr').length === 1")
    assert b.inner_text("#h-table td.who") == "S007" and str(first) == b.get_attribute("#h-table tbody tr", "data-review")
    a.keyboard.press("Escape")
    a.keyboard.press("c")  # A confirms the case it holds; its history refreshes with the reviewer list
    a.wait_for_selector("#action-status:has-text('已确认建议')")
    options = a.eval_on_selector_all("#h-reviewer option", "os => os.map(o => o.textContent)")
    assert any(o.startswith("S007（1 件") for o in options)

    # the name is remembered in this browser: a new tab asks only for the key
    b2 = ctx.new_page()
    b2.goto(srv.url + "/review")
    b2.wait_for_selector("#error:has-text('API 密钥')")
    assert b2.input_value("#operator") == "S007"
    b2.fill("#apikey", SVB)
    b2.click("#save-key")
    b2.wait_for_function("() => document.querySelector('#reviewer').textContent === '复核人：S007'")
    assert not b2.is_visible("#name-prompt") and not b2.is_visible("#settings")
    ctx.close()
    a.close()


def test_cases_routed_with_an_earlier_taxonomy_are_corrected_to_the_served_one(browser, start_server, tiny_model_dir, tmp_path):  # noqa: F811
    from training.train import TrainConfig, train

    rows = [dict(r, department=r["department"] + "_v2") for r in tiny_rows()]
    other = tmp_path / "v2"
    train(TrainConfig(data=[str(write_jsonl(tmp_path / "v2.jsonl", rows))], out=str(other), val_folds=3, taxonomy="infer"), progress=False)
    db = f"sqlite:///{tmp_path / 'hotline.db'}"
    old = start_server(model_dir=tiny_model_dir, api_keys=KEYS, review_threshold=1.01, database_url=db)
    seed(old, "tx")
    old_names = {d["code"]: d["name"] for d in api(old, "/v1/model")["taxonomy"]["departments"]}
    old.stop()
    new = start_server(model_dir=other, api_keys=KEYS, review_threshold=1.01, database_url=db)
    served = [d["code"] for d in api(new, "/v1/model")["taxonomy"]["departments"]]

    page = open_page(browser, new, SVA)
    rid = selected_id(page)
    item = api(new, f"/v1/reviews/{rid}")
    assert page.inner_text("#d-department") == old_names[item["department"]]  # the name it was routed with, not a raw code
    assert page.is_visible("#d-old") and "此前的分类" in page.inner_text("#d-old") and page.is_disabled("#confirm")
    assert all(re.fullmatch(r".+（旧分类）", t) for t in page.eval_on_selector_all("#d-alternatives tbody td:nth-child(2)", "els => els.map(e => e.textContent)"))
    choices = page.eval_on_selector("#d-target", "s => [...s.options].map(o => o.value).filter(Boolean)")
    assert sorted(choices) == sorted(served)  # chosen from the served taxonomy
    page.keyboard.press("c")
    assert api(new, f"/v1/reviews/{rid}")["status"] == "pending"
    page.keyboard.press("1")
    page.keyboard.press("Enter")
    page.wait_for_selector("#action-status:has-text('已改判为')")
    got = api(new, f"/v1/reviews/{rid}")
    assert got["decision"] == "correct" and got["decided_department"] == choices[0] and got["decided_department"] in served
    page.close()
