"""Where the router and the classifier alone disagree on real tickets (issue 21's last gap).

    python -m bench.router_gap [--dataset haikou|taidi] [--folds 5] [--out bench/results/router_gap]

Runs the cross-validation of ``training.train.cross_validate`` (same splitter, seed, inner folds and
thresholds), keeps each fold's model in ``--out`` (re-used on the next run: a change to the router,
the danger judgement or the rules is re-measured in seconds), and lists every ticket where the
router's department differs from the classifier's own most probable department: the truth, both
departments, the router's action, the rules that fired, the review flag, P(110), the channel
threshold and the top probabilities. Each difference gets a cause:

- ``override``     "110 先行" replaced the model's department;
- ``channel>=0.5`` P(110) ≥ 0.5: the most probable 110 department, though a 12345 one is the argmax;
- ``channel<t``    P(110) below the channel threshold: the most probable 12345 department, though a
                   110 one is the argmax;
- ``other``        anything else (a bug).

Texts are masked (``data.masking.mask_pii``) in the written file; the printed table holds counts only.
"""
from __future__ import annotations

import argparse
import json
import pickle
import sys
from collections import Counter
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedKFold

from bench import print_table
from data.cleaning import normalize_text
from data.masking import mask_pii
from model.router import Router
from model.thresholds import channel_110_probability
from training.evaluate import route_all
from training.train import TrainConfig, fit_fold_model, load_training_data

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
HAIKOU_POLICE = {"公安局": "110", "公安局交通警察支队": "110"}


def config(dataset: str, out: Path) -> TrainConfig:
    if dataset == "haikou":
        cmap = out / "haikou_channel_map.json"
        cmap.write_text(json.dumps(HAIKOU_POLICE, ensure_ascii=False), encoding="utf-8")
        return TrainConfig(data=[str(SHARED / "haikou12345" / "dev.csv")], out="-", channel_map=str(cmap), strict=False)
    return TrainConfig(data=[str(SHARED / "taidi2020c" / "dev_titles.csv")], out="-", label_column="label", strict=False)


def fold_models(cfg: TrainConfig, folds: int, inner_folds: int, cache: Path):
    """(records, taxonomy, [(test indices, TrainedModel)]) as cross_validate builds them; cached in ``cache``."""
    result, taxonomy = load_training_data(cfg)
    records = result.records
    texts = [r.text for r in records]
    labels = np.asarray([r.department for r in records])
    if cache.exists():
        return records, taxonomy, pickle.loads(cache.read_bytes())
    out = []
    for k, (tr, te) in enumerate(StratifiedKFold(n_splits=folds, shuffle=True, random_state=cfg.seed).split(texts, labels)):
        out.append((te, fit_fold_model(cfg, taxonomy, [texts[i] for i in tr], labels[tr], inner_folds, version=f"gap-fold{k + 1}")))
        print(f"fold {k + 1} fitted", file=sys.stderr)
    cache.write_bytes(pickle.dumps(out))
    return records, taxonomy, out


def differences(records, taxonomy, models) -> tuple[list[dict], dict]:
    labels = np.asarray([r.department for r in records])
    router_dep = np.empty(len(records), dtype=object)
    alone = np.empty(len(records), dtype=object)
    rows, actions = [], {}
    for te, model in models:
        router = Router(model)
        clf = model.classifier
        texts = [records[i].text for i in te]
        proba = clf.predict_proba([normalize_text(t) for t in texts])
        classes = [str(c) for c in clf.classes_]
        p110 = channel_110_probability(proba, classes, taxonomy)
        decisions = route_all(router, texts)
        for j, (i, d) in enumerate(zip(te, decisions)):
            a = classes[int(proba[j].argmax())]
            alone[i], router_dep[i] = a, d.department
            actions[records[i].line] = d.action
            if d.department == a:
                continue
            a110 = taxonomy.channel_of(a) == "110" if a in taxonomy else False
            cause = ("override" if d.source == "override" else
                     "channel>=0.5" if p110[j] >= 0.5 and not a110 else
                     "channel<t" if p110[j] < router.channel_110 and a110 else "other")
            top = np.argsort(-proba[j])[:3]
            rows.append({
                "line": records[i].line, "cause": cause, "truth": labels[i], "router": d.department, "alone": a,
                "router_right": d.department == labels[i], "alone_right": a == labels[i],
                "action": d.action, "source": d.source, "rules": d.matched_rules, "review": d.needs_review,
                "follow_up": d.follow_up, "p110": round(float(p110[j]), 4), "channel_110": round(router.channel_110, 4),
                "top": [(classes[t], round(float(proba[j][t]), 3)) for t in top],
                "reason": d.reasons[0] if d.reasons else "", "text": mask_pii(records[i].text),
            })
    acc = {"router": float(np.mean(router_dep == labels)), "alone": float(np.mean(alone == labels)), "n": len(labels), "actions": actions}
    return rows, acc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", choices=("haikou", "taidi"), default="haikou")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--out", type=Path, default=Path("bench/results/router_gap"))
    args = ap.parse_args()
    print("command: python -m bench.router_gap " + " ".join(sys.argv[1:]))
    args.out.mkdir(parents=True, exist_ok=True)
    cfg = config(args.dataset, args.out)
    records, taxonomy, models = fold_models(cfg, args.folds, 3, args.out / f"{args.dataset}_folds{args.folds}.pkl")
    rows, acc = differences(records, taxonomy, models)
    path = args.out / f"{args.dataset}_differences.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    (args.out / f"{args.dataset}_actions.json").write_text(json.dumps(acc["actions"]), encoding="utf-8")
    counts = Counter(acc["actions"].values())
    by_cause = Counter(r["cause"] for r in rows)
    table = [(args.dataset, "router / classifier alone accuracy", f"{acc['router']:.4f} / {acc['alone']:.4f} ({acc['n']} tickets)")]
    table.append((args.dataset, "actions: 110 先行 / consult / route", f"{counts['110_first']} / {counts['consult']} / {counts['route']}"))
    for cause, n in by_cause.most_common():
        sub = [r for r in rows if r["cause"] == cause]
        table.append((args.dataset, f"differs: {cause}", f"{n} (router right {sum(r['router_right'] for r in sub)}, alone right {sum(r['alone_right'] for r in sub)})"))
    table.append((args.dataset, "listed in", str(path)))
    print_table(table)


if __name__ == "__main__":
    main()
