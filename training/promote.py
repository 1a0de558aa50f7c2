"""Promotion policy: a challenger replaces the champion only if it is no worse on 110 recall and macro-F1.

The numbers come from the challenger's ``comparison.json`` (written by ``hotline retrain``): both
models routed the same fixed test set. If the registry's champion has changed since that
comparison, the comparison is made again against the new champion on the same test set (the test
files are checked against their recorded checksums first).

A metric passes when ``challenger − champion ≥ margin``; margins default to 0 (no drop allowed) and
come from :class:`serve.config.Settings` (``HOTLINE_PROMOTE_MIN_110_RECALL_DELTA``,
``HOTLINE_PROMOTE_MIN_MACRO_F1_DELTA``) unless given.

A challenger that routes to another department list than the champion is refused unless the policy
allows a label change (``hotline promote --allow-label-change``): its numbers were measured only on
the departments both share (see :func:`training.compare.compare_models`), and the service would
start naming departments the champion never did. The verdict says what differs either way.

>>> policy = PromotionPolicy(min_110_recall_delta=0.0, min_macro_f1_delta=-0.01)
>>> verdict = judge({"champion": {"metrics": {"110_recall": 0.95, "macro_f1": 0.60}},
...                  "challenger": {"metrics": {"110_recall": 0.90, "macro_f1": 0.62}}}, policy)
>>> verdict.accepted, verdict.reason_line()
(False, 'refused: 110 recall fell by 0.0500 (champion 0.9500 → challenger 0.9000; allowed change ≥ +0.0000)')
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from model import registry as reg
from model.artifacts import load_model
from training.compare import compare_models, describe_labels, load_test_set_from_spec, read_comparison, write_comparison

logger = logging.getLogger(__name__)

# (headline key, label, PromotionPolicy attribute); 110 recall first: a missed emergency costs most.
CHECKS = (("110_recall", "110 recall", "min_110_recall_delta"), ("macro_f1", "macro-F1", "min_macro_f1_delta"))
_EPS = 1e-9  # metrics are rounded to 4 decimals; do not refuse on float noise


class PromotionRefused(ValueError):
    """The challenger may not be promoted; ``str(exc)`` is one line naming the metric and the drop."""


@dataclass
class PromotionPolicy:
    """Smallest allowed change (challenger − champion) of each metric; ``-0.01`` tolerates a 0.01 drop."""

    min_110_recall_delta: float = 0.0
    min_macro_f1_delta: float = 0.0
    allow_label_change: bool = False  # accept a challenger whose department list differs from the champion's

    @classmethod
    def from_settings(cls, settings, allow_label_change: bool = False, **overrides: float | None) -> "PromotionPolicy":
        """Margins from ``Settings``, each replaced by an override that is not None."""
        policy = cls(settings.promote_min_110_recall_delta, settings.promote_min_macro_f1_delta, allow_label_change)
        for k, v in overrides.items():
            if v is not None:
                setattr(policy, k, float(v))
        return policy


@dataclass
class Verdict:
    """Outcome of :func:`judge`: ``checks`` holds champion, challenger, delta and margin per metric."""

    accepted: bool
    reasons: list[str] = field(default_factory=list)
    checks: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # said with either outcome (e.g. an allowed label change)

    def reason_line(self) -> str:
        if self.accepted:
            labels = {key: label for key, label, _ in CHECKS}
            line = "accepted: " + ("; ".join(
                f"{labels.get(k, k)} {c['challenger']:.4f} vs champion {c['champion']:.4f} ({c['delta']:+.4f}, allowed ≥ {c['margin']:+.4f})"
                for k, c in self.checks.items() if c.get("delta") is not None
            ) or "the champion has no numbers to compare with")
            return line + "".join(f"; {n}" for n in self.notes)
        return "refused: " + "; ".join(self.reasons)


def judge(comparison: dict, policy: PromotionPolicy) -> Verdict:
    """Apply ``policy`` to a comparison dict (see :mod:`training.compare`)."""
    champ, chal = comparison["champion"]["metrics"], comparison["challenger"]["metrics"]
    reasons, checks, notes = [], {}, []
    labels = comparison.get("labels") or {"same": True, "comparable": True}
    if not labels["same"]:
        diff = f"the department lists differ: {describe_labels(labels)}"
        if policy.allow_label_change:
            notes.append(diff + " (allowed by --allow-label-change)")
        else:
            reasons.append(diff + "; promote with --allow-label-change if the new department list is meant")
    for key, label, attr in CHECKS:
        margin = float(getattr(policy, attr))
        a, b = chal.get(key), champ.get(key)
        checks[key] = {"champion": b, "challenger": a, "margin": margin, "delta": None}
        if a is None:
            reasons.append(f"{label} of the challenger cannot be measured on the test set (no 110 calls in it?)")
            continue
        if b is None or not labels["comparable"]:
            continue  # nothing to be worse than
        delta = round(a - b, 4)
        checks[key]["delta"] = delta
        if delta < margin - _EPS:
            verb = "fell" if delta < 0 else "rose only"
            reasons.append(f"{label} {verb} by {abs(delta):.4f} (champion {b:.4f} → challenger {a:.4f}; allowed change ≥ {margin:+.4f})")
    return Verdict(accepted=not reasons, reasons=reasons, checks=checks, notes=notes)


@dataclass
class PromotionResult:
    registered: Path
    previous: str | None
    verdict: Verdict | None
    comparison: dict | None
    recompared: bool = False
    forced: bool = False
    already_current: bool = False


def promote_challenger(challenger_dir: str | Path, registry: str | Path, policy: PromotionPolicy | None = None, force: bool = False) -> PromotionResult:
    """Check the challenger against the registry's champion and, if it passes (or ``force``), promote it.

    Raises
    ------
    PromotionRefused
        Worse than the champion beyond the margins, no ``comparison.json``, a comparison made for
        another model, or a champion that changed and a test set that cannot be read again.
    ModelLoadError
        The challenger folder is not a loadable model.
    """
    challenger_dir, registry = Path(challenger_dir), Path(registry)
    policy = policy or PromotionPolicy()
    challenger = load_model(challenger_dir)
    sha = reg.weights_sha256(challenger_dir)
    current_dir = reg.current_model_dir(registry)
    current_sha = reg.weights_sha256(current_dir) if current_dir is not None else None
    if current_sha is not None and current_sha == sha:
        return PromotionResult(current_dir, reg.read_pointer(registry, reg.PREVIOUS), None, read_comparison(challenger_dir), already_current=True)
    comparison = read_comparison(challenger_dir)
    verdict, recompared = None, False
    if comparison is None:
        if not force:
            raise PromotionRefused(f"refused: {challenger_dir} has no comparison.json; run `hotline retrain` to compare it with the champion (or use --force)")
    else:
        if comparison["challenger"].get("weights_sha256") != sha:
            raise PromotionRefused(f"refused: {challenger_dir}/comparison.json was made for another model (weights differ); run `hotline retrain` again")
        if comparison["champion"].get("weights_sha256") != current_sha:
            comparison, recompared = _recompare(challenger_dir, challenger, current_dir, comparison, force)
        verdict = judge(comparison, policy)
        if not verdict.accepted:
            if not force:
                raise PromotionRefused(verdict.reason_line() + " (use --force to promote anyway)")
            logger.warning("promoting despite the policy (--force): %s", verdict.reason_line())
    note = {
        "forced": bool(force and (verdict is None or not verdict.accepted)),
        "verdict": verdict.reason_line() if verdict else "no comparison",
        "deltas": {k: c["delta"] for k, c in verdict.checks.items()} if verdict else None,
        "test_files": comparison["test"]["files"] if comparison else None,
        "weights_sha256": sha,
    }
    previous = current_dir.name if current_dir is not None else None
    dest = reg.promote(challenger_dir, registry, note=note)
    return PromotionResult(dest, previous, verdict, comparison, recompared=recompared, forced=note["forced"])


def _recompare(challenger_dir: Path, challenger, current_dir: Path | None, comparison: dict, force: bool) -> tuple[dict, bool]:
    """The champion changed since the comparison: compare again on the same (unchanged) test set."""
    from data.loading import DataError

    was = comparison["champion"].get("name")
    now = current_dir.name if current_dir is not None else "rules-only"
    try:
        test = load_test_set_from_spec(comparison["test"])
    except DataError as exc:
        if force:
            logger.warning("champion changed (%s → %s) and the test set cannot be read again (%s); promoting on --force", was, now, exc)
            return comparison, False
        raise PromotionRefused(f"refused: the champion changed since the comparison ({was} → {now}) and the test set cannot be read again: {exc}") from None
    logger.info("champion changed since the comparison (%s → %s); comparing again on the same test set", was, now)
    champion = load_model(current_dir) if current_dir is not None else None
    fresh = compare_models(challenger, champion, test)
    for k in ("merge", "retrain_config"):
        if k in comparison:
            fresh[k] = comparison[k]
    write_comparison(challenger_dir, fresh)
    return fresh, True
