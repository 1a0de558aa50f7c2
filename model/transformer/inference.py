"""Running the transformer classifier's network: tokens, batches, backends, ONNX export.

:class:`NetworkRunner` is the part of :class:`model.transformer.TransformerTextClassifier` that turns
texts into logits on the backend in use (see :mod:`model.transformer.backends`); the classifier adds
calibration, the ensemble and save/load. The attributes it reads are the classifier's: ``tokenizer_``,
``prefix_``, ``classes_``, ``channels_``, ``net_``, ``session_``, ``backend_``, ``path_`` and the
parameters ``max_length``, ``eval_batch_size``, ``onnx_batch_size``, ``onnx_workers``, ``backend``.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Sequence

import numpy as np
from sklearn.utils.validation import check_is_fitted

from model.transformer import backends
from model.transformer.network import MEMBERS_DIR, ONNX_FILE, ONNX_INT8_FILE, import_torch, length_buckets, pad

_POOL_LOCK = threading.Lock()


class NetworkRunner:
    """Texts → (department logits, channel logits) on torch, torch-bf16 or onnxruntime."""

    def _tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        enc = self.tokenizer_([self.prefix_ + t for t in texts], truncation=True, max_length=int(self.max_length))
        return enc["input_ids"]

    def _pad_id(self) -> int:
        return self.tokenizer_.pad_token_id or 0

    def _logits(self, seqs: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
        """Raw (uncalibrated) department logits (n, n_classes) and channel logits (n, n_channels)."""
        n_chan = len(self.channels_)
        dep = np.zeros((len(seqs), len(self.classes_)), dtype=np.float32)
        chan = np.zeros((len(seqs), n_chan), dtype=np.float32)
        if not seqs:
            return dep, chan
        onnx = getattr(self, "session_", None) is not None
        buckets = length_buckets([len(s) for s in seqs], int(self.onnx_batch_size if onnx else self.eval_batch_size), None)
        pool = self._onnx_pool() if onnx and len(buckets) > 1 else None
        if pool is not None:  # several batches at once, one thread each (see ``onnx_workers``)
            session, executor = pool
            results = executor.map(lambda b: self._run([seqs[i] for i in b], session), buckets)
        else:
            results = (self._run([seqs[i] for i in b]) for b in buckets)
        for b, (d, c) in zip(buckets, results):
            dep[b], chan[b] = d, c[:, :n_chan]
        return dep, chan

    def _onnx_pool(self):
        """(single-threaded session, thread pool) for parallel ONNX batches, built on first use;
        None when ``onnx_workers`` resolves to 1."""
        workers = self.onnx_workers if self.onnx_workers is not None else min(4, os.cpu_count() or 1)
        if int(workers) <= 1:
            return None
        with _POOL_LOCK:  # concurrent requests build one pool, not one each
            pool = getattr(self, "pool_", None)
            if pool is None or pool[2] != self.session_path_:
                from concurrent.futures import ThreadPoolExecutor

                if pool is not None:
                    pool[1].shutdown(wait=False)
                session = backends.ort_session(self.session_path_, threads=1)
                pool = self.pool_ = (session, ThreadPoolExecutor(int(workers), thread_name_prefix="onnx"), self.session_path_)
        return pool[0], pool[1]

    def _run(self, seqs: list[list[int]], session=None) -> tuple[np.ndarray, np.ndarray]:
        session = session or getattr(self, "session_", None)
        if session is not None:
            inp, att = pad(seqs, self._pad_id(), numpy=True)
            d, c = session.run(None, {"input_ids": inp, "attention_mask": att})
            return d, c
        torch = import_torch()
        inp, att = pad(seqs, self._pad_id(), next(self.net_.parameters()).device)
        self.net_.eval()
        with torch.inference_mode():
            d, c = self.net_(inp, att)
        return d.float().cpu().numpy(), c.float().cpu().numpy()

    # ------------------------------------------------------------------------------------ backends
    def _choose_backend(self, path: Path) -> str:
        want = self.backend
        bf16_ok = bool((getattr(self, "bf16_check_", None) or {}).get("served"))
        if want == "torch-bf16" or (want == "auto" and bf16_ok and backends.fast_bf16_cpu()):
            self.session_ = None
            return "torch-bf16"
        have_ort = backends.onnxruntime_available()
        options = {"onnx-int8": path / ONNX_INT8_FILE, "onnx": path / ONNX_FILE}
        order = ["onnx-int8", "onnx"] if want == "auto" else ([want] if want != "torch" else [])
        for name in order:
            if options[name].exists() and have_ort:
                self.session_ = backends.ort_session(options[name])
                self.session_path_ = options[name]
                return name
            if want == name:
                raise FileNotFoundError(f"backend {name!r} needs {options[name]} and onnxruntime")
        self.session_ = None
        return "torch"

    def _torch_net(self):
        """The torch network in the arithmetic of the backend in use: bfloat16 weights for "torch-bf16",
        float32 otherwise. Built from the saved folder on first use after loading an ONNX backend, cast
        in place for "torch-bf16" (no float32 copy is kept), and read again from the folder when float32
        is wanted back."""
        torch = import_torch()
        want = torch.bfloat16 if getattr(self, "backend_", "torch") == "torch-bf16" else torch.float32
        net = getattr(self, "net_", None)
        if net is not None and next(net.parameters()).dtype == want:
            return net
        self.net_ = (net if net is not None and want == torch.bfloat16 else self._load_float_net()).to(want).eval()
        return self.net_

    def _float_net(self):
        """The network in float32 (for saving and export): the one in use, or a fresh copy from the
        folder when the one in use is bfloat16."""
        torch = import_torch()
        net = getattr(self, "net_", None)
        if net is not None and next(net.parameters()).dtype == torch.float32:
            return net
        return self._load_float_net()

    def use_backend(self, backend: str, path: str | Path | None = None):
        """Switch the inference backend ("torch", "torch-bf16", "onnx", "onnx-int8", "auto") using the ONNX files in
        ``path`` (default: the folder the model was loaded from). Returns self."""
        self.backend = backend
        self._check_params()
        if path is not None:
            self.path_ = Path(path)
        self.backend_ = self._choose_backend(self.path_) if backend != "torch" else "torch"
        if self.backend_.startswith("torch"):
            self.session_ = None
            self._torch_net()
        for k, m in enumerate(self._members(), start=1):
            m.use_backend(self.backend_, self.path_ / MEMBERS_DIR / str(k))
        return self

    def export_onnx(self, out: str | Path, quantize: bool = True, opset: int = 18) -> list[str]:
        """Write ``model.onnx`` (encoder + heads, float32, dynamic batch and length) and, with ``quantize``,
        ``model.int8.onnx`` (see :func:`model.transformer.backends.quantize_int8`) to ``out``, for every
        network of a seed ensemble. Returns the file names written. The probabilities still go through
        the stored temperatures and blend."""
        check_is_fitted(self, "classes_")
        torch = import_torch()
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        net = self._float_net()
        device = next(net.parameters()).device
        net.cpu().eval()
        sample = pad(self._tokenize(["小区门口有人打架，快来", "家里停水了，什么时候来水"]), self._pad_id(), torch.device("cpu"))
        backends.export_network(net, sample, out / ONNX_FILE, opset)
        net.to(device)
        written = [ONNX_FILE]
        if quantize:
            backends.quantize_int8(out / ONNX_FILE, out / ONNX_INT8_FILE)
            written.append(ONNX_INT8_FILE)
        for k, m in enumerate(self._members(), start=1):
            sub = Path(MEMBERS_DIR) / str(k)
            written += [str(sub / f) for f in m.export_onnx(out / sub, quantize=quantize, opset=opset)]
        return written

    def __getstate__(self):  # joblib/pickle: drop the unpicklable onnxruntime sessions and thread pool
        state = dict(super().__getstate__())
        state.pop("session_", None)
        state.pop("pool_", None)
        return state
