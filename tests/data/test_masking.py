import pytest

from data.masking import mask_pii


@pytest.mark.parametrize(
    "text, must_vanish, placeholder",
    [
        ("报警人电话13812345678，速来", "13812345678", "[手机号]"),
        ("联系电话：139 1234 5678", "139 1234 5678", "[手机号]"),
        ("回拨+86-186-0000-1111", "186-0000-1111", "[手机号]"),
        ("座机0571-88776655找王先生", "88776655", "[座机]"),
        ("身份证号32010219870506123X被冒用", "32010219870506123X", "[身份证号]"),
        ("老身份证号320102870506123", "320102870506123", "[身份证号]"),
        ("卡号6222 0212 3456 7890 123被盗刷", "6222 0212 3456 7890 123", "[银行卡号]"),
        ("车牌苏F·3K2B7的车堵门", "苏F·3K2B7", "[车牌]"),
        ("新能源车浙A12345D追尾", "浙A12345D", "[车牌]"),
        ("住在3栋2单元501室", "501", "[门牌]"),
        ("电话13834 560 172", "560 172", "[手机号]"),
        ("座机0773-2816 354", "2816 354", "[座机]"),
        ("只看到车牌粤K·0B3开头", "K·0B3", "[车牌]"),
        ("來電人陳先生稱", "陳先生", "某先生"),
    ],
)
def test_masks_personal_data(text, must_vanish, placeholder):
    masked = mask_pii(text)
    assert must_vanish not in masked
    assert placeholder in masked


@pytest.mark.parametrize("text", ["下午3点20分在3号楼", "花了3800元", "12345热线", "一位女士在哭", "2026年11月24日"])
def test_leaves_ordinary_numbers_and_words(text):
    assert mask_pii(text) == text


@pytest.mark.parametrize("text", [
    "8613812345678", "+86 138 1234 5678", "138.1234.5678", "138—1234—5678", "138–1234–5678", "(138)1234-5678", "（138）1234 5678",
    "138/1234/5678", "138_1234_5678", "138,1234,5678", "138，1234，5678", "1 3 8 1 2 3 4 5 6 7 8", "１３８１２３４５６７８",
    "一三八一二三四五六七八", "幺三八幺二三四五六七八", "壹叁捌壹贰叁肆伍陆柒捌", "١٣٨١٢٣٤٥٦٧٨", "۱۳۸۱۲۳۴۵۶۷۸",
    "320102 19870506 123X", "320102-19870506-123X", "３２０１０２１９８７０５０６１２３Ｘ", "三二〇一〇二一九八七〇五〇六一二三X",
    "0571 8877 6655", "(0571)88776655",
])
def test_masks_every_way_a_number_is_written(text):
    masked = mask_pii(f"来电人电话{text}，请回电")
    assert masked.startswith("来电人电话[") and masked.endswith("]，请回电"), masked
    assert not any(ch.isdigit() for ch in masked), masked


@pytest.mark.parametrize("text", ["琼 A12345", "琼a12345", "琼Ａ１２３４５", "粤b·3k2b7"])
def test_masks_plates_with_a_space_or_lower_case(text):
    assert mask_pii(f"车牌{text}的车堵门") == "车牌[车牌]的车堵门"


def test_two_numbers_in_one_run_are_both_masked():
    assert mask_pii("电话13812345678,13987654321") == "电话[手机号],[手机号]"


@pytest.mark.parametrize("text", ["20261205133045", "C2026120513304512", "1205-1330-4521", "2026-12-05 13:30:45", "3.5元", "订单 202612051330451234"])
def test_timestamps_order_numbers_and_amounts_stay(text):
    assert mask_pii(text) == text
