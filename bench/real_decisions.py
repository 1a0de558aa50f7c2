"""Decisions on real tickets and on near-the-line calls (issue 21). Prints its command and one table.

    python -m bench.real_decisions [--folds 5] [--skip-real] [--out bench/results/real_decisions]

Rows:
- Haikou dev tickets (../shared/datasets, every one taken by 12345), 5-fold cross-validation with the
  city's own departments and the channel map 公安局 / 公安局交通警察支队 → 110: how often "110 先行" and
  the three-way consult fire, whether a car move ever gets "110 先行", router accuracy against the
  classifier alone and against char TF-IDF + LinearSVC on the same folds, the review rate at the
  default budget against the accuracy target alone (the behaviour before the budget).
- Taidi titles (no police class, no channel information): the same accuracy rows.
- The corpus test split, linear model trained on the training split: 110 recall, channel accuracy, and
  the 110 rows with danger evidence that the router did not send to 110 (listed by id).
- The blind hard sets (data/hardset/*.jsonl, never trained on): 110 recall, emergencies sent
  to 12345 with no flag (neither 110 先行, consult nor review), channel and department accuracy, errors by
  slice and by family.

The texts that fired "110 先行" on Haikou are written, masked, to ``--out`` for reading (not committed).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.svm import LinearSVC

from bench import print_table
from data.corpus import TEST_PATH, TRAIN_PATH, read_jsonl
from data.masking import mask_pii
from model.router import Router
from training.evaluate import route_all
from training.train import cross_validate
from training.train import TrainConfig, train

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
from data.corpus import HARDSET_DIR
HAIKOU_POLICE = {"公安局": "110", "公安局交通警察支队": "110"}
# A car move: the caller wants a vehicle's owner found or a vehicle moved.
CAR_MOVE = re.compile(r"挪车|移车|车主|(车|车辆|机动车|货车|轿车).{0,12}(堵路|堵住|挡住|堵了|堵门)")


def reaches_110(d) -> bool:
    """The call reaches 110: transferred there, or 110 brought into a three-way consult."""
    return d.channel == "110" or d.action == "consult"


def flagged(d) -> bool:
    return d.action in ("110_first", "consult") or d.needs_review


def baseline_cv(texts: list[str], y: np.ndarray, folds: int, seed: int) -> tuple[float, float]:
    """char 1-3-gram TF-IDF + LinearSVC on the folds cross_validate uses (same splitter and seed)."""
    pred = np.empty(len(y), dtype=object)
    for tr, te in StratifiedKFold(folds, shuffle=True, random_state=seed).split(texts, y):
        m = make_pipeline(TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True), LinearSVC())
        m.fit([texts[i] for i in tr], y[tr])
        pred[te] = m.predict([texts[i] for i in te])
    return accuracy_score(y, pred.astype(str)), f1_score(y, pred.astype(str), average="macro")


def real_rows(name: str, cfg: TrainConfig, folds: int, out: Path, relaxed: float | None = None) -> list[tuple]:
    records, decisions, m = cross_validate(cfg, folds=folds, progress=False)
    y = np.array([r.department for r in records])
    texts = [r.text for r in records]
    n = len(records)
    actions = Counter(d.action for d in decisions)
    fired = [(r, d) for r, d in zip(records, decisions) if d.action == "110_first"]
    car = [r for r, d in fired if CAR_MOVE.search(r.text)]
    with open(out / f"{name}_110_first.jsonl", "w", encoding="utf-8") as f:
        for r, d in fired:
            f.write(json.dumps({"line": r.line, "label": r.department, "follow_up": d.follow_up, "text": mask_pii(r.text), "reason": d.reasons[0]}, ensure_ascii=False) + "\n")
    with open(out / f"{name}_consult.jsonl", "w", encoding="utf-8") as f:
        for r, d in zip(records, decisions):
            if d.action == "consult":
                f.write(json.dumps({"line": r.line, "label": r.department, "text": mask_pii(r.text), "reason": d.reasons[0]}, ensure_ascii=False) + "\n")
    ticket = np.array([d.follow_up or d.department for d in decisions])  # where the ticket ends up
    tacc, tf1 = accuracy_score(y, ticket), f1_score(y, ticket, labels=sorted(set(y)), average="macro")
    before = TrainConfig(**{**cfg.to_dict(), "review_budget": None})
    _, _, m_before = cross_validate(before, folds=folds, progress=False)
    bacc, bf1 = baseline_cv(texts, y, folds, cfg.seed)
    label = f"{name} ({n} tickets, {len(set(y))} departments, {folds}-fold)"
    rv, rvb = m["review"], m_before["review"]
    return [
        (label, "110 先行 fired: share of tickets (count)", f"{actions['110_first'] / n:.2%} ({actions['110_first']})"),
        (label, "car moves among them", f"{len(car)}"),
        (label, "三方通话 (consult): share (count)", f"{actions['consult'] / n:.2%} ({actions['consult']})"),
        (label, "router: department accuracy / macro-F1", f"{m['department']['accuracy']:.3f} / {m['department']['macro_f1']:.3f}"),
        (label, "router, the ticket's department (after 110 先行: its follow-up department): accuracy / macro-F1", f"{tacc:.3f} / {tf1:.3f}"),
        (label, "110 先行 with a follow-up department (先期处置后转办)", f"{sum(d.follow_up is not None for d in decisions)}"),
        (label, "classifier alone: accuracy / macro-F1", f"{m['classifier_alone']['accuracy']:.3f} / {m['classifier_alone']['macro_f1']:.3f}"),
        (label, "char TF-IDF + LinearSVC: accuracy / macro-F1", f"{bacc:.3f} / {bf1:.3f}"),
        (label, f"review at budget {cfg.review_budget}: rate / accuracy of the rest", f"{rv['rate']:.3f} / {rv['accuracy_accepted']:.3f}"),
        (label, "review by accuracy target alone: rate / accuracy of the rest", f"{rvb['rate']:.3f} / {rvb['accuracy_accepted']:.3f}"),
    ] + ([] if relaxed is None else operating_point_rows(label, cfg, relaxed, folds))


def operating_point_rows(label: str, cfg: TrainConfig, recall: float, folds: int) -> list[tuple]:
    """The same tickets at another 110-recall target (a city's own operating point)."""
    _, decisions, m = cross_validate(TrainConfig(**{**cfg.to_dict(), "target_110_recall": recall}), folds=folds, progress=False)
    n = len(decisions)
    consult = sum(d.action == "consult" for d in decisions)
    return [(label, f"at --target-110-recall {recall}: consult share / router accuracy / macro-F1",
             f"{consult / n:.2%} / {m['department']['accuracy']:.3f} / {m['department']['macro_f1']:.3f}")]


def corpus_and_hardset(out: Path) -> list[tuple]:
    model = train(TrainConfig(data=[str(TRAIN_PATH)], out=str(out / "corpus-linear")), progress=False)
    router = Router(model)
    rows = []
    test = read_jsonl(TEST_PATH)
    dec = route_all(router, [r["text"] for r in test])
    true110 = np.array([r["channel"] == "110" for r in test])
    pred110 = np.array([d.channel == "110" for d in dec])
    reached = np.array([reaches_110(d) for d in dec])
    lost = [r["id"] for r, d in zip(test, dec) if r["channel"] == "110" and not reaches_110(d) and d.matched_rules
            and any(rid in {x.id for x in router.rules.rules if x.kind == "danger"} for rid in d.matched_rules)]
    name = f"corpus test split ({len(test)} rows)"
    actions = Counter(d.action for d in dec)
    rows += [
        (name, "110 recall: sent to 110 / reached 110 (sent or consult) / channel accuracy",
         f"{pred110[true110].mean():.3f} / {reached[true110].mean():.3f} / {np.mean(pred110 == true110):.3f}"),
        (name, "department accuracy / review rate", f"{np.mean([d.department == r['department'] for r, d in zip(test, dec)]):.3f} / {np.mean([d.needs_review for d in dec]):.3f}"),
        (name, "actions: 110 先行 / consult / route", f"{actions['110_first']} / {actions['consult']} / {actions['route']}"),
        (name, "110 rows with danger evidence that did not reach 110", ", ".join(lost) or "none"),
        (name, "110 rows that did not reach 110", ", ".join(r["id"] for r, d in zip(test, dec) if r["channel"] == "110" and not reaches_110(d)) or "none"),
    ]
    for path in sorted(HARDSET_DIR.glob("*.jsonl")):
        rows += hardset_rows(router, path)
    return rows


def hardset_rows(router: Router, path: Path) -> list[tuple]:
    """One blind hard-set file routed: recall (sent and reached), channel accuracy, unflagged emergencies, errors by family."""
    hard = read_jsonl(path)
    dec = route_all(router, [r["text"] for r in hard])
    true110 = np.array([r["channel"] == "110" for r in hard])
    emerg = np.array([r["emergency"] for r in hard])
    pred110 = np.array([d.channel == "110" for d in dec])
    reached = np.array([reaches_110(d) for d in dec])
    unflagged = [r["id"] for r, d in zip(hard, dec) if r["emergency"] and d.channel != "110" and not flagged(d)]
    name = f"blind hard set {path.stem} ({len(hard)} calls, {int(emerg.sum())} emergencies)"
    wrong = Counter(r["family"] for r, p in zip(hard, pred110) if p != (r["channel"] == "110"))
    by_slice = Counter(r["slice"] for r, p in zip(hard, pred110) if p != (r["channel"] == "110"))
    per_slice = Counter(r["slice"] for r in hard)
    actions = Counter(d.action for d in dec)
    return [
        (name, "110 recall: sent / reached (sent or consult); emergencies sent / reached",
         f"{pred110[true110].mean():.3f} / {reached[true110].mean():.3f}; {pred110[emerg].mean():.3f} / {reached[emerg].mean():.3f}"),
        (name, "channel accuracy", f"{np.mean(pred110 == true110):.3f}"),
        (name, "department accuracy / review rate", f"{np.mean([d.department == r['department'] for r, d in zip(hard, dec)]):.3f} / {np.mean([d.needs_review for d in dec]):.3f}"),
        (name, "12345 calls sent to 110", f"{int((pred110 & ~true110).sum())} of {int((~true110).sum())}"),
        (name, "emergencies sent to 12345 with no flag", f"{len(unflagged)}: {', '.join(unflagged)}" if unflagged else "0"),
        (name, "actions: 110 先行 / consult / route", f"{actions['110_first']} / {actions['consult']} / {actions['route']}"),
        (name, "channel errors by slice (of its calls)", ", ".join(f"{k} {by_slice[k]}/{per_slice[k]}" for k in sorted(by_slice))),
        (name, "channel errors by family", ", ".join(f"{k} {v}" for k, v in wrong.most_common())),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--skip-real", action="store_true", help="skip ../shared/datasets")
    ap.add_argument("--out", type=Path, default=Path("bench/results/real_decisions"))
    args = ap.parse_args()
    print("command: python -m bench.real_decisions " + " ".join(sys.argv[1:]))
    args.out.mkdir(parents=True, exist_ok=True)
    rows = corpus_and_hardset(args.out)
    hk, td = SHARED / "haikou12345" / "dev.csv", SHARED / "taidi2020c" / "dev_titles.csv"
    if not args.skip_real and hk.exists():
        cmap = args.out / "haikou_channel_map.json"
        cmap.write_text(json.dumps(HAIKOU_POLICE, ensure_ascii=False), encoding="utf-8")
        rows += real_rows("haikou", TrainConfig(data=[str(hk)], out="-", channel_map=str(cmap), strict=False), args.folds, args.out, relaxed=0.9)
    if not args.skip_real and td.exists():
        rows += real_rows("taidi", TrainConfig(data=[str(td)], out="-", label_column="label", strict=False), args.folds, args.out)
    print_table(rows)


if __name__ == "__main__":
    main()
