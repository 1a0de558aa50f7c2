"""Mask personal data in call summaries before text is logged, stored for review or exported.

What is masked: mobile numbers (also written with spaces or dashes, with +86), landlines with area
code, 18-digit (and old 15-digit) ID numbers, bank card numbers (16-19 digits), mainland licence
plates, room-level addresses (``3栋2单元501室``) and a surname before an honorific (``王先生``).

>>> mask_pii("来电人王先生13812345678称其车辆苏F·3K2B7被剐蹭")
'来电人某先生[手机号]称其车辆[车牌]被剐蹭'
"""
from __future__ import annotations

import re

_SEP = r"[ \-－]?"
_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    # 18-digit ID: 6 region digits, birth date, 3 sequence digits, check digit; also 15-digit old IDs.
    ("[身份证号]", re.compile(r"(?<![0-9])[1-9]\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[0-9Xx](?![0-9])")),
    ("[身份证号]", re.compile(r"(?<![0-9])[1-9]\d{7}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}(?![0-9])")),
    # Bank cards: 16-19 digits, possibly grouped by 4 with spaces.
    ("[银行卡号]", re.compile(r"(?<![0-9])(?:62|4\d|5[1-5]|3[47])\d{2}(?:[ ]?\d{4}){2,3}(?:[ ]?\d{1,3})?(?![0-9])")),
    # Mobile numbers, optionally +86, digits grouped any way with spaces or dashes (138 1234 5678, 13834 560 172).
    ("[手机号]", re.compile(r"(?:\+?86[ \-－]?)?(?<![0-9])1[3-9](?:[ \-－]?\d){9}(?![0-9])")),
    # Landlines with area code: 0571-88888888, (010)12345678, 0755 2345 6789, 0773-2816 354.
    ("[座机]", re.compile(r"(?<![0-9])(?:\(0\d{2,3}\)|（0\d{2,3}）|0\d{2,3})[ \-－]?\d(?:[ \-－]?\d){5,7}(?![0-9])")),
    # Licence plates: province abbreviation, letter, optional dot, 5-6 letters/digits (new-energy 6);
    # partial plates as callers remember them (粤K·0B3) are masked too.
    ("[车牌]", re.compile(r"[京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼使领][A-HJ-NP-Z][·•\.\- ]?[A-HJ-NP-Z0-9]{2,5}[A-HJ-NP-Z0-9挂学警港澳]")),
    # Room-level address details: 3栋2单元501室, 5号楼1单元302, 12幢301室.
    # Bounded repeats only (a run of 2,000 digits must cost linear time, not quadratic backtracking).
    ("[门牌]", re.compile(r"[0-9一二三四五六七八九十]{1,4}(?:号楼|栋|幢|座)[0-9一二三四五六七八九十]{1,3}单元[0-9]{2,4}(?:室|号)?|[0-9]{1,4}(?:号楼|栋|幢)[0-9]{3,4}(?:室|号)|[0-9]{3,4}室")),
]


def mask_pii(text: str) -> str:
    """Return ``text`` with personal data replaced by bracketed placeholders (``[手机号]``…)."""
    if not text:
        return text
    for placeholder, pattern in _PATTERNS:
        text = pattern.sub(placeholder, text)
    return _SURNAME.sub(_mask_surname, text)


# A surname before an honorific (王先生 -> 某先生); words that are not surnames stay.
_SURNAME = re.compile(r"([\u4e00-\u9fff])(?=先生|女士|小姐|师傅|阿姨|大爷|大妈|老师)")
_NOT_SURNAMES = set("位名个的这那该此男女老小某和与跟及对给让被是有在位其您你我他她们称")


def _mask_surname(m: re.Match[str]) -> str:
    return m.group(1) if m.group(1) in _NOT_SURNAMES else "某"
