"""The router: one decision procedure for call-takers, the API and batch prediction.

Order of precedence, for each text:

1. **Danger override** — a danger rule fires (weapon, fire, injury, drowning, …): channel 110, whatever
   the model says; source ``override``; the reason is shown.
2. **Model** — calibrated department probabilities; P(110) against the stored ``channel_110``
   threshold decides the channel, the most probable department of that channel is suggested.
3. **Review** — confidence below the stored ``review`` threshold: ``needs_review``, and the rules'
   opinion is listed among the alternatives.
4. **Rules only** — no model loaded (or the model failed on this text): the rules' opinion; with no
   rule firing, 12345 政务咨询 with ``needs_review``.

>>> router = Router(model=None)
>>> d = router.route("小区门口有人拿刀砍人")
>>> d.channel, d.department, d.source
('110', 'police_criminal', 'override')
"""
from __future__ import annotations

import logging
import threading
from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np

from data.cleaning import normalize_text
from data.taxonomy import Taxonomy, default_taxonomy
from model.artifacts import TrainedModel
from model.rules import RuleEngine, RuleMatch
from model.thresholds import decide, is_110

logger = logging.getLogger(__name__)

FALLBACK_DEPARTMENT = "consultation"
RULES_REVIEW_BELOW = 0.6


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
    ``channel_confidence`` that of the suggested channel.
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
    """

    def __init__(
        self,
        model: TrainedModel | None = None,
        rules: RuleEngine | None = None,
        review_threshold: float | None = None,
        channel_110: float | None = None,
        explain_terms: int = 5,
    ):
        self.model = model
        self.taxonomy: Taxonomy = model.taxonomy if model is not None else (rules.taxonomy if rules else default_taxonomy())
        self.rules = rules or RuleEngine.from_file(taxonomy=self.taxonomy)
        thresholds = model.thresholds if model is not None else {}
        self.review_threshold = review_threshold if review_threshold is not None else float(thresholds.get("review", 0.5))
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
        return self.model is None or hasattr(self.model.classifier, "transform_rows")

    @property
    def model_version(self) -> str | None:
        return self.model.version if self.model is not None else None

    # ------------------------------------------------------------------------------------------
    def route(self, text: str) -> Decision:
        """Route one call summary (raw text; it is normalised here)."""
        return self.route_batch([text])[0]

    def route_batch(self, texts: Sequence[str]) -> list[Decision]:
        """Route many texts; the model scores them in one batch."""
        clean = [normalize_text(t) for t in texts]
        matches = [self.rules.matches(t) for t in clean]
        proba = features = None
        model_failed = False
        if self.model is not None and clean:
            classifier = self.model.classifier
            try:
                if hasattr(classifier, "transform_rows"):  # the linear model: features once, for scores and reasons
                    features = classifier.transform_rows(clean)
                    proba = classifier.predict_proba_features(features)
                elif hasattr(classifier, "predict_proba_with_features"):  # the transformer with its linear ensemble
                    proba, features = classifier.predict_proba_with_features(clean)
                else:
                    proba = classifier.predict_proba(clean)
            except Exception:  # a model bug must not drop a live call: fall back to rules, count it
                logger.exception("model failed on a batch of %d texts; falling back to rules", len(clean))
                with self._lock:
                    self.model_errors += 1
                model_failed = True
        if proba is None:
            return [self._rules_only(text, m, model_failed) for text, m in zip(clean, matches)]
        classes = self._classes()
        chosen = decide(proba, classes, self.taxonomy, self.channel_110, is110=self._is110)  # the whole batch at once
        return [
            self._with_model(text, proba[i], tuple(c[i] for c in chosen), matches[i], None if features is None else features[i])
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
        name = self._names.get(code)
        if name is None:
            name = self._names[code] = self._lookup_name(code)
        return name

    def _lookup_name(self, code: str) -> str:
        if code in self.taxonomy:
            return self.taxonomy[code].name
        base = default_taxonomy()
        return base[code].name if code in base else code

    def _channel(self, code: str) -> str:
        channel = self._channels.get(code)
        if channel is None:
            channel = self._channels[code] = self._lookup_channel(code)
        return channel

    def _lookup_channel(self, code: str) -> str:
        try:
            return self.rules.channel_of(code)
        except Exception:  # a label neither taxonomy knows
            return "12345"

    def _links(self, department: str, matches: list[RuleMatch], danger: bool) -> list[str]:
        """Emergency lines to link in: the department's own (fire: 119) plus the danger evidence's."""
        links = set(self.taxonomy[department].links) if department in self.taxonomy else set()
        if danger:
            links |= {link for m in matches if m.kind == "danger" for link in m.links}
        return sorted(links, key=int)

    def _with_model(self, text: str, row: np.ndarray, chosen: tuple, matches: list[RuleMatch], features=None) -> Decision:
        """One text's decision from its probabilities ``row`` (n_classes,) and what :func:`decide`
        chose for it: (channel, department, confidence, P(110))."""
        classifier = self.model.classifier
        classes = self._classes()
        channel, department, confidence, p110 = str(chosen[0]), str(chosen[1]), float(chosen[2]), float(chosen[3])
        model_department = department
        order = np.argsort(-row)
        reasons: list[str] = []
        danger = [m for m in matches if m.kind == "danger"]
        source = "model"
        needs_review = confidence < self.review_threshold
        if danger:
            top = danger[0]
            if channel != "110":
                source = "override"
                needs_review = True  # an override that disagrees with the model goes to review
                reasons.append(f"危险信号，110 先行处置：{top.describe()}")
                # Department: the rule's, unless the model already favours a 110 department for it.
                best110 = [c for c in (classes[j] for j in order) if self._channel(c) == "110"]
                department = top.department if top.department in self.taxonomy or not best110 else best110[0]
                if department not in self.taxonomy and best110:
                    department = best110[0]
                confidence = float(row[classes.index(department)]) if department in classes else 0.0
                channel = "110"
            else:
                reasons.append(f"危险信号：{top.describe()}")
        if source == "model":
            terms = []
            if hasattr(classifier, "explain"):
                try:
                    kw = {} if features is None else {"features": features}
                    terms = [t for t, _ in classifier.explain(text, department, top_k=self.explain_terms, **kw)]
                except Exception:
                    logger.debug("explain failed", exc_info=True)
            reasons.append(f"模型判断为{self._name(department)}（置信度 {confidence:.0%}）" + (f"，关键词：{'、'.join(terms)}" if terms else ""))
        route_matches = [m for m in matches if m.kind == "route"]
        for m in route_matches[:2]:
            reasons.append(f"规则：{m.describe()}")
        alternatives = [
            Alternative(c, self._name(c), self._channel(c), round(float(row[j]), 4))
            for j, c in ((j, classes[j]) for j in order[:4])
            if c != department
        ][:3]
        if needs_review:
            rule_dep, rule_score, _ = self.rules.opinion(text, matches)
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
            links=self._links(department, matches, bool(danger)),
            model_version=self.model_version,
            danger=bool(danger),
            matched_rules=[m.rule_id for m in matches],
            model_department=model_department,
        )

    def _rules_only(self, text: str, matches: list[RuleMatch], model_failed: bool) -> Decision:
        department, score, support = self.rules.opinion(text, matches)
        danger = [m for m in matches if m.kind == "danger"]
        reasons = []
        if model_failed:
            reasons.append("模型出错，本次按规则处理")
        elif self.model is None:
            reasons.append("未加载模型，按规则处理")
        if department is None:
            department, score = FALLBACK_DEPARTMENT, 0.0
            reasons.append("没有规则命中，请人工判断")
        else:
            prefix = "危险信号，110 先行处置：" if danger else "规则："
            reasons.extend(prefix + m.describe() for m in support[:3])
        if department not in self.taxonomy and danger:
            # A city's own taxonomy: keep the rule's channel, name its first 110 department if any.
            own110 = self.taxonomy.codes_for("110")
            department = own110[0] if own110 else department
        elif department not in self.taxonomy:
            department = self.taxonomy.codes[0] if FALLBACK_DEPARTMENT not in self.taxonomy else FALLBACK_DEPARTMENT
        channel = "110" if danger else self._channel(department)
        others: dict[str, float] = {}
        for m in matches:
            if m.department != department:
                others[m.department] = max(others.get(m.department, 0.0), m.priority / 200)
        alternatives = [
            Alternative(d, self._name(d), self._channel(d), round(p, 4), source="rules")
            for d, p in sorted(others.items(), key=lambda kv: -kv[1])[:3]
        ]
        return Decision(
            channel=channel,
            department=department,
            department_name=self._name(department),
            confidence=round(score, 4),
            channel_confidence=round(score if not danger else max(score, 0.9), 4),
            needs_review=bool(score < RULES_REVIEW_BELOW or not danger and self.model is None and score < 0.75),
            source="override" if danger else "rules",
            reasons=reasons,
            alternatives=alternatives,
            links=self._links(department, matches, bool(danger)),
            model_version=None,
            danger=bool(danger),
            matched_rules=[m.rule_id for m in matches],
        )
