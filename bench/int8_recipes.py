"""Which MatMuls to quantise: int8 ONNX recipes against PyTorch, on the corpus test split.

    python -m bench.int8_recipes [--model bench/results/transformer-corpus] [--limit 966]

Needs a transformer model folder with ``model.onnx`` (``python -m bench.transformer_corpus`` leaves
one). Each recipe quantises a subset of the MatMuls that multiply by a weight matrix (onnxruntime
dynamic quantisation, int8 weights, per output channel) and is compared with the PyTorch model on the
same texts: department-label agreement, largest probability difference, latency of one text (p50)
and file size. Prints its command and one table.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from model.transformer import LAYER_ROLES, ONNX_FILE, ONNX_INT8_FILE, TransformerTextClassifier, quantize_int8, weight_matmuls


def recipes(nodes) -> dict[str, set[str]]:
    """Recipe name -> MatMul node names to quantise."""
    ffn_out = {n for n, _, role in nodes if role == "FFN output"}
    attn_out = {n for n, _, role in nodes if role == "attention output"}
    last = {n for n, _, _ in [x for x in nodes if x[2] in LAYER_ROLES][-len(LAYER_ROLES):]}  # the last encoder layer
    heads = {n for n, _, role in nodes if role in ("head", "other")}
    every = {n for n, _, role in nodes if role != "activation"}
    return {
        "every weight MatMul and the heads": every,
        "all but FFN output (the earlier recipe)": every - ffn_out,
        "all but FFN output and heads": every - ffn_out - heads,
        "all but FFN output and attention output": every - ffn_out - attn_out,
        "all but FFN output and the last layer": every - ffn_out - last,
        "all but FFN output, attention output, last layer, heads": every - ffn_out - attn_out - last - heads,
        "FFN input only": {n for n, _, role in nodes if role == "FFN input"},
        "query, key, value only (the shipped recipe)": {n for n, _, role in nodes if role in ("query", "key", "value")},
        "FFN input and value": {n for n, _, role in nodes if role in ("FFN input", "value")},
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="bench/results/transformer-corpus")
    ap.add_argument("--test", default="data/corpus/test.jsonl")
    ap.add_argument("--limit", type=int, default=0, help="score only the first N test texts (0: all)")
    args = ap.parse_args(argv)
    print("command: python -m bench.int8_recipes " + " ".join(sys.argv[1:] if argv is None else argv), flush=True)
    folder = Path(args.model)
    texts = [json.loads(line)["text"] for line in Path(args.test).read_text(encoding="utf-8").splitlines() if line.strip()]
    texts = texts[: args.limit] if args.limit else texts
    torch_clf = TransformerTextClassifier.from_pretrained(folder, backend="torch")
    ref = torch_clf.predict_proba(texts)
    n_layers = int(json.loads((folder / "encoder" / "config.json").read_text())["num_hidden_layers"]) if (folder / "encoder" / "config.json").exists() else 12
    nodes = weight_matmuls(folder / ONNX_FILE)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "m"
        shutil.copytree(folder, work, ignore=shutil.ignore_patterns(ONNX_INT8_FILE))
        for name, chosen in [("float32 ONNX", None), *recipes(nodes).items()]:
            (work / ONNX_INT8_FILE).unlink(missing_ok=True)
            if chosen is not None:
                quantize_int8(work / ONNX_FILE, work / ONNX_INT8_FILE, only=chosen)
            clf = TransformerTextClassifier.from_pretrained(work, backend="onnx" if chosen is None else "onnx-int8")
            got = clf.predict_proba(texts)
            lat = []
            for t in texts[:200]:
                t0 = time.perf_counter()
                clf.predict_proba([t])
                lat.append((time.perf_counter() - t0) * 1000)
            size = (work / (ONNX_FILE if chosen is None else ONNX_INT8_FILE)).stat().st_size / 2**20
            rows.append((name, len(chosen) if chosen is not None else 0, float((ref.argmax(1) == got.argmax(1)).mean()),
                         float(np.abs(ref - got).max()), statistics.median(lat), size))
    n_weights = sum(role not in ("activation", "head") for *_, role in nodes)
    print(f"\n{folder}: {len(texts)} test texts, {n_weights} weight MatMuls, {n_layers} layers; reference: PyTorch float32")
    print("| recipe | MatMuls int8 | label agreement | max prob diff | p50 ms (1 text) | MB |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, k, agree, diff, p50, mb in rows:
        print(f"| {name} | {k} | {agree:.2%} | {diff:.3f} | {p50:.1f} | {mb:.0f} |")


if __name__ == "__main__":
    main()
