"""``hotline retrain``, ``promote``, ``rollback``, ``models`` and ``export-reviews``: the analyst's loop around the model registry."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from serve.cli._common import _parse_params, _registry_dir, _setup_logging, _user_errors, app

TRANSFORMER_OPTIONS = "transformer (--model transformer)"


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
    seed: int = typer.Option(13, help="Random seed (validation folds, classifier)"),
    model: str = typer.Option("linear", help="Challenger kind: linear, or transformer (fine-tunes --base-model; same merge, comparison and promotion check)"),
    base_model: Optional[Path] = typer.Option(None, "--base-model", rich_help_panel=TRANSFORMER_OPTIONS, help="Local Hugging Face folder (default models/base/e5-small-zh, see `hotline base-model`)"),
    param: List[str] = typer.Option([], "--param", rich_help_panel=TRANSFORMER_OPTIONS, help="KEY=VALUE classifier parameter, e.g. epochs=4, num_layers=6; repeatable"),
    promote: bool = typer.Option(False, "--promote", help="Promote the challenger at the end if the promotion check accepts it (as `hotline promote` would)"),
    background: bool = typer.Option(False, "--background", help="Run as a background job and return at once; follow it with `hotline jobs status JOB` (log and progress in the registry's jobs/ folder)"),
    verbose: bool = typer.Option(True, help="Log progress and draw progress bars (--no-verbose: the result lines only)"),
) -> None:
    """Merge base data with new tickets (deduplicated; new labels win), train a challenger, compare it with the champion."""
    _setup_logging(verbose)
    from serve.config import get_settings
    from training.compare import comparison_table
    from training.jobs import finish_retrain
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
            model=model, base_model=str(base_model) if base_model else None, transformer=_parse_params(param),
        )
        policy = PromotionPolicy.from_settings(s)
        if background:
            from training.jobs import JobStore, start_retrain

            job = start_retrain(JobStore(cfg.registry), cfg, policy, promote=promote, progress_interval=s.job_progress_s)
            typer.echo(f"started job {job['id']} (pid {job['pid']}): {model} retrain into {cfg.out}")
            typer.echo(f"follow it with `hotline jobs status {job['id']}`; stop it with `hotline jobs cancel {job['id']}`")
            return
        result = run_retrain(cfg, progress=verbose)
    from data.loading import describe_input
    from training.compare import describe_labels

    typer.echo(f"saved challenger {result.model.version} to {out}")
    typer.echo("data: " + result.merge.summary())
    for side, report in result.inputs.items():
        for line in describe_input(report, name=f"{side} data"):
            typer.echo(line)
    labels = result.comparison.get("labels") or {}
    if labels and not labels["same"]:
        typer.echo(f"warning: the champion and the challenger route to different departments: {describe_labels(labels)}", err=True)
    typer.echo(comparison_table(result.comparison))
    verdict = judge(result.comparison, policy)
    typer.echo(f"promotion check: {verdict.reason_line()}")
    if not promote:
        typer.echo(f"comparison: {out / 'comparison.md'}; promote with `hotline promote {out}`")
        return
    typer.echo(f"comparison: {out / 'comparison.md'}")
    with _user_errors():
        outcome = finish_retrain(result, policy, cfg.registry, promote=True)
    if outcome["promoted"]:
        typer.echo(f"promoted {outcome['promoted']}; a running API serves it after its next reload (POST /v1/admin/reload)")
    else:
        typer.echo(f"not promoted: {outcome['promote_error'] or verdict.reason_line()}")


@app.command()
def promote(
    challenger: Path = typer.Argument(..., help="Challenger folder written by `hotline retrain`"),
    registry: Optional[Path] = typer.Option(None, help="Model registry (default HOTLINE_REGISTRY_DIR, models)"),
    min_110_recall_delta: Optional[float] = typer.Option(None, help="Smallest allowed change of 110 recall, challenger − champion (default HOTLINE_PROMOTE_MIN_110_RECALL_DELTA, 0)"),
    min_macro_f1_delta: Optional[float] = typer.Option(None, help="Smallest allowed change of macro-F1 (default HOTLINE_PROMOTE_MIN_MACRO_F1_DELTA, 0)"),
    allow_label_change: bool = typer.Option(False, "--allow-label-change", help="Accept a challenger whose department list differs from the champion's (refused by default; its numbers were compared on the shared departments only)"),
    force: bool = typer.Option(False, help="Promote even if the challenger is worse (the override is logged in the registry history)"),
) -> None:
    """Promote a challenger if it is no worse than the champion on 110 recall and macro-F1; the previous model is kept for rollback."""
    _setup_logging(False)
    from serve.config import get_settings
    from training.promote import PromotionPolicy, promote_challenger

    reg_dir = _registry_dir(registry)
    with _user_errors():
        policy = PromotionPolicy.from_settings(get_settings(), allow_label_change=allow_label_change,
                                               min_110_recall_delta=min_110_recall_delta, min_macro_f1_delta=min_macro_f1_delta)
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
    to: Optional[str] = typer.Option(None, help="Registered version to make current (default: PREVIOUS, the model served before the last promotion); see `hotline models`"),
) -> None:
    """Serve the previous model again. Running it twice changes nothing the second time; go further back
    (or return) with --to VERSION."""
    _setup_logging(False)
    from model.registry import rollback as run_rollback

    reg_dir = _registry_dir(registry)
    with _user_errors():
        done = run_rollback(reg_dir, to=to)
    if not done.changed:
        typer.echo(f"already rolled back in {reg_dir}: current is {done.now} (rolled back from {done.was or 'none'} at {done.since}); nothing changed")
        typer.echo(f"go further back with `hotline rollback --to VERSION` (`hotline models` lists them); "
                   f"return to {done.was or 'the newer model'} with `hotline rollback --to {done.was or 'VERSION'}`")
        return
    typer.echo(f"rolled back in {reg_dir}: current was {done.was or 'none'}, now {done.now}")
    typer.echo(f"running `hotline rollback` again changes nothing; return with `hotline rollback --to {done.was or 'VERSION'}`, "
               "or go further back with `hotline rollback --to VERSION`")
    typer.echo("a running API serves it after its next reload (POST /v1/admin/reload) or restart")


@app.command()
def models(
    registry: Optional[Path] = typer.Option(None, help="Model registry (default HOTLINE_REGISTRY_DIR, models)"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table"),
) -> None:
    """List the registered model versions, oldest first (* current, ^ previous), validation and test numbers
    in separate columns."""
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
    keys = ("110_recall", "accuracy", "macro_f1")
    heads = ("110 recall", "dept accuracy", "macro-F1")
    typer.echo("|   | version | created | train rows | " + " | ".join(f"validation {h}" for h in heads) + " | "
               + " | ".join(f"test {h}" for h in heads) + " | test set |")
    typer.echo("| --- " * 11 + "|")
    for v in versions:
        mark = "*" if v.current else ("^" if v.previous else "")
        typer.echo(
            f"| {mark} | {v.name} | {v.created or 'n/a'} | {fmt(v.train_rows)} | " + " | ".join(fmt(v.validation.get(k)) for k in keys)
            + " | " + " | ".join(fmt(v.test.get(k)) for k in keys) + f" | {', '.join(v.test_files) or 'none'} |"
        )
    typer.echo("validation: the training data's out-of-fold predictions (transformer: its held-out split); "
               "test: the fixed test set of `hotline retrain`, or `hotline train --test-data`")


@app.command("export-reviews")
def export_reviews(
    out: Path = typer.Option(..., "--out", help="File to write: .jsonl or .csv (by the suffix)"),
    database_url: Optional[str] = typer.Option(None, "--database-url", help="Database to read (default HOTLINE_DATABASE_URL, sqlite:///hotline.db)"),
) -> None:
    """Decided reviews, contradicting feedback, three-way consults, and written-back and returned transfer
    orders as labelled, masked rows for `hotline retrain --new-data`. A call with a written-back order
    gets the department that actually handled it (source write_back); a returned order that names a
    department of the sending line gets that one (source returned); either wins over a consult, review
    or feedback of the same call, and a later write-back wins over a return."""
    _setup_logging(False)
    from collections import Counter

    from sqlalchemy import inspect
    from sqlalchemy.exc import SQLAlchemyError

    from serve.config import get_settings
    from serve.db import Database
    from serve.migrations import MigrationError
    from serve.reviews_store import labelled_rows, write_labelled_rows
    from serve.transfers.consults import with_consult_rows
    from serve.transfers.labels import with_order_rows

    with _user_errors():
        if out.suffix.lower() not in (".jsonl", ".csv"):
            raise ValueError(f"{out}: the export format follows the suffix; use .jsonl or .csv")
        db = Database(database_url or get_settings().database_url, create=False)
        problem = db.ping()
        if problem:
            raise ValueError(problem)
        try:
            if not inspect(db.engine).has_table("review_items"):  # a mistyped URL must not become a new, empty database
                raise ValueError("cannot read the review queue (no review_items table); is this the API's database?")
            db.create_tables()  # a database an earlier version wrote is brought to the current schema first
            with db.session() as s:
                rows = labelled_rows(s)
                rows, unnamed = with_order_rows(s, rows)  # written-back and returned orders (serve.transfers.labels)
                rows = with_consult_rows(s, rows)  # three-way consult outcomes (source consult)
        except MigrationError as exc:
            raise ValueError(str(exc)) from None
        except SQLAlchemyError as exc:
            raise ValueError(f"cannot read the review queue ({type(exc).__name__}); is this the API's database?") from None
        finally:
            db.dispose()
        write_labelled_rows(rows, out)
    by_source = Counter(r["source"] for r in rows)
    typer.echo(f"wrote {len(rows)} labelled rows to {out} ({by_source['review']} from decided reviews, {by_source['feedback']} from contradicting feedback, "
               f"{by_source['write_back']} from written-back transfers, {by_source['consult']} from three-way consults, "
               f"{by_source['returned']} from returned transfers); {unnamed} returns named no department (not exported)")
    typer.echo(f"retrain with: hotline retrain --base-data data/corpus/train.jsonl --new-data {out} --test-data TEST --out DIR")
