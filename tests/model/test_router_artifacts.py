import json

import pytest

from model.artifacts import ModelLoadError, load_model
from model.router import Router


def test_model_folder_is_self_describing_and_round_trips(tiny_model_dir):
    names = {p.name for p in tiny_model_dir.iterdir()}
    assert {"config.json", "model.joblib", "label_maps.json", "taxonomy.json", "metrics.json", "README.md", "train_config.json"} <= names
    cfg = json.loads((tiny_model_dir / "config.json").read_text(encoding="utf-8"))
    assert cfg["model_class"] == "linear" and len(cfg["training_data_sha256"]) == 64
    assert 0 < cfg["thresholds"]["channel_110"] <= 0.5 and "review" in cfg["thresholds"]
    model = load_model(tiny_model_dir)
    assert model.classes == cfg["labels"]
    assert "validation_out_of_fold" in model.metrics
    assert "110 recall" in (tiny_model_dir / "README.md").read_text(encoding="utf-8")


def test_corrupt_or_missing_model_is_refused(tiny_model_dir, tmp_path):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(tiny_model_dir, bad)
    (bad / "model.joblib").write_bytes(b"garbage")
    with pytest.raises(ModelLoadError, match="checksum"):
        load_model(bad)
    (bad / "config.json").unlink()
    with pytest.raises(ModelLoadError, match="no config.json"):
        load_model(bad)


def test_router_with_model(tiny_model_dir):
    router = Router(load_model(tiny_model_dir))
    d = router.route("家里停水一整天了")
    assert (d.channel, d.department, d.source) == ("12345", "utilities", "model")
    assert d.model_version == router.model.version and 0 < d.confidence <= 1
    assert len(d.alternatives) == 3 and d.department not in [a.department for a in d.alternatives]
    assert any("模型判断" in r for r in d.reasons)


def test_danger_override_beats_the_model(tiny_model_dir):
    router = Router(load_model(tiny_model_dir), channel_110=0.99)  # a model that almost never says 110
    d = router.route("家里停水了，邻居家着火了冒黑烟")
    assert d.channel == "110" and d.source == "override" and d.danger
    assert "119" in d.links and d.needs_review
    assert any("110 先行处置" in r for r in d.reasons)


def test_rules_only_router():
    router = Router(None)
    d = router.route("有人在楼顶要跳楼")
    assert (d.channel, d.department, d.source, d.model_version) == ("110", "police_rescue", "override", None)
    d = router.route("今天天气不错")
    assert d.source == "rules" and d.needs_review and d.channel == "12345"


def test_model_exception_falls_back_to_rules(tiny_model_dir):
    router = Router(load_model(tiny_model_dir))

    def boom(texts):
        raise RuntimeError("broken")

    router.model.classifier.predict_proba = boom
    router.model.classifier.predict_proba_features = boom
    d = router.route("我的车被堵了")
    assert d.source == "rules" and d.department == "convenience" and router.model_errors == 1
    assert "模型出错" in d.reasons[0]


def test_low_confidence_goes_to_review_with_rules_opinion(tiny_model_dir):
    router = Router(load_model(tiny_model_dir), review_threshold=1.01)
    d = router.route("小区停电了")
    assert d.needs_review


def test_a_text_without_chinese_is_never_accepted_without_review(tiny_model_dir):
    router = Router(load_model(tiny_model_dir))
    for text in ["qwerty zzz 4", "asdf", "hello 110"]:
        d = router.route(text)
        assert d.needs_review and any("没有中文" in r for r in d.reasons), (text, d)
    assert not router.route("家里停水了什么时候来水").reasons[0].startswith("摘要中没有中文")


def test_the_platform_that_wrote_a_summary_does_not_move_the_model(tmp_path):
    """110's records call every caller 报警人, 12345's tickets 来电人: trained on data where the role word
    follows the line, the model still reads a 110 hand-over of a water cut by its matter (the role words
    are neutral in training and in routing)."""
    from tests.factories import tiny_rows, write_jsonl
    from training.train import TrainConfig, train

    rows = [{**r, "text": ("报警人称" if r["channel"] == "110" else "来电人称") + r["text"]} for r in tiny_rows()]
    out = tmp_path / "model"
    train(TrainConfig(data=[str(write_jsonl(tmp_path / "rows.jsonl", rows))], out=str(out), val_folds=3), progress=False)
    router = Router(load_model(out))
    as_110, as_12345 = router.route_batch(["报警人称家里停水一整天了", "来电人称家里停水一整天了"])
    assert (as_110.channel, as_110.department) == ("12345", "utilities")
    assert as_110.channel_confidence == pytest.approx(as_12345.channel_confidence)
    assert router.route("求助人称家里停水一整天了").confidence == pytest.approx(as_12345.confidence)


def test_a_summary_in_traditional_characters_reads_as_its_simplified_twin(tmp_path):
    """Trained on simplified rows only, the model reads 來電人稱家裏停水 as 来电人称家里停水: both the
    classifier, the rules and the danger frames see simplified characters (data.hanzi), in training and in routing."""
    from data.hanzi import to_simplified
    from tests.factories import tiny_rows, write_jsonl
    from training.train import TrainConfig, train

    out = tmp_path / "model"
    train(TrainConfig(data=[str(write_jsonl(tmp_path / "rows.jsonl", tiny_rows()))], out=str(out), val_folds=3), progress=False)
    router = Router(load_model(out))
    traditional = "來電人稱家裏停水一整天了，樓裏的老人沒水喝"
    simplified = to_simplified(traditional)
    assert simplified == "来电人称家里停水一整天了，楼里的老人没水喝"
    trad, simp = router.route_batch([traditional, simplified])
    assert (trad.channel, trad.department) == (simp.channel, simp.department) == ("12345", "utilities")
    assert trad.confidence == pytest.approx(simp.confidence)
    # the danger assessor reads the simplified text too: a complaint frame written 投訴 is a complaint frame
    complaint = "市民投訴房東：出租屋燃氣熱水器裝在衛生間內，室友洗澡已一個多小時未出來，門縫有明顯燃氣味"
    trad, simp = router.route_batch([complaint, to_simplified(complaint)])
    assert trad.action == simp.action == "consult"
    assert (trad.channel, trad.department, trad.reasons) == (simp.channel, simp.department, simp.reasons)


def test_the_classifier_does_not_read_what_the_call_took_back(tiny_model_dir):
    """A call-taker's question answered "no", a claim the caller corrects and a claim the record replaced
    (先称) are cut from what the classifier reads (model.cues.NegationCues.taken_back); the rules still read everything."""
    router = Router(load_model(tiny_model_dir))
    classifier = router.model.classifier
    seen: list[str] = []
    score = classifier.predict_proba_with_features
    classifier.predict_proba_with_features = lambda texts: (seen.extend(texts), score(texts))[1]
    calls = ["坐席：有没有人打架？有没有人受伤？群众：没有没有，就是家里停水一整天了",
             "刚才说楼下有人打架，我说错了，是楼里停水一整天了",
             "来电人先称楼下有人打架，经询问，系家里停水一整天了在吵"]
    asked, corrected, believed = router.route_batch(calls)
    assert len(seen) == 3 and not any("打架" in t for t in seen) and all("停水一整天" in t for t in seen), seen
    assert not router.rules.danger(calls[0]) and (asked.channel, asked.department) == ("12345", "utilities")
    assert corrected.action == "110_first"  # the rules read the whole text: a claim corrected without its words negated stands
    assert "先称" not in seen[2] and believed.channel == "12345"


def test_a_police_matter_raised_second_brings_110_into_the_call(tiny_model_dir):
    """A 12345 complaint "另外" a theft: the whole text reads as 12345, its second matter alone as 110,
    so the call-taker is asked for a three-way call; one matter, or two 12345 ones, route as before."""
    from model.matters import split_matters
    from tests.factories import TINY

    router = Router(load_model(tiny_model_dir))
    water, theft, lights = "，".join(TINY["utilities"][:8]), TINY["police_criminal"][0], TINY["utilities"][9]
    mixed = f"{water}；另外，{theft}"  # the 12345 matters dominate the whole text
    assert split_matters(mixed) == [water, theft] and split_matters(water) == [water]
    alone, both = router.route_batch([mixed, f"{water}；另外，{lights}"])
    assert alone.channel == "12345" and alone.action == "consult", alone
    assert any("另一事项" in r for r in alone.reasons)
    assert both.action == "route" and not any("另一事项" in r for r in both.reasons)
