"""Inference backends of the transformer classifier: which one is fast here, ONNX export and int8.

Backends: "torch" (float32), "torch-bf16" (the float32 weights cast to bfloat16 at load time),
"onnx" (``model.onnx``, float32) and "onnx-int8" (``model.int8.onnx``); "auto" picks the fastest one
present (see :meth:`model.transformer.TransformerTextClassifier.from_pretrained`). Each non-float32
backend is checked against float32 on held-out texts (:func:`probability_agreement`) before it serves.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from model.transformer.network import import_torch

BACKENDS = ("auto", "torch", "torch-bf16", "onnx", "onnx-int8")
LAYER_ROLES = ("query", "key", "value", "attention output", "FFN input", "FFN output")  # a BERT layer's weight MatMuls, in graph order


def fast_bf16_cpu() -> bool:
    """True where bfloat16 matrix products beat int8 ONNX on the CPU: Intel AMX tiles (torch's own
    check). AVX512-BF16 without AMX (AMD Zen 4/5) is not counted: not measured against int8 there."""
    try:
        torch = import_torch()
        return bool(torch.cpu._is_amx_tile_supported())
    except (ImportError, AttributeError, RuntimeError):
        return False


def onnxruntime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def ort_session(path: Path, threads: int | None = None):
    """An onnxruntime CPU session; ``threads``: intra-op threads (None: onnxruntime's default, every core)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads is not None:
        opts.intra_op_num_threads = int(threads)
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def probability_agreement(ref: np.ndarray, got: np.ndarray) -> dict:
    """How far probabilities ``got`` (n_texts, n_classes) are from ``ref`` (same shape): number of
    texts, label agreement (share of equal argmax, 1.0 for no texts) and the largest absolute
    probability difference, both rounded to 5 decimals."""
    n = len(ref)
    return {
        "texts": n,
        "label_agreement": round(float((ref.argmax(1) == got.argmax(1)).mean()) if n else 1.0, 5),
        "max_probability_difference": round(float(np.abs(ref - got).max()) if n else 0.0, 5),
    }


def export_network(net, sample: tuple, path: Path, opset: int = 18) -> None:
    """Write the float32 network ``net`` (encoder + heads) to ONNX file ``path`` with dynamic batch
    and length; ``sample``: (input_ids, attention_mask) tensors on the CPU to trace with."""
    torch = import_torch()
    batch, tokens = torch.export.Dim("batch", min=1, max=4096), torch.export.Dim("tokens", min=2, max=4096)
    # The dynamo exporter (needs onnxscript): the TorchScript one fails on dynamic axes in this torch.
    torch.onnx.export(
        net, sample, str(path), input_names=["input_ids", "attention_mask"], output_names=["department_logits", "channel_logits"],
        dynamic_shapes={"input_ids": {0: batch, 1: tokens}, "attention_mask": {0: batch, 1: tokens}},
        opset_version=opset, dynamo=True, external_data=False, verbose=False,
    )


def weight_matmuls(path: str | Path) -> list[tuple[str, tuple[int, ...], str]]:
    """(node name as the quantizer sees it, weight shape, role) of every MatMul of an exported model.

    Exported node names are generic, so roles come from the BERT layer pattern: six consecutive
    MatMuls with a weight matrix shaped (h,h) (h,h) (h,h) (h,h) (h,4h) (4h,h) are one layer's
    :data:`LAYER_ROLES`; other weight MatMuls are "other"; MatMuls of two activations are
    "activation" (shape ()); the heads are Gemm nodes, which onnxruntime's quantizer first splits
    into "<name>_MatMul" + Add, so they appear under that name as "head"."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    shapes = {i.name: tuple(i.dims) for i in graph.initializer}
    found, rest = [], []
    for node in graph.node:
        if node.op_type == "Gemm":
            rest.append((f"{node.name}_MatMul", next((shapes[x] for x in node.input if x in shapes), ()), "head"))
        elif node.op_type == "MatMul":
            weight = next((shapes[x] for x in node.input if x in shapes), None)
            if weight is not None and len(weight) == 2:
                found.append((node.name, weight))
            else:
                rest.append((node.name, (), "activation"))
    out, i = [], 0
    while i < len(found):
        group = [w for _, w in found[i : i + 6]]
        if len(group) == 6 and all(w[0] == w[1] for w in group[:4]) and group[4] == group[5][::-1] and group[4][1] > group[4][0]:
            out.extend((found[i + k][0], group[k], LAYER_ROLES[k]) for k in range(6))
            i += 6
        else:
            out.append((found[i][0], found[i][1], "other"))
            i += 1
    return out + rest


def quantize_int8(src: str | Path, dst: str | Path) -> None:
    """onnxruntime dynamic int8 quantization (int8 weights per output channel, activations quantised
    at run time) of the attention's query, key and value projections only.

    Measured on the corpus test split (6-layer e5 fine-tuned on the corpus, 966 texts; label agreement
    with PyTorch / max probability difference / p50 of one text / file; bench/README.md): float32 ONNX
    100% / 0 / 7.7 ms / 55 MB; every weight MatMul and the heads 97.5% / 0.41 / 5.5 ms / 24 MB; all but
    the FFN output 99.0% / 0.31 / 6.6 ms; FFN input only 99.4%; query, key, value only 99.8% / 0.08 /
    7.2 ms / 47 MB. Serving asks for ≥ 99.5% agreement, so only Q/K/V are quantised; the heads stay
    float32. A graph without the BERT layer pattern falls back to every weight MatMul but the
    (4h, h) FFN outputs.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    nodes = weight_matmuls(src)
    if any(role in LAYER_ROLES for _, _, role in nodes):
        keep = {name for name, _, role in nodes if role in ("query", "key", "value")}
    else:
        keep = {name for name, w, role in nodes if role == "other" and not w[0] > w[1]}
    exclude = [name for name, _, _ in nodes if name not in keep]
    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"], per_channel=True, nodes_to_exclude=exclude)
