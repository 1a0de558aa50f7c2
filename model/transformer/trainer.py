"""Fine-tuning of the transformer classifier's network: the arguments, the split, the loop.

Like ``transformers.Trainer`` and setfit's trainer, training is apart from the model: the model
(:class:`model.transformer.TransformerTextClassifier`) builds the network and serves it, the
:class:`Trainer` here fits it with :class:`TrainingArguments`. The loop is plain PyTorch rather than
``transformers.Trainer``: its batches are length buckets (padding only to the longest text of a
batch: the median ticket is 51 characters, not 128 tokens), it has two losses (department, and the
channel with ignored rows) and bf16 autocast on CPU, and early stopping on validation accuracy +
macro-F1 restores the best epoch's weights. Measured against a ``transformers.Trainer`` subclass doing
the same (bench/README.md, stop 18): not faster, longer, and it needs
``accelerate``, whose bf16 wrapper on the network would leave validation and inference in bf16.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import random
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import train_test_split

from model.calibration import fit_temperature
from model.transformer.network import import_torch, length_buckets, pad

logger = logging.getLogger(__name__)


@dataclass
class TrainingArguments:
    """What a fine-tune depends on (the classifier's parameters of the same names).

    epochs: length of the learning-rate schedule (linear decay after ``warmup_ratio`` of warm-up);
    early stopping after ``early_stopping_patience`` epochs without a better validation accuracy +
    macro-F1 may end sooner, and the best epoch's weights are kept. lr_encoder, lr_head: learning
    rates of the encoder and of the heads (5e-5 underfit the Haikou tickets in 3 epochs:
    bench/README.md); lr_embeddings: of the embedding layer (None: ``lr_encoder``; 0 freezes it).
    class_weight: loss weights of rare departments, n / (k · n_c) ("balanced"), its square root
    ("sqrt") or none. label_smoothing: of the department loss. channel_loss_weight: of the channel
    head's loss. val_fraction: the stratified held-out split for early stopping, calibration and the
    router's thresholds. calibrate: temperature scaling of both heads on it. precision: "bf16" runs
    the training passes under ``torch.autocast`` in bfloat16 (weights, optimiser state, validation
    and inference stay float32); "auto" uses it where the hardware has it (CPUs with AMX or
    AVX512-BF16, CUDA devices that support it). Measured on the 2-core Xeon (AMX): a step of 32
    texts × 48 tokens through the 12-layer e5 took 0.96 s in bf16 against 1.86 s in fp32.
    split_random_state: seed of the split (None: ``random_state``; a seed ensemble's networks share it).
    """

    epochs: int = 8
    batch_size: int = 32
    lr_encoder: float = 1e-4
    lr_head: float = 2e-3
    lr_embeddings: float | None = None
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    class_weight: str | None = "sqrt"
    label_smoothing: float = 0.0
    channel_loss_weight: float = 0.5
    val_fraction: float = 0.1
    early_stopping_patience: int = 3
    calibrate: bool = True
    device: str = "auto"
    precision: str = "auto"
    split_random_state: int | None = None
    random_state: int = 0
    progress: bool = False

    def __post_init__(self) -> None:
        if self.class_weight not in ("balanced", "sqrt", None):
            raise ValueError(f"class_weight must be 'balanced', 'sqrt' or None, got {self.class_weight!r}")
        if self.precision not in ("auto", "bf16", "fp32"):
            raise ValueError(f"precision must be 'auto', 'bf16' or 'fp32', got {self.precision!r}")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError("label_smoothing must be in [0, 1)")
        if not 0 <= self.val_fraction < 1:
            raise ValueError("val_fraction must be in [0, 1)")

    @classmethod
    def from_params(cls, params: dict) -> "TrainingArguments":
        """The arguments among a classifier's ``get_params()`` (the others are the model's)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in params.items() if k in names})


class Trainer:
    """Fits one network: :meth:`split`, :meth:`train`, :meth:`temperatures`. ``precision_`` says what
    the last :meth:`train` ran in."""

    def __init__(self, args: TrainingArguments):
        self.args = args
        self.precision_: str | None = None

    # -------------------------------------------------------------------------------- data
    def split(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Sorted (train, validation) row indices: a stratified split of ``val_fraction`` of the rows
        when every class has two rows, else a plain one; no validation below two rows."""
        a = self.args
        idx = np.arange(len(y))
        n_val = int(round(a.val_fraction * len(y)))
        if n_val < 2:
            return idx, idx[:0]
        counts = np.bincount(y)
        counts = counts[counts > 0]
        stratify = y if counts.min() >= 2 and n_val >= len(counts) else None
        seed = a.random_state if a.split_random_state is None else a.split_random_state
        tr, va = train_test_split(idx, test_size=n_val, random_state=seed, stratify=stratify)
        return np.sort(tr), np.sort(va)

    def encode_dataset(self, tokenize: Callable[[list[str]], list[list[int]]], texts: Sequence[str], y: np.ndarray, channels: np.ndarray):
        """The training input pipeline: a :class:`datasets.Dataset` with columns ``text``, ``label``
        (class index), ``channel`` (channel index or -100), ``input_ids`` (``tokenize``: the model's,
        prefixed and truncated) and ``length`` (tokens), built with a batched ``map``. Batches are then
        drawn by :func:`length_buckets` on ``length`` and padded per batch."""
        import datasets

        ds = datasets.Dataset.from_dict({"text": list(texts), "label": np.asarray(y, dtype=np.int64), "channel": np.asarray(channels, dtype=np.int64)})
        quiet = not self.args.progress and datasets.is_progress_bar_enabled()
        if quiet:
            datasets.disable_progress_bars()
        try:
            ds = ds.map(lambda b: {"input_ids": (ids := tokenize(b["text"])), "length": [len(i) for i in ids]}, batched=True, batch_size=1000)
        finally:
            if quiet:
                datasets.enable_progress_bars()
        return ds

    def class_weights(self, y: np.ndarray, k: int) -> np.ndarray | None:
        """Department loss weights (k,) from the training labels ``y`` (see ``class_weight``)."""
        if self.args.class_weight is None:
            return None
        counts = np.bincount(y, minlength=k).astype(float)
        w = np.where(counts > 0, len(y) / (k * np.maximum(counts, 1)), 1.0)
        return np.sqrt(w) if self.args.class_weight == "sqrt" else w

    # ------------------------------------------------------------------------------- torch
    def seed(self) -> None:
        """Seed python, numpy and torch (head initialisation, dropout) with ``random_state``."""
        torch = import_torch()
        random.seed(self.args.random_state)
        np.random.seed(self.args.random_state)
        torch.manual_seed(self.args.random_state)

    def device(self):
        torch = import_torch()
        if self.args.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.args.device)

    def autocast(self, device) -> Callable:
        """The training-pass context factory: bf16 autocast (see ``precision``) or a no-op; sets ``precision_``."""
        torch = import_torch()
        want = self.args.precision
        if want == "auto":
            if device.type == "cuda":
                want = "bf16" if torch.cuda.is_bf16_supported() else "fp32"
            else:
                want = "bf16" if (torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported()) else "fp32"
        self.precision_ = want
        if want == "fp32":
            return contextlib.nullcontext
        return lambda: torch.autocast(device.type, dtype=torch.bfloat16)

    def param_groups(self, net) -> list[dict]:
        """AdamW parameter groups: the encoder at ``lr_encoder``, the heads at ``lr_head``, the
        embeddings at ``lr_embeddings`` (None: ``lr_encoder``; 0: frozen) without weight decay."""
        a = self.args
        emb_lr = a.lr_encoder if a.lr_embeddings is None else a.lr_embeddings
        emb_ids = {id(p) for p in net.encoder.get_input_embeddings().parameters()}
        emb, enc, head = [], [], []
        for name, p in net.named_parameters():
            if id(p) in emb_ids:
                p.requires_grad_(emb_lr > 0)
                if emb_lr > 0:
                    emb.append(p)
            else:
                (enc if name.startswith("encoder.") else head).append(p)
        groups = [{"params": enc, "lr": a.lr_encoder}, {"params": head, "lr": a.lr_head}]
        if emb:
            groups.append({"params": emb, "lr": emb_lr, "weight_decay": 0.0})
        return groups

    def train(self, net, ids: list, lengths: np.ndarray, y: np.ndarray, c: np.ndarray, tr: np.ndarray, va: np.ndarray,
              val_logits: Callable[[list], np.ndarray], pad_id: int) -> list[dict]:
        """Train ``net`` (on :meth:`device`) on rows ``tr`` of token ids ``ids``, department labels ``y``
        and channel labels ``c`` (-100: none), padded with ``pad_id``; early stopping on rows ``va`` (none if empty), whose
        department logits ``val_logits(token ids)`` gives. The best epoch's weights are left in ``net``.
        Returns the history, one dict per epoch."""
        torch = import_torch()
        from tqdm.auto import tqdm
        from transformers import get_linear_schedule_with_warmup

        a = self.args
        device = next(net.parameters()).device
        weights = self.class_weights(y[tr], net.department.out_features)
        loss_dep = torch.nn.CrossEntropyLoss(weight=torch.tensor(weights, dtype=torch.float32, device=device) if weights is not None else None,
                                             label_smoothing=float(a.label_smoothing))
        loss_chan = torch.nn.CrossEntropyLoss(ignore_index=-100)
        optimizer = torch.optim.AdamW(self.param_groups(net), weight_decay=a.weight_decay)
        rng = np.random.default_rng(a.random_state)
        total = max(1, int(np.ceil(len(tr) / a.batch_size)) * int(a.epochs))
        scheduler = get_linear_schedule_with_warmup(optimizer, int(a.warmup_ratio * total), total)
        autocast = self.autocast(device)
        logger.info("training on %s in %s: %d rows, up to %d epochs", device, self.precision_, len(tr), a.epochs)

        history, best, best_state, bad = [], -np.inf, None, 0
        for epoch in range(int(a.epochs)):
            net.train()
            te = time.perf_counter()
            losses = []
            batches = length_buckets(lengths[tr], a.batch_size, rng)
            for b in tqdm(batches, desc=f"epoch {epoch + 1}/{a.epochs}", disable=not a.progress, unit="batch"):
                rows = tr[b]
                inp, att = pad([ids[i] for i in rows], pad_id, device)
                with autocast():
                    dep_logits, chan_logits = net(inp, att)
                # The losses in float32 (autocast would run them in float32 anyway; explicit here).
                loss = loss_dep(dep_logits.float(), torch.as_tensor(y[rows], device=device))
                if net.channel is not None:
                    loss = loss + a.channel_loss_weight * loss_chan(chan_logits.float(), torch.as_tensor(c[rows], device=device))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
                optimizer.step()
                scheduler.step()
                losses.append(float(loss.detach()))
            record = {"epoch": epoch + 1, "train_loss": round(float(np.mean(losses)), 4), "seconds": round(time.perf_counter() - te, 1)}
            if len(va):
                pred = val_logits([ids[i] for i in va]).argmax(1)
                record["val_accuracy"] = round(float(accuracy_score(y[va], pred)), 4)
                record["val_macro_f1"] = round(float(f1_score(y[va], pred, average="macro", labels=np.unique(y[va]), zero_division=0)), 4)
                score = record["val_accuracy"] + record["val_macro_f1"]
                if score > best + 1e-6:  # copy the weights only when they are the best so far
                    best, bad = score, 0
                    best_state = {k: v.detach().to("cpu", copy=True) for k, v in net.state_dict().items()}
                else:
                    bad += 1
            history.append(record)
            logger.info("epoch %s", record)
            if len(va) and bad >= a.early_stopping_patience:
                break
        if best_state is not None:
            net.load_state_dict({k: v.to(device) for k, v in best_state.items()})
        return history

    def temperatures(self, dep_logits: np.ndarray, y: np.ndarray, chan_logits: np.ndarray, c: np.ndarray) -> tuple[float, float]:
        """(department, channel) temperatures fitted on validation logits and labels (channel -100:
        unknown, left out); 1.0 each without ``calibrate``. Bounded to [0.25, 10]: a small, separable
        validation split would otherwise push T towards 0 (overconfidence)."""
        from scipy.special import softmax

        if not self.args.calibrate:
            return 1.0, 1.0
        bounds = (0.25, 10.0)
        t_dep = fit_temperature(softmax(dep_logits, axis=1), y, bounds) if dep_logits.shape[1] > 1 and len(y) else 1.0
        known = c >= 0
        t_chan = fit_temperature(softmax(chan_logits[known], axis=1), c[known], bounds) if chan_logits.shape[1] > 1 and known.any() else 1.0
        return round(t_dep, 5), round(t_chan, 5)
