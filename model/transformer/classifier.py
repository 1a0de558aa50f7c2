"""The fine-tuned transformer classifier: network, prediction, save/load and backends.

One pretrained encoder with mean pooling and two heads: the department (``classes_``) and, with
``channel_map``, the channel (110 / 12345). Both heads are calibrated by temperature scaling on the
held-out validation split; ``predict_proba`` blends the channel head into the department
probabilities (the mass of the 110 departments moves towards the channel head's P(110) by
``channel_blend``), then, with ``ensemble_linear``, pools them with the linear model
(:class:`model.transformer.ensemble.LogPoolEnsemble`). Training is :mod:`model.transformer.trainer`'s.

Same contract as :class:`model.linear.LinearTextClassifier` (:class:`model.protocols.RoutingClassifier`).

Saved folder (:meth:`save_pretrained` / :meth:`from_pretrained`)::

    encoder/            save_pretrained of the fine-tuned encoder and its tokenizer
    heads.safetensors   department (and channel) head weights
    transformer.json    format, parameters, classes, channels, temperatures, training history, checks
    model.onnx          optional: the whole network (encoder + heads) in ONNX, float32
    model.int8.onnx     optional: the same with int8 query/key/value projections (onnxruntime)
    linear.joblib       optional: the linear model of the ensemble (``ensemble_linear``)
    members/<k>/        optional: networks 2 … n of a seed ensemble (``n_networks``), each the
                        encoder/, heads, transformer.json and ONNX files of one network
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Sequence

import numpy as np
from scipy.special import softmax
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from model.calibration import channel_mask, move_110_mass
from model.encoder import base_prefix
from model.transformer import backends
from model.transformer.ensemble import LogPoolEnsemble
from model.transformer.inference import NetworkRunner
from model.transformer.network import (DEFAULT_BASE_MODEL, ENCODER_DIR, HEADS_FILE, LINEAR_FILE, MEMBERS_DIR, META_FILE, ONNX_FILE,
                                       ONNX_INT8_FILE, import_torch, network_class, resolve_base_model)
from model.transformer.trainer import Trainer, TrainingArguments

logger = logging.getLogger(__name__)
FORMAT = 2  # transformer.json "format": 2 since issue 20 removed the mixture, soups, refits, distillation and prior correction


class OutdatedModelFolder(ValueError):
    """A folder saved by a version before issue 20; the message says to retrain it."""


class TransformerTextClassifier(NetworkRunner, ClassifierMixin, BaseEstimator):
    """Fine-tune a local Hugging Face encoder with a department head and an optional channel head.

    Parameters (training ones: see :class:`model.transformer.trainer.TrainingArguments`)
    ----------
    base_model : str or None
        Local Hugging Face folder; None → ``models/base/e5-small-zh`` (see ``hotline base-model``).
    prefix : str or None
        Prepended to every text; None → the base's ``hotline_base.json`` prefix (e5: "query: "), else "".
    max_length : int
        Tokens per text (longer texts are truncated); batches are padded only to their longest text.
    num_layers : int or None
        Keep only the first ``num_layers`` encoder layers (faster, smaller); None keeps all.
    channel_map : dict or None
        Department → channel ("110"/"12345"); enables the channel head.
    channel_blend : float in [0, 1]
        How far ``predict_proba`` moves the departments' channel mass towards the channel head.
    pooling : {"mean", "cls"}; dropout : float
    backend : {"auto", "torch", "torch-bf16", "onnx", "onnx-int8"}
        Inference backend after :meth:`from_pretrained`; "auto" picks "torch-bf16" on a CPU with AMX
        when the model passed its bf16 check (:meth:`check_bf16`), else int8 ONNX, float32 ONNX, torch.
        Measured on the 2-core Xeon (AMX; ``python -m bench.transformer_speed``, 12-layer corpus
        model through the router): torch-bf16 154 texts/s in batches of 32 and p50 18.3 ms for one
        text; int8 ONNX 62 texts/s, 19.4 ms; torch float32 50 texts/s, 25.4 ms.
    eval_batch_size, onnx_batch_size, onnx_workers :
        Texts per torch forward pass (16: torch-bf16 170 texts/s at 16, 110 at 32 or 64), per ONNX
        pass (1: on 2 cores onnxruntime was fastest one text at a time), and parallel single-threaded
        ONNX batches for calls of several texts (None: one per core, at most 4; 2 workers gave 81
        texts/s against 56 for one 2-thread session on 2 AMD cores).
    ensemble_linear : bool
        Also fit the linear model and serve the log-linear pool of both (see ``ensemble_``).
    n_networks : int
        Seed ensemble: this many networks on the same rows and validation split, from seeds
        ``random_state + 1000·k``, each calibrated, their probabilities averaged; three networks met
        the Haikou and Taidi targets where one did not robustly (bench/README.md, stop 13), at
        ``n_networks`` times the cost. Networks 2 … n are saved under ``members/<k>/``.

    Attributes
    ----------
    classes_, channels_, prefix_, temperature_, channel_temperature_, history_ (per epoch), precision_,
    validation_proba_ / validation_labels_ / validation_index_ (calibrated held-out probabilities:
    thresholds are chosen on them), backend_, bf16_check_, ensemble_ (LogPoolEnsemble or None),
    members_ (networks 2 … n), network_validation_proba_ (n_networks, n_val, n_classes).
    """

    model_class = "transformer"
    fast_inference = False  # a text costs milliseconds of CPU: a server routes it off its event loop

    def __init__(
        self, base_model: str | None = None, prefix: str | None = None, max_length: int = 128, num_layers: int | None = None,
        epochs: int = 8, batch_size: int = 32, lr_encoder: float = 1e-4, lr_head: float = 2e-3, lr_embeddings: float | None = None,
        weight_decay: float = 0.01, warmup_ratio: float = 0.06, class_weight: str | None = "sqrt", label_smoothing: float = 0.0,
        channel_map: dict | None = None, channel_loss_weight: float = 0.5, channel_blend: float = 0.5, pooling: str = "mean",
        dropout: float = 0.1, val_fraction: float = 0.1, early_stopping_patience: int = 3, calibrate: bool = True,
        device: str = "auto", precision: str = "auto", backend: str = "auto", eval_batch_size: int = 16, onnx_batch_size: int = 1,
        onnx_workers: int | None = None, ensemble_linear: bool = True, n_networks: int = 1, split_random_state: int | None = None,
        random_state: int = 0, progress: bool = False,
    ):
        self.base_model, self.prefix, self.max_length, self.num_layers = base_model, prefix, max_length, num_layers
        self.epochs, self.batch_size, self.lr_encoder, self.lr_head, self.lr_embeddings = epochs, batch_size, lr_encoder, lr_head, lr_embeddings
        self.weight_decay, self.warmup_ratio, self.class_weight, self.label_smoothing = weight_decay, warmup_ratio, class_weight, label_smoothing
        self.channel_map, self.channel_loss_weight, self.channel_blend = channel_map, channel_loss_weight, channel_blend
        self.pooling, self.dropout, self.val_fraction, self.early_stopping_patience = pooling, dropout, val_fraction, early_stopping_patience
        self.calibrate, self.device, self.precision, self.backend = calibrate, device, precision, backend
        self.eval_batch_size, self.onnx_batch_size, self.onnx_workers = eval_batch_size, onnx_batch_size, onnx_workers
        self.ensemble_linear, self.n_networks, self.split_random_state = ensemble_linear, n_networks, split_random_state
        self.random_state, self.progress = random_state, progress

    def _check_params(self) -> TrainingArguments:
        """Check the model's parameters; returns the training ones (which check themselves)."""
        if self.pooling not in ("mean", "cls"):
            raise ValueError(f"pooling must be 'mean' or 'cls', got {self.pooling!r}")
        if self.backend not in backends.BACKENDS:
            raise ValueError(f"backend must be one of {backends.BACKENDS}, got {self.backend!r}")
        if not 0 <= self.channel_blend <= 1:
            raise ValueError("channel_blend must be in [0, 1]")
        if not (isinstance(self.n_networks, (int, np.integer)) and self.n_networks >= 1):
            raise ValueError(f"n_networks must be an int >= 1, got {self.n_networks!r}")
        if self.onnx_workers is not None and not (isinstance(self.onnx_workers, int) and self.onnx_workers >= 1):
            raise ValueError(f"onnx_workers must be None or an int >= 1, got {self.onnx_workers!r}")
        return TrainingArguments.from_params(self.get_params())

    # ------------------------------------------------------------------------------------------ fit
    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> "TransformerTextClassifier":
        """Fine-tune on ``texts`` (n_samples,) and ``labels`` (n_samples,). Returns self."""
        trainer = Trainer(self._check_params())
        texts, labels = [str(t) for t in texts], np.asarray([str(y) for y in labels])
        if len(texts) != len(labels):
            raise ValueError(f"{len(texts)} texts but {len(labels)} labels")
        classes = np.unique(labels)
        if len(classes) < 2:
            raise ValueError("need at least two different labels to train a classifier")
        from transformers import AutoTokenizer

        from model.encoder.hf_folder import load_encoder

        t0 = time.perf_counter()
        trainer.seed()
        base = resolve_base_model(self.base_model)
        self.prefix_ = base_prefix(base) if self.prefix is None else self.prefix
        self.classes_ = classes
        y = np.searchsorted(classes, labels)
        cmap = {str(k): str(v) for k, v in (self.channel_map or {}).items()}
        chan_labels = [cmap.get(str(c)) for c in labels]
        known = sorted({c for c in chan_labels if c})
        self.channels_ = known if cmap and len(known) > 1 else []
        c = np.array([self.channels_.index(v) if v in self.channels_ else -100 for v in chan_labels])

        tr, va = trainer.split(y)
        self.tokenizer_ = AutoTokenizer.from_pretrained(base)
        data = trainer.encode_dataset(self._tokenize, texts, y, c)
        ids, lengths = list(data["input_ids"]), np.asarray(data["length"])
        net = network_class()(load_encoder(base, self.num_layers), len(classes), len(self.channels_), self.dropout, self.pooling)
        self.net_, self.session_ = net.to(trainer.device()), None  # the validation logits read it
        self.history_ = trainer.train(net, ids, lengths, y, c, tr, va, lambda seqs: self._logits(seqs)[0], self._pad_id())
        self.precision_ = trainer.precision_
        net.eval()
        self.temperature_, self.channel_temperature_ = 1.0, 1.0
        self.validation_proba_ = np.zeros((0, len(classes)))
        self.validation_labels_, self.validation_index_ = labels[va], va
        if len(va):
            dl, cl = self._logits([ids[i] for i in va])
            self.temperature_, self.channel_temperature_ = trainer.temperatures(dl, y[va], cl, c[va])
            self.validation_proba_ = self._combine(dl, cl)
        self.members_ = []
        if int(self.n_networks) > 1:
            self._fit_members(texts, labels)
        self.ensemble_ = None
        if self.ensemble_linear:
            self.ensemble_ = LogPoolEnsemble.fit(self.validation_proba_, texts, labels, tr, va, classes, self.channel_map,
                                                 self.random_state)
            self.validation_proba_ = self.ensemble_.combine_held_out(self.validation_proba_)
        self.backend_, self.bf16_check_ = "torch", None
        self.n_params_ = int(sum(p.numel() for p in net.parameters())) + sum(m.n_params_ for m in self.members_)
        self.fit_seconds_ = round(time.perf_counter() - t0, 1)
        return self

    def _fit_members(self, texts: list[str], labels: np.ndarray) -> None:
        """Networks 2 … ``n_networks`` of the seed ensemble (``members_``): each a copy of these parameters
        with its own seed and this network's validation split, fit alone (no linear model);
        ``validation_proba_`` becomes the mean of every network's calibrated validation probabilities."""
        from sklearn.base import clone

        probas = [self.validation_proba_]
        split_seed = self.random_state if self.split_random_state is None else self.split_random_state
        for k in range(1, int(self.n_networks)):
            logger.info("seed ensemble: network %d of %d (seed %d)", k + 1, self.n_networks, self.random_state + 1000 * k)
            member = clone(self).set_params(n_networks=1, ensemble_linear=False, random_state=self.random_state + 1000 * k,
                                            split_random_state=split_seed)
            member.fit(texts, labels)
            if not np.array_equal(member.validation_index_, self.validation_index_):  # the split is a function of the seed only
                raise RuntimeError("seed ensemble: a network validated on other rows than the first")
            probas.append(member.validation_proba_)
            self.members_.append(member)
        self.network_validation_proba_ = np.stack(probas)
        self.validation_proba_ = self.network_validation_proba_.mean(axis=0)

    # ------------------------------------------------------------------------------------ inference
    def _combine(self, dep_logits: np.ndarray, chan_logits: np.ndarray) -> np.ndarray:
        """Calibrated department probabilities with the channel head blended in, (n, n_classes)."""
        p = softmax(dep_logits / self.temperature_, axis=1)
        if not self.channels_ or "110" not in self.channels_ or not self.channel_blend:
            return p
        is110 = channel_mask(self.classes_, {str(k): str(v) for k, v in (self.channel_map or {}).items()})
        if not is110.any() or is110.all():
            return p
        q110 = softmax(chan_logits / self.channel_temperature_, axis=1)[:, self.channels_.index("110")]
        return move_110_mass(p, is110, (1 - self.channel_blend) * p[:, is110].sum(1) + self.channel_blend * q110)

    def _network_proba(self, seqs: list[list[int]]) -> np.ndarray:
        """Calibrated probabilities (n, n_classes) of the network, or the mean over the seed ensemble's
        networks; ``seqs``: token ids from :meth:`_tokenize` (the networks share one tokenizer)."""
        nets = [self, *self._members()]
        return sum(m._combine(*m._logits(seqs)) for m in nets) / len(nets)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Calibrated probabilities, shape (n_texts, n_classes), columns in ``classes_`` order."""
        return self.predict_proba_with_features(texts)[0]

    def predict_proba_with_features(self, texts: Sequence[str]) -> tuple[np.ndarray, list | None]:
        """:meth:`predict_proba` and, with the linear ensemble, the linear model's feature rows of the
        texts (a list of n_texts :class:`model.fast_tfidf.FeatureRow`; None without it), which
        :meth:`explain` takes as ``features`` so that the router computes them once per batch."""
        check_is_fitted(self, "classes_")
        texts = list(texts)
        ens, k = self.ensemble_, len(self.classes_)
        # Exponent 0 for the network: the linear model alone, the network need not run (uniform stands in).
        p = self._network_proba(self._tokenize(texts)) if ens is None or ens.needs_network() else np.full((len(texts), k), 1.0 / k)
        if ens is None:
            return p, None
        rows = ens.transform_rows(texts)
        return ens.combine(p, rows), rows

    def explain(self, text: str, label: str, top_k: int = 5, features=None) -> list[tuple[str, float]]:
        """With ``ensemble_linear``: the linear model's most influential terms of ``text`` for ``label``
        (``features``: the text's row from :meth:`predict_proba_with_features`); otherwise none ([])."""
        check_is_fitted(self, "classes_")
        return self.ensemble_.explain(text, label, top_k=top_k, features=features) if self.ensemble_ is not None else []

    def predict_channel_proba(self, texts: Sequence[str]) -> np.ndarray:
        """The channel head alone: calibrated probabilities (n_texts, len(channels_)); with a seed ensemble,
        the mean of its networks' channel heads."""
        check_is_fitted(self, "classes_")
        if not self.channels_:
            raise ValueError("this model has no channel head (trained without channel_map)")
        seqs = self._tokenize(list(texts))
        return np.mean([softmax(m._logits(seqs)[1] / m.channel_temperature_, axis=1) for m in [self, *self._members()]], axis=0)

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        """Most probable label per text, shape (n_texts,)."""
        return self.classes_[self.predict_proba(texts).argmax(axis=1)]

    def _members(self) -> list["TransformerTextClassifier"]:
        """The seed ensemble's networks 2 … n (``members_``; none before fit or without an ensemble)."""
        return list(getattr(self, "members_", None) or [])

    # ---------------------------------------------------------------------------------- save / load
    def save_pretrained(self, out: str | Path) -> list[str]:
        """Write the folder described in the module docstring; returns the files written (relative)."""
        check_is_fitted(self, "classes_")
        from safetensors.torch import save_file

        out = Path(out)
        enc_dir = out / ENCODER_DIR
        net = self._float_net()  # float32 on disk, whatever the backend in use
        net.encoder.save_pretrained(enc_dir)
        self.tokenizer_.save_pretrained(enc_dir)
        base_info = Path(self.base_model or DEFAULT_BASE_MODEL) / "hotline_base.json"
        if base_info.exists():
            (enc_dir / "hotline_base.json").write_text(base_info.read_text(encoding="utf-8"), encoding="utf-8")
        heads = {f"department.{k}": v.detach().cpu().contiguous() for k, v in net.department.state_dict().items()}
        if net.channel is not None:
            heads.update({f"channel.{k}": v.detach().cpu().contiguous() for k, v in net.channel.state_dict().items()})
        save_file(heads, str(out / HEADS_FILE))
        ens = self.ensemble_
        meta = {
            "format": FORMAT, "params": self.get_params(), "classes": [str(c) for c in self.classes_], "channels": list(self.channels_),
            "prefix": self.prefix_, "temperature": self.temperature_, "channel_temperature": self.channel_temperature_,
            "history": self.history_, "n_params": self.n_params_, "fit_seconds": getattr(self, "fit_seconds_", None),
            "precision": getattr(self, "precision_", None), "members": len(self._members()), "bf16": self.bf16_check_,
            "ensemble_exponents": None if ens is None else list(ens.exponents),
        }
        (out / LINEAR_FILE).unlink(missing_ok=True)
        if ens is not None:
            ens.save(out / LINEAR_FILE)
        (out / META_FILE).write_text(json.dumps(meta, ensure_ascii=False, indent=2, default=str), encoding="utf-8")
        ours = [p for p in out.iterdir() if p.is_file() and p.name in (HEADS_FILE, META_FILE, ONNX_FILE, ONNX_INT8_FILE, LINEAR_FILE)]
        written = sorted(str(p.relative_to(out)) for p in ours + [p for p in enc_dir.iterdir() if p.is_file()])
        members = self._members()
        if (out / MEMBERS_DIR).is_dir():  # an earlier model's networks beyond this one's
            import shutil

            for old in (out / MEMBERS_DIR).iterdir():
                if not (old.name.isdigit() and 1 <= int(old.name) <= len(members)):
                    shutil.rmtree(old) if old.is_dir() else old.unlink()
        for k, m in enumerate(members, start=1):
            sub = Path(MEMBERS_DIR) / str(k)
            written += [str(sub / f) for f in m.save_pretrained(out / sub)]
        return written

    @classmethod
    def from_pretrained(cls, path: str | Path, backend: str | None = None) -> "TransformerTextClassifier":
        """Rebuild a classifier saved by :meth:`save_pretrained`; ``backend`` overrides the saved one.
        A folder saved before issue 20 raises :class:`OutdatedModelFolder` (retrain it)."""
        from transformers import AutoTokenizer

        path = Path(path)
        meta = json.loads((path / META_FILE).read_text(encoding="utf-8"))
        if meta.get("format") != FORMAT:
            raise OutdatedModelFolder(
                f"{path} was trained by an earlier version of hotline-router (its ensemble, checkpoint averaging, refit, "
                f"distillation or prior correction no longer exist); retrain it: hotline train --model transformer …")
        params = dict(meta["params"], **({} if backend is None else {"backend": backend}))
        clf = cls(**params)
        clf._check_params()
        clf.classes_, clf.channels_, clf.prefix_ = np.asarray(meta["classes"]), list(meta["channels"]), meta["prefix"]
        clf.temperature_, clf.channel_temperature_ = float(meta["temperature"]), float(meta["channel_temperature"])
        clf.history_, clf.precision_, clf.n_params_ = meta.get("history", []), meta.get("precision"), meta.get("n_params")
        clf.path_, clf.bf16_check_ = path, meta.get("bf16")
        clf.ensemble_ = LogPoolEnsemble.load(path / LINEAR_FILE, meta["ensemble_exponents"]) if (path / LINEAR_FILE).exists() else None
        clf.tokenizer_ = AutoTokenizer.from_pretrained(path / ENCODER_DIR)
        clf.backend_ = clf._choose_backend(path)
        if clf.backend_.startswith("torch"):
            clf._torch_net()
        # The networks of a seed ensemble serve on the backend network 1 chose (its checks cover them all).
        clf.members_ = [cls.from_pretrained(path / MEMBERS_DIR / str(k), backend=clf.backend_) for k in range(1, int(meta.get("members", 0)) + 1)]
        return clf

    def _load_float_net(self):
        """The float32 network read from the folder the model was loaded from (``path_``)."""
        from safetensors.torch import load_file

        from model.encoder.hf_folder import load_encoder

        encoder = load_encoder(self.path_ / ENCODER_DIR)
        net = network_class()(encoder, len(self.classes_), len(self.channels_), self.dropout, self.pooling)
        heads = load_file(str(self.path_ / HEADS_FILE))
        net.department.load_state_dict({k.split(".", 1)[1]: v for k, v in heads.items() if k.startswith("department.")})
        if net.channel is not None:
            net.channel.load_state_dict({k.split(".", 1)[1]: v for k, v in heads.items() if k.startswith("channel.")})
        return net.float().eval()

    def check_bf16(self, texts: Sequence[str], min_agreement: float = 0.995, reference: np.ndarray | None = None) -> dict:
        """Compare :meth:`predict_proba` with every network's weights in bfloat16 against float32 on
        ``texts`` (n_texts,): see :func:`model.transformer.backends.probability_agreement`.
        ``reference``: the float32 probabilities of ``texts`` if the caller has them. Sets and returns
        ``bf16_check_``; its "served" (agreement >= ``min_agreement``) is what lets backend "auto"
        choose "torch-bf16". The networks in use are left as they were."""
        import copy

        check_is_fitted(self, "classes_")
        torch = import_torch()
        texts = list(texts)
        nets = [self, *self._members()]
        kept = [(m.__dict__.get("net_"), m.__dict__.get("backend_"), m.__dict__.get("session_")) for m in nets]
        try:
            for m in nets:  # float32 through torch, the arithmetic the model was validated in
                m.net_, m.backend_, m.session_ = m._float_net(), "torch", None
            ref = self.predict_proba(texts) if reference is None else reference
            for m in nets:
                m.net_, m.backend_ = copy.deepcopy(m.net_).to(torch.bfloat16).eval(), "torch-bf16"
            got = self.predict_proba(texts)
        finally:
            for m, (net, backend, session) in zip(nets, kept):
                m.net_, m.backend_, m.session_ = net, backend, session
        check = {"backend": "torch-bf16", **backends.probability_agreement(ref, got), "min_agreement": float(min_agreement)}
        check["served"] = bool(texts) and check["label_agreement"] >= min_agreement
        self.bf16_check_ = check
        return check
