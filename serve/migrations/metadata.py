"""The schema the revisions must arrive at: ``serve.db.Base.metadata`` with every table registered.

Kept apart from :mod:`serve.migrations` (which :mod:`serve.db` uses to upgrade) so that no module
imports one that imports it back.
"""
from __future__ import annotations

import importlib

from sqlalchemy import MetaData

# Every module that declares tables on serve.db.Base: imported before comparing or autogenerating.
MODEL_MODULES = ("serve.db", "serve.transfers.tables", "serve.transfers.consults")


def target_metadata() -> MetaData:
    """``serve.db.Base.metadata`` with the tables of every module of :data:`MODEL_MODULES` on it."""
    for name in MODEL_MODULES:
        importlib.import_module(name)
    from serve.db import Base

    return Base.metadata
