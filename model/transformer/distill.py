"""Cross-fitted distillation: teacher probabilities of every training row from networks that never saw it.

With ``distill_folds`` = K ≥ 2 the training rows are cut into K stratified folds; teacher k is a network
trained on the other K − 1 folds (the same arguments, its own seed, early stopping and temperature on the
same validation rows as the network served) and gives its calibrated department probabilities of fold k.
The network served then learns from the labels and from these probabilities (``distill_weight``, see
:meth:`model.transformer.trainer.Trainer.train`). It is one network at serving time; the teachers cost
about K − 1 extra fine-tunes at training time and are not kept.

Why cross-fitted: a teacher's probabilities of its own training rows are nearly one-hot (bench/README.md,
stop 12: in-sample distillation kept none of the 3-network gain); probabilities of rows it did not train
on carry the confusions between departments that a seed ensemble averages over.
"""
from __future__ import annotations

import dataclasses
import logging
from typing import Callable

import numpy as np
from scipy.special import softmax
from sklearn.model_selection import KFold, StratifiedKFold

from model.transformer.network import import_torch, length_buckets, pad

logger = logging.getLogger(__name__)


def teacher_folds(y_train: np.ndarray, k: int, seed: int) -> list[np.ndarray]:
    """K folds of positions into ``y_train`` (n_train,): stratified when every class has K rows, else plain.
    Every position is in exactly one fold.

    >>> [f.tolist() for f in teacher_folds(np.array([0, 0, 1, 1]), 2, 0)]
    [[1, 2], [0, 3]]
    """
    counts = np.bincount(y_train)
    counts = counts[counts > 0]
    splitter = StratifiedKFold(k, shuffle=True, random_state=seed) if counts.min() >= k else KFold(k, shuffle=True, random_state=seed)
    return [held for _, held in splitter.split(np.zeros(len(y_train)), y_train)]


def net_logits(net, seqs: list[list[int]], pad_id: int, batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Department (n, n_classes) and channel (n, n_channels) logits of ``net`` on token ids ``seqs``, float32."""
    torch = import_torch()
    device = next(net.parameters()).device
    dep = np.zeros((len(seqs), net.department.out_features), dtype=np.float32)
    chan = np.zeros((len(seqs), net.channel.out_features if net.channel is not None else 0), dtype=np.float32)
    net.eval()
    with torch.inference_mode():
        for b in length_buckets([len(s) for s in seqs], batch_size, None):
            d, c = net(*pad([seqs[i] for i in b], pad_id, device))
            dep[b] = d.float().cpu().numpy()
            chan[b] = c.float().cpu().numpy()[:, : chan.shape[1]]
    return dep, chan


def cross_fitted_targets(trainer, make_net: Callable[[], object], ids: list, lengths: np.ndarray, y: np.ndarray, c: np.ndarray,
                         tr: np.ndarray, va: np.ndarray, pad_id: int) -> tuple[np.ndarray, list[dict]]:
    """Teacher probabilities (n_rows, n_classes) of the training rows ``tr`` (zero elsewhere) and one record per
    teacher (its fold size, epochs, validation scores). ``trainer``: the served network's
    :class:`~model.transformer.trainer.Trainer` (its ``distill_folds``); ``make_net()``: a fresh network on the
    trainer's device; ``ids``, ``lengths``, ``y``, ``c``, ``va``, ``pad_id``: as :meth:`Trainer.train` takes them."""
    from model.transformer.trainer import Trainer

    a = trainer.args
    k = int(a.distill_folds)
    soft = np.zeros((len(y), 0), dtype=np.float32)
    records = []
    for fold, held in enumerate(teacher_folds(y[tr], k, a.random_state)):
        teacher = Trainer(dataclasses.replace(a, distill_folds=0, random_state=a.random_state + 101 * (fold + 1)))
        teacher.seed()
        net = make_net()
        fit_rows = np.setdiff1d(tr, tr[held])
        logger.info("distillation: teacher %d of %d on %d rows, predicts %d", fold + 1, k, len(fit_rows), len(held))
        history = teacher.train(net, ids, lengths, y, c, fit_rows, va, lambda seqs: net_logits(net, seqs, pad_id)[0], pad_id)
        t_dep = 1.0
        if len(va):
            dl, cl = net_logits(net, [ids[i] for i in va], pad_id)
            t_dep = teacher.temperatures(dl, y[va], cl, c[va])[0]
        dep = net_logits(net, [ids[i] for i in tr[held]], pad_id)[0]
        if soft.shape[1] == 0:
            soft = np.zeros((len(y), dep.shape[1]), dtype=np.float32)
        soft[tr[held]] = softmax(dep / t_dep, axis=1)
        best = max(history, key=lambda h: h.get("val_accuracy", 0) + h.get("val_macro_f1", 0)) if history else {}
        records.append({"teacher": fold + 1, "train_rows": int(len(fit_rows)), "predicted_rows": int(len(held)), "epochs": len(history),
                        "temperature": t_dep, "val_accuracy": best.get("val_accuracy"), "val_macro_f1": best.get("val_macro_f1"),
                        "held_out_accuracy": round(float((soft[tr[held]].argmax(1) == y[tr[held]]).mean()), 4)})
    return soft, records
