"""The model being served, and hot reload.

:class:`ModelHolder` holds one immutable :class:`Served` (a router plus what /health says about it).
A reload builds and warms a complete new router first, then replaces the reference in one
assignment: a request takes the reference once when it starts (``RouterDep``), so requests in flight
finish on the router they started with and new ones get the new router. Nothing is locked on the
request path.

Which model (:meth:`ModelHolder.resolve_dir`): ``Settings.model_dir``, else the registry's ``CURRENT``
(``Settings.registry_dir``), else none. A missing or unusable model means rules only, ``degraded``
with the reason; a failed *reload* keeps serving what was served before.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from data.taxonomy import load_taxonomy
from model.artifacts import ModelLoadError, load_model
from model.fallback import latency_fallback
from model.registry import RegistryError, current_model_dir
from model.router import Router
from model.rules import RuleEngine
from serve.config import Settings

logger = logging.getLogger(__name__)

WARMUP_TEXTS = ("小区门口有人打架", "家里停水了，什么时候来水")


@dataclass(frozen=True)
class Served:
    """A ready router and its status: ``ok`` (a model) or ``degraded`` (rules only, ``reason`` says why)."""

    router: Router
    status: str
    reason: str | None = None
    model_dir: Path | None = None
    loaded_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    load_seconds: float = 0.0

    @property
    def version(self) -> str | None:
        return self.router.model_version


class ReloadFailed(RuntimeError):
    """A reload did not produce a model; what was served before is still served. ``str`` says why."""


class ModelHolder:
    """Owns the served router; :meth:`load` at startup, :meth:`reload` on request."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._reload_lock = threading.Lock()
        self.current: Served | None = None

    # ------------------------------------------------------------------------------------------
    def resolve_dir(self) -> Path | None:
        s = self.settings
        return Path(s.model_dir) if s.model_dir else current_model_dir(s.registry_dir)

    def _rules(self, taxonomy) -> RuleEngine | None:
        return RuleEngine.from_file(self.settings.rules_path, taxonomy=taxonomy) if self.settings.rules_path else None

    def _rules_only(self, reason: str, model_dir: Path | None, t0: float) -> Served:
        s = self.settings
        taxonomy = load_taxonomy(s.taxonomy_path) if s.taxonomy_path else None
        rules = RuleEngine.from_file(s.rules_path, taxonomy=taxonomy) if (s.rules_path or taxonomy) else None
        router = Router(None, rules=rules)
        for t in WARMUP_TEXTS:
            router.route(t)
        return Served(router, "degraded", reason, model_dir, load_seconds=round(time.perf_counter() - t0, 3))

    def build(self) -> Served:
        """Load and warm a router for the configured model; never raises for a model problem (rules
        files and taxonomy files that are broken do raise: that is a configuration error)."""
        t0 = time.perf_counter()
        try:
            path = self.resolve_dir()
        except RegistryError as exc:
            logger.error("model registry unusable, serving rules only: %s", exc)
            return self._rules_only(f"model registry unusable: {exc}; answering with rules only", None, t0)
        if path is None:
            return self._rules_only(
                f"no model: HOTLINE_MODEL_DIR is not set and the registry {self.settings.registry_dir} has no CURRENT model; answering with rules only",
                None, t0,
            )
        try:
            model = load_model(path)
            s = self.settings
            rules = self._rules(model.taxonomy)
            knobs = dict(review_threshold=s.review_threshold, channel_110=s.channel_110_threshold, review_budget=s.review_budget)
            fb = latency_fallback(model) if s.latency_budget_ms else None
            fallback = Router(fb, rules=rules, **knobs) if fb is not None else None
            router = Router(model, rules=rules, fallback=fallback, **knobs)
            for t in WARMUP_TEXTS:  # also loads jieba's dictionary now rather than during a live call
                router.route(t)
                if fallback is not None:
                    fallback.route(t)
            if router.model_errors:
                raise ModelLoadError(f"{path}: the model failed on its warm-up texts (see the log)")
        except ModelLoadError as exc:
            logger.error("model not usable, serving rules only: %s", exc)
            return self._rules_only(f"model not usable: {exc}; answering with rules only", path, t0)
        except Exception as exc:  # an unexpected failure in a model folder must not stop the service
            logger.exception("model not usable, serving rules only")
            return self._rules_only(f"model not usable: {type(exc).__name__}: {exc}; answering with rules only", path, t0)
        return Served(router, "ok", None, path, load_seconds=round(time.perf_counter() - t0, 3))

    def load(self) -> Served:
        """Startup: build and serve whatever is configured (a model, or rules only)."""
        with self._reload_lock:
            self.current = self.build()
        self._log(self.current, "loaded")
        return self.current

    def reload(self) -> tuple[Served | None, Served]:
        """Build the configured model and swap it in. Returns (before, after).

        Raises :class:`ReloadFailed` when no model could be loaded; the router served before stays
        (a rules-only service gets the new reason, so /health tells the latest story).
        """
        with self._reload_lock:  # one reload at a time; requests never wait on this lock
            before = self.current
            new = self.build()
            if new.status != "ok":
                if before is None or before.status != "ok":
                    self.current = new
                raise ReloadFailed(new.reason or "reload failed")
            self.current = new  # the atomic swap
        self._log(new, "reloaded", previous=before.version if before else None)
        return before, new

    @staticmethod
    def _log(served: Served, event: str, **extra) -> None:
        logger.info(
            "model %s", event,
            extra={"fields": {"event": f"model_{event}", "status": served.status, "version": served.version,
                              "reason": served.reason, "load_seconds": served.load_seconds, **extra}},
        )
