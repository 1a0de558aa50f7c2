"""What the call-taker reads: one action, and "把握不大" only about the decision actually in doubt."""
from __future__ import annotations

from dataclasses import replace

from model.router import Decision
from serve.advice import advice_lines, review_note, to_response

NAMES = {"110": "110 报警服务台", "12345": "12345 政务服务便民热线"}


def decision(**kw) -> Decision:
    base = dict(channel="110", department="police_public_order", department_name="治安案件", confidence=0.51,
                channel_confidence=0.999, needs_review=True, source="model", reasons=[], alternatives=[], links=[],
                model_version="v", danger=False, action="route")
    return Decision(**{**base, **kw})


def test_a_sure_line_with_an_unsure_department_says_so():
    d = decision()
    assert review_note(d) == "线路明确（110），部门把握不大：请核实承办部门"
    r = to_response(d, channel_names=NAMES)
    assert r.department_confidence == 0.51 and r.channel_confidence == 0.999 and r.review_note == review_note(d)


def test_an_unsure_line_and_an_override_say_different_things():
    assert review_note(decision(channel_confidence=0.6)) == "把握不大，请人工核实后再分派"
    assert "危险信号" in review_note(decision(source="override", action="110_first", danger=True))
    assert review_note(decision(needs_review=False)) is None


def test_one_action_first_and_never_two_that_contradict():
    stab = decision(action="110_first", danger=True, source="override", links=["120"])
    lines = advice_lines(stab, None)
    assert lines[0] == "危险信号：110 必须先行处置" and "请联动 120 急救中心" in lines
    r = to_response(replace(stab), channel_names=NAMES, received_on="12345")
    assert r.advice[0].startswith("危险信号：请立即一键转接") and sum("先行" in a for a in r.advice) == 1
    consult = to_response(decision(action="consult", danger=True, channel="12345", department="utilities"), channel_names=NAMES, received_on="12345")
    assert consult.advice[0].startswith("请发起三方通话") and consult.transfer is None and not consult.police_first


def test_follow_up_after_110_first_is_one_advice_line_under_the_action():
    from model.router import Decision
    from serve.advice import to_response

    d = Decision(channel="110", department="police_rescue", department_name="紧急求助", confidence=0.2, channel_confidence=0.9,
                 needs_review=True, source="override", reasons=["危险信号，110 先行处置：燃气泄漏"], alternatives=[], links=[],
                 model_version=None, danger=True, action="110_first", follow_up="utilities", follow_up_name="水电气热")
    r = to_response(d, channel_names={}, received_on="12345")
    assert r.follow_up.department == "utilities" and r.follow_up.message == "110 先期处置后，转水电气热承办"
    assert r.advice[:2] == [r.transfer.message, r.follow_up.message]
    plain = to_response(Decision(**{**d.to_dict(), "follow_up": None, "follow_up_name": None, "alternatives": []}), channel_names={})
    assert plain.follow_up is None and not any("转" in a and "承办" in a for a in plain.advice)
