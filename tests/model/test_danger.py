"""Danger as a judgement (model/danger.py, through the router): the false-alarm families found on real
12345 tickets stay off "110 先行", their genuine 110 twins keep it, and invisible characters inside a
danger word do not switch a rule off."""
from __future__ import annotations

import pytest

from model.danger import DangerAssessor
from model.router import Router
from model.rules import RuleEngine, RulesError


@pytest.fixture(scope="module")
def router():
    return Router(None)


# (false alarm on a 12345 matter, its genuine 110 twin): one pair per family the issue names.
FAMILIES = {
    "car move": ("琼A12345机动车堵路，请交警通知车主移车", "几十个人在路口堵路拉横幅，现在和保安推搡起来了"),
    "pipes on a site": ("工地门口人行道上堆满了钢管，行人只能走机动车道", "有个男的拿着钢管在小区门口追着人打"),
    "carbon monoxide": ("想咨询一下今天空气质量里一氧化碳的指数是多少", "家里一氧化碳报警器一直响，老人已经头晕了"),
    "a rant": ("楼上天天半夜装修，吵死人了，物业也不管", "楼下路口有人被车撞了，人死了，躺在地上"),
    "a lift that often traps people": ("小区电梯经常坏，业主经常被困在里面，投诉物业没有用", "电梯突然停在两层中间，我妈被困在里面喘不上气"),
    "a factory that smokes every day": ("对面工厂每天早上都冒浓烟，熏得窗户都不敢开", "对面仓库着火了，浓烟滚滚，里面好像还有人"),
    "a missing manhole cover": ("人行道上的井盖丢失了，希望有关部门尽快维修", "有个小孩掉进没有井盖的井里了，快来人"),
    "a follow-up of an earlier ticket": ("工单编号20180103138815《关于小区门口有人打架的问题》处理结果不满意", "小区门口有人打架，已经见血了"),
    "a past event, with a date": ("其于2018年1月15日被人殴打，派出所一直不处理，故来电反映", "隔壁男的正在殴打他老婆，一直在喊救命"),
    "a moral kidnapping": ("单位强制随份子，简直是道德绑架，故来电投诉", "我女儿被人绑架了，对方打电话要五十万"),
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_false_alarm_families_stay_off_110_first_and_their_twins_keep_it(router, family):
    calm, danger = FAMILIES[family]
    d = router.route(calm)
    assert d.action != "110_first" and d.source != "override", (family, d.reasons)
    d = router.route(danger)
    assert d.action == "110_first" and d.channel == "110", (family, d.reasons)


@pytest.mark.parametrize("hidden", ["\u2060", "\u00ad", "\ufe0f", "\u200b", "\u200d", "\ufeff", " ", "\u3000"])
@pytest.mark.parametrize("text", ["厨房着{}火了，快来人", "楼道里有人拿{}刀砍人", "有人落{}水了在河里扑腾"])
def test_an_invisible_character_or_a_space_inside_a_danger_word_does_not_switch_it_off(router, hidden, text):
    d = router.route(text.format(hidden))
    assert d.action == "110_first" and d.channel == "110", d.reasons


def test_traditional_characters_are_read_as_simplified(router):
    assert router.route("廚房著火了，好多煙").action == "110_first"


def test_a_now_cue_in_the_evidence_clause_cancels_the_habitual_frame(router):
    assert router.route("他经常喝酒打老婆").action == "consult"
    assert router.route("他经常喝酒打老婆，现在又在打了").action == "110_first"
    assert router.route("每天晚上都有人在楼下正在打架").action == "consult"  # both cues in one clause: habitual
    assert router.route("关于有人打架目前正在派出所处理，想咨询处理结果").action == "consult"  # the police handle it


def test_weak_evidence_follows_the_model_and_the_frames():
    engine, assess = RuleEngine.from_file(), DangerAssessor.from_file()
    text = "人行道井盖丢失"
    matches = engine.danger(text)
    assert [m.strength for m in matches] == ["weak"]
    assert assess(text, matches, p110=0.9, channel_110=0.3).action == "110_first"
    assert assess(text, matches, p110=0.4, channel_110=0.3).action == "consult"  # 110 only for recall's sake
    assert assess(text, matches, p110=0.1, channel_110=0.3).action == "consult"
    framed = "人行道井盖丢失，存在安全隐患，希望有关部门尽快处理"
    assert assess(framed, engine.danger(framed), p110=0.1, channel_110=0.3).action == "route"
    assert assess(framed, engine.danger(framed), p110=0.9, channel_110=0.3).action == "consult"


# Figures of speech and reported results in complaint titles (the shapes of the Taidi fires, stop 18;
# examples written fresh): a three-way consult at most, never "110 先行"; the twin, danger now, keeps it.
FIGURES = {
    "a rhetorical question": ("到底是谁给了这家停车场乱设卡抢钱的权力？", "路边两个人骑着摩托车抢钱，刚抢完往东跑了"),
    "a headline joined by a dash": ("被围堵的不只是道路，更是人心——某区断头路十年未通", "几十个人围堵在镇政府门口，现在和保安推起来了"),
    "a complaint about someone's conduct": ("请严查某诊所殴打病人家属的违法行为", "诊所门口有人正在殴打病人家属，这是违法行为，快来"),
    "a result already come about": ("驾校教练当众羞辱学员导致其自杀，家属要求驾校给个说法", "我同事刚才说不想活了，现在站在天台边上"),
    "a handling not yet done": ("因做胆囊手术时大出血，医院至今未对这次医疗事故进行处理", "工地上有人从架子上掉下来，头上一直在流血，叫不醒"),
    "smoke from a shed, no fire word": ("村口那个废品站的铁皮棚子浓烟滚滚", "村口废品站着火了，浓烟滚滚"),
}


@pytest.mark.parametrize("family", sorted(FIGURES))
def test_figures_of_speech_and_reported_results_do_not_get_110_first_and_their_twins_do(router, family):
    calm, danger = FIGURES[family]
    d = router.route(calm)
    assert d.action != "110_first" and d.source != "override", (family, d.reasons)
    d = router.route(danger)
    assert d.action == "110_first" and d.channel == "110", (family, d.reasons)


def test_smoke_alone_is_weak_evidence_that_follows_the_model():
    engine, assess = RuleEngine.from_file(), DangerAssessor.from_file()
    text = "楼道尽头的配电箱在冒黑烟"
    matches = engine.danger(text)
    assert [(m.rule_id, m.strength) for m in matches] == [("smoke", "weak")]
    assert assess(text, matches, p110=0.95, channel_110=0.3).action == "110_first"  # the model holds it for 110
    assert assess(text, matches, p110=0.05, channel_110=0.3).action == "consult"   # a hazard: 110 on the line
    flames = "楼道尽头的配电箱着火了，冒黑烟"
    assert assess(flames, engine.danger(flames), p110=0.05, channel_110=0.3).action == "110_first"  # a fire is strong


def test_each_action_gives_one_reason_that_matches_it(router):
    first = router.route("有人拿刀砍人")
    assert first.reasons[0].startswith("危险信号，110 先行")
    consult = router.route("工单编号123《关于有人打架的问题》处理结果")
    assert "三方通话" in consult.reasons[0] and "已有工单" in consult.reasons[0]
    assert not any("110 先行" in r for r in consult.reasons)


def test_an_unknown_frame_or_a_bad_cue_is_refused_when_loaded():
    with pytest.raises(RulesError, match="unknown danger frame"):
        DangerAssessor(frames={"weather": ["下雨"]})

