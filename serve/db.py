"""The database: SQLAlchemy 2 tables and an engine built from ``Settings.database_url``.

SQLite file by default (``sqlite:///hotline.db``, WAL journal so readers never block the writer),
PostgreSQL by URL (``postgresql://user@host/db``; add ``?options=-csearch_path%3Dmyschema`` to use
a schema). Every text stored here is masked (:func:`data.masking.mask_pii`) before it is written.

Tables
------
``routed_calls``
    The latest final routing of each ``call_id`` (masked text, suggestion), so feedback can be
    compared with what was suggested and exported with its text for retraining.
``feedback``
    What the call-taker finally did with a call (channel, department), beside the suggestion.
``review_items``
    The supervisor queue: every routed call with ``needs_review``, every danger override that
    disagrees with the model, every feedback that contradicts the suggestion. ``status`` is
    ``pending`` until a supervisor decides (``decision`` confirm|correct and the decided route).
``review_decisions``
    Every decision a supervisor made (confirm, correct, re-opened, in a group or in bulk), with the
    reviewer and the time: the per-reviewer history; never changed once written.
``reload_requests``
    One row per ``POST /v1/admin/reload``; every worker process (and every replica sharing the
    database) polls it and reloads too, so a reload never reaches only one of N workers.

Upgrading
---------
The schema is versioned with Alembic (:mod:`serve.migrations`, revisions in
``serve/migrations/versions/``). :meth:`Database.create_tables` upgrades the database to the newest
revision under a lock (several workers may start at once): a new database is created, a database an
earlier version made is completed (missing tables and nullable columns added, nothing rewritten) and
stamped. A new table or column needs a revision: see "How to add a table" in :mod:`serve.migrations`.

>>> db = Database("sqlite://")            # in memory
>>> with db.session() as s:
...     s.query(ReviewItem).count()
0
"""
from __future__ import annotations

import hashlib
import logging
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from sqlalchemy import JSON, Boolean, DateTime, Float, Index, Integer, String, Text, create_engine, event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.pool import StaticPool

logger = logging.getLogger(__name__)

PENDING, DECIDED = "pending", "decided"
TRIGGERS = ("needs_review", "override", "feedback")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def text_hash(text_masked: str) -> str:
    """The key that groups identical masked summaries in the review queue (sha256, hex)."""
    return hashlib.sha256(text_masked.encode("utf-8")).hexdigest()


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class RoutedCall(Base):
    """The last final (non-preview) routing of one call, keyed by the caller system's ``call_id``."""

    __tablename__ = "routed_calls"

    call_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    text_masked: Mapped[str] = mapped_column(Text)
    channel: Mapped[str] = mapped_column(String(8))
    department: Mapped[str] = mapped_column(String(128))
    confidence: Mapped[float] = mapped_column(Float)
    channel_confidence: Mapped[float] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(16))
    needs_review: Mapped[bool] = mapped_column(Boolean)
    danger: Mapped[bool] = mapped_column(Boolean, default=False)
    model_department: Mapped[str | None] = mapped_column(String(128))
    alternatives: Mapped[list[Any]] = mapped_column(JSON, default=list)
    reasons: Mapped[list[Any]] = mapped_column(JSON, default=list)
    model_version: Mapped[str | None] = mapped_column(String(128))
    received_on: Mapped[str | None] = mapped_column(String(8))
    department_names: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)  # {code: name} as routed
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class Feedback(Base):
    """What the call-taker finally did with a call; ``agrees`` compares it with the suggestion."""

    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(String(128), index=True)
    final_channel: Mapped[str] = mapped_column(String(8))
    final_department: Mapped[str] = mapped_column(String(128))
    operator: Mapped[str | None] = mapped_column(String(128))
    text_masked: Mapped[str] = mapped_column(Text)
    suggested_channel: Mapped[str] = mapped_column(String(8))
    suggested_department: Mapped[str] = mapped_column(String(128))
    suggested_confidence: Mapped[float] = mapped_column(Float)
    model_version: Mapped[str | None] = mapped_column(String(128))
    agrees: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


class ReviewItem(Base):
    """One case in the supervisor review queue (masked text only).

    ``trigger`` says why it is here: ``needs_review`` (low confidence), ``override`` (a danger rule
    overruled the model) or ``feedback`` (the call-taker did something else than suggested; their
    route is in ``feedback_channel``/``feedback_department``). A supervisor's ``decision`` is
    ``confirm`` (the suggestion was right) or ``correct`` (``decided_channel``/``decided_department``).
    """

    __tablename__ = "review_items"
    __table_args__ = (
        Index("ix_review_items_status_confidence", "status", "confidence"),
        Index("ix_review_items_status_created", "status", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str | None] = mapped_column(String(128), index=True)
    trigger: Mapped[str] = mapped_column(String(16))
    text_masked: Mapped[str] = mapped_column(Text)
    channel: Mapped[str] = mapped_column(String(8), index=True)
    department: Mapped[str] = mapped_column(String(128), index=True)
    confidence: Mapped[float] = mapped_column(Float)
    channel_confidence: Mapped[float] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(16))
    danger: Mapped[bool] = mapped_column(Boolean, default=False)
    model_department: Mapped[str | None] = mapped_column(String(128))
    alternatives: Mapped[list[Any]] = mapped_column(JSON, default=list)
    reasons: Mapped[list[Any]] = mapped_column(JSON, default=list)
    model_version: Mapped[str | None] = mapped_column(String(128))
    feedback_channel: Mapped[str | None] = mapped_column(String(8))
    feedback_department: Mapped[str | None] = mapped_column(String(128))
    operator: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    decision: Mapped[str | None] = mapped_column(String(16))
    decided_channel: Mapped[str | None] = mapped_column(String(8))
    decided_department: Mapped[str | None] = mapped_column(String(128))
    comment: Mapped[str | None] = mapped_column(Text)
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # added after the first release (nullable; completed by the baseline revision, see "Upgrading"):
    department_names: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)  # {code: name} of the taxonomy it was routed with
    text_hash: Mapped[str | None] = mapped_column(String(64), index=True, nullable=True)  # groups identical masked texts
    claimed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)  # the reviewer working on it …
    claimed_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)  # … until then


@event.listens_for(ReviewItem, "before_insert")
@event.listens_for(ReviewItem, "before_update")
def _set_text_hash(_mapper, _conn, item: ReviewItem) -> None:
    item.text_hash = text_hash(item.text_masked)


class ReviewDecision(Base):
    """One decision on one review item, as it was made (the per-reviewer history; append only)."""

    __tablename__ = "review_decisions"
    __table_args__ = (Index("ix_review_decisions_reviewer_at", "reviewer", "decided_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    review_id: Mapped[int] = mapped_column(Integer, index=True)
    reviewer: Mapped[str] = mapped_column(String(64))
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decision: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str | None] = mapped_column(String(8))
    department: Mapped[str | None] = mapped_column(String(128))
    department_name: Mapped[str | None] = mapped_column(String(128))
    suggested_department: Mapped[str | None] = mapped_column(String(128))
    how: Mapped[str] = mapped_column(String(16), default="single")  # single | group | bulk | reopen
    comment: Mapped[str | None] = mapped_column(Text)
    decided_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


class ReloadRequest(Base):
    """A model reload asked for by an admin; workers that have not applied it yet reload."""

    __tablename__ = "reload_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    requested_by: Mapped[str | None] = mapped_column(String(64))


class Database:
    """An engine and a session factory for one database URL; creates the tables it needs.

    Parameters
    ----------
    url : str
        SQLAlchemy URL, e.g. ``sqlite:///hotline.db`` or ``postgresql://postgres@127.0.0.1/hotline``.
    create : bool, default True
        Upgrade the database to the newest schema revision now (:meth:`create_tables`).
    timeout_s : float, default 3.0
        Connect, statement and lock-wait bound of ordinary work (see :func:`make_engine`).
    migrate_wait_s : float, default 60.0
        How long an upgrade may wait for another process's upgrade and run (``HOTLINE_DB_MIGRATE_WAIT_S``).
    """

    def __init__(self, url: str, create: bool = True, timeout_s: float = 3.0, migrate_wait_s: float = 60.0):
        self.url = url
        self.migrate_wait_s = migrate_wait_s
        self.engine = make_engine(url, timeout_s)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        if create:
            self.create_tables()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def create_tables(self) -> tuple[str, ...]:
        """Upgrade the database to the newest revision (:func:`serve.migrations.upgrade`): create a new
        one, complete and stamp one an earlier version made; safe when several processes start at once.
        Returns the revision(s) the database is at."""
        from serve import migrations  # imports this module: not at the top

        return migrations.upgrade(self.engine, wait_s=self.migrate_wait_s)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session, closed afterwards (use ``with s.begin():`` for a transaction)."""
        with self.sessions() as s:
            yield s

    def ping(self) -> str | None:
        """None when the database answers, else the reason (no secrets: the URL's password is hidden)."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return None
        except Exception as exc:  # any driver error means "not ready"
            return f"database {make_url(self.url).render_as_string(hide_password=True)} unreachable: {type(exc).__name__}"

    def dispose(self) -> None:
        self.engine.dispose()


def make_engine(url: str, timeout_s: float = 3.0) -> Engine:
    """Engine with sensible settings per backend (SQLite: WAL, busy timeout, threads allowed).

    Nothing here waits longer than about ``timeout_s`` on a database that does not answer: PostgreSQL
    gets a connect timeout, a server-side statement timeout and TCP keepalive / user timeouts (a server
    that accepts the connection and then hangs is cut off), the pool a checkout timeout; SQLite a lock
    wait. Creating the engine never connects: an unreachable database or a SQLite folder that can't be
    created shows in :meth:`Database.ping`, not as a crash."""
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        memory = u.database in (None, "", ":memory:")
        if not memory:
            try:
                Path(u.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                logger.error("cannot create the folder of the SQLite file: %s", exc.strerror)
        kw: dict[str, Any] = {"connect_args": {"check_same_thread": False, "timeout": timeout_s}}
        if memory:
            kw["poolclass"] = StaticPool  # one shared connection, or every session would see an empty database
        else:
            kw["pool_timeout"] = timeout_s  # SQLAlchemy's default checkout wait is 30 s
        engine = create_engine(u, **kw)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # pragma: no cover - exercised through every SQLite test
            cur = dbapi_conn.cursor()
            if not memory:
                cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")  # with WAL: durable against a process crash
            cur.execute(f"PRAGMA busy_timeout={int(timeout_s * 1000)}")
            cur.close()

        return engine
    if u.drivername == "postgresql":
        u = u.set(drivername=_postgres_driver())
    connect_args: dict[str, Any] = {}
    if u.get_backend_name() == "postgresql":
        ms = int(timeout_s * 1000)
        connect_args = {
            "connect_timeout": max(1, round(timeout_s)),
            # the URL's own options (e.g. -csearch_path=…) are kept: connect_args would replace them
            "options": " ".join(filter(None, [str(u.query.get("options") or ""), f"-c statement_timeout={ms} -c lock_timeout={ms}"])),
            "keepalives": 1, "keepalives_idle": max(1, round(timeout_s)), "keepalives_interval": 1, "keepalives_count": 2,
            "tcp_user_timeout": ms,
        }
    return create_engine(u, pool_pre_ping=True, pool_size=10, max_overflow=20, pool_timeout=timeout_s, connect_args=connect_args)


def _postgres_driver() -> str:
    """SQLAlchemy 2.1 defaults ``postgresql://`` to psycopg 3; use psycopg2 when only it is installed."""
    try:
        import psycopg  # noqa: F401

        return "postgresql+psycopg"
    except ImportError:
        return "postgresql+psycopg2"
