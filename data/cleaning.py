"""Text cleaning: width and whitespace normalisation, optional dispatch-boilerplate stripping.

>>> normalize_text("  来电人称 ，１２楼　有人  打架  ")
'来电人称,12楼有人打架'
>>> normalize_text("着\u2060火 了\u00ad，有浓\ufe0f烟")
'着火了,有浓烟'
>>> neutral_roles("报警人称钥匙锁在家里")
'来电人称钥匙锁在家里'
>>> classifier_text("報警人稱鑰匙鎖在家裏")
'来电人称钥匙锁在家里'
"""
from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from typing import Iterable

import yaml

from data.hanzi import to_simplified

DEFAULT_BOILERPLATE_PATH = Path(__file__).parent / "defaults" / "boilerplate.yaml"
# Invisible characters that change no meaning but break keyword matching: every Unicode format
# character (Cf: zero-width space/joiners, U+2060 word joiner, U+00AD soft hyphen, BOM, bidi marks…),
# variation selectors (U+FE00–FE0F, U+E0100–E01EF) and combining enclosing keycaps (U+20E3).
_INVISIBLE = re.compile(r"[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e\u2060-\u206f"
                        r"\u20e3\u2028\u2029\u3164\ufe00-\ufe0f\ufeff\uffa0\U000e0000-\U000e0fff]")
_SPACES = re.compile(r"\s+")
_CJK = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
# A space between two Chinese characters is a typing artefact ("着 火了"), not a word boundary.
_SPACE_IN_WORD = re.compile(rf"(?<=[{_CJK}]) (?=[{_CJK}])")
_SPACE_AROUND_PUNCT = re.compile(r"\s*([,，。；;：:！!？?、])\s*")
# Caller-role words that say which line wrote a summary, not where the matter belongs: 110's records
# call every caller 报警人 or 求助人 (also when 110 hands a lock-out over to 12345), 12345's tickets say
# 市民反映. A classifier reads them neutrally, in training (data.loading, the corpus build) and in
# routing (model.router), so that a 110 hand-over reads like any other summary.
ROLE_WORDS = {"报警人": "来电人", "求助人": "来电人", "求助者": "来电人", "市民反映": "来电人反映"}


def normalize_text(text: str) -> str:
    """NFKC (full-width letters, digits and punctuation to half-width), drop invisible and format
    characters, collapse runs of whitespace to one space, remove spaces between two Chinese
    characters and around punctuation. Linear in the length of ``text``."""
    text = unicodedata.normalize("NFKC", text)
    text = _INVISIBLE.sub("", text)
    text = _SPACES.sub(" ", text).strip()
    text = _SPACE_IN_WORD.sub("", text)
    return _SPACE_AROUND_PUNCT.sub(r"\1", text)


def classifier_text(text: str) -> str:
    """What a classifier reads of a normalised text, in training and in routing alike: simplified
    characters (:func:`data.hanzi.to_simplified`) and neutral caller roles (:func:`neutral_roles`).
    Rules read the simplified text too; stored texts keep what the caller said."""
    return neutral_roles(to_simplified(text))


def neutral_roles(text: str) -> str:
    """``text`` with the channel-revealing caller-role words of ``ROLE_WORDS`` replaced by neutral ones."""
    for old, new in ROLE_WORDS.items():
        text = text.replace(old, new)
    return text


class BoilerplateStripper:
    """Remove configurable dispatch boilerplate ("请交警核实处理") that would leak the label.

    Parameters
    ----------
    patterns : iterable of str, optional
        Regular expressions; default: those in ``data/defaults/boilerplate.yaml``.
    """

    def __init__(self, patterns: Iterable[str] | None = None):
        self.patterns = list(patterns) if patterns is not None else load_boilerplate_patterns()
        self._compiled = [re.compile(p) for p in self.patterns]

    def __call__(self, text: str) -> str:
        for pat in self._compiled:
            text = pat.sub("", text)
        return text.strip(" ，,。")


def load_boilerplate_patterns(path: str | Path | None = None) -> list[str]:
    raw = yaml.safe_load(Path(path or DEFAULT_BOILERPLATE_PATH).read_text(encoding="utf-8")) or {}
    return [str(p) for p in raw.get("patterns", [])]


def dedup_key(text: str) -> str:
    """Key under which two texts count as the same row: normalised, without spaces and punctuation."""
    return re.sub(r"[\s\W_]+", "", normalize_text(text)).lower()
