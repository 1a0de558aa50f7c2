import pytest

from data.cleaning import BoilerplateStripper, dedup_key, normalize_text
from data.splitting import max_overlap, split_indices
from data.taxonomy import Taxonomy, TaxonomyError, default_taxonomy, load_taxonomy, normalise_channel


def test_normalize_width_and_whitespace():
    assert normalize_text("　ＡＢＣ１２３　有人\t\t打架 ， 快来\u200b ") == "ABC123 有人打架,快来"


def test_normalize_drops_invisible_characters_and_spaces_inside_chinese_words():
    for hidden in ["\u2060", "\u00ad", "\ufe0f", "\u200b", "\u200d", "\u200e", "\u202e", "\ufeff", "\U000e0041", " ", "\u3000", "\t"]:
        assert normalize_text(f"着{hidden}火了") == "着火了", repr(hidden)
    assert normalize_text("call 110 now, 车牌 琼A 12345") == "call 110 now,车牌琼A 12345"  # a space next to Latin letters or digits stays


def test_boilerplate_stripped():
    strip = BoilerplateStripper()
    assert strip("市民反映路口有车辆违停，请交警核实处理。") == "市民反映路口有车辆违停"
    assert strip("楼下夜间施工噪音（请职能局按规定在30分钟内联系市民）") == "楼下夜间施工噪音"
    assert BoilerplateStripper([r"转\S+处理"])("有人打架转派出所处理") == "有人打架"


def test_default_taxonomy_contract():
    tax = default_taxonomy()
    assert len(tax.codes) == 17
    assert tax.codes_for("110") == ["police_criminal", "police_public_order", "police_traffic", "police_rescue", "fire", "police_conduct"]
    assert tax["fire"].links == ("119",)
    with pytest.raises(TaxonomyError, match="unknown department"):
        tax["nope"]


def test_taxonomy_roundtrip_and_city_file(tmp_path):
    tax = default_taxonomy()
    tax.save(tmp_path / "t.json")
    assert load_taxonomy(tmp_path / "t.json").to_dict() == tax.to_dict()
    (tmp_path / "city.yaml").write_text(
        "name: haikou\ndepartments:\n  - {code: 市公安局, channel: '110'}\n  - {code: 市水务局, channel: '12345'}\n", encoding="utf-8"
    )
    city = load_taxonomy(tmp_path / "city.yaml")
    assert city.channel_of("市公安局") == "110" and city["市水务局"].name == "市水务局"


def test_bad_taxonomy_files(tmp_path):
    (tmp_path / "a.yaml").write_text("departments:\n  - {code: x, channel: '119'}\n", encoding="utf-8")
    with pytest.raises(TaxonomyError, match="channel must be one of"):
        load_taxonomy(tmp_path / "a.yaml")
    (tmp_path / "b.yaml").write_text("departments: [{code: x, channel: '110'}, {code: x, channel: '110'}]", encoding="utf-8")
    with pytest.raises(TaxonomyError, match="declared twice"):
        load_taxonomy(tmp_path / "b.yaml")


def test_taxonomy_inferred_from_labels():
    deps = ["公安局", "公安局", "水务局", "交警支队", "交警支队"]
    tax = Taxonomy.from_labels(deps, channels=["yes", "yes", "no", None, None], channel_map={"交警支队": "110"})
    assert tax.channel_of("公安局") == "110" and tax.channel_of("水务局") == "12345" and tax.channel_of("交警支队") == "110"
    assert Taxonomy.from_labels(["教育局"]).channel_of("教育局") == "12345"


def test_normalise_channel():
    assert [normalise_channel(v) for v in ["110", 110.0, "yes", "否", "12345"]] == ["110", "110", "110", "12345", "12345"]
    with pytest.raises(TaxonomyError):
        normalise_channel("119")


def test_split_is_deterministic_stratified_and_keeps_identical_texts_together():
    texts = [f"第{i % 30}号事情 {'甲乙丙丁'[i % 4]}" for i in range(120)]
    texts += ["重复的文本"] * 6
    labels = [("a", "b", "c")[i % 3] for i in range(126)]
    tr1, te1 = split_indices(texts, labels, test_size=0.2, seed=1)
    tr2, te2 = split_indices(texts, labels, test_size=0.2, seed=1)
    assert list(te1) == list(te2)
    train_keys = {dedup_key(texts[i]) for i in tr1}
    assert not any(dedup_key(texts[i]) in train_keys for i in te1)
    shares = [sum(1 for i in te1 if labels[i] == l) / len(te1) for l in "abc"]
    assert all(0.2 < s < 0.46 for s in shares)


def test_near_duplicate_split_and_overlap():
    texts = ["小区门口有人打架快来人", "小区门口有人打架快来人啊", "家里停水了", "家里停水了呀", "路灯坏了", "路灯坏了很久", "车被堵了", "车被堵了请挪车"] * 1
    labels = ["a", "a", "b", "b", "a", "a", "b", "b"]
    tr, te = split_indices(texts, labels, test_size=0.5, seed=0, near_duplicate_threshold=0.5)
    assert max_overlap([texts[i] for i in te], [texts[i] for i in tr]).max() < 0.5
