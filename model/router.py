"""The router: one decision procedure for call-takers, the API and batch prediction.

Order of precedence, for each text:

1. **Model** — calibrated department probabilities; at or above the stored ``channel_110`` threshold
   of P(110) the most probable department overall is suggested (and its channel), below it the most
   probable 12345 department (:func:`model.thresholds.decide`).
2. **Danger, judged in context** (:mod:`model.danger`) — the danger rules' evidence, the text's 12345
   frames and the model's P(110) give one of three actions: ``110_first`` (channel 110 whatever the
   model says, source ``override`` when it overrules the model), ``consult`` (a three-way call with
   the other line; the channel stays the model's) or ``route``. Without danger evidence, a 110 decision
   the model makes only because of the 110-recall threshold (P(110) < 0.5), or with P(110) ≥ 0.5 split
   over 110 departments while a 12345 department is the most probable one, is a ``consult`` too: the
   line is unclear; so is a call whose second matter alone reads as 110 (:mod:`model.matters`).
3. **Review** — department confidence below the stored ``review`` threshold: ``needs_review``, and the
   rules' opinion (in the served taxonomy's departments) is listed among the alternatives.
4. **Rules only** — no model loaded (or the model failed on this text): the rules' opinion; with no
   rule firing, 12345 政务咨询 with ``needs_review``.

Every department the router names is one of the served taxonomy's, or ``"110"`` (the 110 service
desk) when a city's taxonomy has no 110 department at all.

>>> router = Router(model=None)
>>> d = router.route("小区门口有人拿刀砍人")
>>> d.channel, d.department, d.source, d.action
('110', 'police_criminal', 'override', '110_first')
"""
from __future__ import annotations

import logging
import re
import threading
from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np

from data.cleaning import classifier_text, normalize_text
from data.hanzi import to_simplified
from model.matters import police_parts, split_matters
from data.taxonomy import Taxonomy, default_taxonomy
from model.artifacts import TrainedModel
from model.danger import DangerAssessor
from model.rules import RuleEngine, RuleMatch
from model.thresholds import decide, is_110, review_threshold_for_budget, unclear_line

logger = logging.getLogger(__name__)

FALLBACK_DEPARTMENT = "consultation"
RULES_REVIEW_BELOW = 0.6
SERVICE_DESK_110 = "110"  # the target when danger calls for 110 and the taxonomy has no 110 department
# Characters that carry no routing meaning on their own: an explanation term made only of these
# ("了", "把", "有人") is filler, not a reason.
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
FILLER_CHARS = frozenset("的了把有人在是我你他她它们这那就都也还又和与及被给让说个一下吗呢吧啊呀嘛么着过很太要会能可到去来里上中对其称")


@dataclass
class Alternative:
    department: str
    department_name: str
    channel: str
    probability: float
    source: str = "model"


@dataclass
class Decision:
    """What the router suggests for one text.

    ``confidence`` is the calibrated probability of the suggested department (rules: the rules' score);
    ``channel_confidence`` that of the suggested channel. ``action`` is ``110_first``, ``consult`` or
    ``route`` (:mod:`model.danger`); ``danger`` is true when danger evidence stands (action not ``route``).
    ``follow_up`` is set on ``110_first`` when the matter itself belongs to a 12345 department (a gas
    leak: the gas company; a live wire: the power company): the department the ticket is handed to
    after 110's first response (先期处置后转办, as the 2022 opinion prescribes), else None.
    """

    channel: str
    department: str
    department_name: str
    confidence: float
    channel_confidence: float
    needs_review: bool
    source: str
    reasons: list[str]
    alternatives: list[Alternative]
    links: list[str]
    model_version: str | None
    danger: bool = False
    matched_rules: list[str] = field(default_factory=list)
    model_department: str | None = None
    action: str = "route"
    follow_up: str | None = None
    follow_up_name: str | None = None
    model_kind: str | None = None  # which model answered: "linear", "transformer" or "linear (latency fallback)"; None: rules

    def to_dict(self) -> dict:
        return asdict(self)


class Router:
    """Combine the danger override, a trained model and the fallback rules.

    Parameters
    ----------
    model : TrainedModel or None
        ``None`` runs on rules only.
    rules : RuleEngine, optional
        Default: the shipped rules file, with the model's taxonomy.
    review_threshold, channel_110 : float, optional
        Override the thresholds stored with the model.
    review_budget : float, optional
        A share of calls: the review threshold becomes the one that sends about this share of the
        model's validation predictions to review (folders trained before stop 16 lack the quantiles
        and keep their stored threshold). Ignored when ``review_threshold`` is given.
    fallback : Router, optional
        A fast router (the folder's linear model, :mod:`model.fallback`) that a server may answer with
        when this one's model is too slow for its latency budget (:mod:`serve.budget`).
    """

    def __init__(
        self,
        model: TrainedModel | None = None,
        rules: RuleEngine | None = None,
        review_threshold: float | None = None,
        channel_110: float | None = None,
        explain_terms: int = 5,
        assessor: DangerAssessor | None = None,
        review_budget: float | None = None,
        fallback: "Router | None" = None,
    ):
        self.model = model
        self.fallback = fallback
        self.taxonomy: Taxonomy = model.taxonomy if model is not None else (rules.taxonomy if rules else default_taxonomy())
        self.rules = rules or RuleEngine.from_file(taxonomy=self.taxonomy)
        self.assessor = assessor or DangerAssessor.from_file(self.rules.path)
        thresholds = model.thresholds if model is not None else {}
        self.review_threshold = review_threshold if review_threshold is not None else float(thresholds.get("review", 0.5))
        if review_budget is not None and review_threshold is None and thresholds.get("confidence_quantiles"):
            self.review_threshold = review_threshold_for_budget(thresholds["confidence_quantiles"], review_budget)
        self.channel_110 = channel_110 if channel_110 is not None else float(thresholds.get("channel_110", 0.5))
        self.explain_terms = explain_terms
        self.model_errors = 0
        self._lock = threading.Lock()
        self._names: dict[str, str] = {}     # department code -> Chinese name, filled as met
        self._channels: dict[str, str] = {}  # department code -> channel, filled as met
        self._class_list: list[str] = []     # the model's labels, in probability column order
        self._is110 = None                   # per model class: is it a 110 department (bool, (n_classes,))

    @property
    def fast(self) -> bool:
        """True when routing a text costs about a millisecond of CPU or less (rules only, or the linear
        model): a server may then route on its event loop rather than hop to a worker thread."""
        return self.model is None or bool(self.model.classifier.fast_inference)

    @property
    def model_version(self) -> str | None:
        return self.model.version if self.model is not None else None

    # ------------------------------------------------------------------------------------------
    def route(self, text: str) -> Decision:
        """Route one call summary (raw text; it is normalised here)."""
        return self.route_batch([text])[0]

    def route_batch(self, texts: Sequence[str]) -> list[Decision]:
        """Route many texts; the model scores them in one batch."""
        # simplified once (traditional characters map one for one): rules, danger frames and the classifier read the same text
        clean = [to_simplified(normalize_text(t)) for t in texts]
        matches = [self.rules.matches(t) for t in clean]
        parts = [split_matters(t) for t in clean]  # a text of several matters is scored part by part too
        extra = [p for ps in parts if len(ps) > 1 for p in ps]
        proba = features = None
        model_failed = False
        if self.model is not None and clean:
            classifier = self.model.classifier
            try:
                # one batch: the texts (features once, for scores and reasons), then their parts;
                # role words neutral, as in training (data.loading); in routing only, what the call took back cut
                proba, features = classifier.predict_proba_with_features([classifier_text(self.rules.negation.taken_back(t)) for t in clean + extra])
            except Exception:  # a model bug must not drop a live call: fall back to rules, count it
                logger.exception("model failed on a batch of %d texts; falling back to rules", len(clean))
                with self._lock:
                    self.model_errors += 1
                model_failed = True
        if proba is None:
            return [self._rules_only(text, m, model_failed) for text, m in zip(clean, matches)]
        classes = self._classes()
        proba, part_p110 = proba[: len(clean)], proba[len(clean):][:, self._is110].sum(axis=1)
        chosen = decide(proba, classes, self.taxonomy, self.channel_110, is110=self._is110)  # the whole batch at once
        second = police_parts(parts, part_p110, self.channel_110)
        return [
            self._with_model(text, proba[i], tuple(c[i] for c in chosen), matches[i], None if features is None else features[i], second[i])
            for i, text in enumerate(clean)
        ]

    def _classes(self) -> list[str]:
        """The model's labels in probability column order; sets the 110 mask on first use."""
        if self._is110 is None:
            self._class_list = [str(c) for c in self.model.classifier.classes_]
            self._is110 = is_110(self._class_list, self.taxonomy)
        return self._class_list

    # ------------------------------------------------------------------------------------------
    def _name(self, code: str) -> str:
        if code not in self._names:
            self._names[code] = self._lookup_name(code)
        return self._names[code]

    def _lookup_name(self, code: str) -> str:
        if code in self.taxonomy:
            return self.taxonomy[code].name
        if code == SERVICE_DESK_110:
            return self.taxonomy.channels.get("110", "110 报警服务台")
        base = default_taxonomy()
        return base[code].name if code in base else code

    def _channel(self, code: str) -> str:
        if code not in self._channels:
            self._channels[code] = self._lookup_channel(code)
        return self._channels[code]

    def _lookup_channel(self, code: str) -> str:
        if code == SERVICE_DESK_110:
            return "110"
        try:
            return self.rules.channel_of(code)
        except Exception:  # a label neither taxonomy knows
            return "12345"

    def _ours(self, code: str | None) -> str | None:
        """A rule's department in the served taxonomy (itself, or the city department that covers
        it), or None when the city has no such department."""
        return None if code is None else self.taxonomy.translate(code)

    def _police_target(self, rule_department: str, ranked: Sequence[str]) -> str:
        """Where "110 先行" sends a call: the rule's department when the served taxonomy has it (or a
        department covering it) on the 110 side, else the most probable 110 department in ``ranked``
        (the model's classes, most probable first), else the first 110 department of the taxonomy,
        else the 110 service desk."""
        ours = self._ours(rule_department)
        if ours is not None and self.taxonomy.channel_of(ours) == "110":
            return ours
        own110 = set(self.taxonomy.codes_for("110"))
        for code in ranked:
            if code in own110:
                return code
        return self.taxonomy.codes_for("110")[0] if own110 else SERVICE_DESK_110

    def _links(self, department: str, matches: list[RuleMatch], police_first: bool) -> list[str]:
        """Emergency lines to link in: the department's own (fire: 119) plus the danger evidence's."""
        links = set(self.taxonomy[department].links) if department in self.taxonomy else set()
        if police_first:
            links |= {link for m in matches if m.kind == "danger" for link in m.links}
        return sorted(links, key=int)

    def _explain(self, text: str, department: str, features) -> list[str]:
        """The model's terms for ``department``, filler removed (see :data:`FILLER_CHARS`)."""
        classifier = self.model.classifier
        try:
            kw = {} if features is None else {"features": features}
            terms = [t.strip() for t, _ in classifier.explain(text, department, top_k=self.explain_terms * 2, **kw)]
        except Exception:
            logger.debug("explain failed", exc_info=True)
            return []
        return [t for t in terms if t and not set(t) <= FILLER_CHARS and not t.isdigit()][: self.explain_terms]

    def _rule_reasons(self, matches: list[RuleMatch], department: str) -> list[str]:
        """Route rules that agree with the suggested department (in the served taxonomy): a rule
        that points elsewhere is an alternative, never a reason for this suggestion."""
        return [f"规则：{m.describe()}" for m in matches if m.kind == "route" and self._ours(m.department) == department][:2]

    def _with_model(self, text: str, row: np.ndarray, chosen: tuple, matches: list[RuleMatch], features=None, second: str | None = None) -> Decision:
        """One text's decision from its probabilities ``row`` (n_classes,) and what :func:`decide`
        chose for it: (channel, department, confidence, P(110)); ``second``: a matter of the text that
        alone reads as 110 (:func:`model.matters.police_parts`)."""
        classes = self._classes()
        channel, department, confidence, p110 = str(chosen[0]), str(chosen[1]), float(chosen[2]), float(chosen[3])
        model_department = department
        order = np.argsort(-row)
        source = "model"
        needs_review = confidence < self.review_threshold
        foreign = not _CJK.search(text)  # no Chinese at all ("qwerty zzz 4"): the model's confidence means nothing
        needs_review = needs_review or foreign
        verdict = self.assessor(text, matches, p110, self.channel_110)
        follow_up = None
        if verdict.action == "110_first" and channel != "110":
            follow_up = department  # the model's 12345 department handles the matter after 110's first response
            source = "override"
            needs_review = True  # an override that disagrees with the model goes to review
            department = self._police_target(verdict.evidence.department, [classes[j] for j in order])
            confidence = float(row[classes.index(department)]) if department in classes else 0.0
            channel = "110"
        action, reasons = verdict.action, [verdict.reason] if verdict.reason else []
        if action == "route" and verdict.evidence is None and unclear_line(p110, channel, self.channel_110) and self._is110.any() and not self._is110.all():
            # The line is unclear: 110 only because of the recall threshold (P(110) < 0.5), or P(110)
            # spread over several 110 departments while the most probable single department is a 12345
            # one. 110 joins a three-way call; the suggestion is the model's most probable department
            # (:func:`decide`), and the first line keeps the call if the consult does not settle it.
            # Suggesting a 110 department here instead cost the Haikou tickets 16 points of accuracy
            # (bench/README.md, stop 16), and the split case one ticket more (stop 18).
            action = "consult"
            split = "，但可能性分散在多个 110 部门，最可能的单个部门属于 12345" if p110 >= 0.5 else ""
            reasons.append(f"是否属于 110 不明确（110 的可能性 {p110:.0%}{split}）：请三方通话确认；仍不明确时由首接方受理")
        elif action == "route" and channel != "110" and second is not None:
            action = "consult"  # a second matter that alone is 110's: 110 hears it, the ticket stays here
            reasons.append(f"来电还反映了另一事项，可能属于 110（“{second[:24]}”）：请三方通话确认")
        if foreign:
            reasons.append("摘要中没有中文，模型无法可靠判断，请人工核实")
        if source == "model":
            terms = self._explain(text, department, features)
            reasons.append(f"模型判断为{self._name(department)}（部门置信度 {confidence:.0%}）" + (f"，关键词：{'、'.join(terms)}" if terms else ""))
        reasons.extend(self._rule_reasons(matches, department))
        alternatives = [
            Alternative(c, self._name(c), self._channel(c), round(float(row[j]), 4))
            for j, c in ((j, classes[j]) for j in order[:4])
            if c != department
        ][:3]
        if needs_review:
            rule_dep, rule_score, _ = self.rules.opinion(text, matches)
            rule_dep = self._ours(rule_dep)
            if rule_dep and rule_dep != department and all(a.department != rule_dep for a in alternatives):
                alternatives.append(Alternative(rule_dep, self._name(rule_dep), self._channel(rule_dep), rule_score, source="rules"))
            elif rule_dep and rule_dep != department:
                for a in alternatives:
                    if a.department == rule_dep:
                        a.source = "model+rules"
        channel_conf = p110 if channel == "110" else 1.0 - p110
        return Decision(
            channel=channel,
            department=department,
            department_name=self._name(department),
            confidence=round(confidence, 4),
            channel_confidence=round(channel_conf, 4),
            needs_review=bool(needs_review),
            source=source,
            reasons=reasons,
            alternatives=alternatives,
            links=self._links(department, matches, action == "110_first"),
            model_version=self.model_version,
            danger=action != "route" and verdict.evidence is not None,
            matched_rules=[m.rule_id for m in matches],
            model_department=model_department,
            action=action,
            follow_up=follow_up,
            follow_up_name=None if follow_up is None else self._name(follow_up),
            model_kind=self.model.classifier.model_class,
        )

    def _rules_only(self, text: str, matches: list[RuleMatch], model_failed: bool) -> Decision:
        verdict = self.assessor(text, matches, None)
        department, score, support = self.rules.opinion(text, matches)
        reasons = []
        if verdict.action == "110_first":
            department = self._police_target(verdict.evidence.department, [])
            reasons.append(verdict.reason)
            reasons.extend("危险信号：" + m.describe() for m in support[1:3] if m.kind == "danger")
        else:
            if verdict.reason:
                reasons.append(verdict.reason)
            if any(m.kind == "danger" for m in matches):  # the danger evidence did not decide: the route rules' opinion
                department, score, support = self.rules.opinion(text, [m for m in matches if m.kind == "route"])
            department = self._ours(department)
            if department is None:
                department, score = (FALLBACK_DEPARTMENT if FALLBACK_DEPARTMENT in self.taxonomy else self.taxonomy.codes[0]), 0.0
                reasons.append("没有规则命中，请人工判断")
            else:
                reasons.extend("规则：" + m.describe() for m in support[:3])
        status = "模型出错，本次按规则处理" if model_failed else "未加载模型，按规则处理" if self.model is None else None
        if status:  # after the danger judgement, before the rules' evidence
            reasons.insert(1 if verdict.reason else 0, status)
        police_first = verdict.action == "110_first"
        channel = "110" if police_first else self._channel(department)
        others: dict[str, float] = {}
        for m in matches:
            ours = self._ours(m.department)
            if ours is not None and ours != department:
                others[ours] = max(others.get(ours, 0.0), m.priority / 200)
        alternatives = [
            Alternative(d, self._name(d), self._channel(d), round(p, 4), source="rules")
            for d, p in sorted(others.items(), key=lambda kv: -kv[1])[:3]
        ]
        return Decision(
            channel=channel,
            department=department,
            department_name=self._name(department),
            confidence=round(score, 4),
            channel_confidence=round(score if not police_first else max(score, 0.9), 4),
            needs_review=bool(score < RULES_REVIEW_BELOW or not police_first and self.model is None and score < 0.75),
            source="override" if police_first else "rules",
            reasons=reasons,
            alternatives=alternatives,
            links=self._links(department, matches, police_first),
            model_version=None,
            danger=verdict.action != "route" and verdict.evidence is not None,
            matched_rules=[m.rule_id for m in matches],
            action=verdict.action,
        )
