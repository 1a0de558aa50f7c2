"""Traditional → simplified Chinese, one character for one character.

Callers from Hong Kong, Macao and Taiwan, some input methods and some speech-to-text engines write
traditional characters (來電人稱廚房著火). The rules are written in simplified Chinese and the
classifiers are trained on it, so both read a text through :func:`to_simplified` first.

The table comes from OpenCC's traditional-to-simplified character dictionary (the ``opencc`` package,
Apache-2.0), applied character by character: a match's offsets in the mapped text are its offsets in
the original, which the rules' evidence spans rely on. OpenCC's phrase-level conversions (which may
change a word's length) are not used; for routing the character level is enough.

>>> to_simplified("來電人稱廚房著火，無人受傷")
'来电人称厨房着火，无人受伤'
>>> to_simplified("小区门口有人打架")  # simplified text is unchanged
'小区门口有人打架'
"""
from __future__ import annotations

import opencc

# Characters that OpenCC leaves alone on their own (they are also simplified characters) but that a
# call summary writes only in their traditional sense: 著火 (着火), 等著 (等着).
_OVERRIDES = {"著": "着"}
_CJK_RANGES = ((0x3400, 0x4DC0), (0x4E00, 0xA000), (0xF900, 0xFB00))


def _build_table() -> dict[int, str]:
    """{code point: simplified character} for every CJK character OpenCC maps to one other character:
    one conversion of all CJK code points, one per line (about 40 ms with the import, once per process
    at import, so that no live call pays it)."""
    chars = "".join(chr(c) for a, b in _CJK_RANGES for c in range(a, b))
    converted = opencc.OpenCC("t2s").convert("\n".join(chars)).split("\n")
    if len(converted) != len(chars):  # a line-crossing conversion would misalign the table: refuse it
        raise RuntimeError("OpenCC's t2s conversion changed the number of lines; cannot build a character table")
    table = {ord(t): s for t, s in zip(chars, converted) if len(s) == 1 and s != t}
    table.update({ord(t): s for t, s in _OVERRIDES.items()})
    return table


_TABLE = _build_table()


def to_simplified(text: str) -> str:
    """``text`` with every traditional character replaced by its simplified form (same length)."""
    return text.translate(_TABLE)
