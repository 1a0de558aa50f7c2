import pytest

from data.hanzi import to_simplified
from model.rules import Rule, RuleEngine, RulesError

ENGINE = RuleEngine.from_file()


@pytest.mark.parametrize(
    "text, department",
    [
        ("三楼厨房着火了，有浓烟", "fire"),
        ("來電人稱樓道裡電動車著火了", "fire"),  # traditional characters
        ("有人拿刀在小区门口砍人", "police_criminal"),
        ("对方让我现在转账到安全账户", "police_criminal"),
        ("楼下两伙人打起来了", "police_public_order"),
        ("以前打过他，现在又在打了", "police_public_order"),
        ("昨晚被打了，现在头还在流血", "police_rescue"),
        ("好像有人受伤了，倒在地上", "police_rescue"),  # a hedge still fires: 110 acts first
        ("不知道有没有人受伤", "police_rescue"),
        ("有人站在楼顶要跳楼", "police_rescue"),
        ("孩子被反锁在家里，灶上还开着火", "police_rescue"),
        ("电线掉在马路上一直冒火花", "police_rescue"),
        ("楼道里一股煤气味", "police_rescue"),
        ("我家老人走失了", "police_rescue"),
        ("讨薪被老板的人围了", "police_public_order"),
        # the audit's exclusions keep the real cases
        ("我女儿走丢了，还牵着我家的狗", "police_rescue"),
        ("孩子掉水里了，快来人", "police_rescue"),
        ("今晚被两名男子持钢管殴打，头部出血，现伤者已送往医院", "police_criminal"),
        ("厨房着火了，火很大", "fire"),
    ],
)
def test_danger_fires(text, department):
    found = ENGINE.danger(text)
    assert found, text
    assert found[0].department == department
    assert found[0].evidence in text or found[0].span[1] > found[0].span[0]


@pytest.mark.parametrize(
    "text",
    [
        "车子剐蹭了一下，没有人受伤",
        "没人受伤，就是车灯碎了",
        "以前被打过，想咨询怎么起诉",
        "上周被人打了，想问伤情鉴定去哪做",
        "暂无人员受困或车辆被困",
        "目前無人被困",
        "热水器都打不着火，水压太低",
        "前天她坐公交摔在站台上骨折了，想找公交公司赔偿",
        "其子曾在游船上差点落水，要求景区配救生衣",
        "我家的狗走丢了",
        "饭店油烟太大，熏得窗户都是油",
        "小区消防通道被堵，存在火灾隐患",
        "这家店跳楼价甩卖是不是虚假宣传",
        # found by auditing the override's false alarms on the corpus train split (stop 11)
        "我的狗丢了，一只黑色的拉布拉多，昨天傍晚在公园那边走丢的",
        "小区里有只流浪狗一直跟着我，应该是谁家走丢的，想帮它找主人",
        "我养的信鸽飞出去没回来，听说有人会捡到迷路的鸽子",
        "漂流翻船了，现在人都没事，就是手机掉水里了，景区说不管",
        "管道漏水把土冲走了，路面往下沉",
        "我站在桥上掏东西的时候，车钥匙掉到河里去了",
        "变压器在冒烟，哦不是烟，我看清楚了，是水汽",
        "天然气最近火苗特别小，烧一壶水要二十分钟",
        "包工头不给钱，大家心里都憋着火",
        "一只猫在电表箱里叫了两天，疑似被困",
        "我前几年因为打架被行政拘留过，现在能开无犯罪记录证明吗",
        "上个礼拜我妈晕倒叫了救护车，收了八百多",
    ],
)
def test_danger_does_not_fire_on_negation_past_or_figures_of_speech(text):
    assert ENGINE.danger(text) == [], [m.rule_id for m in ENGINE.danger(text)]


@pytest.mark.parametrize(
    "text, fires",
    [
        # a simile, hyperbole or a rhetorical question around a danger word is not evidence (rules.yaml cues.figures)
        ("停车场一小时收二十块，简直是抢钱", False),
        ("物业费涨成这样，跟抢劫没两样", False),
        ("景区门票三百八，这不就是抢钱吗", False),
        ("捆绑收费，变相抢劫", False),
        ("一碗面八十八，抢钱呀这是", False),
        ("办公室没空调，热得跟着火了一样", False),
        ("宿舍暖气不热，冻死人了", False),
        ("排队三个小时，愁死人了", False),
        ("樓下飯館油煙燻死人了", False),  # traditional characters
        ("这价格跟抢钱有什么区别", False),
        # the literal twins still fire: a hedge, a robber's own line, a crime word beside a simile elsewhere
        ("有人抢钱啊，快来人", True),
        ("快来，这是抢劫，他手里有刀", True),
        ("我女儿好像被绑架了", True),
        ("楼下好像着火了", True),
        ("刚才有个人抢了我的包，跑得跟兔子一样快", True),
        ("有人被车撞了，撞死人了", True),
    ],
)
def test_figures_of_speech_are_not_evidence_and_their_literal_twins_are(text, fires):
    assert bool(ENGINE.danger(text)) is fires, [m.rule_id for m in ENGINE.danger(text)]


@pytest.mark.parametrize(
    "text, fires",
    [
        ("车间里突然有股刺鼻的气味，好几个工人头晕想吐", True),
        ("办公室里味道很怪，同事们都胸闷喘不上气", True),
        ("多人恶心呕吐，楼道里一股怪味", True),
        ("孩子班上多人呕吐腹泻，是不是诺如病毒", False),  # an illness going round, no smell
        ("楼下饭店油烟味道太大，熏得我头晕", False),  # one person, a nuisance
        ("去年装修时味道很大，好几个人都头晕，想咨询甲醛检测", False),  # not now
    ],
)
def test_several_people_ill_from_a_smell_is_a_poisoning(text, fires):
    assert any(m.rule_id == "toxic_exposure" for m in ENGINE.danger(text)) is fires, [m.rule_id for m in ENGINE.danger(text)]


@pytest.mark.parametrize(
    "text, rule",
    [
        ("其女儿（15岁）昨天下午外出，至今未归，电话关机", "missing_person"),
        ("患阿尔茨海默病的父亲上午出门后下落不明", "missing_person"),
        ("一名男子坐于大桥护栏外侧，情绪低落", "suicide"),
        ("人行天桥上广告牌螺栓脱落，大风中摇晃厉害，桥下人来人往", "hazard_public"),
        ("报警人称刚才被两名保安推搡致伤，对方仍在现场", "violence_now"),
        ("广场一根路灯杆底座锈断，灯杆明显倾斜，下方有人跳舞", "hazard_public"),
        ("两名儿童在鱼塘冰面上玩耍，冰面已出现裂纹", "disaster"),
        ("小区公共区域出租收益去向不明，要求公开账目", None),
        ("我哥离家出走好多年了，拆迁款要他签字，要办什么手续", None),
        ("咨询被打伤后怎么做伤残鉴定", None),
    ],
)
def test_the_written_register_of_records_is_evidence_too(text, rule):
    """Records say 至今未归 and 下落不明 where callers say 没回家 and 找不到了."""
    fired = {m.rule_id for m in ENGINE.danger(text)}
    assert (rule in fired) if rule else not fired, fired


def test_route_rules_give_departments():
    assert ENGINE.opinion("我的车被堵了，麻烦挪车")[0] == "convenience"
    assert ENGINE.opinion("小区停电了")[0] == "utilities"
    assert ENGINE.opinion("老板拖欠工资三个月")[0] == "labor_social_security"
    assert ENGINE.opinion("今天天气不错")[0] is None


def test_danger_outranks_route_in_opinion():
    dep, score, support = ENGINE.opinion("讨薪的时候老板拿刀砍人")
    assert dep == "police_criminal" and support[0].kind == "danger" and score > 0


def test_bad_rules_are_refused(tmp_path):
    with pytest.raises(RulesError, match="kind must be"):
        Rule(id="x", department="fire", patterns=["火"], reason="r", kind="maybe")
    with pytest.raises(RulesError, match="bad pattern"):
        Rule(id="x", department="fire", patterns=["re:(unclosed"], reason="r")
    (tmp_path / "r.yaml").write_text("rules:\n  - {id: a, department: nowhere, patterns: [x]}\n", encoding="utf-8")
    with pytest.raises(RulesError, match="unknown department"):
        RuleEngine.from_file(tmp_path / "r.yaml")
    (tmp_path / "d.yaml").write_text("rules:\n  - {id: a, department: fire, patterns: [x]}\n  - {id: a, department: fire, patterns: [y]}\n")
    with pytest.raises(RulesError, match="unique"):
        RuleEngine.from_file(tmp_path / "d.yaml")


def test_rules_file_is_data_not_code(tmp_path):
    (tmp_path / "r.yaml").write_text(
        "rules:\n  - {id: bees, kind: danger, department: police_rescue, patterns: [马蜂], reason: 马蜂伤人, links: ['120']}\n",
        encoding="utf-8",
    )
    m = RuleEngine.from_file(tmp_path / "r.yaml").danger("院子里好多马蜂")[0]
    assert (m.rule_id, m.links, m.reason) == ("bees", ("120",), "马蜂伤人")


def test_the_literal_index_finds_exactly_what_trying_every_rule_finds():
    """matches() only tries the rules whose literals occur in the text (or that have a regular
    expression); the answers must equal those of trying every rule, on the whole corpus."""
    import json
    from pathlib import Path

    engine = RuleEngine.from_file()
    corpus = Path(__file__).resolve().parents[2] / "data" / "corpus"
    texts = [json.loads(line)["text"] for f in ("train.jsonl", "test.jsonl") for line in (corpus / f).read_text(encoding="utf-8").splitlines()]
    texts += ["火", "着火了", "", "有人拿刀", "來電人稱廚房著火"]
    for text in texts:
        simple = to_simplified(text)
        every = sorted((m for r in engine.rules if (m := r.match(simple, engine.negation)) is not None), key=lambda m: -m.priority)
        assert engine.matches(text) == every, text


@pytest.mark.parametrize(
    "text, rule",
    [
        # someone gone down into a confined space who does not come up (gas, no oxygen): the rescuer is next
        ("污水井里一个工人下去疏通后晕倒了，上面的人喊他也不应", "confined_space"),
        ("沼气池清理，我叔下池后就没上来，我们不敢下去", "confined_space"),
        ("化粪池的井盖没盖好，过路的人容易掉进去", None),  # a hazard to repair, nobody in it
        # a fire lit indoors for warmth and someone with the signs of carbon monoxide: one person is enough
        ("天冷我奶奶在卧室里生了个煤炉，刚才她说头晕想吐，站都站不稳", "toxic_exposure"),
        ("楼下烧烤摊炭火烟太大，呛得我头疼，请环保部门管管", None),  # a nuisance outdoors
        # an animal attacking someone now
        ("小区一条大狗正在扑咬一个小孩，主人拉不住", "animal_attack"),
        ("放学路上学生被马蜂围攻，好几个蜇得满脸包", "animal_attack"),
        ("上周被邻居家狗咬伤了，想问狂犬疫苗在哪打", None),
        # driving made dangerous by the driver or a passenger (妨害安全驾驶)
        ("公交车上一个乘客在抢方向盘，车在高架上", "dangerous_driving"),
        ("出租车司机一边开车一边跟乘客对骂，车开得歪歪扭扭", "dangerous_driving"),
        ("网约车司机边开车边打电话，投诉他", None),
        # climbing up high and threatening to jump (the wage-arrears protest on a crane)
        ("工友爬上了塔吊，说再不发工资就跳下去", "suicide"),
        ("物业工人爬上楼顶维修水箱", None),
        # a person in a dangerous place at height, a suspected bomb, a venomous snake in a bedroom
        ("隔壁小孩从窗户爬出去，现在坐在防盗网上", "fall_risk"),
        ("师傅正在给我家安装防盗网，站在窗外作业，这个收费合理吗", None),
        ("商场门口有个纸箱放了一上午，里面滴滴响，还露出几根电线", "suspicious_object"),
        ("快递柜里的包裹一直滴滴响，是不是机器坏了", None),
        ("宝宝房间里钻进一条眼镜蛇，就在婴儿床边上", "animal_attack"),
        ("院子里看见一条竹叶青，客人都在屋里，想找人来抓", None),
        # prevention devices and campaigns are not a person missing or drowning
        ("老人上次走失已经找到了，想申请防走失手环", None),
        # the signs of a medical crisis, not its name: breathing, colour, no answer, poison swallowed, many ill at once
        ("地铁车厢里一个乘客突然喘不上气，脸色发青", "acute_illness"),
        ("请问呼吸困难的慢性病门诊怎么办理医保", None),
        ("公交车上一位老人晕乎乎的，叫他没反应", "acute_illness"),
        ("我奶奶把老鼠药当成糖吃了一颗", "acute_illness"),
        ("小区里有人乱放老鼠药，怕毒到小孩，请物业管管", None),
        ("公司食堂午饭后二十多个员工上吐下泻，有人站不起来", "acute_illness"),
        ("上个月婚宴后十几个人拉肚子，想投诉酒店", None),
        # a vehicle out of control now, not a fault taken to a garage
        ("大货车刹车失灵了正往坡下冲", "vehicle_failure"),
        ("新买的车刹车失灵，4S店不给退", None),
        # a boat with people on it listing or taking on water
        ("渡船进水了在往下沉，船上十几个人", "boat_danger"),
        ("码头停放的旧船进水了，请海事部门拖走", None),
        # a feared future is not evidence, even after 怕; the event itself is
        ("楼上阳台的花盆没护栏，怕哪天掉下来砸到人", None),
        ("工地塔吊晃得厉害，迟早砸到人", None),
        ("楼上的花盆掉下来砸到人了", "hazard_person"),
        # a threat with intent and means, or announced in words; a past one, or one in a drama, is not evidence
        ("病人家属说买好了汽油正在来医院的路上，要找主治医生算账", "threat_means"),
        ("前夫发短信扬言要泼她硫酸", "threat_means"),
        ("上个月他扬言要杀我，想咨询怎么申请人身保护令", None),
        ("这部电视剧里反派扬言要血洗全城，内容太暴力，想投诉", None),
    ],
)
def test_more_kinds_of_danger_and_their_calm_twins(text, rule):
    fired = {m.rule_id for m in ENGINE.danger(text)}
    assert (rule in fired) if rule else not fired, fired


@pytest.mark.parametrize(
    "text",
    [
        "之前投诉过暖气不热，没人来修。我爸就在屋里放了个炭盆，我刚给他打电话，他说头疼想吐",  # cues inside a long mention
        "上次反映过小区有狗不拴绳，现那条狗正追咬一个老人",  # a ticket's clause-opening 现 is "now"
    ],
)
def test_a_present_cue_after_an_earlier_report_makes_the_danger_now(text):
    assert ENGINE.danger(text), "the earlier report placed present danger in the past"



@pytest.mark.parametrize(
    "text, fires",
    [
        # a transcript: the operator's yes/no question names the danger; the caller's answer decides
        ("坐席：有没有人受伤？群众：没有，就是车刮了一下。", False),
        ("坐席：有没有人受伤？群众：有！两个人倒在地上流血。", True),
        ("接线员：有没有闻到煤气味？气罐有没有漏气？来电人：没有没有，就是问价钱。", False),  # two questions, one answer
        ("接线员：有没有闻到煤气味？来电人：有，味道很大，越来越冲。", True),
        ("话务员：您看到有明火吗？市民：那倒没有，就是油烟呛人。", False),
        ("是不是有人落水了？没看清，好像有人在水里扑腾", True),  # a caller's own question, not answered "no"
        ("接线员：有没有看到明火？烟是从哪来的？来电人：没有火，没有火，就是烟头味。", False),  # the "no" echoes the question
        ("坐席：老人有没有意识？家属：没有，怎么叫都不醒", True),  # a "no" to an absence confirms the danger
        # a claim taken back: corrected with the same words negated, a belief given up (以为), a record's 先称
        ("我刚才说着火了——不对不对，说错了，不是着火，是烧秸秆", False),
        ("河边有人落水了，在XX路——不对，说错了，是YY路那边，人还在水里扑腾", True),  # the address was corrected
        ("那个男的在店里打人，被拉开了还说自己没打人，现在还在骂", True),  # a denial is not a correction
        ("我以为他晕倒了，过去一看他在睡觉", False),
        ("我以为是烧烤，现在看窗户里面冒火了，烟很大", True),
        ("来电人先称“被人抢了”，经询问，系借款纠纷", False),
        ("来电人先称只是吵架，经询问，现对方已持刀砍伤其丈夫", True),
        ("他在电话里说：别以为我不敢砍你，我现在就拿刀过来", True),
        # 前两天 places what follows in the past, as 前几天 does
        ("前两天他在电话里跟我说想不开，后来说就是说说，想问欠薪怎么投诉", False),
    ],
)
def test_the_call_itself_can_take_a_mention_back(text, fires):
    assert bool(ENGINE.danger(text)) == fires, [m.rule_id for m in ENGINE.danger(text)]
