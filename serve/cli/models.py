"""``hotline train``, ``predict``, ``evaluate`` and ``build-default``: make a model and use it on files."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from serve.cli._common import _load_router, _outside_registry, _parse_params, _setup_logging, _user_errors, app

# ``hotline train --help`` lists the options that only --model transformer reads in a group of their own.
TRANSFORMER_OPTIONS = "transformer (--model transformer)"


@app.command()
def train(
    data: List[Path] = typer.Option(..., "--data", help="Labelled tickets: CSV (UTF-8/GB18030), JSONL or XLSX; repeat for several files"),
    out: Path = typer.Option(..., "--out", help="Folder to write the model to"),
    text_column: str = typer.Option("text", help="Column with the call summary (e.g. 诉求内容)"),
    label_column: str = typer.Option("department", help="Column with the department (e.g. 处置单位)"),
    channel_column: Optional[str] = typer.Option(None, help="Column with the channel (110/12345, or yes/no for handled by police)"),
    model: str = typer.Option("linear", help="Model kind: linear, or transformer (fine-tunes --base-model)"),
    base_model: Optional[Path] = typer.Option(None, "--base-model", rich_help_panel=TRANSFORMER_OPTIONS, help="Local Hugging Face folder (default models/base/e5-small-zh, see `hotline base-model`)"),
    param: List[str] = typer.Option([], "--param", rich_help_panel=TRANSFORMER_OPTIONS, help="KEY=VALUE classifier parameter, e.g. epochs=4, num_layers=6; repeatable"),
    taxonomy: Optional[str] = typer.Option(None, help="Taxonomy file, 'default' or 'infer' (default: the national taxonomy when all labels are its codes, else inferred)"),
    channel_map: Optional[Path] = typer.Option(None, help="YAML/JSON/CSV mapping each department to 110 or 12345"),
    test_data: List[Path] = typer.Option([], "--test-data", help="Held-out labelled file(s) scored after training (written to the model card)"),
    lenient: bool = typer.Option(False, help="Skip bad rows (and report them) instead of failing (exact duplicates are always dropped and counted; same text with another label: first label kept, lines reported)"),
    strip_boilerplate: bool = typer.Option(False, help="Remove dispatch boilerplate such as 请交警核实处理 (it leaks the label)"),
    target_110_recall: float = typer.Option(0.99, help="110 recall the channel threshold must reach on validation data (calls at or above it reach 110: transferred, or in a three-way consult where the line is unclear)"),
    review_budget: float = typer.Option(0.15, help="At most this share of calls goes to supervisor review (1 = the accuracy target alone decides)"),
    int8_min_agreement: float = typer.Option(0.995, rich_help_panel=TRANSFORMER_OPTIONS, help="Keep model.int8.onnx only if it agrees with PyTorch on this share of labels (else float32 ONNX serves)"),
    seed: int = typer.Option(13, help="Random seed (validation folds, classifier)"),
    verbose: bool = typer.Option(True, help="Log progress and draw progress bars (--no-verbose: the result lines only)"),
) -> None:
    """Train a model and save it as a self-describing folder (config, weights, label maps, metrics, card)."""
    _setup_logging(verbose)
    from data.loading import describe_input
    from training.metrics import summary_line
    from training.train import TrainConfig
    from training.train import train as run_train

    with _user_errors():
        _outside_registry(out)
        cfg = TrainConfig(
            data=[str(d) for d in data], out=str(out), text_column=text_column, label_column=label_column, channel_column=channel_column,
            model=model, taxonomy=taxonomy, channel_map=str(channel_map) if channel_map else None, strict=not lenient,
            strip_boilerplate=strip_boilerplate, target_110_recall=target_110_recall, seed=seed, test_data=[str(t) for t in test_data],
            review_budget=review_budget,
            base_model=str(base_model) if base_model else None, transformer=_parse_params(param),
            int8_min_agreement=int8_min_agreement,
        )
        trained = run_train(cfg, progress=verbose)
    m = trained.metrics
    typer.echo(f"saved {trained.version} to {out} ({m['train_rows']} rows, {m['skipped_rows']} skipped, {m['train_seconds']} s)")
    for line in describe_input(m.get("input") or {}):
        typer.echo(line)
    typer.echo("validation (out-of-fold): " + summary_line(m["validation_out_of_fold"]))
    if "test" in m:
        typer.echo("test: " + summary_line(m["test"]))
    from model.thresholds import operating_points_table

    if m.get("operating_points"):
        typer.echo("\noperating points (validation, model only; retrain with --target-110-recall / --review-budget, "
                   "or serve with HOTLINE_REVIEW_BUDGET):\n" + operating_points_table(m["operating_points"]))
    if m.get("channel_information") is False:
        typer.echo("\nWARNING: no channel information: every department is on one line, so the model never suggests the "
                   "other; only danger evidence reaches 110. Give --channel-column or --channel-map.", err=True)


@app.command()
def predict(
    input: Path = typer.Option(..., "--input", help="CSV/JSONL/XLSX with a text column"),
    output: Path = typer.Option(..., "--output", help="File to write, one row per input row, in the format its suffix names: .jsonl, .csv (UTF-8 with BOM, opens in Excel) or .xlsx"),
    model: Optional[Path] = typer.Option(None, help="Model folder (default: the promoted model)"),
    text_column: str = typer.Option("text", help="Column with the call summary (e.g. 诉求内容)"),
    rules_only: bool = typer.Option(False, help="Ignore any model; rules only"),
    lenient: bool = typer.Option(False, help="Skip bad rows (reported) instead of failing"),
    batch_size: int = typer.Option(256, help="Calls routed per batch"),
) -> None:
    """Route every row of a file; each output object is the row's own fields plus the routing decision."""
    _setup_logging(False)
    from tqdm.auto import tqdm

    from data.loading import load_records

    from data.export import check_format, write_table
    from data.loading import DataError

    with _user_errors():
        check_format(output)  # before any work: a wrong suffix is one line, not a file in another format
        router = _load_router(model, rules_only)
        # Empty rows are skipped and reported (a blank line in an export is no reason to refuse the file);
        # any other bad row stops, unless --lenient.
        res = load_records(input, text_column=text_column, label_column=None, strict=False, deduplicate=False)
        bad = [e for e in res.errors if e.kind != "empty"]
        if bad and not lenient:
            raise DataError(f"{len(bad)} bad rows (use --lenient to skip them):\n  " + "\n  ".join(map(str, bad[:20])))
        rows = []
        for i in tqdm(range(0, len(res.records), batch_size), desc="predict", unit="batch", disable=len(res.records) < 2000):
            chunk = res.records[i : i + batch_size]
            for rec, d in zip(chunk, router.route_batch([r.text for r in chunk])):
                row = {text_column: rec.text, **{k: v for k, v in rec.extra.items()}}
                row.update(
                    action=d.action, channel=d.channel, department=d.department, department_name=d.department_name,
                    confidence=d.confidence, channel_confidence=d.channel_confidence, needs_review=d.needs_review, source=d.source,
                    danger=d.danger, alternatives=[a.__dict__ for a in d.alternatives], reasons=d.reasons, links=d.links,
                    model_version=d.model_version,
                )
                rows.append(row)
        write_table(rows, output)
    skipped = (f", {len(res.errors)} rows skipped (lines {', '.join(str(e.line) for e in res.errors[:20])}"
               + (", …" if len(res.errors) > 20 else "") + ")") if res.errors else ""
    typer.echo(f"wrote {len(res.records)} decisions to {output}{skipped}")


@app.command()
def evaluate(
    data: List[Path] = typer.Option(..., "--data", help="Labelled file(s) to evaluate on"),
    model: Optional[Path] = typer.Option(None, help="Model folder (default: the promoted model)"),
    out: Optional[Path] = typer.Option(None, help="Report folder (default: reports/<model>-<data>)"),
    text_column: str = typer.Option("text", help="Column with the call summary (e.g. 诉求内容)"),
    label_column: str = typer.Option("department", help="Column with the department (e.g. 处置单位)"),
    channel_column: Optional[str] = typer.Option(None, help="Column with the true channel (110/12345, or yes/no for handled by police); default: each department's channel in the model's taxonomy"),
    rules_only: bool = typer.Option(False, help="Evaluate the rules alone (no model)"),
    cv: int = typer.Option(0, help="Cross-validate a fresh linear model on --data with this many folds instead of using a trained model"),
    lenient: bool = typer.Option(False, help="Skip bad rows (unknown label, empty text, malformed line; each reported by line) instead of failing. Exact duplicates are always dropped and counted; same text with another label: first label kept, lines reported"),
    strip_boilerplate: bool = typer.Option(False, help="Remove dispatch boilerplate such as 请交警核实处理 (it leaks the label)"),
    channel_map: Optional[Path] = typer.Option(None, help="With --cv: YAML/JSON/CSV mapping each department to 110 or 12345, for a city's own department names (a trained model brings its own)"),
    verbose: bool = typer.Option(True, help="Draw progress bars (--no-verbose: the result lines only)"),
) -> None:
    """Score a model (or the rules, or k-fold cross-validation) and write a report folder with plots."""
    _setup_logging(False)
    from data.loading import describe_input
    from training.evaluate import evaluate_records, write_report
    from training.train import cross_validate
    from training.metrics import summary_line
    from training.train import TrainConfig, load_training_data

    with _user_errors():
        cfg = TrainConfig(
            data=[str(d) for d in data], out="-", text_column=text_column, label_column=label_column, channel_column=channel_column,
            strict=not lenient, strip_boilerplate=strip_boilerplate, channel_map=str(channel_map) if channel_map else None,
        )
        if cv:
            records, decisions, metrics = cross_validate(cfg, folds=cv, progress=verbose)
            name, taxonomy = f"cv{cv}", None  # names from the decisions (an inferred taxonomy labels by name)
        else:
            router = _load_router(model, rules_only)
            res, taxonomy = load_training_data(cfg, taxonomy=router.taxonomy)
            records = res.records
            result = evaluate_records(router, records, progress=verbose)
            metrics, decisions = result["metrics"], result["decisions"]
            metrics["input"] = res.input_report()
            name = "rules" if router.model is None else router.model_version
        out = out or Path("reports") / f"{name}-{Path(data[0]).stem}"
        notes = write_report(out, metrics, records, decisions, title=f"Evaluation of {name} on {', '.join(map(str, data))}", taxonomy=taxonomy)
        if rules_only:
            from training.evaluate import rule_report, write_rule_report

            write_rule_report(out, rule_report(records))
    for line in describe_input(metrics.get("input") or {}):
        typer.echo(line)
    for note in notes:
        typer.echo(f"note: {note}", err=True)
    typer.echo(summary_line(metrics))
    typer.echo(f"report: {out}")


@app.command("build-default")
def build_default(
    force: bool = typer.Option(False, help="Rebuild even if a model is already promoted (transformer: even if one already serves)"),
    model: str = typer.Option("linear", help="linear: train and promote the default model; transformer: fine-tune on the corpus, compare with the current "
                                             "model on the test split, promote only if the promotion check accepts (`make model-transformer`)"),
    base_model: Optional[Path] = typer.Option(None, "--base-model", rich_help_panel=TRANSFORMER_OPTIONS, help="Local Hugging Face folder (default models/base/e5-small-zh)"),
    param: List[str] = typer.Option([], "--param", rich_help_panel=TRANSFORMER_OPTIONS, help="KEY=VALUE classifier parameter, e.g. num_layers=6; repeatable"),
    out: Path = typer.Option(Path("challengers/transformer-corpus"), "--out", rich_help_panel=TRANSFORMER_OPTIONS, help="Folder for the transformer challenger (outside the registry)"),
) -> None:
    """Train the default model on the shipped corpus (train split), test it on the test split, promote it."""
    _setup_logging(True)
    from data.corpus import TEST_PATH, TRAIN_PATH
    from model.registry import current_model_dir, register
    from serve.config import get_settings
    from training.train import TrainConfig
    from training.train import train as run_train

    s = get_settings()
    if model == "transformer":
        _build_transformer(s, force, base_model, param, out)
        return
    if model != "linear":
        typer.echo(f"error: --model must be linear or transformer, got {model!r}", err=True)
        raise typer.Exit(2)
    if current_model_dir(s.registry_dir) is not None and not force:
        typer.echo(f"a model is already promoted: {current_model_dir(s.registry_dir)} (use --force to rebuild)")
        return
    with _user_errors():
        tmp = Path(s.registry_dir) / "_building"
        trained = run_train(TrainConfig(data=[str(TRAIN_PATH)], out=str(tmp), test_data=[str(TEST_PATH)], target_110_recall=s.target_110_recall))
        dest = register(tmp, s.registry_dir)
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    typer.echo(f"default model {trained.version} promoted: {dest}")


def _build_transformer(s, force: bool, base_model: Optional[Path], param: List[str], out: Path) -> None:
    """``build-default --model transformer``: the corpus through the same comparison and promotion
    check as ``hotline retrain``; exit status 1 when the check refuses (nothing promoted)."""
    import json
    import time

    from data.corpus import TEST_PATH, TRAIN_PATH
    from model.registry import current_model_dir
    from training.compare import compare_models, comparison_table, load_test_set, write_comparison
    from training.promote import PromotionPolicy, judge, promote_challenger
    from training.retrain import resolve_champion
    from training.train import TrainConfig
    from training.train import train as run_train

    current = current_model_dir(s.registry_dir)
    if current is not None and not force:
        kind = json.loads((current / "config.json").read_text(encoding="utf-8")).get("model_class")
        if kind == "transformer":
            typer.echo(f"a transformer already serves: {current} (use --force to rebuild)")
            return
    t0 = time.perf_counter()
    with _user_errors():
        _outside_registry(out)
        from model.transformer import resolve_base_model

        resolve_base_model(base_model)  # before any work: a missing base is one line
        cfg = TrainConfig(data=[str(TRAIN_PATH)], out=str(out), model="transformer", test_data=[str(TEST_PATH)], target_110_recall=s.target_110_recall,
                          base_model=str(base_model) if base_model else None, transformer=_parse_params(param))
        trained = run_train(cfg)
        comparison = compare_models(trained, resolve_champion(None, s.registry_dir), load_test_set([str(TEST_PATH)]))
        write_comparison(out, comparison)
    minutes = (time.perf_counter() - t0) / 60
    typer.echo(f"trained {trained.version} in {minutes:.1f} min ({trained.metrics['train_rows']} rows); "
               f"compared with {comparison['champion']['name']} on the corpus test split:")
    typer.echo(comparison_table(comparison))
    policy = PromotionPolicy.from_settings(s)
    verdict = judge(comparison, policy)
    typer.echo(f"promotion check: {verdict.reason_line()}")
    if not verdict.accepted:
        typer.echo(f"not promoted; the linear model keeps serving. Serve it anyway with `hotline promote {out} --force`", err=True)
        raise typer.Exit(1)
    with _user_errors():
        done = promote_challenger(out, s.registry_dir, policy)
    typer.echo(f"promoted {done.registered.name} (previous: {done.previous or 'none'}); `hotline rollback` goes back")
