"""POST /v1/admin/retrain and GET /v1/admin/jobs/{id} over real HTTP (serve/routes/jobs.py): admin only,
the job runs in its own process to its comparison and promotion, one job at a time, clear 4xx answers."""
from __future__ import annotations

import time

import pytest

from model import registry as reg
from tests.factories import tiny_rows, write_jsonl
from tests.training.test_retrain_promote import HELD_OUT, NEW, ROTATE

CT, SV, AD = "ct-jobs-1a2b", "sv-jobs-3c4d", "ad-jobs-5e6f"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Data files, and a registry whose champion was trained on rotated labels (a challenger beats it)."""
    from training.train import TrainConfig, train

    d = tmp_path_factory.mktemp("jobs-api")
    files = {
        "base": write_jsonl(d / "base.jsonl", tiny_rows()),
        "new": write_jsonl(d / "new.jsonl", NEW),
        "test": write_jsonl(d / "test.jsonl", [{"text": t, "department": k} for k, ts in HELD_OUT.items() for t in ts]),
        "rotated": write_jsonl(d / "rotated.jsonl", [{"text": r["text"], "department": ROTATE[r["department"]]} for r in tiny_rows()]),
    }
    train(TrainConfig(data=[str(files["rotated"])], out=str(d / "bad"), val_folds=3), progress=False)
    reg.promote(d / "bad", d / "models")
    return d, files


@pytest.fixture(scope="module")
def srv(start_server, setup):
    d, _ = setup
    return start_server(registry_dir=d / "models", challengers_dir=d / "challengers", api_keys=f"{CT}:call_taker,{SV}:supervisor,{AD}:admin",
                        job_progress_s=0.2)


def auth(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def body(files, **extra) -> dict:
    return {"base_data": [str(files["base"])], "new_data": [str(files["new"])], "test_data": [str(files["test"])], "params": {}, **extra}


def wait_done(srv, job_id: str, timeout: float = 180.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = srv.client.get(f"/v1/admin/jobs/{job_id}", headers=auth(AD)).json()
        if job["state"] not in ("queued", "running"):
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.3)


def test_only_admins_start_and_follow_jobs(srv, setup):
    _, files = setup
    assert srv.client.post("/v1/admin/retrain", json=body(files)).status_code == 401
    for key in (CT, SV):
        r = srv.client.post("/v1/admin/retrain", json=body(files), headers=auth(key))
        assert r.status_code == 403 and "needs admin" in r.json()["detail"]
        assert srv.client.get("/v1/admin/jobs", headers=auth(key)).status_code == 403
        assert srv.client.get("/v1/admin/jobs/retrain-20990101-000000-abcd", headers=auth(key)).status_code == 403
    assert not (setup[0] / "models" / "jobs").exists() or not list((setup[0] / "models" / "jobs").glob("*.json")), "a refused request starts nothing"


def test_bad_requests_are_refused_before_anything_starts(srv, setup):
    d, files = setup
    r = srv.client.post("/v1/admin/retrain", json=body(files, new_data=[str(d / "missing.xlsx")]), headers=auth(AD))
    assert r.status_code == 422 and "missing.xlsx: no such file" in r.json()["detail"]
    r = srv.client.post("/v1/admin/retrain", json=body(files, model="transformer", base_model=str(d / "no-base")), headers=auth(AD))
    assert r.status_code == 422 and "base model" in r.json()["detail"]
    r = srv.client.post("/v1/admin/retrain", json=body(files, params={"epochs": 2}), headers=auth(AD))
    assert r.status_code == 422 and "are for --model transformer" in r.json()["detail"]
    r = srv.client.post("/v1/admin/retrain", json=body(files, name="../escape"), headers=auth(AD))
    assert r.status_code == 422 and "name" in r.json()["detail"]
    assert srv.client.get("/v1/admin/jobs/retrain-20990101-000000-abcd", headers=auth(AD)).status_code == 404
    assert srv.client.get("/v1/admin/jobs/..%2Fetc", headers=auth(AD)).status_code == 404
    assert srv.client.get("/v1/admin/jobs", headers=auth(AD)).json() == []


def test_an_admin_retrains_in_the_background_and_the_better_challenger_is_promoted(srv, setup):
    d, files = setup
    champion = reg.read_pointer(d / "models", reg.CURRENT)
    r = srv.client.post("/v1/admin/retrain", json=body(files, promote=True), headers=auth(AD))
    assert r.status_code == 202, r.text
    job = r.json()
    assert r.headers["location"] == f"/v1/admin/jobs/{job['id']}" and job["state"] in ("queued", "running") and job["pid"]
    busy = srv.client.post("/v1/admin/retrain", json=body(files), headers=auth(AD))
    assert busy.status_code == 409 and f"job {job['id']} is still" in busy.json()["detail"]  # one job at a time

    done = wait_done(srv, job["id"])
    assert done["state"] == "done" and done["stage"] == "done" and done["error"] is None, done
    result = done["result"]
    assert result["out"] == str((d / "challengers" / job["id"]).resolve()) and result["model"] == "linear"
    assert result["champion"] == champion and result["deltas"]["accuracy"] > 0  # the rotated champion is worse
    assert result["verdict"]["accepted"] and result["verdict"]["reason"].startswith("accepted")
    assert result["promoted"] == reg.read_pointer(d / "models", reg.CURRENT) != champion
    assert any("compared" in line for line in done["log_tail"])
    assert [j["id"] for j in srv.client.get("/v1/admin/jobs", headers=auth(AD)).json()] == [job["id"]]

    reload = srv.client.post("/v1/admin/reload", headers=auth(AD))
    assert reload.status_code == 200 and reload.json()["version"] == result["version"]
    h = srv.client.get("/health").json()
    assert h["model_version"] == result["version"] and h["model_kind"] == "linear" and h["backend"] == "linear"
