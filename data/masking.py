"""Mask personal data in call summaries before text is logged, stored for review or exported.

What is masked: mobile numbers, landlines with area code, 18-digit (and old 15-digit) ID numbers, bank
card numbers (16-19 digits), mainland licence plates, room-level addresses (``3栋2单元501室``) and a
surname before an honorific (``王先生``).

Numbers are found on a **digit view** of the text, one character for one, so that every way a caller
or a call-taker writes digits is seen the same: full-width (１３８), Arabic-Indic (١٣٨), Chinese
numerals (一三八, 幺, 壹叁捌), and any separator between them (spaces, dashes of every width, dots,
slashes, underscores, commas, brackets: ``138.1234.5678``, ``(138)1234-5678``, ``1 3 8 1 2 3 4 5 6 7
8``). A run of digits and separators is masked when its digits have the shape of a phone (11 digits
from 13-19, with or without 86 / +86), an ID (18 digits or 17 and X, with a plausible birth date; 15
with one), a bank card (16-19 digits from a card prefix) or a landline (0 and 9-11 more digits); a run
of several numbers is split at its separators and each part checked. Timestamps, amounts and dates
have none of these shapes and stay. Plates are matched on an upper-cased copy with an optional space
(``琼 A12345``, ``琼a12345``). Every pattern uses bounded repeats: masking is linear in the text.

>>> mask_pii("来电人王先生13812345678称其车辆苏F·3K2B7被剐蹭")
'来电人某先生[手机号]称其车辆[车牌]被剐蹭'
>>> mask_pii("电话幺三八，一二三四，五六七八；身份证３２０１０２１９８７０５０６１２３Ｘ")
'电话[手机号]；身份证[身份证号]'
"""
from __future__ import annotations

import re
import unicodedata
from datetime import date

# Chinese numerals written digit by digit (not 十百千万: those are positional, never in a phone number).
_CN_DIGITS = {"零": "0", "〇": "0", "一": "1", "幺": "1", "二": "2", "三": "3", "四": "4", "五": "5", "六": "6", "七": "7",
              "八": "8", "九": "9", "壹": "1", "贰": "2", "貳": "2", "叁": "3", "參": "3", "肆": "4", "伍": "5", "陆": "6",
              "陸": "6", "柒": "7", "捌": "8", "玖": "9"}
# Characters that may stand between the digits of one number (mapped to "-" in the digit view).
_SEPARATORS = set("-－‐‑‒–—―−_/／.．·•,，、()（）")
_RUN = re.compile(r"\+?(?:[0-9X][ \-]{0,3}){6,40}[0-9X]")  # digits (and X) with at most 3 separators between two
_ROOM = re.compile(r"[0-9一二三四五六七八九十]{1,4}(?:号楼|栋|幢|座)[0-9一二三四五六七八九十]{1,3}单元[0-9]{2,4}(?:室|号)?"
                   r"|[0-9]{1,4}(?:号楼|栋|幢)[0-9]{3,4}(?:室|号)|(?<![0-9])[0-9]{3,4}室")
_PLATE = re.compile(r"[京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼使领] ?[A-HJ-NP-Z][·•\.\- ]?[A-HJ-NP-Z0-9]{2,5}[A-HJ-NP-Z0-9挂学警港澳]")
_CARD_PREFIX = re.compile(r"62|4[0-9]|5[1-5]|3[47]")


def digit_view(text: str) -> str:
    """``text`` with every digit as an ASCII digit, every separator as ``-``, ``x`` as ``X`` and Latin
    letters upper-cased; the same length, so a span of the view is a span of ``text``."""
    out = []
    for ch in text:
        if "0" <= ch <= "9" or ch == " ":
            out.append(ch)
        elif ch in _CN_DIGITS:
            out.append(_CN_DIGITS[ch])
        elif ch in _SEPARATORS:
            out.append("-")
        elif ch.isdigit() or unicodedata.category(ch) == "Nd":
            d = unicodedata.digit(ch, None)
            out.append(str(d) if d is not None else ch)
        elif ch.isascii() and ch.isalpha():
            out.append(ch.upper())
        elif "\uff21" <= ch <= "\uff3a" or "\uff41" <= ch <= "\uff5a":  # full-width Latin letters
            out.append(unicodedata.normalize("NFKC", ch).upper())
        elif ch in "\u3000\u00a0\t":
            out.append(" ")
        else:
            out.append(ch)
    return "".join(out)


def _plausible_date(y: int, m: int, d: int) -> bool:
    try:
        date(y, m, d)
    except ValueError:
        return False
    return 1900 <= y <= 2030


def _kind(digits: str) -> str | None:
    """The placeholder for a number written as ``digits`` (ASCII digits, maybe a final X), or None."""
    n = len(digits)
    if "X" in digits[:-1]:
        return None
    if n == 18 and digits[0] != "0" and digits[:-1].isdigit() and _plausible_date(int(digits[6:10]), int(digits[10:12]), int(digits[12:14])):
        return "[身份证号]"
    if "X" in digits:
        return None
    if n == 15 and digits[0] != "0" and _plausible_date(1900 + int(digits[6:8]), int(digits[8:10]), int(digits[10:12])):
        return "[身份证号]"
    if n == 11 and digits[0] == "1" and digits[1] in "3456789":
        return "[手机号]"
    if n == 13 and digits.startswith("86") and digits[2] == "1" and digits[3] in "3456789":
        return "[手机号]"
    if 16 <= n <= 19 and _CARD_PREFIX.match(digits):
        return "[银行卡号]"
    if 10 <= n <= 12 and digits[0] == "0" and digits[1] != "0":
        return "[座机]"
    return None


def _number_spans(view: str) -> list[tuple[int, int, str]]:
    """(start, end, placeholder) of every personal number in the digit view."""
    spans = []
    for m in _RUN.finditer(view):
        if (m.start() > 0 and view[m.start() - 1].isdigit()) or (m.end() < len(view) and view[m.end()].isdigit()):
            continue
        spans.extend(_classify(view, m.start(), m.end()))
    return spans


def _classify(view: str, a: int, b: int) -> list[tuple[int, int, str]]:
    """The run ``view[a:b]`` as one number, or else its parts between separators (a list of several)."""
    run = view[a:b]
    digits = re.sub(r"[^0-9X]", "", run)
    kind = _kind(digits)
    if kind is not None:
        return [(a, b, kind)]
    if digits.startswith("86") and _kind(digits[2:]) == "[手机号]":
        return [(a, b, "[手机号]")]
    parts = [(p.start() + a, p.end() + a) for p in re.finditer(r"[0-9X]+(?:[ ][0-9X]+)*", run)]
    if len(parts) < 2:
        return []
    out: list[tuple[int, int, str]] = []
    i = 0
    while i < len(parts):  # the longest prefix of parts that makes a number, then go on after it
        for j in range(len(parts), i, -1):
            d = re.sub(r"[^0-9X]", "", view[parts[i][0] : parts[j - 1][1]])
            k = _kind(d)
            if k is not None:
                out.append((parts[i][0], parts[j - 1][1], k))
                i = j
                break
        else:
            i += 1
    return out


def mask_pii(text: str) -> str:
    """Return ``text`` with personal data replaced by bracketed placeholders (``[手机号]``…)."""
    if not text:
        return text
    view = digit_view(text)
    spans = [(a - 1 if a and text[a - 1] in "(（" else a, b, k) for a, b, k in _number_spans(view)]  # with its opening bracket
    spans += [(m.start(), m.end(), "[车牌]") for m in _PLATE.finditer(view)]
    spans += [(m.start(), m.end(), "[门牌]") for m in _ROOM.finditer(text)]
    out, pos = [], 0
    for a, b, placeholder in sorted(spans):
        if a < pos:  # overlaps one already masked
            continue
        out.append(text[pos:a])
        out.append(placeholder)
        pos = b
    out.append(text[pos:])
    return _SURNAME.sub(_mask_surname, "".join(out))


def looks_personal(value: str) -> bool:
    """True when ``value`` holds a number or plate that :func:`mask_pii` would mask (for ids and names
    that must not be personal data)."""
    return mask_pii(value) != value


# A surname before an honorific (王先生 -> 某先生); words that are not surnames stay.
_SURNAME = re.compile(r"([\u4e00-\u9fff])(?=先生|女士|小姐|师傅|阿姨|大爷|大妈|老师)")
_NOT_SURNAMES = set("位名个的这那该此男女老小某和与跟及对给让被是有在位其您你我他她们称")


def _mask_surname(m: re.Match[str]) -> str:
    return m.group(1) if m.group(1) in _NOT_SURNAMES else "某"
