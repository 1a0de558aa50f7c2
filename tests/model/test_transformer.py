"""The fine-tuned transformer: the classifier contract, save/load, any local base, ONNX, train → route.

Every base here is tiny and random (hidden 32, 2 layers, built in tests/model/test_encoder.py), so
fitting takes about a second; learning is checked on the training texts, not on paraphrases.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from model.transformer import TransformerTextClassifier
from tests.factories import tiny_rows, write_jsonl
from tests.factories import FAST_TRANSFORMER, make_unigram_base, make_wordpiece_base

ROWS = tiny_rows()
TEXTS = [r["text"] for r in ROWS]
LABELS = [r["department"] for r in ROWS]
CHANNELS = {r["department"]: r["channel"] for r in ROWS}
FAST = FAST_TRANSFORMER


@pytest.fixture(scope="module")
def unigram_base(tmp_path_factory):
    return make_unigram_base(tmp_path_factory.mktemp("base") / "tiny-e5")


@pytest.fixture(scope="module")
def fitted(unigram_base):
    # The transformer alone (the default also blends in the linear model: tested below).
    return TransformerTextClassifier(base_model=str(unigram_base), channel_map=CHANNELS, ensemble_linear=False, **FAST).fit(TEXTS, LABELS)


def test_contract(unigram_base, fitted):
    with pytest.raises(NotFittedError):
        TransformerTextClassifier(base_model=str(unigram_base)).predict_proba(["有人打架"])
    proba = fitted.predict_proba(["楼下有人打架", "家里停水了", "车被堵了"])
    assert proba.shape == (3, 4)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    assert list(fitted.classes_) == sorted(set(LABELS))
    assert fitted.channels_ == ["110", "12345"]
    assert fitted.prefix_ == "query: "  # from the base's hotline_base.json
    assert list(fitted.predict(["楼下有人打架"])) == [fitted.classes_[proba[0].argmax()]]
    # It learned the training texts (chance is 0.25).
    assert (fitted.predict(TEXTS) == np.asarray(LABELS)).mean() >= 0.75
    # The held-out split gives calibrated probabilities for thresholds, never rows it was fit on.
    assert fitted.validation_proba_.shape == (12, 4) and len(fitted.validation_labels_) == 12
    assert fitted.temperature_ > 0 and fitted.history_[0]["epoch"] == 1


def test_params_are_stored_not_validated_in_init(unigram_base):
    clf = TransformerTextClassifier(base_model=str(unigram_base), pooling="max")
    assert clf.get_params()["pooling"] == "max"
    with pytest.raises(ValueError, match="pooling"):
        clf.fit(TEXTS, LABELS)
    with pytest.raises(ValueError, match="two different labels"):
        TransformerTextClassifier(base_model=str(unigram_base)).fit(TEXTS[:4], ["x"] * 4)
    with pytest.raises(ValueError, match="onnx_workers"):
        TransformerTextClassifier(base_model=str(unigram_base), onnx_workers=0).fit(TEXTS, LABELS)


def test_bf16_training_learns_and_is_recorded(unigram_base, tmp_path):
    """precision="bf16" trains under autocast (weights stay float32) and the folder says so."""
    with pytest.raises(ValueError, match="precision"):
        TransformerTextClassifier(base_model=str(unigram_base), precision="fp8").fit(TEXTS, LABELS)
    clf = TransformerTextClassifier(base_model=str(unigram_base), precision="bf16", **FAST).fit(TEXTS, LABELS)
    assert clf.precision_ == "bf16"
    assert all(p.dtype.is_floating_point and p.dtype.itemsize == 4 for p in clf.net_.parameters())
    assert (clf.predict(TEXTS) == np.asarray(LABELS)).mean() >= 0.75
    clf.save_pretrained(tmp_path / "m")
    assert json.loads((tmp_path / "m" / "transformer.json").read_text())["precision"] == "bf16"
    fp32 = TransformerTextClassifier(base_model=str(unigram_base), precision="fp32", epochs=1).fit(TEXTS, LABELS)
    assert fp32.precision_ == "fp32"


def test_missing_base_model_says_how_to_build_one(tmp_path):
    with pytest.raises(FileNotFoundError, match="hotline base-model build"):
        TransformerTextClassifier(base_model=str(tmp_path / "none")).fit(TEXTS, LABELS)


def test_channel_head_moves_p110_towards_its_own_estimate(fitted):
    texts = ["楼下有人打架", "家里停水了", "手机被偷了"]
    dep = TransformerTextClassifier.get_params(fitted)
    assert dep["channel_blend"] == 0.5
    is110 = np.array([CHANNELS[c] == "110" for c in fitted.classes_])
    blended = fitted.predict_proba(texts)[:, is110].sum(1)
    fitted.channel_blend = 0.0
    try:
        plain = fitted.predict_proba(texts)[:, is110].sum(1)
    finally:
        fitted.channel_blend = 0.5
    head = fitted.predict_channel_proba(texts)[:, fitted.channels_.index("110")]
    np.testing.assert_allclose(blended, (plain + head) / 2, atol=1e-5)


def test_save_and_load_round_trip(fitted, tmp_path):
    files = fitted.save_pretrained(tmp_path / "m")
    assert "heads.safetensors" in files and "transformer.json" in files and any(f.startswith("encoder/") for f in files)
    again = TransformerTextClassifier.from_pretrained(tmp_path / "m", backend="torch")
    texts = ["小区停电了好几个小时", "有人在楼道里打架"]
    np.testing.assert_allclose(again.predict_proba(texts), fitted.predict_proba(texts), atol=1e-5)
    assert again.backend_ == "torch" and list(again.classes_) == list(fitted.classes_)


def test_bf16_backend_is_checked_saved_and_chosen_only_where_it_pays(fitted, tmp_path, monkeypatch):
    """check_bf16 compares bfloat16 weights with float32 and leaves the network as it was; its verdict
    is saved; "auto" serves torch-bf16 only on an AMX CPU and only when the check passed; a model
    served in bf16 still saves float32 weights."""
    import torch

    import model.transformer.backends as tm

    texts = TEXTS[::2]
    ref = fitted.predict_proba(texts)
    check = fitted.check_bf16(texts, min_agreement=0.5)
    assert check["texts"] == len(texts) and 0 <= check["max_probability_difference"] < 0.2
    assert check["served"] == (check["label_agreement"] >= 0.5) and check["label_agreement"] >= 0.75
    assert next(fitted.net_.parameters()).dtype == torch.float32 and fitted.backend_ == "torch"
    np.testing.assert_allclose(fitted.predict_proba(texts), ref, atol=1e-6)  # untouched
    assert fitted.check_bf16(texts, min_agreement=1.01)["served"] is False

    fitted.check_bf16(texts, min_agreement=0.5)
    fitted.save_pretrained(tmp_path / "m")
    assert json.loads((tmp_path / "m" / "transformer.json").read_text())["bf16"]["served"] is True
    monkeypatch.setattr(tm, "fast_bf16_cpu", lambda: True)
    on_amx = TransformerTextClassifier.from_pretrained(tmp_path / "m")
    assert on_amx.backend_ == "torch-bf16" and next(on_amx.net_.parameters()).dtype == torch.bfloat16
    np.testing.assert_allclose(on_amx.predict_proba(texts), ref, atol=0.2)
    assert (on_amx.predict(texts) == fitted.predict(texts)).mean() >= 0.75
    on_amx.save_pretrained(tmp_path / "again")  # from a bf16 network: float32 weights on disk
    again = TransformerTextClassifier.from_pretrained(tmp_path / "again", backend="torch")
    assert next(again.net_.parameters()).dtype == torch.float32
    np.testing.assert_allclose(again.predict_proba(texts), ref, atol=1e-5)
    on_amx.use_backend("torch")  # back to float32, read from the folder
    assert next(on_amx.net_.parameters()).dtype == torch.float32
    np.testing.assert_allclose(on_amx.predict_proba(texts), ref, atol=1e-5)

    monkeypatch.setattr(tm, "fast_bf16_cpu", lambda: False)
    assert TransformerTextClassifier.from_pretrained(tmp_path / "m").backend_ != "torch-bf16"  # no AMX
    assert TransformerTextClassifier.from_pretrained(tmp_path / "m", backend="torch-bf16").backend_ == "torch-bf16"  # asked for
    monkeypatch.setattr(tm, "fast_bf16_cpu", lambda: True)
    meta = json.loads((tmp_path / "m" / "transformer.json").read_text())
    meta["bf16"]["served"] = False
    (tmp_path / "m" / "transformer.json").write_text(json.dumps(meta))
    assert TransformerTextClassifier.from_pretrained(tmp_path / "m").backend_ != "torch-bf16"  # failed its check
    with pytest.raises(ValueError, match="backend"):
        TransformerTextClassifier.from_pretrained(tmp_path / "m", backend="bf16")


def test_ensemble_with_the_linear_model_round_trips_and_explains(unigram_base, tmp_path):
    """The default: the linear model is fitted alongside and blended in (its terms give the reasons)."""
    assert TransformerTextClassifier().get_params()["ensemble_linear"] is True
    clf = TransformerTextClassifier(base_model=str(unigram_base), channel_map=CHANNELS, **dict(FAST, epochs=2)).fit(TEXTS, LABELS)
    assert 0.0 <= clf.ensemble_.network_weight <= 1.0 and clf.ensemble_.linear is not None
    texts = ["小区停水了，什么时候来水", "手机被偷了"]
    proba = clf.predict_proba(texts)
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-6)
    assert clf.explain(texts[0], "utilities")  # the linear part names the terms
    # The router's path: the linear features come back with the probabilities, for explain().
    same, rows = clf.predict_proba_with_features(texts)
    np.testing.assert_allclose(same, proba)
    assert len(rows) == 2 and clf.explain(texts[0], "utilities", features=rows[0]) == clf.explain(texts[0], "utilities")
    assert "linear.joblib" in clf.save_pretrained(tmp_path / "m")
    again = TransformerTextClassifier.from_pretrained(tmp_path / "m", backend="torch")
    np.testing.assert_allclose(again.predict_proba(texts), proba, atol=1e-5)


def test_any_local_bert_checkpoint_works_as_base(tmp_path):
    """A bert-base-chinese-like folder (WordPiece, no prefix file), randomly initialised here."""
    base = make_wordpiece_base(tmp_path / "tiny-bert")
    clf = TransformerTextClassifier(base_model=str(base), **FAST).fit(TEXTS, LABELS)
    assert clf.prefix_ == "" and clf.channels_ == []
    assert (clf.predict(TEXTS) == np.asarray(LABELS)).mean() >= 0.75


def test_train_save_load_and_route(unigram_base, tmp_path):
    """hotline train --model transformer end to end: folder, load_model, Router."""
    from typer.testing import CliRunner

    from model.artifacts import load_model
    from model.router import Router
    from serve.cli import app

    data = write_jsonl(tmp_path / "tiny.jsonl", ROWS)
    out = tmp_path / "model"
    args = ["train", "--data", str(data), "--out", str(out), "--model", "transformer", "--base-model", str(unigram_base), "--no-verbose"]
    for k, v in FAST.items():
        args += ["--param", f"{k}={v}"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    config = json.loads((out / "config.json").read_text())
    assert config["model_class"] == "transformer" and set(config["thresholds"]) >= {"channel_110", "review"}
    assert "encoder/model.safetensors" in config["files"] and (out / "README.md").read_text().count("4-bit") >= 1
    model = load_model(out)
    if (out / "model.int8.onnx").exists():  # transformer extra installed: ONNX exported and checked
        from model.transformer import fast_bf16_cpu

        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["onnx"]["label_agreement"] >= 0.9 and metrics["bf16"]["texts"] == metrics["onnx"]["texts"] > 0
        assert "bfloat16" in (out / "README.md").read_text()
        # The fastest backend present: bf16 weights on an AMX CPU (if they passed their check), else int8 ONNX.
        assert model.classifier.backend_ == ("torch-bf16" if fast_bf16_cpu() and metrics["bf16"]["served"] else "onnx-int8")
        texts = TEXTS[::4]
        torch_p = TransformerTextClassifier.from_pretrained(out, backend="torch").predict_proba(texts)
        np.testing.assert_allclose(TransformerTextClassifier.from_pretrained(out, backend="onnx").predict_proba(texts), torch_p, atol=1e-4)
        # The int8 recipe: the BERT layer pattern is recognised and only query, key, value are int8.
        import onnx

        from model.transformer import LAYER_ROLES, weight_matmuls

        roles = [role for _, _, role in weight_matmuls(out / "model.onnx")]
        assert roles[: 2 * len(LAYER_ROLES)] == list(LAYER_ROLES) * 2  # the tiny base has 2 layers
        int8 = onnx.load(str(out / "model.int8.onnx"), load_external_data=False).graph
        assert sum(n.op_type == "MatMulInteger" for n in int8.node) == 2 * 3  # heads and the rest stay float32
        # Parallel batches (onnx_workers, a second single-threaded session) give the serial numbers;
        # one text alone stays on the first session and builds no pool.
        parallel, serial = (TransformerTextClassifier.from_pretrained(out, backend="onnx-int8") for _ in range(2))
        parallel.onnx_workers, serial.onnx_workers = 2, 1
        # (the channel head: the network runs whatever the ensemble weight of this tiny model)
        parallel.predict_channel_proba(TEXTS[:1])
        assert getattr(parallel, "pool_", None) is None
        np.testing.assert_allclose(parallel.predict_channel_proba(TEXTS), serial.predict_channel_proba(TEXTS), atol=1e-5)
        assert parallel.pool_ is not None and getattr(serial, "pool_", None) is None
    d = Router(model).route("小区停水了，什么时候来水")
    assert d.source in ("model", "override") and d.model_version == model.version
    # A batch gives each text the decision (reasons included) that routing it alone gives.
    batch = Router(model).route_batch(TEXTS[:6])
    assert [b.to_dict() for b in batch] == [Router(model).route(t).to_dict() for t in TEXTS[:6]]
    assert Router(model).route("有人拿刀砍人").channel == "110"
    # A tampered weight file is refused, and the service would fall back to rules.
    from model.artifacts import ModelLoadError

    (out / "heads.safetensors").write_bytes(b"broken")
    with pytest.raises(ModelLoadError, match="checksum"):
        load_model(out)


def test_input_pipeline_is_a_datasets_table_truncated_to_max_length(unigram_base):
    """fit() tokenises through a datasets.Dataset: one row per text, labels kept, lengths ≤ max_length."""
    import datasets
    from transformers import AutoTokenizer

    from model.transformer import Trainer, TrainingArguments

    clf = TransformerTextClassifier(base_model=str(unigram_base), max_length=6)
    clf.tokenizer_, clf.prefix_ = AutoTokenizer.from_pretrained(unigram_base), "query: "
    y = np.arange(len(TEXTS[:5]))
    ds = Trainer(TrainingArguments()).encode_dataset(clf._tokenize, TEXTS[:5], y, np.full(5, -100))
    assert isinstance(ds, datasets.Dataset) and len(ds) == 5
    assert list(ds["label"]) == y.tolist() and list(ds["channel"]) == [-100] * 5
    assert list(ds["length"]) == [len(i) for i in ds["input_ids"]] and max(ds["length"]) <= 6
    assert list(ds["input_ids"]) == clf._tokenize(TEXTS[:5])  # the same ids inference uses


def test_an_int8_model_that_disagrees_with_pytorch_is_not_served(unigram_base, tmp_path, monkeypatch):
    """Below int8_min_agreement the int8 file is removed (and left out of the checksums), the card
    says so, and the router's fastest backend is float32 ONNX."""
    pytest.importorskip("onnxruntime")
    import training.finetune as finetune
    from model.artifacts import load_model
    from training.train import TrainConfig, train

    real = finetune.backend_agreement

    def poor(clf, folder, texts, backend="onnx-int8", **kw):  # as if int8 had flipped 3% of the labels
        return {**real(clf, folder, texts, backend, **kw), "label_agreement": 0.97}

    monkeypatch.setattr(finetune, "backend_agreement", poor)
    data = write_jsonl(tmp_path / "tiny.jsonl", ROWS)
    out = tmp_path / "model"
    train(TrainConfig(data=[str(data)], out=str(out), model="transformer", base_model=str(unigram_base),
                      transformer={**FAST, "epochs": 2, "n_networks": 2}), progress=False)
    assert not (out / "model.int8.onnx").exists() and (out / "model.onnx").exists()
    assert not (out / "members" / "1" / "model.int8.onnx").exists() and (out / "members" / "1" / "model.onnx").exists()  # every network's
    config = json.loads((out / "config.json").read_text())
    assert "model.int8.onnx" not in config["files"] and "model.onnx" in config["files"]
    onnx_metrics = json.loads((out / "metrics.json").read_text())["onnx"]
    assert onnx_metrics["served"] is False and onnx_metrics["min_agreement"] == 0.995
    assert "was removed" in (out / "README.md").read_text()
    import model.transformer.backends as tm

    monkeypatch.setattr(tm, "fast_bf16_cpu", lambda: False)  # a CPU without AMX, where bf16 weights don't pay
    assert load_model(out).classifier.backend_ == "onnx"
    with pytest.raises(ValueError, match="int8_min_agreement"):
        TrainConfig(data=[str(data)], out=str(out), model="transformer", int8_min_agreement=1.5)


def test_seed_ensemble_averages_its_networks_and_round_trips(unigram_base, tmp_path):
    """n_networks=2: a second network from another seed on the same validation split; the served and
    the validation probabilities are the mean of both networks' calibrated ones; save/load keeps it."""
    params = dict(base_model=str(unigram_base), channel_map=CHANNELS, ensemble_linear=False, **{**FAST, "epochs": 4})
    single = TransformerTextClassifier(**params).fit(TEXTS, LABELS)
    pair = TransformerTextClassifier(n_networks=2, **params).fit(TEXTS, LABELS)
    assert len(pair.members_) == 1 and single.members_ == []
    member = pair.members_[0]
    assert member.random_state == 1000 and member.n_networks == 1 and member.ensemble_ is None
    np.testing.assert_array_equal(member.validation_index_, pair.validation_index_)
    np.testing.assert_allclose(pair.validation_proba_, (single.validation_proba_ + member.validation_proba_) / 2, atol=1e-6)
    np.testing.assert_allclose(pair.network_validation_proba_, [single.validation_proba_, member.validation_proba_], atol=1e-6)
    p_single, p_member, p_pair = single.predict_proba(TEXTS), member.predict_proba(TEXTS), pair.predict_proba(TEXTS)
    assert np.abs(p_single - p_member).max() > 1e-3  # another seed, another network
    np.testing.assert_allclose(p_pair, (p_single + p_member) / 2, atol=1e-5)
    np.testing.assert_allclose(pair.predict_channel_proba(TEXTS),
                               (single.predict_channel_proba(TEXTS) + member.predict_channel_proba(TEXTS)) / 2, atol=1e-5)
    assert pair.n_params_ == 2 * single.n_params_
    files = pair.save_pretrained(tmp_path / "m")
    assert {"members/1/heads.safetensors", "members/1/transformer.json", "members/1/encoder/model.safetensors"} <= set(files)
    again = TransformerTextClassifier.from_pretrained(tmp_path / "m", backend="torch")
    assert len(again.members_) == 1 and again.members_[0].random_state == 1000
    np.testing.assert_allclose(again.predict_proba(TEXTS), p_pair, atol=1e-5)
    # A one-network model saved over it leaves no stale second network behind, nor lists one.
    assert not any(f.startswith("members/") for f in single.save_pretrained(tmp_path / "m"))
    assert not (tmp_path / "m" / "members" / "1").exists()
    np.testing.assert_allclose(TransformerTextClassifier.from_pretrained(tmp_path / "m", backend="torch").predict_proba(TEXTS), p_single, atol=1e-5)
    with pytest.raises(ValueError, match="n_networks"):
        TransformerTextClassifier(n_networks=0, **params).fit(TEXTS, LABELS)


def test_train_a_seed_ensemble_exports_checks_and_serves_every_network(unigram_base, tmp_path):
    """hotline train with n_networks=2: both networks exported to ONNX and listed in the checksums,
    the card names the seeds, and a tampered second network is refused on load."""
    from model.artifacts import ModelLoadError, load_model
    from model.router import Router
    from training.train import TrainConfig, train

    data = write_jsonl(tmp_path / "tiny.jsonl", ROWS)
    out = tmp_path / "model"
    train(TrainConfig(data=[str(data)], out=str(out), model="transformer", base_model=str(unigram_base),
                      transformer={**FAST, "epochs": 3, "n_networks": 2}), progress=False)
    config = json.loads((out / "config.json").read_text())
    assert {"members/1/heads.safetensors", "members/1/encoder/model.safetensors"} <= set(config["files"])
    metrics = json.loads((out / "metrics.json").read_text())
    assert [m["random_state"] for m in metrics["members"]] == [1013] and metrics["members"][0]["history"]  # train seed 13 + 1000
    assert "Seed ensemble:** 2 networks" in (out / "README.md").read_text()
    model = load_model(out)
    torch_p = TransformerTextClassifier.from_pretrained(out, backend="torch").predict_proba(TEXTS)
    if (out / "model.onnx").exists():  # the ONNX extra: every network exported, and served together
        assert "members/1/model.onnx" in config["files"]
        assert model.classifier.members_[0].backend_ == model.classifier.backend_ != "torch"
        onnx_p = TransformerTextClassifier.from_pretrained(out, backend="onnx").predict_proba(TEXTS)
        np.testing.assert_allclose(onnx_p, torch_p, atol=1e-4)
        model.classifier.use_backend("torch")
        assert model.classifier.members_[0].backend_ == "torch"
    np.testing.assert_allclose(model.classifier.predict_proba(TEXTS), torch_p, atol=1e-5)
    assert Router(model).route("有人拿刀砍人").channel == "110"
    (out / "members" / "1" / "heads.safetensors").write_bytes(b"broken")
    with pytest.raises(ModelLoadError, match="checksum"):
        load_model(out)


def test_the_linear_ensemble_is_a_log_pool(unigram_base, tmp_path):
    """The served ensemble is softmax(a·log p_network + b·log p_linear), its exponents round-trip."""
    from model.calibration import apply_log_pool

    clf = TransformerTextClassifier(base_model=str(unigram_base), channel_map=CHANNELS, **dict(FAST, epochs=2)).fit(TEXTS, LABELS)
    a, b = clf.ensemble_.exponents
    assert a >= 0 and b >= 0 and a + b > 0 and clf.ensemble_.network_weight == round(a / (a + b), 3)
    network = clf._network_proba(clf._tokenize(TEXTS))
    linear = clf.ensemble_.linear.predict_proba(TEXTS)
    np.testing.assert_allclose(clf.predict_proba(TEXTS), apply_log_pool(network, linear, a, b) if b else network, atol=1e-6)
    # Thresholds are chosen on validation_proba_: there the linear half must not have seen the rows
    # (the refit linear model has; its in-sample probabilities hid 110 calls the router then missed).
    from model.linear import LinearTextClassifier

    va = clf.validation_index_
    rest = np.setdiff1d(np.arange(len(TEXTS)), va)
    held_out = LinearTextClassifier(channel_of=CHANNELS, random_state=clf.random_state).fit(
        [TEXTS[i] for i in rest], np.asarray(LABELS)[rest]).predict_proba([TEXTS[i] for i in va])
    network_va = clf._network_proba(clf._tokenize([TEXTS[i] for i in va]))
    np.testing.assert_allclose(clf.validation_proba_, apply_log_pool(network_va, held_out, a, b) if b else network_va, atol=1e-5)
    if b:
        in_sample = apply_log_pool(network_va, clf.ensemble_.linear.predict_proba([TEXTS[i] for i in va]), a, b)
        assert not np.allclose(clf.validation_proba_, in_sample, atol=1e-3)
    clf.save_pretrained(tmp_path / "m")
    assert json.loads((tmp_path / "m" / "transformer.json").read_text())["ensemble_exponents"] == [a, b]
    np.testing.assert_allclose(TransformerTextClassifier.from_pretrained(tmp_path / "m", backend="torch").predict_proba(TEXTS),
                               clf.predict_proba(TEXTS), atol=1e-5)


@pytest.mark.parametrize("removed", ["ensemble_method", "average_checkpoints", "prior_correction", "refit_full", "lr_layer_decay",
                                     "distill_weight", "distill_temperature", "distill_folds", "ema_decay", "rdrop_alpha",
                                     "mlm_epochs", "soup", "init_random_state"])
def test_options_the_benchmarks_rejected_are_gone(removed):
    """Issue 20: one recipe. The rejected options are no parameters any more (bench/README.md says why)."""
    assert removed not in TransformerTextClassifier().get_params()
    with pytest.raises(TypeError):
        TransformerTextClassifier(**{removed: 1})


def test_a_folder_trained_before_issue_20_says_to_retrain(fitted, tmp_path):
    """Folders saved before the recipe was settled (no "format": 2) are refused with a clear message,
    by the classifier and by load_model (the service then runs on rules); nothing is guessed."""
    from model.artifacts import ModelLoadError, save_model, load_model, TrainedModel
    from data.taxonomy import default_taxonomy
    from model.transformer import OutdatedModelFolder

    out = tmp_path / "m"
    save_model(TrainedModel(classifier=fitted, taxonomy=default_taxonomy(), thresholds={}, version="t"), out, card="")
    assert load_model(out).classifier.classes_.tolist() == fitted.classes_.tolist()
    meta = json.loads((out / "transformer.json").read_text())
    del meta["format"]
    meta["params"]["ensemble_method"] = "mixture"  # as written before issue 20
    (out / "transformer.json").write_text(json.dumps(meta))
    with pytest.raises(OutdatedModelFolder, match="retrain it: hotline train --model transformer"):
        TransformerTextClassifier.from_pretrained(out)
    config = json.loads((out / "config.json").read_text())
    config["files"].pop("transformer.json")  # not a checksum failure: the format is what is refused
    (out / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="earlier version.*retrain it"):
        load_model(out)


def test_early_stopping_serves_the_best_epoch(unigram_base):
    """The weights served are the best validation epoch's, not the last one's: the validation
    accuracy + macro-F1 of the served network is the best in the history."""
    from sklearn.metrics import accuracy_score, f1_score

    clf = TransformerTextClassifier(base_model=str(unigram_base), ensemble_linear=False, calibrate=False,
                                    **dict(FAST, epochs=6, lr_encoder=2e-2)).fit(TEXTS, LABELS)
    va = clf.validation_index_
    y = np.asarray(LABELS)[va]
    pred = clf.predict([TEXTS[i] for i in va])
    served = round(accuracy_score(y, pred), 4) + round(f1_score(y, pred, average="macro", labels=np.unique(y), zero_division=0), 4)
    assert served == pytest.approx(max(h["val_accuracy"] + h["val_macro_f1"] for h in clf.history_), abs=1e-6)


def test_training_arguments_are_typed_and_checked():
    """The trainer's arguments are the classifier's training parameters, as a dataclass that checks itself."""
    from model.transformer import TrainingArguments

    args = TrainingArguments.from_params(TransformerTextClassifier(epochs=3, class_weight=None).get_params())
    assert args.epochs == 3 and args.class_weight is None and not hasattr(args, "backend")
    with pytest.raises(ValueError, match="class_weight"):
        TrainingArguments(class_weight="inverse")
    with pytest.raises(ValueError, match="val_fraction"):
        TrainingArguments(val_fraction=1.0)
