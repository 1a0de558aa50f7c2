"""Measure how fast a saved model folder routes on this machine, and record it in the folder.

Training ends with :func:`record_speed`: the folder is loaded as the server loads it (so a transformer
runs on the backend "auto" picks here), and :class:`model.router.Router` routes texts one at a time
(p50 / p99 latency, ms) and in batches of 32 (texts per second). The figures go to ``metrics.json``
under ``"speed"``, with the CPU they were measured on (:func:`cpu_info`: model name, cores, ISA
flags, torch's CPU capability), and to the model card. The server reads them to predict how long a
text waits for a slow model (``HOTLINE_LATENCY_BUDGET_MS``, :mod:`serve.budget`).

>>> info = cpu_info()
>>> sorted(info) == ["cores", "isa", "model", "torch_capability"]
True
"""
from __future__ import annotations

import json
import logging
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Sequence

logger = logging.getLogger(__name__)

ISA_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")
BATCH = 32


def cpu_info() -> dict:
    """The CPU figures are measured on: ``model`` (``/proc/cpuinfo`` model name, else
    :func:`platform.processor`), ``cores`` this process may use, ``isa`` (which of :data:`ISA_FLAGS`
    the CPU has) and ``torch_capability`` (the instruction set torch's kernels use, e.g. "AVX512", or
    "AVX2" under ``ATEN_CPU_CAPABILITY=avx2``; None when torch is not imported or not installed)."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model in ("", platform.processor(), platform.machine()):
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        pass
    torch_capability = None
    try:
        import sys

        if "torch" in sys.modules:  # never import torch (seconds, hundreds of MiB) for a linear model
            torch_capability = sys.modules["torch"].backends.cpu.get_cpu_capability()
    except Exception:  # an exotic torch build: the figure is optional
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return {"model": model, "cores": cores, "isa": [f for f in ISA_FLAGS if f in flags], "torch_capability": torch_capability}


def _quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(q * (len(ordered) - 1)))))]


def _cycled(texts: Sequence[str], n: int) -> list[str]:
    """The non-empty ``texts`` repeated to exactly ``n``."""
    texts = [t for t in texts if t]
    if not texts or n <= 0:
        raise ValueError("need at least one text and n > 0 to measure speed")
    return (texts * (1 + n // len(texts)))[:n]


def single_latencies(router, texts: Sequence[str], n: int = 200, warmup: int = 3) -> list[float]:
    """Milliseconds of ``router.route`` for each of ``n`` texts (``texts`` cycled), one at a time as a
    call-taker's requests arrive; ``warmup`` routes first (lazy loading) are not counted. Shape (n,)."""
    texts = _cycled(texts, n)
    for t in texts[:warmup]:
        router.route(t)
    lat = []
    for t in texts:
        t0 = time.perf_counter()
        router.route(t)
        lat.append((time.perf_counter() - t0) * 1000)
    return lat


def measure_router(router, texts: Sequence[str], n: int = 200, batch: int = BATCH) -> dict:
    """Route ``n`` texts (``texts`` cycled) one at a time, then in batches of ``batch``.

    Returns ``{"texts", "single_p50_ms", "single_p99_ms", "batch", "batch_texts_per_s"}``; the first
    few routes (lazy loading) are not counted."""
    texts = _cycled(texts, n)
    lat = single_latencies(router, texts, n)
    t0 = time.perf_counter()
    for i in range(0, len(texts), batch):
        router.route_batch(texts[i : i + batch])
    per_s = len(texts) / (time.perf_counter() - t0)
    return {"texts": len(texts), "single_p50_ms": round(statistics.median(lat), 3), "single_p99_ms": round(_quantile(lat, 0.99), 3),
            "batch": batch, "batch_texts_per_s": round(per_s, 1)}


def measure_folder(path: str | Path, texts: Sequence[str], n: int = 200) -> dict:
    """Load the model folder ``path`` as the server does and measure it (:func:`measure_router`); adds
    ``backend`` (what computed: "linear" or the transformer's backend), ``cpu`` and ``measured`` (UTC)."""
    from datetime import datetime, timezone

    from model.artifacts import load_model
    from model.router import Router

    model = load_model(path)
    router = Router(model)
    clf = model.classifier
    out = measure_router(router, texts, n)
    out["backend"] = getattr(clf, "backend_", None) or clf.model_class
    out["cpu"] = cpu_info()
    out["measured"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return out


def speed_lines(speed: dict | None) -> list[str]:
    """The model card's section for ``metrics["speed"]`` (none when not measured)."""
    if not speed:
        return []
    cpu = speed.get("cpu", {})
    isa = ", ".join(cpu.get("isa") or []) or "none of " + "/".join(ISA_FLAGS[:2])
    return [
        "## Speed (measured at the end of training, through the router)",
        f"- backend `{speed['backend']}`: one text p50 **{speed['single_p50_ms']} ms**, p99 **{speed['single_p99_ms']} ms**; "
        f"batches of {speed['batch']}: **{speed['batch_texts_per_s']} texts/s** ({speed['texts']} texts)",
        f"- CPU: {cpu.get('model')}, {cpu.get('cores')} cores usable, ISA {isa}"
        + (f", torch kernels {cpu['torch_capability']}" if cpu.get("torch_capability") else "") + f"; {speed.get('measured')}",
        "- A shared or different machine gives other figures; the server corrects its estimate from the batches it times.",
        "",
    ]


def record_speed(path: str | Path, texts: Sequence[str], n: int) -> dict | None:
    """Measure the saved folder ``path`` on ``texts`` (:func:`measure_folder`) and write the result to
    its ``metrics.json`` (``"speed"``; not checksummed, so the folder stays loadable; the caller
    re-renders the card). ``n`` = 0 skips. Returns the speed dict or None."""
    if n <= 0 or not texts:
        return None
    path = Path(path)
    speed = measure_folder(path, texts, n)
    metrics_file = path / "metrics.json"
    metrics = json.loads(metrics_file.read_text(encoding="utf-8")) if metrics_file.exists() else {}
    metrics["speed"] = speed
    metrics_file.write_text(json.dumps(metrics, ensure_ascii=False, indent=2), encoding="utf-8")
    logger.info("speed on this machine (%s, %s): one text p50 %.1f ms, p99 %.1f ms; %.0f texts/s in batches of %d", speed["backend"],
                speed["cpu"]["model"], speed["single_p50_ms"], speed["single_p99_ms"], speed["batch_texts_per_s"], speed["batch"])
    return speed
