"""A transformer served under a latency budget, over real HTTP: training records the folder's speed and
the linear fallback's thresholds; a flood of calls on a slow transformer is answered partly by the
linear fallback, counted in /metrics, whose answers come at once (whether the transformer's own answers
keep the budget under load is a speed figure: bench/load_api.py --latency-budget-ms).

The model is tiny and random (tests/model/test_encoder.py's base); its predictions are slowed down by a
sleep (50 ms + 4 ms a text per batch, a real 12-layer model's order of magnitude) for the whole module,
training included, so the speed training records is the slow one."""
from __future__ import annotations

import concurrent.futures as cf
import json
import time

import pytest

from tests.factories import TINY, tiny_rows, write_jsonl

pytest.importorskip("torch")
pytest.importorskip("transformers")

FAST = dict(epochs=4, lr_encoder=2e-3, lr_head=5e-3, batch_size=8, val_fraction=0.25, early_stopping_patience=20)
BUDGET_MS = 200.0
TEXTS = [t for texts in TINY.values() for t in texts]


@pytest.fixture(scope="module")
def slow_transformer_dir(tmp_path_factory):
    from model.transformer import TransformerTextClassifier
    from tests.factories import make_unigram_base
    from training.train import TrainConfig, train

    proba = TransformerTextClassifier.predict_proba_with_features

    def slow(self, texts):  # every batch the router scores (the tiny model's pool may not even run its network)
        time.sleep(0.05 + 0.004 * len(texts))
        return proba(self, texts)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(TransformerTextClassifier, "predict_proba_with_features", slow)
        d = tmp_path_factory.mktemp("slow-transformer")
        base = make_unigram_base(d / "tiny-e5")
        out = d / "model"
        train(TrainConfig(data=[str(write_jsonl(d / "tiny.jsonl", tiny_rows()))], out=str(out), model="transformer", base_model=str(base),
                          transformer=FAST, export_onnx=False, speed_texts=20), progress=False)
        yield out


def test_training_records_the_speed_and_the_fallback_it_serves_with(slow_transformer_dir):
    from model.artifacts import load_model
    from model.fallback import latency_fallback
    from model.transformer import backends
    from training.speed import cpu_info

    metrics = json.loads((slow_transformer_dir / "metrics.json").read_text(encoding="utf-8"))
    speed = metrics["speed"]
    # no ONNX was exported: PyTorch serves, in bfloat16 where the CPU has AMX (as the server loads it here)
    served_here = "torch-bf16" if backends.fast_bf16_cpu() else "torch"
    assert speed["backend"] == served_here == load_model(slow_transformer_dir).classifier.backend_
    assert speed["texts"] == 20 and speed["batch"] == 32
    assert 54 <= speed["single_p50_ms"] <= speed["single_p99_ms"]  # the sleep is a floor: measured, not assumed
    assert 0 < speed["batch_texts_per_s"] < 32 / (0.05 + 0.004 * 32)
    assert speed["cpu"] == {**cpu_info(), "torch_capability": speed["cpu"]["torch_capability"]} and speed["cpu"]["torch_capability"]
    card = (slow_transformer_dir / "README.md").read_text(encoding="utf-8")
    assert f"p50 **{speed['single_p50_ms']} ms**" in card and "## Latency fallback" in card

    model = load_model(slow_transformer_dir)
    spec = model.config["latency_fallback"]
    assert spec["classifier"] == "linear.joblib" and {"channel_110", "review"} <= set(spec["thresholds"])
    assert spec["thresholds"]["n_validation"] > 0 and 0 <= spec["validation"]["accuracy"] <= 1  # chosen on the held-out split
    fb = latency_fallback(model)
    assert fb.classifier is model.classifier.ensemble_.linear and fb.classes == model.classes and fb.version == model.version
    assert fb.thresholds == spec["thresholds"] and fb.classifier.fast_inference


def test_a_flood_on_a_slow_transformer_falls_back_and_counts_it(start_server, slow_transformer_dir, tmp_path):
    import shutil

    # The speed the server starts from: the slow model's on an idle machine (this one is shared, and the 20
    # texts training timed carry its load; the server corrects the estimate from the batches it times anyway).
    folder = shutil.copytree(slow_transformer_dir, tmp_path / "model")
    metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    metrics["speed"].update(single_p50_ms=54.0, single_p99_ms=65.0, batch_texts_per_s=32 / (0.05 + 0.004 * 32))
    (folder / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    srv = start_server(model_dir=folder, latency_budget_ms=BUDGET_MS)
    router = srv.app.state.models.current.router
    assert not router.fast and router.fallback is not None and router.fallback.fast
    health = srv.client.get("/health").json()  # the operator can see that a fallback is armed, and under which budget
    assert health["model_kind"] == "transformer" and health["latency_budget_ms"] == BUDGET_MS

    for _ in range(3):  # one call-taker at a time: the transformer answers, and the server times it under this machine's load now
        idle = srv.client.post("/v1/route", json={"text": TEXTS[0], "preview": True}).json()
        assert idle["model_kind"] == "transformer" and idle["latency_ms"] < BUDGET_MS

    def client(k: int) -> list[dict]:
        import httpx

        with httpx.Client(base_url=srv.url, timeout=30) as c:
            # preview: nothing stored, so latency_ms is the routing's (a write waits at most HOTLINE_DB_WRITE_WAIT_S on top)
            return [c.post("/v1/route", json={"text": t, "preview": True}).json() | {"text": t}
                    for t in (TEXTS[(k + i) % len(TEXTS)] for i in range(5))]

    with cf.ThreadPoolExecutor(12) as pool:
        answers = [a for part in pool.map(client, range(12)) for a in part]
    kinds = [a["model_kind"] for a in answers]
    fell = [a for a in answers if a["model_kind"] == "linear (latency fallback)"]
    assert len(answers) == 60 and set(kinds) <= {"transformer", "linear (latency fallback)"}
    assert fell and kinds.count("transformer") > 1, kinds
    assert srv.metric("hotline_latency_fallback_total") == len(fell) == srv.app.state.batcher.latency_fallbacks
    slowest = sorted((round(a["latency_ms"]), a["model_kind"]) for a in answers)[-5:]
    # The fallback's answers come at once; the slow model's own answers keeping the budget under load is a
    # speed figure (bench/load_api.py --latency-budget-ms), not asserted here.
    assert max(a["latency_ms"] for a in fell) <= BUDGET_MS, (slowest, srv.app.state.batcher.cost(router))
    for a in fell[:5]:  # the folder's linear model answered, with its own thresholds
        d = router.fallback.route(a["text"])
        assert (a["channel"], a["department"], a["model_version"]) == (d.channel, d.department, idle["model_version"])


def test_a_zero_budget_serves_the_transformer_alone(slow_transformer_dir):
    from serve.config import Settings
    from serve.state import ModelHolder

    served = ModelHolder(Settings(model_dir=slow_transformer_dir, latency_budget_ms=0, database_url="sqlite://")).build()
    assert served.status == "ok" and served.router.fallback is None
