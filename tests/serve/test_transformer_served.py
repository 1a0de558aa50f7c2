"""A fine-tuned transformer folder served over real HTTP: /health names the inference backend that
backend "auto" chose on this machine, single and batch routes agree with the router called directly,
and concurrent calls on the transformer (routed in a worker thread) get their own answers.

The model is tiny and random (tests/model/test_encoder.py's base, a few seconds of training)."""
from __future__ import annotations

import concurrent.futures as cf

import pytest

from tests.factories import TINY, tiny_rows, write_jsonl
from tests.serve.test_page import browser  # noqa: F401  (the Chromium fixture)

pytest.importorskip("torch")
pytest.importorskip("transformers")

DANGER = "小区门口有人拿刀砍人，地上有血"
FAST = dict(epochs=6, lr_encoder=2e-3, lr_head=5e-3, batch_size=8, val_fraction=0.25, early_stopping_patience=20)


@pytest.fixture(scope="module")
def transformer_dir(tmp_path_factory):
    from tests.factories import make_unigram_base
    from training.train import TrainConfig, train

    d = tmp_path_factory.mktemp("transformer")
    base = make_unigram_base(d / "tiny-e5")
    out = d / "model"
    train(TrainConfig(data=[str(write_jsonl(d / "tiny.jsonl", tiny_rows()))], out=str(out), model="transformer",
                      base_model=str(base), transformer=FAST), progress=False)
    return out


def test_a_transformer_model_is_served_and_health_names_its_backend(start_server, transformer_dir):
    from model.transformer import TransformerTextClassifier

    srv = start_server(model_dir=transformer_dir)
    h = srv.client.get("/health").json()
    expected = TransformerTextClassifier.from_pretrained(transformer_dir).backend_  # what "auto" picks here
    assert h["status"] == "ok" and h["source"] == "model" and h["backend"] == expected and h["model_kind"] == "transformer"
    assert expected in ("torch", "torch-bf16", "onnx", "onnx-int8")
    router = srv.app.state.models.current.router
    assert not router.fast  # the transformer runs in a worker thread, not on the event loop

    texts = [TINY["police_criminal"][0], TINY["convenience"][1], DANGER, TINY["utilities"][2]]
    r = srv.client.post("/v1/route/batch", json={"items": [{"text": t} for t in texts]})
    assert r.status_code == 200, r.text
    got = [(i["channel"], i["department"]) for i in r.json()["items"]]
    direct = [(d.channel, d.department) for d in router.route_batch(texts)]
    assert got == direct and got[2][0] == "110"  # the danger override on top of the model
    one = srv.client.post("/v1/route", json={"text": DANGER}).json()
    assert one["channel"] == "110" and one["model_version"] == h["model_version"] and one["reasons"]

    with cf.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda t: srv.client.post("/v1/route", json={"text": t}).json(), texts * 4))
    assert [(a["channel"], a["department"]) for a in answers] == direct * 4


@pytest.mark.browser
def test_the_call_taker_page_names_the_transformer_and_its_backend(start_server, transformer_dir, browser):  # noqa: F811
    srv = start_server(model_dir=transformer_dir)
    h = srv.client.get("/health").json()
    names = {"torch": "PyTorch fp32", "torch-bf16": "PyTorch bf16", "onnx": "ONNX fp32", "onnx-int8": "ONNX int8"}
    page = browser.new_page()
    page.goto(srv.url + "/")
    page.wait_for_selector("#status.ok")
    status = page.inner_text("#status")
    assert "微调 Transformer" in status and names[h["backend"]] in status and h["model_version"] in status, status
    page.close()
