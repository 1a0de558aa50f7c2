"""Vocabulary pruning: keep only the tokens a corpus uses, and shrink the embedding matrix to match.

multilingual-e5-small spends about 96M of its 118M parameters on a 250k-token word-embedding matrix,
most of which never occurs in Chinese call summaries. :func:`prune_vocabulary` keeps

- every token the given texts use (tokenised exactly as the classifier will: with the ``query: `` prefix),
- the special tokens (``<s>``, ``<pad>``, ``</s>``, ``<unk>``, ``<mask>`` or ``[CLS]`` …),
- a safety margin: the ``cjk_margin`` most frequent single-character CJK tokens (by unigram score for
  sentencepiece vocabularies, by vocabulary order for WordPiece) and every single printable ASCII
  character token, so unseen texts still split into characters rather than ``<unk>``,

and rewrites ``tokenizer.json`` (ids renumbered in their old order) and the embedding rows. Texts made
of kept tokens tokenise exactly as before (a Viterbi best path over a superset is still best over the
subset); anything else still encodes, to ``<unk>`` at worst. Sentencepiece-unigram (XLM-R, e5) and
WordPiece (BERT) tokenizers are supported; BPE is refused.

>>> report = prune_vocabulary("models/base/e5-small-q4", "models/base/e5-small-zh", texts)  # doctest: +SKIP
>>> report["vocab_after"], report["params_after"]                                          # doctest: +SKIP
(14352, 26766720)
"""
from __future__ import annotations

import json
import logging
import re
import unicodedata
from pathlib import Path
from typing import Iterable, Sequence

from model.encoder import E5_PREFIX
from model.encoder.hf_folder import load_encoder

logger = logging.getLogger(__name__)

_CJK = re.compile(r"^[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3000-\u303f\uff00-\uffef]$")
_SLOW_TOKENIZER_FILES = ("sentencepiece.bpe.model", "vocab.txt", "spiece.model", "vocab.json", "merges.txt")


def _core(piece: str) -> str:
    """A piece without its word-boundary marker (sentencepiece ``▁``, WordPiece ``##``)."""
    if piece.startswith("##"):
        return piece[2:]
    return piece[1:] if piece.startswith("\u2581") and len(piece) > 1 else piece


def margin_ids(pieces: Sequence[str], scores: Sequence[float] | None, cjk_margin: int) -> set[int]:
    """Ids of the ``cjk_margin`` best single-CJK-character pieces and of all single printable-ASCII pieces.

    >>> sorted(margin_ids(["<s>", "的", "▁a", "区", "abc", "##我"], [0, -2.0, -5.0, -3.0, -4.0, -9.0], 2))
    [1, 2, 3]
    """
    cjk, keep = [], set()
    for i, p in enumerate(pieces):
        c = _core(p)
        if len(c) != 1:
            continue
        if _CJK.match(c):
            cjk.append(i)
        elif c.isascii() and c.isprintable() and unicodedata.category(c)[0] != "C":
            keep.add(i)
    if scores is not None:
        cjk.sort(key=lambda i: -scores[i])
    return keep | set(cjk[:cjk_margin])


def _remap_post_processor(node, old2new: dict[int, int]):
    """Renumber special-token ids inside a tokenizer.json ``post_processor`` (any nesting)."""
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if k in ("sep", "cls") and isinstance(v, list) and len(v) == 2 and isinstance(v[1], int):
                out[k] = [v[0], old2new[v[1]]]
            elif k == "ids" and isinstance(v, list) and all(isinstance(i, int) for i in v):
                out[k] = [old2new[i] for i in v]
            else:
                out[k] = _remap_post_processor(v, old2new)
        return out
    if isinstance(node, list):
        return [_remap_post_processor(v, old2new) for v in node]
    return node


def pruned_tokenizer_spec(spec: dict, kept: Sequence[int]) -> dict:
    """A copy of tokenizer.json ``spec`` keeping only vocabulary ids ``kept`` (sorted), renumbered 0..n-1."""
    old2new = {o: i for i, o in enumerate(kept)}
    spec = json.loads(json.dumps(spec))
    model = spec["model"]
    kind = model.get("type")
    if kind == "Unigram":
        # Added tokens may sit past the model's own vocabulary; sorted renumbering keeps them last.
        model["vocab"] = [model["vocab"][o] for o in kept if o < len(model["vocab"])]
        if model.get("unk_id") is not None:
            model["unk_id"] = old2new[model["unk_id"]]
    elif kind == "WordPiece":
        model["vocab"] = {t: old2new[i] for t, i in model["vocab"].items() if i in old2new}
    else:
        raise ValueError(f"vocabulary pruning supports Unigram (sentencepiece) and WordPiece tokenizers, not {kind}")
    spec["added_tokens"] = [dict(t, id=old2new[t["id"]]) for t in spec.get("added_tokens", []) if t["id"] in old2new]
    if spec.get("post_processor"):
        spec["post_processor"] = _remap_post_processor(spec["post_processor"], old2new)
    return spec


def read_texts(paths: Iterable[str | Path], text_column: str = "text") -> list[str]:
    """Texts from ``.txt`` files (one per line) and CSV/JSONL/XLSX files (their ``text_column``)."""
    from data.loading import load_records

    texts: list[str] = []
    for p in map(Path, paths):
        if p.suffix in (".txt", ".text"):
            texts.extend(line.strip() for line in p.read_text(encoding="utf-8").splitlines() if line.strip())
        else:
            texts.extend(r.text for r in load_records(p, text_column=text_column, label_column=None, strict=False, deduplicate=False).records)
    return texts


def prune_vocabulary(src: str | Path, out: str | Path, texts: Sequence[str], cjk_margin: int = 3000, prefix: str = E5_PREFIX) -> dict:
    """Write a copy of the Hugging Face encoder folder ``src`` to ``out`` with a pruned vocabulary.

    Parameters
    ----------
    texts : sequence of str
        The corpus whose tokens are kept (training texts; any others help).
    cjk_margin : int, default 3000
        Extra single-character CJK tokens kept, most frequent first.
    prefix : str, default "query: "
        Prepended before tokenising, as the classifier does (e5 expects it).

    Returns
    -------
    dict: vocabulary, parameter counts and safetensors sizes before/after, and whether every text
    tokenises exactly as before (``identical_tokenization``).
    """
    import torch
    from transformers import AutoTokenizer

    src, out = Path(src), Path(out)
    if not texts:
        raise ValueError("no texts to prune the vocabulary with")
    tok = AutoTokenizer.from_pretrained(src)
    if not getattr(tok, "is_fast", False):
        raise ValueError(f"{src}: pruning needs a fast tokenizer (tokenizer.json)")
    spec = json.loads(tok.backend_tokenizer.to_str())
    kind = spec["model"].get("type")
    if kind == "Unigram":
        pieces = [p for p, _ in spec["model"]["vocab"]]
        scores = [s for _, s in spec["model"]["vocab"]]
    elif kind == "WordPiece":
        vocab = spec["model"]["vocab"]
        pieces = [None] * (max(vocab.values()) + 1)
        for t, i in vocab.items():
            pieces[i] = t
        pieces = [p or "" for p in pieces]
        scores = None
    else:
        raise ValueError(f"{src}: vocabulary pruning supports Unigram and WordPiece tokenizers, not {kind}")
    prefixed = [prefix + t for t in texts]
    old_ids = tok(prefixed, add_special_tokens=True, verbose=False)["input_ids"]
    used = {i for ids in old_ids for i in ids}
    special = set(tok.all_special_ids) | {t["id"] for t in spec.get("added_tokens", [])}
    kept = sorted(used | special | margin_ids(pieces, scores, cjk_margin))
    old2new = {o: i for i, o in enumerate(kept)}

    model = load_encoder(src)
    params_before = sum(p.numel() for p in model.parameters())
    emb = model.get_input_embeddings()
    if max(kept) >= emb.num_embeddings:
        raise ValueError(f"{src}: tokenizer id {max(kept)} has no embedding row (matrix has {emb.num_embeddings})")
    pad = model.config.pad_token_id
    new_emb = torch.nn.Embedding(len(kept), emb.embedding_dim, padding_idx=old2new.get(pad) if pad is not None else None)
    with torch.no_grad():
        new_emb.weight.copy_(emb.weight[torch.tensor(kept)])
    model.set_input_embeddings(new_emb)
    model.config.vocab_size = len(kept)
    for attr in ("pad_token_id", "bos_token_id", "eos_token_id", "sep_token_id", "cls_token_id"):
        v = getattr(model.config, attr, None)
        if isinstance(v, int):
            setattr(model.config, attr, old2new.get(v))
    params_after = sum(p.numel() for p in model.parameters())

    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    for name in _SLOW_TOKENIZER_FILES:  # the pruned tokenizer.json is the only vocabulary
        (out / name).unlink(missing_ok=True)
    (out / "tokenizer.json").write_text(json.dumps(pruned_tokenizer_spec(spec, kept), ensure_ascii=False), encoding="utf-8")

    new_tok = AutoTokenizer.from_pretrained(out)
    new_ids = new_tok(prefixed, add_special_tokens=True, verbose=False)["input_ids"]
    same = sum(n == [old2new[i] for i in o] for n, o in zip(new_ids, old_ids))
    unk = new_tok.unk_token_id
    report = {
        "source": str(src),
        "tokenizer": kind,
        "texts": len(texts),
        "vocab_before": len(tok),
        "vocab_after": len(kept),
        "kept_used": len(used),
        "kept_margin": len(kept) - len(used | special),
        "cjk_margin": cjk_margin,
        "params_before": int(params_before),
        "params_after": int(params_after),
        "safetensors_bytes_before": _size(src / "model.safetensors"),
        "safetensors_bytes_after": _size(out / "model.safetensors"),
        "identical_tokenization": round(same / len(texts), 6),
        "unk_tokens_in_texts": int(sum(i == unk for ids in new_ids for i in ids)) if unk is not None else 0,
    }
    prov = src / "hotline_base.json"
    info = json.loads(prov.read_text(encoding="utf-8")) if prov.exists() else {"source": str(src)}
    info["pruning"] = report
    (out / "hotline_base.json").write_text(json.dumps(info, ensure_ascii=False, indent=2), encoding="utf-8")
    logger.info("pruned %s: vocabulary %d -> %d, parameters %d -> %d", src, report["vocab_before"], report["vocab_after"], params_before, params_after)
    return report


def _size(path: Path) -> int | None:
    return path.stat().st_size if path.exists() else None


__all__ = ["prune_vocabulary", "pruned_tokenizer_spec", "margin_ids", "read_texts"]
