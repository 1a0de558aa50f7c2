"""Traditional → simplified mapping for the characters that matter to routing rules.

One character to one character, so a match's offsets in the mapped text are its offsets in the
original. Not a full converter (that would be OpenCC); it covers the common characters of call
summaries so that rules written in simplified Chinese also fire on 來電人稱…著火了.

>>> to_simplified("來電人稱廚房著火，無人受傷")
'来电人称厨房着火，无人受伤'
"""
from __future__ import annotations

_TRAD = (
    "來電稱報個們這裡裏話說請問將對時會從後沒無還進過現發開關門車輛機場區縣鄉鎮號樓層單區域醫院醫療護藥費錢銀貨賣買"
    "傷亡殺搶劫盜竊騙詐錯險難災溫風雲氣燈燒爆煙熱點熾灑滅燃廠礦鐵鋼鍋鑰鎖線網絡連環驗證據紀錄條務業營經濟權處罰"
    "與為這麼甚麼啊嗎呢吧聽見覺讓認識該員幫助孩兒親爺媽媽婦產墮嬰養樂歲齡壽腦頭臉體髮腳膽飯飲喚叫聲響鬧吵雜亂擾"
    "圍攔擋擠壓墜落跳樓橋窩臥躺倒廢棄堆積塊專門辦師導學習課幹陸駛駕駐標誌紅綠燈轉彎邊側們麵館廳層擁擺攤偷竊刪"
    "傳輸貸賠償補償額帳賬戶寶貝嚴重輕緊急護衛衛獄職爭執鬥毆場槍彈劍刀傷痛暈厥癱瘓療診斷檢測隊員搶救護漲潮淹沒"
    "漏縫隙裂塌壞損舊廁衝沖擊劃碼廣東邊門診陰陽熱鬧觀齊樹葉斷垂蕩蘭閃爍掛滿徑溝渠濕潤滑倉庫貓狗鳥雞鴨魚蟲龍"
    "嚇煩惱憂慮擔飢餓凍餵飼們錄視頻鏡頭監單獨屬於離婚結婚喪葬墳陵園勞動獎懲薪資償還債務訴訟們"
    "貴燙饞睏醜曬悶燻丟膩懶慪嘔鬱"
)
_SIMP = (
    "来电称报个们这里里话说请问将对时会从后没无还进过现发开关门车辆机场区县乡镇号楼层单区域医院医疗护药费钱银货卖买"
    "伤亡杀抢劫盗窃骗诈错险难灾温风云气灯烧爆烟热点炽洒灭燃厂矿铁钢锅钥锁线网络连环验证据纪录条务业营经济权处罚"
    "与为这么甚么啊吗呢吧听见觉让认识该员帮助孩儿亲爷妈妈妇产堕婴养乐岁龄寿脑头脸体发脚胆饭饮唤叫声响闹吵杂乱扰"
    "围拦挡挤压坠落跳楼桥窝卧躺倒废弃堆积块专门办师导学习课干陆驶驾驻标志红绿灯转弯边侧们面馆厅层拥摆摊偷窃删"
    "传输贷赔偿补偿额帐账户宝贝严重轻紧急护卫卫狱职争执斗殴场枪弹剑刀伤痛晕厥瘫痪疗诊断检测队员抢救护涨潮淹没"
    "漏缝隙裂塌坏损旧厕冲冲击划码广东边门诊阴阳热闹观齐树叶断垂荡兰闪烁挂满径沟渠湿润滑仓库猫狗鸟鸡鸭鱼虫龙"
    "吓烦恼忧虑担饥饿冻喂饲们录视频镜头监单独属于离婚结婚丧葬坟陵园劳动奖惩薪资偿还债务诉讼们"
    "贵烫馋困丑晒闷熏丢腻懒怄呕郁"  # the states of hyperbole (冻死人了, 油烟熏死人了): rules.yaml's injury rule
)
assert len(_TRAD) == len(_SIMP), (len(_TRAD), len(_SIMP))
_TABLE = {ord(t): s for t, s in zip(_TRAD, _SIMP) if t != s}
_TABLE[ord("著")] = "着"
_TABLE[ord("廚")] = "厨"


def to_simplified(text: str) -> str:
    """Map common traditional characters to simplified ones, character for character."""
    return text.translate(_TABLE)
