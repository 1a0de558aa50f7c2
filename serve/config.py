"""All configuration in one place: ``Settings`` reads ``HOTLINE_*`` environment variables (and ``.env``).

Build it with :func:`get_settings` where it is needed (app factory, CLI), never at import time.
"""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field, PrivateAttr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from serve.auth import ApiKeyError, KeyRing
from serve.transfers.limits import LimitsError, TransferLimits, load_limits


class Settings(BaseSettings):
    """hotline-router settings. Every field can be set as ``HOTLINE_<FIELD>`` (e.g. ``HOTLINE_DATABASE_URL``)."""

    model_config = SettingsConfigDict(env_prefix="HOTLINE_", env_file=".env", extra="ignore", protected_namespaces=())

    model_dir: Path | None = Field(None, description="Model folder to serve; default: the registry's current model")
    registry_dir: Path = Field(Path("models"), description="Model registry: one folder per version plus a CURRENT pointer")
    challengers_dir: Path = Field(Path("challengers"), description="`POST /v1/admin/retrain`: folder the background retrain jobs write their challengers to (outside the registry)")
    job_progress_s: float = Field(1.0, gt=0, description="Background jobs: how often a job copies its training progress (tqdm) into its record")
    rules_path: Path | None = Field(None, description="Rules file; default: the shipped model/defaults/rules.yaml")
    taxonomy_path: Path | None = Field(None, description="Taxonomy file used when no model is loaded")
    database_url: str = Field("sqlite:///hotline.db", description="SQLAlchemy URL: SQLite file by default, postgresql://… for PostgreSQL")
    db_timeout_s: float = Field(3.0, gt=0, description="Connect timeout, and the bound on a statement or a dead connection, in seconds (PostgreSQL; SQLite: lock wait)")
    db_write_wait_s: float = Field(0.5, ge=0, description="Longest a route request waits for its write; the write still happens later if the database is slow")
    db_feedback_wait_s: float = Field(5.0, ge=0, description="Longest feedback on a call not yet in the database waits for the routing writes still queued in this process before answering 404")
    db_migrate_wait_s: float = Field(60.0, gt=0, description="Longest a start-up or `hotline db upgrade` waits for another process's schema upgrade (and may take for its own)")
    db_max_pending: int = Field(50_000, gt=0, description="Most routed calls waiting to be written while the database is down")
    review_threshold: float | None = Field(None, description="Override the model's stored review threshold")
    review_budget: float | None = Field(None, ge=0, le=1, description="At most this share of calls to review (e.g. 0.15): lowers the model's review threshold to the budget's, from the model's validation confidences")
    channel_110_threshold: float | None = Field(None, description="Override the model's stored P(110) threshold")
    target_110_recall: float = Field(0.99, description="110 recall the training command aims for when choosing thresholds")
    promote_min_110_recall_delta: float = Field(0.0, description="`hotline promote`: smallest allowed change of 110 recall, challenger − champion (-0.01 tolerates a 0.01 drop)")
    promote_min_macro_f1_delta: float = Field(0.0, description="`hotline promote`: smallest allowed change of department macro-F1, challenger − champion")
    report_font: str | None = Field(None, description="`hotline evaluate`: font family for the Chinese department names in report plots; default: the first installed of Noto Sans CJK SC, WenQuanYi Micro Hei, … (`make fonts`); 'none' draws D1…Dn with a legend")
    review_claim_minutes: float = Field(10.0, gt=0, le=24 * 60, description="How long a supervisor's claim on a review case holds unless renewed (the page renews it while the case is open)")
    max_text_chars: int = Field(2000, description="Longest call summary accepted")
    max_batch: int = Field(256, description="Most texts in one batch request")
    batch_cpu_budget_s: float = Field(30.0, gt=0, description="CPU seconds one batch request may use before it is refused (503, nothing stored); single routes never wait for batches")
    latency_budget_ms: float = Field(50.0, ge=0, description="p99 milliseconds a live call may wait for a slow model (a transformer): a call whose predicted wait would break it is answered by the model folder's linear fallback (model_kind 'linear (latency fallback)', hotline_latency_fallback_total); 0: always wait")
    api_keys: str = Field("", description='"key1:call_taker,key2:supervisor:王班长,key3:admin" (an optional third part names the key\'s owner, the reviewer on /review); empty: auth off (loopback only)')
    home_line: str = Field("12345", pattern=r"^[0-9]{3,5}$", description="Transfer orders: the line this platform's own keys (call-takers, supervisors) act for")
    transfer_lines: str = Field("110,12345", description="Transfer orders: the lines orders may go between, comma-separated (home_line and every partner's line among them)")
    transfer_limits_path: Path | None = Field(None, description='Transfer orders: the time limits file (YAML, or JSON by suffix): minutes per urgency until an order not yet written back is overdue, and per department where it differs, e.g. {"110_first": 30, "normal": 1440, "departments": {"公安局交通警察支队": {"normal": 120}}}; none: 30 and 1440 for every department (serve/transfers/limits.py)')
    supervision_utc_offset_h: int = Field(8, ge=-12, le=14, description="Transfer supervision: the UTC offset in hours of the days transfers are counted in (China: 8)")
    partner_urls: dict[str, str] = Field({}, description='Transfer orders: where to send notices per partner line (JSON, e.g. {"110": "https://110.example/notices"}); none: no notices')
    outbox_poll_s: float = Field(1.0, gt=0, description="How often the outbox looks for notices due to be sent")
    outbox_backoff_s: float = Field(2.0, gt=0, description="First retry delay of a notice that failed; doubled after each failure")
    outbox_backoff_max_s: float = Field(600.0, gt=0, description="Longest delay between two attempts of one notice")
    outbox_keep_days: float = Field(30.0, gt=0, description="Delivered outbox notices older than this many days are deleted (by the outbox task, hourly, and `hotline db prune-outbox`); undelivered ones never")
    outbox_timeout_s: float = Field(5.0, gt=0, description="How long one delivery attempt may take")
    host: str = "127.0.0.1"
    port: int = 8000
    keep_alive_s: int = Field(65, gt=0, description="Seconds an idle HTTP connection stays open (uvicorn's keep-alive); longer than clients keep theirs (httpx 5 s, proxies up to 60 s), so a client never sends on a connection the server is closing at that moment")
    strip_boilerplate: bool = False
    access_log: bool = Field(False, description="uvicorn's access line per request (masked) besides the app's own JSON line per routed call")

    _key_ring: KeyRing = PrivateAttr(default_factory=lambda: KeyRing([]))
    _transfer_limits: TransferLimits = PrivateAttr(default_factory=TransferLimits)

    @model_validator(mode="before")
    @classmethod
    def _limits_come_from_the_file(cls, data):
        """The per-urgency variable was replaced by the limits file: say so rather than ignore it."""
        if (isinstance(data, dict) and "transfer_limits_min" in data) or "HOTLINE_TRANSFER_LIMITS_MIN" in os.environ:
            raise ValueError("HOTLINE_TRANSFER_LIMITS_MIN is replaced by HOTLINE_TRANSFER_LIMITS_PATH: a YAML/JSON file "
                             '{"110_first": 30, "normal": 1440, "departments": {...}} (serve/transfers/limits.py)')
        return data

    @field_validator("api_keys")
    @classmethod
    def _keys_parse(cls, v: str) -> str:
        try:
            KeyRing.parse(v)
        except ApiKeyError as exc:
            raise ValueError(str(exc)) from None
        return v

    def model_post_init(self, context) -> None:
        self._key_ring = KeyRing.parse(self.api_keys)  # parsed once; validated above

    @property
    def lines(self) -> tuple[str, ...]:
        """The lines transfer orders may go between (``transfer_lines``, parsed)."""
        return tuple(x.strip() for x in self.transfer_lines.split(",") if x.strip())

    @model_validator(mode="after")
    def _transfer_lines_cover_everyone(self) -> "Settings":
        lines = self.lines
        missing = sorted(({self.home_line} | self.key_ring.partner_lines | set(self.partner_urls)) - set(lines))
        if len(set(lines)) < 2 or missing:
            raise ValueError(f"transfer_lines ({self.transfer_lines!r}) must list at least two lines, including {', '.join(missing) or 'home_line'}")
        try:
            self._transfer_limits = load_limits(self.transfer_limits_path)
        except LimitsError as exc:
            raise ValueError(f"HOTLINE_TRANSFER_LIMITS_PATH: {exc}") from None
        return self

    @property
    def transfer_limits(self) -> TransferLimits:
        """The transfer time limits (``transfer_limits_path``, read and checked at start-up)."""
        return self._transfer_limits

    @property
    def key_ring(self) -> KeyRing:
        """The API keys, parsed and validated (empty: auth off, loopback only)."""
        return self._key_ring

    @field_validator("max_text_chars", "max_batch")
    @classmethod
    def _positive(cls, v: int) -> int:
        if v <= 0:
            raise ValueError("must be positive")
        return v


@lru_cache
def get_settings() -> Settings:
    """The process's settings (cached; tests clear the cache or build ``Settings`` directly)."""
    return Settings()


def settings_error(exc: Exception) -> str:
    """One line for an unusable configuration (a pydantic ``ValidationError``): the variable and why."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        parts = []
        for e in errors():
            field = ".".join(str(x) for x in e.get("loc", ()))
            msg = str(e.get("msg", "")).removeprefix("Value error, ")
            parts.append(f"HOTLINE_{field.upper()}: {msg}" if field else msg)
        return "; ".join(parts)
    return str(exc)
