from __future__ import annotations

import pytest

from tests.factories import tiny_rows, write_jsonl


@pytest.fixture(scope="session")
def tiny_jsonl(tmp_path_factory):
    return write_jsonl(tmp_path_factory.mktemp("data") / "tiny.jsonl", tiny_rows())


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_jsonl):
    """A linear model trained on the tiny corpus (3-fold validation), saved to a folder."""
    from training.train import TrainConfig, train

    out = tmp_path_factory.mktemp("model") / "tiny"
    train(TrainConfig(data=[str(tiny_jsonl)], out=str(out), val_folds=3), progress=False)
    return out
