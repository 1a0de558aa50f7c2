"""The examples in serve/ docstrings run (pytest's --doctest-modules only collects tests/)."""
from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["serve.advice", "serve.app", "serve.auth", "serve.batching", "serve.budget", "serve.db", "serve.logs", "serve.schemas", "serve.store", "serve.transfers.store", "serve.transfers.outbox", "serve.routes.transfers", "serve.transfers.consults", "serve.transfers.limits", "serve.transfers.supervision", "serve.transfers.labels"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
