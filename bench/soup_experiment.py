"""Experiment (not product code): a uniform weight soup of N networks fine-tuned from the same
pretrained encoder and the same head initialisation (only batch order and dropout differ), against one
network and the N-network ensemble, each pooled with the linear half, on the Taidi/Haikou 80/20 split.
    PYTHONPATH=. python bench/soup_experiment.py DATASET SEED [N]  (writes bench/results/soup_<dataset>_<seed>_<n>.json)
"""
import copy, json, logging, sys, tempfile, time, random
from pathlib import Path
import numpy as np
import torch
from scipy.special import softmax
from bench.transformer_router import write_split, LABEL_COLUMN
from bench.transformer_real import RESULTS, scores
from bench.real_decisions import HAIKOU_POLICE
from data.cleaning import normalize_text, classifier_text
from data.corpus import TRAIN_PATH, read_jsonl
from model.encoder.prune import prune_vocabulary
from model.transformer import trainer as trmod
from model.transformer.classifier import TransformerTextClassifier
from model.transformer.ensemble import LogPoolEnsemble
from training.config import load_training_data
from training.train import TrainConfig, train

DATASET, SEED = sys.argv[1], int(sys.argv[2]); N = int(sys.argv[3]) if len(sys.argv) > 3 else 3
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

def seed(self):  # every member's heads initialised from SEED
    random.seed(SEED); np.random.seed(SEED); torch.manual_seed(SEED)
trmod.Trainer.seed = seed
_orig_train = trmod.Trainer.train
def train_(self, *a, **k):
    torch.manual_seed(self.args.random_state)  # dropout per member (batch order already per member)
    return _orig_train(self, *a, **k)
trmod.Trainer.train = train_
cap = {}
_orig_fit = TransformerTextClassifier.fit
def fit(self, texts, labels):
    if self.n_networks > 1:
        cap["texts"], cap["labels"] = [str(t) for t in texts], np.asarray([str(y) for y in labels])
    return _orig_fit(self, texts, labels)
TransformerTextClassifier.fit = fit

t0 = time.time()
with tempfile.TemporaryDirectory() as tmp:
    tmp = Path(tmp)
    train_csv, test_csv, train_texts = write_split(DATASET, tmp)
    common = {"strict": False, "label_column": LABEL_COLUMN[DATASET]}
    cmap = None
    if DATASET == "haikou":
        (tmp / "channels.json").write_text(json.dumps(HAIKOU_POLICE, ensure_ascii=False), encoding="utf-8")
        common["channel_map"] = str(tmp / "channels.json"); cmap = HAIKOU_POLICE
    corpus = [r["text"] for r in read_jsonl(TRAIN_PATH)]
    pruned = RESULTS / f"base-{DATASET}"
    prune_vocabulary("models/base/e5-small-q4", pruned, train_texts + corpus)
    cfg = TrainConfig(data=[str(train_csv)], test_data=[str(test_csv)], out=str(tmp / "lin"), seed=SEED, speed_texts=0, **common)
    linear = train(cfg, progress=False)
    test = load_training_data(cfg, files=cfg.test_data, taxonomy=linear.taxonomy)[0].records
    tf = train(TrainConfig(**{**cfg.to_dict(), "out": str(tmp / "tf"), "model": "transformer", "base_model": str(pruned),
                              "transformer": {"n_networks": N}, "export_onnx": False}), progress=False)
clf = tf.classifier
texts, labels = cap["texts"], cap["labels"]
classes = clf.classes_
va = clf.validation_index_
tr = np.setdiff1d(np.arange(len(texts)), va)
yv = np.searchsorted(classes, labels[va])
te_texts = [classifier_text(normalize_text(r.text)) for r in test]
truth = [r.department for r in test]
seq_va, seq_te = clf._tokenize([texts[i] for i in va]), clf._tokenize(te_texts)
nets = [clf, *clf.members_]
cm = None if cmap is None else {str(k): str(v) for k, v in cmap.items()}

def pooled(val_p, te_p):
    ens = LogPoolEnsemble.fit(val_p, texts, labels, tr, va, classes, cm, SEED)
    return ens.combine(te_p, ens.transform_rows(te_texts)), ens.exponents

out = {}
val_ps, te_ps = [], []
for k, m in enumerate(nets):
    vp, tp = m._combine(*m._logits(seq_va)), m._combine(*m._logits(seq_te))
    val_ps.append(vp); te_ps.append(tp)
    p, ex = pooled(vp, tp)
    out[f"network {k+1} + linear"] = scores(truth, classes[p.argmax(1)]) + (ex,)
    out[f"network {k+1} alone"] = scores(truth, classes[tp.argmax(1)])
p, ex = pooled(np.mean(val_ps, 0), np.mean(te_ps, 0))
out[f"ensemble of {len(nets)} + linear"] = scores(truth, classes[p.argmax(1)]) + (ex,)
# the soup
sds = [m.net_.state_dict() for m in nets]
avg = {k: (sum(s[k].float() for s in sds) / len(sds)).to(sds[0][k].dtype) if sds[0][k].is_floating_point() else sds[0][k] for k in sds[0]}
for sub in ([0, 1], list(range(len(nets)))):
    soup = copy.copy(clf)
    soup.net_ = copy.deepcopy(clf.net_); soup.session_ = None; soup.members_ = []
    a = {k: (sum(sds[i][k].float() for i in sub) / len(sub)).to(sds[0][k].dtype) if sds[0][k].is_floating_point() else sds[0][k] for k in sds[0]}
    soup.net_.load_state_dict(a); soup.net_.eval()
    dl, cl = soup._logits(seq_va)
    yc = np.full(len(va), -100)
    if clf.channels_:
        yc = np.array([clf.channels_.index(cm.get(str(l))) if cm.get(str(l)) in clf.channels_ else -100 for l in labels[va]])
    soup.temperature_, soup.channel_temperature_ = trmod.Trainer(clf._check_params()).temperatures(dl, yv, cl, yc)
    vp, tp = soup._combine(dl, cl), soup._combine(*soup._logits(seq_te))
    p, ex = pooled(vp, tp)
    out[f"soup of networks {[i+1 for i in sub]} + linear"] = scores(truth, classes[p.argmax(1)]) + (ex,)
    out[f"soup of networks {[i+1 for i in sub]} alone"] = scores(truth, classes[tp.argmax(1)])
    out[f"soup {[i+1 for i in sub]} validation acc"] = float((vp.argmax(1) == yv).mean())
out["member validation acc"] = [float((v.argmax(1) == yv).mean()) for v in val_ps]
out["histories"] = [m.history_ for m in nets]
out["seconds"] = round(time.time() - t0)
print(json.dumps(out, indent=1, default=str))
(RESULTS / f"soup_{DATASET}_{SEED}_{N}.json").write_text(json.dumps(out, indent=1, default=str))
