"""The ``hotline`` command line: train, predict, evaluate, serve, and corpus/model housekeeping.

Every command has ``--help``; bad input exits with status 2 and a one-line reason on stderr
(details, such as the list of bad rows, follow on the next lines). One module per group of commands:
``models`` (train, predict, evaluate, build-default), ``registry`` (retrain, promote, rollback, models,
export-reviews), ``serving`` (serve), ``housekeeping`` (corpus, base-model), ``database`` (db upgrade, current,
revision, prune-outbox); ``_common`` what they share.
"""
from __future__ import annotations

from serve.cli import database, housekeeping, models, registry, serving  # noqa: F401  (each registers its commands on app)
from serve.cli._common import app


def main() -> None:  # console entry point
    app()
