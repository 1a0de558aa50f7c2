"""Text cleaning: width and whitespace normalisation, optional dispatch-boilerplate stripping.

>>> normalize_text("  来电人称 ，１２楼　有人  打架  ")
'来电人称,12楼 有人 打架'
"""
from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from typing import Iterable

import yaml

DEFAULT_BOILERPLATE_PATH = Path(__file__).parent / "defaults" / "boilerplate.yaml"
_ZERO_WIDTH = re.compile(r"[\u200b-\u200f\u2028\u2029\ufeff]")
_SPACES = re.compile(r"\s+")
_SPACE_AROUND_PUNCT = re.compile(r"\s*([,，。；;：:！!？?、])\s*")


def normalize_text(text: str) -> str:
    """NFKC (full-width letters, digits and punctuation to half-width), drop zero-width characters,
    collapse runs of whitespace to one space and remove spaces around punctuation."""
    text = unicodedata.normalize("NFKC", text)
    text = _ZERO_WIDTH.sub("", text)
    text = _SPACES.sub(" ", text).strip()
    return _SPACE_AROUND_PUNCT.sub(r"\1", text)


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
