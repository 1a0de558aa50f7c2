"""The network of the transformer classifier and the pieces that feed it: base folder, padding, batches.

A local Hugging Face encoder (``base_model``), mean (or [CLS]) pooling, dropout, a department head
and an optional channel head (110 / 12345). Nothing here imports torch at import time: the
classifier's module is imported by the service even where the transformer extra is missing.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

DEFAULT_BASE_MODEL = "models/base/e5-small-zh"
ENCODER_DIR, HEADS_FILE, META_FILE, LINEAR_FILE = "encoder", "heads.safetensors", "transformer.json", "linear.joblib"
ONNX_FILE, ONNX_INT8_FILE = "model.onnx", "model.int8.onnx"
MEMBERS_DIR = "members"  # the seed ensemble's networks 2 … n, each a folder like the first one's


class BaseModelNotFound(FileNotFoundError):
    """``base_model`` is not a local Hugging Face folder; the message says how to build one."""


def resolve_base_model(path: str | Path | None) -> Path:
    """``path`` (default :data:`DEFAULT_BASE_MODEL`) if it holds a config.json, else :class:`BaseModelNotFound`."""
    p = Path(path or DEFAULT_BASE_MODEL)
    if not (p / "config.json").exists():
        raise BaseModelNotFound(
            f"base model {p} not found (no config.json): build the offline e5 encoder with "
            f"`hotline base-model build --out models/base/e5-small-q4` then `hotline base-model prune`, "
            f"or pass --base-model PATH to any local Hugging Face checkpoint"
        )
    return p


def import_torch():
    """torch, imported on first use (the extra is optional)."""
    import torch

    return torch


def network_class():
    """The torch module class (defined lazily so importing this file does not import torch)."""
    torch = import_torch()
    nn = torch.nn

    class EncoderWithHeads(nn.Module):
        """encoder → mean (or [CLS]) pooling → dropout → department head, channel head."""

        def __init__(self, encoder, n_classes: int, n_channels: int, dropout: float, pooling: str):
            super().__init__()
            self.encoder = encoder
            self.pooling = pooling
            hidden = encoder.config.hidden_size
            self.dropout = nn.Dropout(dropout)
            self.department = nn.Linear(hidden, n_classes)
            self.channel = nn.Linear(hidden, n_channels) if n_channels else None

        def forward(self, input_ids, attention_mask):
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            if self.pooling == "cls":
                pooled = hidden[:, 0]
            else:
                mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            pooled = self.dropout(pooled)
            dep = self.department(pooled)
            chan = self.channel(pooled) if self.channel is not None else dep[:, :0]
            return dep, chan

    return EncoderWithHeads


def length_buckets(lengths: Sequence[int], batch_size: int, rng: np.random.Generator | None, pool: int = 50) -> list[np.ndarray]:
    """Batches of indices with similar lengths (dynamic padding wastes little). With ``rng``: shuffled
    (training); without: sorted by length (inference).

    >>> [b.tolist() for b in length_buckets([5, 1, 3, 2], 2, None)]
    [[1, 3], [2, 0]]
    """
    lengths = np.asarray(lengths)
    if rng is None:
        order = np.argsort(lengths, kind="stable")
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    idx = rng.permutation(len(lengths))
    batches = []
    for start in range(0, len(idx), batch_size * pool):
        chunk = idx[start : start + batch_size * pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def pad(seqs: list[list[int]], pad_id: int, device=None, numpy: bool = False):
    """Token id lists → (input_ids, attention_mask), padded to the longest: numpy arrays with
    ``numpy``, else torch tensors on ``device``.

    >>> [a.tolist() for a in pad([[5, 6], [7]], 0, numpy=True)]
    [[[5, 6], [7, 0]], [[1, 1], [1, 0]]]
    """
    width = max(len(s) for s in seqs)
    inp = np.full((len(seqs), width), pad_id, dtype=np.int64)
    att = np.zeros((len(seqs), width), dtype=np.int64)
    for i, s in enumerate(seqs):
        inp[i, : len(s)] = s
        att[i, : len(s)] = 1
    if numpy:
        return inp, att
    torch = import_torch()
    return torch.from_numpy(inp).to(device), torch.from_numpy(att).to(device)
