"""Calls that raise more than one matter: "…噪音扰民；另外，昨晚其电动车被盗".

A classifier gives one label to a whole text, and the first or longest matter usually wins, so a police
matter raised second ("另外" a theft, "同时反映" an assault) can leave the call on 12345. The router scores
each part on its own as well (:func:`split_matters`, in the same batch as the texts) and, when a part alone reads as 110, asks for a
three-way call (``consult``) instead of routing the whole call to one line.

>>> split_matters("小区路灯坏了一个月没人修；另外，其电动车昨晚在楼下被盗")
['小区路灯坏了一个月没人修', '其电动车昨晚在楼下被盗']
>>> split_matters("某医院收费不透明；还反映其排队缴费时手机被盗，诉求：请卫健委核查收费。")
['某医院收费不透明', '其排队缴费时手机被盗']
>>> split_matters("另外一碗粉里有头发")  # no first matter before the marker
['另外一碗粉里有头发']
"""
from __future__ import annotations

import re
from typing import Sequence

import numpy as np

# Where a ticket or a record turns to a second matter. "另外" inside a phrase ("另外一碗") is not one:
# the marker must follow a clause break (or open a clause itself after punctuation).
_MARKER = re.compile(r"[，,。；;！!？?]\s*(另外|此外|同时还?反映|还反映|另有一事|另反映|另称|还有一事|顺便问一下)[，,：:]?")
_REQUEST = re.compile(r"[，,。；;]\s*(诉求|要求|请求)[：:][^。；;]*[。]?$")
MIN_PART_CHARS = 6  # a part shorter than this (Chinese characters) is not a matter of its own
_CJK = re.compile(r"[\u3400-\u9fff]")


def split_matters(text: str) -> list[str]:
    """The matters of ``text``: ``[text]`` when it raises one, else its parts in order (markers and
    clause punctuation at the cut removed). Each part has at least ``MIN_PART_CHARS`` Chinese characters."""
    body = _REQUEST.sub("", text)  # the ticket's request (诉求：请…处理) is the caller's ask, not a matter
    cuts = list(_MARKER.finditer(body))
    if not cuts:
        return [text]
    parts, start = [], 0
    for m in cuts:
        parts.append(body[start:m.start()])
        start = m.end()
    parts.append(body[start:])
    parts = [p.strip(" ，,。；;：:") for p in parts]
    if sum(len(_CJK.findall(p)) >= MIN_PART_CHARS for p in parts) < 2:
        return [text]
    return [p for p in parts if len(_CJK.findall(p)) >= MIN_PART_CHARS]


def police_parts(parts: Sequence[list[str]], p110: np.ndarray, threshold: float) -> list[str | None]:
    """For each text's :func:`split_matters` ``parts``, its first matter whose P(110) alone reaches
    ``threshold``, or None. ``p110``, shape (n,): the P(110) of every part of the texts with more than
    one, in order (a text of one matter is not scored)."""
    out, at = [], 0
    for ps in parts:
        n = len(ps) if len(ps) > 1 else 0
        hit = np.flatnonzero(p110[at:at + n] >= threshold)
        out.append(ps[int(hit[0])] if len(hit) else None)
        at += n
    return out
