"""The project's training loop against ``transformers.Trainer`` on the same network (issue 20, item 2).

    python -m bench.trainer_loop [--rows 1000] [--layers 4] [--epochs 1] [--runs 2] [--base models/base/e5-small-zh]

Both fit the same :class:`model.transformer.TransformerTextClassifier` (same base cut to ``--layers``
layers, same rows, seed, batch size, AdamW parameter groups, class weights, linear warm-up schedule,
gradient clipping, bf16 autocast where the CPU has it, channel head, early stopping on validation
and temperature scaling after): the classifier's ``fit`` runs unchanged and only
:meth:`model.transformer.trainer.Trainer.train` differs: (a) the project's loop, (b) a
``transformers.Trainer`` subclass (``compute_loss`` for the two weighted losses, ``create_optimizer``
for the parameter groups, a callback for per-epoch validation, early stopping and the best weights;
``group_by_length`` for the length buckets, a collator for per-batch padding). Switched off in (b):
evaluation, saving and logging strategies ("no"), reporting, tqdm, dataloader workers and pinned memory.

Rows: ``--rows`` of the shipped corpus training split (seeded sample); quality on the whole corpus test
split (never trained on). Runs alternate a, b, a, b …, each in its own process (peak RSS is its own),
with the load average before each. ``transformers.Trainer`` needs ``accelerate``, which the product does
not install: put it on PYTHONPATH (``pip install --target DIR accelerate``). Prints its command and one table.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time

import numpy as np

from bench.child import print_table, run_child
from model.transformer.network import import_torch, pad
from model.transformer.trainer import Trainer


class LoopTrainer(Trainer):
    """(a) The project's loop, timed."""

    def train(self, *args, **kwargs):
        t = time.perf_counter()
        history = super().train(*args, **kwargs)
        self.train_seconds_ = time.perf_counter() - t
        return history


class HFTrainer(Trainer):
    """(b) The same fit through ``transformers.Trainer``."""

    def train(self, net, ids, lengths, y, c, tr, va, val_logits, pad_id):
        import datasets
        import transformers
        from sklearn.metrics import accuracy_score, f1_score

        torch = import_torch()
        F = torch.nn.functional
        a, outer = self.args, self
        device = next(net.parameters()).device
        weights = self.class_weights(y[tr], net.department.out_features)
        w = torch.tensor(weights, dtype=torch.float32, device=device) if weights is not None else None
        total = max(1, int(np.ceil(len(tr) / a.batch_size)) * int(a.epochs))
        self.autocast(device)  # sets precision_
        data = datasets.Dataset.from_dict({"input_ids": [ids[i] for i in tr], "label": y[tr], "channel": c[tr], "length": lengths[tr]})

        def collate(rows):
            inp, att = pad([r["input_ids"] for r in rows], pad_id)
            return {"input_ids": inp, "attention_mask": att, "labels": torch.tensor([r["label"] for r in rows]),
                    "channel": torch.tensor([r["channel"] for r in rows])}

        losses, history, state = [], [], {"best": -np.inf, "weights": None, "bad": 0, "t": 0.0}

        class HF(transformers.Trainer):
            def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
                dep, chan = model(inputs["input_ids"], inputs["attention_mask"])
                loss = F.cross_entropy(dep.float(), inputs["labels"], weight=w, label_smoothing=float(a.label_smoothing))
                if net.channel is not None:
                    loss = loss + a.channel_loss_weight * F.cross_entropy(chan.float(), inputs["channel"], ignore_index=-100)
                losses.append(float(loss.detach()))
                return (loss, (dep, chan)) if return_outputs else loss

            def create_optimizer(self, model=None):
                if self.optimizer is None:
                    self.optimizer = torch.optim.AdamW(outer.param_groups(self.model), weight_decay=a.weight_decay)
                return self.optimizer

        class Validate(transformers.TrainerCallback):
            def on_epoch_begin(self, args, st, control, **kw):
                losses.clear()
                state["t"] = time.perf_counter()

            def on_epoch_end(self, args, st, control, **kw):
                record = {"epoch": len(history) + 1, "train_loss": round(float(np.mean(losses)), 4),
                          "seconds": round(time.perf_counter() - state["t"], 1)}
                if len(va):
                    wrapped = net.__dict__.pop("forward", None)  # accelerate's bf16 autocast wrapper: validate in float32, as the loop
                    try:
                        pred = val_logits([ids[i] for i in va]).argmax(1)
                    finally:
                        if wrapped is not None:
                            net.forward = wrapped
                    record["val_accuracy"] = round(float(accuracy_score(y[va], pred)), 4)
                    record["val_macro_f1"] = round(float(f1_score(y[va], pred, average="macro", labels=np.unique(y[va]), zero_division=0)), 4)
                    score = record["val_accuracy"] + record["val_macro_f1"]
                    if score > state["best"] + 1e-6:
                        state.update(best=score, bad=0, weights={k: v.detach().to("cpu", copy=True) for k, v in net.state_dict().items()})
                    else:
                        state["bad"] += 1
                    control.should_training_stop = state["bad"] >= a.early_stopping_patience
                history.append(record)

        with tempfile.TemporaryDirectory() as tmp:
            hf_args = transformers.TrainingArguments(
                output_dir=tmp, num_train_epochs=a.epochs, per_device_train_batch_size=a.batch_size, learning_rate=a.lr_encoder,
                weight_decay=a.weight_decay, lr_scheduler_type="linear", warmup_steps=int(a.warmup_ratio * total), max_grad_norm=1.0,
                bf16=self.precision_ == "bf16", use_cpu=device.type == "cpu", train_sampling_strategy="group_by_length",
                length_column_name="length", eval_strategy="no", save_strategy="no", logging_strategy="no", report_to="none",
                disable_tqdm=not a.progress, seed=a.random_state, data_seed=a.random_state, remove_unused_columns=False,
                dataloader_num_workers=0, dataloader_pin_memory=False)
            t = time.perf_counter()
            hf = HF(model=net, args=hf_args, train_dataset=data, data_collator=collate, callbacks=[Validate()])
            self.threads_ = [torch.get_num_threads()]
            hf.train()
            self.train_seconds_ = time.perf_counter() - t
            self.threads_.append(torch.get_num_threads())
            net.__dict__.pop("forward", None)  # accelerate leaves its autocast wrapper on the network: inference stays float32
        if state["weights"] is not None:
            net.load_state_dict({k: v.to(device) for k, v in state["weights"].items()})
        return history


def fit_once(variant: str, rows: int, layers: int, epochs: int, base: str) -> dict:
    from sklearn.metrics import accuracy_score, f1_score, log_loss

    import model.transformer.classifier as classifier_module
    from data.corpus import TEST_PATH, TRAIN_PATH, read_jsonl
    from model.transformer import TransformerTextClassifier

    train, test = read_jsonl(TRAIN_PATH), read_jsonl(TEST_PATH)
    train = [train[i] for i in np.random.default_rng(0).permutation(len(train))[:rows]]
    channel_map = {r["department"]: r["channel"] for r in train + test}
    made = []
    cls = {"loop": LoopTrainer, "hf": HFTrainer}[variant]
    classifier_module.Trainer = lambda args: made.append(cls(args)) or made[-1]
    clf = TransformerTextClassifier(base_model=base, num_layers=layers, epochs=epochs, channel_map=channel_map,
                                    ensemble_linear=False, random_state=0)
    t = time.perf_counter()
    clf.fit([r["text"] for r in train], [r["department"] for r in train])
    fit_seconds = time.perf_counter() - t
    texts, labels = [r["text"] for r in test], np.asarray([r["department"] for r in test])
    proba = clf.predict_proba(texts)
    pred = clf.classes_[proba.argmax(1)]
    seen = np.isin(labels, clf.classes_)
    idx = np.searchsorted(clf.classes_, labels[seen])
    h = clf.history_
    return {
        "variant": variant, "precision": clf.precision_, "epochs_run": len(h),
        "epoch_seconds": round(float(np.mean([e["seconds"] for e in h])), 1), "train_seconds": round(made[-1].train_seconds_, 1),
        "fit_seconds": round(fit_seconds, 1), "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "train_loss": h[-1]["train_loss"], "val_accuracy": h[-1].get("val_accuracy"), "val_macro_f1": h[-1].get("val_macro_f1"),
        "temperature": clf.temperature_, "test_accuracy": round(float(accuracy_score(labels, pred)), 4),
        "test_macro_f1": round(float(f1_score(labels, pred, average="macro", zero_division=0)), 4),
        "test_log_loss": round(float(log_loss(idx, proba[seen], labels=np.arange(len(clf.classes_)))), 4),
        "threads": getattr(made[-1], "threads_", None),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1000)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--runs", type=int, default=2, help="runs of each variant, interleaved")
    ap.add_argument("--base", default="models/base/e5-small-zh")
    ap.add_argument("--child", choices=["loop", "hf"])
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(fit_once(args.child, args.rows, args.layers, args.epochs, args.base)))
        return
    import importlib.util

    if importlib.util.find_spec("accelerate") is None:
        sys.exit("transformers.Trainer needs accelerate, which the product does not install: "
                 "pip install --target DIR accelerate, then PYTHONPATH=.:DIR python -m bench.trainer_loop …")
    print("command: python -m bench.trainer_loop " + " ".join(sys.argv[1:] if argv is None else argv), flush=True)
    results = []
    for k in range(args.runs):
        for variant in ("loop", "hf"):
            load = round(os.getloadavg()[0], 2)
            r = run_child("bench.trainer_loop", "--child", variant, "--rows", str(args.rows), "--layers", str(args.layers),
                          "--epochs", str(args.epochs), "--base", args.base)
            r.update(variant=variant, run=k + 1, load=load)
            results.append(r)
            print(json.dumps(r), file=sys.stderr, flush=True)
    header = ["variant", "run", "load before", "precision", "epochs", "s / epoch", "train s", "fit s", "peak RSS MB",
              "train loss", "val acc", "val macro-F1", "T", "test acc", "test macro-F1", "test log loss"]
    print_table(header, results, lambda r: [r["variant"], r["run"], r["load"], r["precision"], r["epochs_run"], r["epoch_seconds"],
                                            r["train_seconds"], r["fit_seconds"], r["peak_rss_mb"], r["train_loss"], r["val_accuracy"],
                                            r["val_macro_f1"], r["temperature"], r["test_accuracy"], r["test_macro_f1"],
                                            r["test_log_loss"]], key="variant")


if __name__ == "__main__":
    main()
