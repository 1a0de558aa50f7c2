"""With a city's own departments, every department the router names is the city's: the danger
override, the rules' opinions and the alternatives never answer with a code the city doesn't have."""
from __future__ import annotations

import json
import logging

import pytest

from model.artifacts import load_model
from model.router import SERVICE_DESK_110, Router
from tests.factories import tiny_rows, write_jsonl
from training.train import TrainConfig, train

CITY = {"police_public_order": "市公安局", "police_criminal": "市公安局", "convenience": "城管便民中心", "utilities": "水务集团"}


def city_model(tmp_path, channel_map: dict | None, taxonomy: dict | None = None):
    rows = [{"text": r["text"], "处置单位": CITY[r["department"]]} for r in tiny_rows()]
    data = write_jsonl(tmp_path / "city.jsonl", rows)
    kw = {}
    if channel_map is not None:
        (tmp_path / "map.json").write_text(json.dumps(channel_map, ensure_ascii=False), encoding="utf-8")
        kw["channel_map"] = str(tmp_path / "map.json")
    if taxonomy is not None:
        import yaml

        (tmp_path / "tax.yaml").write_text(yaml.safe_dump(taxonomy, allow_unicode=True), encoding="utf-8")
        kw["taxonomy"] = str(tmp_path / "tax.yaml")
    out = tmp_path / "model"
    train(TrainConfig(data=[str(data)], out=str(out), label_column="处置单位", val_folds=3, **kw), progress=False)
    return load_model(out)


def named(d) -> set[str]:
    return {d.department} | {a.department for a in d.alternatives}


DANGER = ["楼道里有人拿刀砍人", "三楼厨房着火了", "路口车祸，司机撞人后逃逸了", "有人落水了", "工单编号1《关于有人打架的问题》处理结果"]


def test_override_and_alternatives_name_only_the_citys_departments(tmp_path):
    model = city_model(tmp_path, {"市公安局": "110"})
    router = Router(model)
    for text in DANGER + ["钥匙锁家里了", "停水了", "邻居家着火了"]:
        d = router.route(text)
        assert named(d) <= set(model.taxonomy.codes), (text, named(d))
    d = router.route("楼道里有人拿刀砍人")
    assert (d.action, d.channel, d.department) == ("110_first", "110", "市公安局")


def test_a_city_without_110_departments_gets_the_110_service_desk(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        model = city_model(tmp_path, None)
    assert "NO CHANNEL INFORMATION" in caplog.text
    assert model.metrics["channel_information"] is False
    assert "No channel information" in (tmp_path / "model" / "README.md").read_text(encoding="utf-8")
    d = Router(model).route("楼道里有人拿刀砍人")
    assert (d.action, d.channel, d.department, d.department_name) == ("110_first", "110", SERVICE_DESK_110, "110 报警服务台")
    assert not (named(d) - {SERVICE_DESK_110}) - set(model.taxonomy.codes)


def test_a_department_that_covers_a_default_code_takes_the_rules_evidence():
    from data.taxonomy import Taxonomy
    from model.rules import RuleEngine

    taxonomy = Taxonomy.from_dict({"name": "city", "departments": [
        {"code": "市公安局", "channel": "110"},
        {"code": "交警支队", "channel": "110", "covers": ["police_traffic"]},
        {"code": "城管便民中心", "channel": "12345", "covers": ["convenience"]},
        {"code": "水务集团", "channel": "12345", "covers": ["utilities"]},
    ]})
    router = Router(None, rules=RuleEngine.from_file(taxonomy=taxonomy))  # rules only: the rules' own opinions
    d = router.route("有人酒驾逆行，横冲直撞")
    assert (d.action, d.channel, d.department) == ("110_first", "110", "交警支队")
    d = router.route("有辆车挡住了我家车库门，麻烦挪车")
    assert (d.action, d.channel, d.department) == ("route", "12345", "城管便民中心")
    d = router.route("楼道里有人拿刀砍人")  # police_criminal: covered by no one, so the first 110 department
    assert d.department == "市公安局"


def test_reasons_never_contradict_the_suggestion():
    router = Router(None)
    d = router.route("邻居家厨房着火了，浓烟很大")
    assert d.department == "fire"
    assert not any("邻里" in r for r in d.reasons), d.reasons


@pytest.mark.parametrize("filler", ["了", "把", "有人"])
def test_explanations_carry_no_filler(tiny_model_dir, filler):
    router = Router(load_model(tiny_model_dir))
    for text in ["小区停电了把电梯也停了", "有人把我家的门锁弄坏了", "有人在楼下打架了"]:
        d = router.route(text)
        terms = [r.split("关键词：")[1].split("、") for r in d.reasons if "关键词：" in r]
        assert all(filler != t for ts in terms for t in ts), d.reasons


def test_110_first_on_a_12345_matter_names_who_takes_the_ticket_after_110_has_acted(tmp_path):
    """先期处置后转办: an override keeps the model's own 12345 department as the follow-up, in the city's
    taxonomy; a decision that was 110 anyway, or not 110 先行, has none."""
    model = city_model(tmp_path, None)  # every city department is 12345: each 110 先行 is an override
    router = Router(model)
    firsts = [d for d in map(router.route, DANGER + ["邻居家着火了"]) if d.action == "110_first"]
    assert firsts
    for d in firsts:
        assert d.source == "override" and d.follow_up == d.model_department
        assert d.follow_up in model.taxonomy.codes and d.follow_up_name == model.taxonomy[d.follow_up].name
    assert router.route("钥匙锁家里了").follow_up is None
    (tmp_path / "police").mkdir()
    police = Router(city_model(tmp_path / "police", {"市公安局": "110"}))
    for d in map(police.route, DANGER):
        assert d.follow_up is None or (d.source == "override" and police.taxonomy.channel_of(d.follow_up) == "12345")
