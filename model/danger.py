"""Danger as a judgement: what the router does with the danger rules' evidence, in context.

A danger rule (``model/defaults/rules.yaml``, kind ``danger``) is *evidence*: a named, tested pattern
that says life, property or public safety may be at risk now. Whether that evidence makes the call
"110 先行" depends on what surrounds it. :class:`DangerAssessor` reads three things besides the
evidence itself:

- the evidence's **strength**: ``strong`` (a knife in someone's hand, a fire, a person in the water)
  or ``weak`` (a missing manhole cover, a fallen wire: a hazard, not yet a person in danger);
- **12345 frames** in the text: the call is a follow-up of an earlier ticket, the caller has already
  called the police, the matter is habitual ("经常", "每天"), a question, a hazard reported for
  repair or a complaint about someone's conduct ("安全隐患", "尽快维修", "违法行为"), a rhetorical
  question or a headline ("究竟是谁给了…的权力", a title's dash "——"), or a result that has already
  come about ("导致其自杀"). A present-tense cue in the evidence's clause ("现在", "正在")
  cancels all but the first two frames unless that clause carries one of their cues
  itself: "经常打架，现在又打起来了" is danger now, "每天晚上都正在偷砂" is not. A follow-up or a
  case the police already handle stays what it is;
- the model's **P(110)** (weak evidence only): 0.5 or more, the model itself holds the call for police.

It answers one of three actions, as the 2022 State Council opinion prescribes for the two lines:

``110_first``  danger now: transfer to 110 at once, 110 acts first.
``consult``    the line is unclear or danger is only weakly signalled: a three-way call (三方通话)
               with 110 and the caller; if still unclear, the first line keeps the call.
``route``      a plain routing suggestion.

+------------------+-------------------------+--------------------------------+
| evidence         | no frame (or "now" cue) | a 12345 frame                  |
+==================+=========================+================================+
| strong           | 110_first               | consult                        |
| weak             | 110_first if P(110)≥0.5,| consult if P(110) ≥ t,         |
|                  | else consult            | else route                     |
+------------------+-------------------------+--------------------------------+

Kinds of thing (a *vehicle* blocking a road, *pipes* stacked on a site) are told apart by the rules
themselves (``unless`` patterns), so that such a mention is not evidence at all.

>>> from model.rules import RuleEngine
>>> engine = RuleEngine.from_file()
>>> assess = DangerAssessor.from_file()
>>> text = "小区门口有人拿刀砍人"
>>> assess(text, engine.danger(text)).action
'110_first'
>>> text = "工单编号123《关于小区门口有人打架的问题》处理结果不满意"
>>> assess(text, engine.danger(text)).action
'consult'
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import yaml

from model.cues import clause_bounds, compile_pattern, last_cue
from model.rules import DEFAULT_RULES_PATH, RuleMatch, RulesError

ACTIONS = ("110_first", "consult", "route")
ACTION_NAMES = {"110_first": "110 先行", "consult": "三方通话", "route": "按建议分派"}

# What each 12345 frame means, for the reason a call-taker reads.
FRAME_NAMES = {
    "follow_up": "是对已有工单的跟进",
    "reported_already": "来电人已报警或已由警方处理",
    "habitual": "描述的是经常性、长期的情况",
    "query": "是咨询",
    "hazard_report": "是隐患报修或投诉",
    "rhetoric": "是反问或标题式的说法",
    "past_result": "反映的是已经发生的后果",
}
CANCELLED_BY_NOW = ("habitual", "query", "hazard_report", "rhetoric", "past_result")  # frames a present-tense cue overrides


@dataclass(frozen=True)
class DangerVerdict:
    """What the evidence amounts to for one text.

    Attributes
    ----------
    action : str
        One of :data:`ACTIONS`.
    evidence : RuleMatch or None
        The danger match the action rests on (the strongest, highest priority), None without any.
    frames : tuple of str
        12345 frames found in the text (keys of :data:`FRAME_NAMES`) and not cancelled by a "now" cue.
    reason : str
        One sentence for the call-taker ("" for a plain route without evidence).
    """

    action: str
    evidence: RuleMatch | None = None
    frames: tuple[str, ...] = ()
    reason: str = ""

    @property
    def police_first(self) -> bool:
        return self.action == "110_first"


@dataclass
class DangerAssessor:
    """Turn danger evidence into an action (see the module docstring).

    Parameters
    ----------
    frames : mapping of frame name -> cue list
        Literal cues, or ``re:`` regular expressions (bounded repeats only: routing is linear-time).
    now : sequence of str
        Present-tense cues that cancel the frames when found in the evidence's clause.
    """

    frames: Mapping[str, Sequence[str]] = field(default_factory=dict)
    now: Sequence[str] = ()

    def __post_init__(self) -> None:
        unknown = set(self.frames) - set(FRAME_NAMES)
        if unknown:
            raise RulesError(f"unknown danger frame(s): {', '.join(sorted(unknown))}; known: {', '.join(FRAME_NAMES)}")
        for cues in list(self.frames.values()) + [self.now]:
            for cue in cues:
                compile_pattern(cue)  # a bad pattern fails at load, not on a live call

    @classmethod
    def from_file(cls, path: str | Path | None = None) -> "DangerAssessor":
        """Read the ``frames`` section of a rules file (default: the shipped one)."""
        path = Path(path) if path else DEFAULT_RULES_PATH
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        section = raw.get("frames") or {}
        now = [str(c) for c in section.get("now", [])]
        frames = {k: [str(c) for c in v] for k, v in section.items() if k != "now"}
        return cls(frames=frames, now=now)

    def frames_in(self, text: str) -> tuple[str, ...]:
        """The 12345 frames whose cues occur in ``text``, in :data:`FRAME_NAMES` order."""
        return tuple(name for name in FRAME_NAMES if last_cue(text, self.frames.get(name, ())) >= 0)

    def frames_for(self, text: str, match: RuleMatch) -> tuple[str, ...]:
        """The frames that hold for ``match``: those of the text, less the ones a "now" cue in the
        match's clause cancels (:data:`CANCELLED_BY_NOW`) when that clause has none of their cues."""
        frames = self.frames_in(text)
        a, b = clause_bounds(text, match.span[0], match.span[1])
        clause = text[a:b]
        if last_cue(clause, self.now) < 0 or any(last_cue(clause, self.frames.get(f, ())) >= 0 for f in CANCELLED_BY_NOW):
            return frames
        return tuple(f for f in frames if f not in CANCELLED_BY_NOW)

    def __call__(self, text: str, matches: Sequence[RuleMatch], p110: float | None = None, channel_110: float = 0.5) -> DangerVerdict:
        """Assess one text (normalised and simplified, as the rules saw it).

        Parameters
        ----------
        matches : sequence of RuleMatch
            The rules' matches for ``text`` (route matches are ignored).
        p110 : float or None
            The model's P(110) for the text; None when no model is loaded.
        channel_110 : float
            The router's channel threshold (P(110) at or above it routes to 110).
        """
        danger = [m for m in matches if m.kind == "danger"]
        if not danger:
            return DangerVerdict("route")
        strong = [m for m in danger if m.strength == "strong"]
        top = (strong or danger)[0]
        frames = self.frames_for(text, top)
        if strong:
            action = "consult" if frames else "110_first"
        elif frames:
            action = "consult" if p110 is not None and p110 >= channel_110 else "route"
        else:
            action = "110_first" if p110 is not None and p110 >= 0.5 else "consult"
        return DangerVerdict(action, top, frames, self._reason(action, top, frames))

    @staticmethod
    def _reason(action: str, top: RuleMatch, frames: tuple[str, ...]) -> str:
        context = "，".join(FRAME_NAMES[f] for f in frames)
        if action == "110_first":
            return f"危险信号，110 先行处置：{top.describe()}"
        if action == "consult" and frames:
            return f"有危险信号（{top.describe()}），但来电{context}：请三方通话与 110 确认"
        if action == "consult":
            return f"危险信号较弱（{top.describe()}）：请三方通话与 110 确认是否有人正处于危险中"
        return f"提到{top.reason}（“{top.evidence}”），但来电{context}，按非紧急事项处理"
