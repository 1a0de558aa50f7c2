"""Rule engine driven by a rules file (``model/defaults/rules.yaml`` by default).

A rule has an ``id``, a target department and patterns, and returns a :class:`RuleMatch` (the matched
span and a reason a call-taker can read) or ``None``. Two kinds:

- ``danger``: life, property or public safety at risk now. A match forces channel 110 whatever a model
  says (the *danger override*). Negated mentions ("没有人受伤") never fire. With ``now_only``, mentions
  in a clause that places them in the past ("以前被打过", "上周被偷了") do not fire either, unless the
  clause also says it is happening now ("以前打过，现在又在打"). Uncertainty ("好像有人受伤") does fire:
  where in doubt about danger, 110 acts first.
  A danger rule also stands down when the text says the danger is over ("火已经扑灭了"), and for the
  patterns its ``unless`` (same clause) or ``unless_text`` (anywhere) lists. A mention wrapped in
  quotation marks (计生办“抢钱”) or framed by a figure of speech of the rules file's ``figures``
  (简直是抢钱, 跟绑架一样) is not evidence.
- ``route``: keyword evidence for a department, used when no model is loaded or the model is unsure.

>>> engine = RuleEngine.from_file()
>>> engine.danger("三楼厨房着火了，有浓烟")[0].department
'fire'
>>> engine.danger("车子剐蹭了一下，没有人受伤")
[]
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Iterable, Sequence

import yaml

from data.taxonomy import Taxonomy, default_taxonomy
from data.hanzi import to_simplified
from model.cues import NegationCues, clause_around, compile_pattern

DEFAULT_RULES_PATH = Path(__file__).parent / "defaults" / "rules.yaml"
KINDS = ("danger", "route")
# Mentions of one pattern examined per text: a summary that repeats a word more often than this is
# not a call; the bound keeps a hostile text (the same negated word a thousand times) linear-time.
MAX_MENTIONS = 16
STRENGTHS = ("strong", "weak")
_OPEN_QUOTES = frozenset("“\"「『‘'《")
_CLOSE_QUOTES = frozenset("”\"」』’'》")


class RulesError(ValueError):
    """The rules file is unusable; the message names the rule and the problem."""


@dataclass(frozen=True)
class RuleMatch:
    """One rule firing on one text.

    Attributes
    ----------
    rule_id, department, kind, reason : str
    span : (int, int)
        Character offsets of the matched evidence in the text passed to the engine.
    evidence : str
        The matched characters (``text[span[0]:span[1]]``).
    priority : int
        Higher wins; danger rules outrank route rules.
    links : tuple of str
        Emergency lines this evidence calls for (``"120"`` for injury).
    """

    rule_id: str
    department: str
    kind: str
    span: tuple[int, int]
    evidence: str
    reason: str
    priority: int
    links: tuple[str, ...] = ()
    strength: str = "strong"

    def describe(self) -> str:
        return f"{self.reason}（“{self.evidence}”）"


@dataclass
class Rule:
    """A named set of patterns pointing to one department."""

    id: str
    department: str
    patterns: Sequence[str]
    reason: str
    kind: str = "route"
    priority: int = 10
    now_only: bool = False
    unless: Sequence[str] = ()
    unless_text: Sequence[str] = ()
    links: Sequence[str] = ()
    strength: str = "strong"
    _compiled: list[re.Pattern[str]] = field(default_factory=list, repr=False)
    _unless: list[re.Pattern[str]] = field(default_factory=list, repr=False)
    _unless_text: list[re.Pattern[str]] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise RulesError(f"rule {self.id!r}: kind must be one of {KINDS}, got {self.kind!r}")
        if not self.patterns:
            raise RulesError(f"rule {self.id!r}: needs at least one pattern")
        if self.strength not in STRENGTHS:
            raise RulesError(f"rule {self.id!r}: strength must be one of {STRENGTHS}, got {self.strength!r}")
        try:
            self._compiled = [compile_pattern(p) for p in self.patterns]
            self._unless = [compile_pattern(p) for p in self.unless]
            self._unless_text = [compile_pattern(p) for p in self.unless_text]
        except re.error as exc:
            raise RulesError(f"rule {self.id!r}: bad pattern: {exc}") from None

    def match(self, text: str, negation: "NegationCues") -> RuleMatch | None:
        """The first non-negated (and, for ``now_only``, present-tense) match in ``text``, or None.

        Danger rules also stand down when the text says the danger is over ("人已经救上来了")."""
        if any(u.search(text) for u in self._unless_text):
            return None
        for pat in self._compiled:
            for m in islice(pat.finditer(text), MAX_MENTIONS):
                clause = clause_around(text, m.start(), m.end())
                if any(u.search(clause) for u in self._unless):
                    continue
                if negation.negated(text, m.start()):
                    continue
                if text[m.start() - 1 : m.start()] in _OPEN_QUOTES and text[m.end() : m.end() + 1] in _CLOSE_QUOTES:
                    continue  # a quoted word is a figure of speech or a title: 计生办“抢钱”
                if negation.figurative(text, m.start(), m.end()):
                    continue  # 简直是抢钱, 跟绑架一样
                if negation.withdrawn(text, m.start(), m.end()):
                    continue  # 有没有人受伤？没有，… / 着火了——不对，不是着火
                if self.now_only and negation.in_past(text, m.start(), m.end()):
                    continue
                if self.kind == "danger" and negation.resolved_after(text, m.end()):
                    continue
                return RuleMatch(
                    rule_id=self.id,
                    department=self.department,
                    kind=self.kind,
                    span=(m.start(), m.end()),
                    evidence=m.group(0),
                    reason=self.reason,
                    priority=self.priority,
                    links=tuple(self.links),
                    strength=self.strength,
                )
        return None


class RuleEngine:
    """Evaluate a list of rules on texts.

    Parameters
    ----------
    rules : list of Rule
    taxonomy : Taxonomy
        Departments the rules may name; a rule naming an unknown department is an error.
    negation : NegationCues
    """

    def __init__(self, rules: Iterable[Rule], taxonomy: Taxonomy | None = None, negation: NegationCues | None = None):
        self.rules = list(rules)
        self.taxonomy = taxonomy or default_taxonomy()
        self.negation = negation or NegationCues()
        self.path: Path | None = None  # the rules file, when loaded from one (its frames serve model.danger)
        ids = [r.id for r in self.rules]
        dup = {i for i in ids if ids.count(i) > 1}
        if dup:
            raise RulesError(f"rule ids must be unique; repeated: {', '.join(sorted(dup))}")
        self._index_literals()

    def _index_literals(self) -> None:
        """Index every literal pattern by its first two characters (one, for one-character literals),
        so that :meth:`matches` finds the rules worth trying with a set intersection of the text's
        character pairs instead of one regular-expression scan per rule. A rule's
        regular-expression patterns are scanned for together (one alternation per rule)."""
        self._by_pair: dict[str, list[tuple[str, int]]] = {}
        self._by_char: dict[str, list[tuple[str, int]]] = {}
        regexes: dict[int, list[str]] = {}
        for k, rule in enumerate(self.rules):
            for p in rule.patterns:
                if p.startswith("re:") or not p:
                    regexes.setdefault(k, []).append(compile_pattern(p).pattern)
                elif len(p) == 1:
                    self._by_char.setdefault(p, []).append((p, k))
                else:
                    self._by_pair.setdefault(p[:2], []).append((p, k))
        self._pairs = frozenset(self._by_pair)
        self._chars = frozenset(self._by_char)
        self._regex_gates: list[tuple[int, re.Pattern[str] | None]] = []
        for k, pats in regexes.items():
            try:
                self._regex_gates.append((k, re.compile("|".join(f"(?:{p})" for p in pats))))
            except re.error:  # e.g. global inline flags inside; then the rule is always tried
                self._regex_gates.append((k, None))

    def _candidates(self, text: str) -> list[Rule]:
        """Rules that may fire on ``text`` (a superset of those that do), in rule order."""
        found = {k for k, gate in self._regex_gates if gate is None or gate.search(text)}
        pairs = {text[i : i + 2] for i in range(len(text) - 1)} & self._pairs
        for pair in pairs:
            found.update(k for lit, k in self._by_pair[pair] if k not in found and lit in text)
        for ch in self._chars.intersection(text):
            found.update(k for _, k in self._by_char[ch])
        return [self.rules[k] for k in sorted(found)]

    @classmethod
    def from_file(cls, path: str | Path | None = None, taxonomy: Taxonomy | None = None) -> "RuleEngine":
        """Load rules from YAML. A rule whose department is not in ``taxonomy`` is an error for the
        default taxonomy; for a city's own taxonomy such rules are kept (they still give a channel)."""
        path = Path(path) if path else DEFAULT_RULES_PATH
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except OSError as exc:
            raise RulesError(f"cannot read rules file {path}: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise RulesError(f"{path}: not valid YAML: {exc}") from None
        base = default_taxonomy()
        taxonomy = taxonomy or base
        rules = []
        for i, r in enumerate(raw.get("rules", [])):
            if not isinstance(r, dict) or not {"id", "department", "patterns"} <= set(r):
                raise RulesError(f"{path}: rule #{i + 1} needs id, department and patterns")
            if r["department"] not in base and r["department"] not in taxonomy:
                raise RulesError(f"{path}: rule {r['id']!r} names unknown department {r['department']!r}")
            rules.append(
                Rule(
                    id=str(r["id"]),
                    department=str(r["department"]),
                    patterns=[str(p) for p in r["patterns"]],
                    reason=str(r.get("reason", r["id"])),
                    kind=str(r.get("kind", "route")),
                    priority=int(r.get("priority", 100 if r.get("kind") == "danger" else 10)),
                    now_only=bool(r.get("now_only", False)),
                    unless=[str(p) for p in r.get("unless", [])],
                    unless_text=[str(p) for p in r.get("unless_text", [])],
                    links=[str(x) for x in r.get("links", [])],
                    strength=str(r.get("strength", "strong")),
                )
            )
        cues = raw.get("cues", {})
        negation = NegationCues(
            negators=tuple(cues.get("negators", NegationCues.negators)),
            not_negating=tuple(cues.get("not_negating", NegationCues.not_negating)),
            uncertain=tuple(cues.get("uncertain", NegationCues.uncertain)),
            hypothetical=tuple(cues.get("hypothetical", ())),
            past=tuple(cues.get("past", ())),
            present=tuple(cues.get("present", ())),
            resolved=tuple(cues.get("resolved", ())),
            figures=tuple(cues.get("figures", ())),
            answers_no=tuple(cues.get("answers_no", ())),
            retractions=tuple(cues.get("retractions", ())),
            corrections=tuple(cues.get("corrections", ())),
            superseded=tuple(cues.get("superseded", ())),
        )
        engine = cls(rules, taxonomy, negation)
        engine.path = path
        return engine

    def channel_of(self, department: str) -> str:
        if department in self.taxonomy:
            return self.taxonomy.channel_of(department)
        return default_taxonomy().channel_of(department)

    def matches(self, text: str) -> list[RuleMatch]:
        """Every rule that fires, highest priority first."""
        text = to_simplified(text)
        found = [m for r in self._candidates(text) if (m := r.match(text, self.negation)) is not None]
        return sorted(found, key=lambda m: -m.priority)

    def danger(self, text: str) -> list[RuleMatch]:
        """Danger rules that fire (empty list: no danger signal)."""
        return [m for m in self.matches(text) if m.kind == "danger"]

    def opinion(self, text: str, matches: list[RuleMatch] | None = None) -> tuple[str | None, float, list[RuleMatch]]:
        """The rules' own routing opinion: (department or None, score in [0, 1], supporting matches).

        Danger matches win outright; otherwise route matches vote with their priorities. The score is
        the winning department's share of the votes, scaled down when the evidence is thin.
        """
        matches = self.matches(text) if matches is None else matches
        if not matches:
            return None, 0.0, []
        danger = [m for m in matches if m.kind == "danger"]
        pool = danger or matches
        votes: dict[str, float] = {}
        for m in pool:
            votes[m.department] = votes.get(m.department, 0.0) + m.priority
        best = max(votes, key=lambda d: (votes[d], -self._order(d)))
        share = votes[best] / sum(votes.values())
        strength = min(1.0, len([m for m in pool if m.department == best]) / 2 + 0.25)
        return best, round(share * strength, 4), [m for m in pool if m.department == best]

    def _order(self, department: str) -> int:
        codes = self.taxonomy.codes
        return codes.index(department) if department in codes else len(codes)
