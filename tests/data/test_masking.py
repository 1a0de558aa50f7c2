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
