"""Where a rule's mention stands in a text: its clause, whether it is negated, in the past, or a figure
of speech (:class:`NegationCues`). Used by :mod:`model.rules` (does a mention count as evidence?) and
:mod:`model.danger` (which 12345 frames surround it?).

>>> text = "以前被打过，现在又在打"
>>> clause_around(text, 8, 9)
'现在又在打'
>>> NegationCues(past=("以前",), present=("现在",)).in_past(text, 8, 9)
False
"""
from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

_CLAUSE_SPLIT = re.compile(r"[，。；！？,.;!?\n]|(?<!\d)[:：](?!\d)|但是|不过|可是|结果")  # a colon opens a clause ("市民投诉:…"), not a time (10:30)


@lru_cache(maxsize=2048)
def compile_pattern(pattern: str) -> re.Pattern[str]:
    """``re:...`` is a regular expression; anything else a literal substring."""
    return re.compile(pattern[3:] if pattern.startswith("re:") else re.escape(pattern))


@lru_cache(maxsize=256)
def _splits(text: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Where the clause separators of ``text`` start and end (one linear scan per text, cached)."""
    found = [(m.start(), m.end()) for m in _CLAUSE_SPLIT.finditer(text)]
    return tuple(a for a, _ in found), tuple(b for _, b in found)


def clause_bounds(text: str, start: int, end: int) -> tuple[int, int]:
    """The clause around ``text[start:end]``: from the end of the last separator ending at or before
    ``start`` to the start of the first separator starting at or after ``end``. O(log n) a call."""
    starts, ends = _splits(text)
    i = bisect_right(ends, start)
    left = ends[i - 1] if i else 0
    j = bisect_left(starts, end)
    return left, (starts[j] if j < len(starts) else len(text))


def clause_around(text: str, start: int, end: int) -> str:
    a, b = clause_bounds(text, start, end)
    return text[a:b]


@dataclass
class NegationCues:
    """Words that cancel a mention (negators right before it) or place it in the past.

    Tense is read from the nearest time cue *before* the mention in the whole text ("前天…摔倒了"
    is past; "以前打过，现在又在打" is present), else from its own clause; the experiential 过
    after the mention ("被打过") marks it past as well.
    """

    negators: Sequence[str] = ("没有", "没", "未", "无", "不是", "并非", "不存在", "别", "差点", "险些")
    uncertain: Sequence[str] = ("有没有", "是不是", "会不会", "有无", "是否")
    hypothetical: Sequence[str] = ()  # "怕哪天…砸到人", "迟早出人命": a feared future, negated even after 怕
    not_negating: Sequence[str] = ("没想到", "没办法", "没人管", "没多久", "没一会", "没过多久", "无法", "没完没了", "没几分钟", "没过")
    past: Sequence[str] = ()
    present: Sequence[str] = ()
    resolved: Sequence[str] = ()
    figures: Sequence[str] = ()
    answers_no: Sequence[str] = ()  # ``re:`` patterns: a "no" that opens the answer to a yes/no question
    retractions: Sequence[str] = ()  # patterns with ``{X}`` after the mention that take it back: "说错了，不是{X}"
    corrections: Sequence[str] = ()  # "说错了", "看错了": what the caller said just before is taken back
    superseded: Sequence[str] = ()  # "先称": the rest of the clause is a claim the record replaced
    window: int = 8

    def figurative(self, text: str, start: int, end: int) -> bool:
        """True when one of ``figures`` (a regular expression, ``{X}`` for the mention: "跟{X}一样")
        matches the clause of ``text[start:end]`` with ``{X}`` on the mention: a figure of speech."""
        a, b = clause_bounds(text, start, end)
        for figure in self.figures:
            for m in _figure(figure, text[start:end]).finditer(text, a, b):
                if m.span("x") == (start, end):
                    return True
        return False

    def resolved_after(self, text: str, end: int) -> bool:
        """True when, after the mention, the text says the danger is over ("火已经扑灭了", "人已找到")."""
        rest = text[end:]
        return any(r in rest for r in self.resolved)

    def negated(self, text: str, start: int) -> bool:
        """True when a negator stands at most ``window`` characters before ``start`` in the same clause
        and no uncertainty cue ("有没有人受伤" stays a possible injury) covers it, or a hypothetical cue
        ("哪天", "迟早") does."""
        a, _ = clause_bounds(text, start, start)
        before = text[max(a, start - self.window - 4) : start]
        if any(h in before for h in self.hypothetical):
            return True
        if any(u in before for u in self.uncertain):
            return False
        for phrase in self.not_negating:
            before = before.replace(phrase, "#" * len(phrase))
        near = before[-(self.window + 2) :]
        for neg in self.negators:
            idx = near.rfind(neg)
            if idx >= 0 and len(near) - (idx + len(neg)) <= self.window:
                return True
        return False

    def withdrawn(self, text: str, start: int, end: int) -> bool:
        """True when the call itself takes the mention back: it stands in a yes/no question whose answer
        opens with a "no" (坐席：有没有人受伤？来电人：没有，…), or one of ``retractions`` matches later
        with ``{X}`` on the same words (着火了——不对不对，说错了，不是着火). The answer is the first clause
        after the question's run of questions, past a speaker's label ("群众：") and an opening quote."""
        return self._answered_no(text, start, end) or self._said_again_negated(text, start, end)

    def _answered_no(self, text: str, start: int, end: int) -> bool:
        if not self.answers_no or text[start : start + 1] in ("没", "不", "无"):
            return False  # "还有没有呼吸？没有！": a "no" to a danger that is an absence confirms it
        a, b = clause_bounds(text, start, end)
        return self._asks_yes_or_no(text, a, start, end, b) and self._answer_is_no(text, b)

    def _asks_yes_or_no(self, text: str, a: int, cue_end: int, tail: int, b: int) -> bool:
        """The clause ``text[a:b]`` is a yes/no question: a "？" at ``b``, and an uncertainty cue in
        ``text[a:cue_end]`` or 吗/没有 closing ``text[tail:b]``."""
        return text[b : b + 1] in ("？", "?") and (any(u in text[a:cue_end] for u in self.uncertain)
                                                  or _YES_NO_END.search(text, tail, b) is not None)

    def _answer_is_no(self, text: str, b: int) -> bool:
        """True when the answer to the question whose "？" stands at ``b`` opens with a "no"."""
        p = b + 1
        for _ in range(4):  # the operator may ask several questions before the caller answers
            m = _ANSWER_START.match(text, p)
            p = m.end() if m else p
            if any(compile_pattern(c).match(text, p) for c in self.answers_no):
                return True
            _, q_end = clause_bounds(text, p, p)
            if text[q_end : q_end + 1] not in ("？", "?"):
                return False
            p = q_end + 1
        return False

    def taken_back(self, text: str) -> str:
        """``text`` as a classifier should read it: the yes/no questions answered "no", the words a caller
        corrects (up to 30 characters before one of ``corrections``, within the sentence) and the clause
        after a ``superseded`` cue are cut out. The rules read the whole text (see :meth:`withdrawn`).

        >>> NegationCues(uncertain=("有没有",), answers_no=("没有",), corrections=("说错了",), superseded=("以为",)).taken_back(
        ...     "坐席：有没有人受伤？群众：没有，车刮了。刚才说有人打架，我说错了，是吵架。我以为是枪声，是鞭炮")
        '坐席：群众：没有，车刮了。，是吵架。我，是鞭炮'
        """
        cut = []
        if self.answers_no:
            starts, ends = _splits(text)
            for i, s in enumerate(starts):
                a = ends[i - 1] if i else 0
                if self._asks_yes_or_no(text, a, s, a, s) and self._answer_is_no(text, s):
                    cut.append((a, s + 1))
        for c in self.corrections:
            for m in re.finditer(re.escape(c), text):
                left = max(0, m.start() - 30)  # at most 30 characters back, within the sentence (linear in the text)
                ends = [text.rfind(x, left, m.start()) for x in "。！？!?\n"]
                cut.append((max([left] + [e + 1 for e in ends if e >= 0]), m.end()))
        for c in self.superseded:
            for m in re.finditer(re.escape(c), text):
                if text[m.start() - 1 : m.start()] not in ("别", "你"):  # 别以为我不敢: a threat, not a belief given up
                    cut.append((m.start(), clause_bounds(text, m.start(), m.end())[1]))
        if not cut:
            return text
        kept, pos = [], 0
        for a, b in sorted(cut):
            if a > pos:
                kept.append(text[pos:a])
            pos = max(pos, b)
        kept.append(text[pos:])
        return "".join(kept)

    def _said_again_negated(self, text: str, start: int, end: int) -> bool:
        words = text[start:end]
        return any(_figure(r, words).search(text, end) for r in self.retractions)

    def in_past(self, text: str, start: int, end: int) -> bool:
        """True when the mention is placed in the past (see the class docstring). A cue written
        ``re:…`` is a regular expression (a date such as "1月5日" places what follows in the past)."""
        if text[end : end + 1] == "过" and text[end : end + 2] not in ("过来", "过去"):
            return True
        before = text[:end]  # a long mention's own words count ("…烧了个炭盆取暖，我刚打电话…头疼")
        last_past = last_cue(before, self.past)
        last_present = last_cue(before, self.present)
        if last_past >= 0 or last_present >= 0:
            return last_past > last_present
        clause = clause_around(text, start, end)
        return last_cue(clause, self.past) >= 0 and last_cue(clause, self.present) < 0


_YES_NO_END = re.compile(r"(吗|么|没有|没)\s*$")  # a clause ending so before its "？" asks yes or no
_ANSWER_START = re.compile(r"\s*(?:[^，。！？,.!?；;：:\s]{1,6}[：:])?\s*['\"“‘「『]?\s*")  # "群众：'", "来电人：" or nothing


@lru_cache(maxsize=1024)
def _figure(figure: str, mention: str) -> re.Pattern[str]:
    return compile_pattern(figure.replace("{X}", f"(?P<x>{re.escape(mention)})"))


def last_cue(text: str, cues: Sequence[str]) -> int:
    """The start of the last occurrence in ``text`` of any cue (literal, or ``re:`` pattern), or -1."""
    best = -1
    for cue in cues:
        if cue.startswith("re:"):
            for m in compile_pattern(cue).finditer(text):
                best = max(best, m.start())
        else:
            best = max(best, text.rfind(cue))
    return best
