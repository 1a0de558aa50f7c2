"""baseline: the schema as of issue 19 (review queue, feedback, reloads, transfer orders, outbox)

Creates every table on a new database. On a database an earlier version made (tables, but no
``alembic_version``), it completes what is there the way start-up used to: missing tables are
created, missing columns (all nullable: ``review_items.department_names``, ``text_hash``,
``claimed_by``, ``claimed_until``; ``routed_calls.department_names``) added with ``ALTER TABLE …
ADD COLUMN`` and their indexes created, nothing rewritten; then ``text_hash`` of older review items is
filled and, when ``review_decisions`` is new, the history starts with the decisions made before.

The tables are written out here (not taken from ``serve.db``): a revision is a frozen picture of the
schema at its time; ``tests/serve/test_migrations.py`` checks that head matches the models.

Revision ID: 7183c48a941a
Revises:
Create Date: 2026-12-06 03:14:20.418941
"""
from __future__ import annotations

import hashlib
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

from serve.migrations import MigrationError

revision: str = "7183c48a941a"
down_revision: Union[str, Sequence[str], None] = None
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

TZ = sa.DateTime(timezone=True)
meta = sa.MetaData()

sa.Table(
    "routed_calls", meta,
    sa.Column("call_id", sa.String(128), primary_key=True),
    sa.Column("text_masked", sa.Text(), nullable=False),
    sa.Column("channel", sa.String(8), nullable=False),
    sa.Column("department", sa.String(128), nullable=False),
    sa.Column("confidence", sa.Float(), nullable=False),
    sa.Column("channel_confidence", sa.Float(), nullable=False),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("needs_review", sa.Boolean(), nullable=False),
    sa.Column("danger", sa.Boolean(), nullable=False),
    sa.Column("model_department", sa.String(128)),
    sa.Column("alternatives", sa.JSON(), nullable=False),
    sa.Column("reasons", sa.JSON(), nullable=False),
    sa.Column("model_version", sa.String(128)),
    sa.Column("received_on", sa.String(8)),
    sa.Column("department_names", sa.JSON()),
    sa.Column("created_at", TZ, nullable=False),
    sa.Column("updated_at", TZ, nullable=False),
)
sa.Table(
    "feedback", meta,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("call_id", sa.String(128), nullable=False, index=True),
    sa.Column("final_channel", sa.String(8), nullable=False),
    sa.Column("final_department", sa.String(128), nullable=False),
    sa.Column("operator", sa.String(128)),
    sa.Column("text_masked", sa.Text(), nullable=False),
    sa.Column("suggested_channel", sa.String(8), nullable=False),
    sa.Column("suggested_department", sa.String(128), nullable=False),
    sa.Column("suggested_confidence", sa.Float(), nullable=False),
    sa.Column("model_version", sa.String(128)),
    sa.Column("agrees", sa.Boolean(), nullable=False),
    sa.Column("created_at", TZ, nullable=False, index=True),
)
review_items = sa.Table(
    "review_items", meta,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("call_id", sa.String(128), index=True),
    sa.Column("trigger", sa.String(16), nullable=False),
    sa.Column("text_masked", sa.Text(), nullable=False),
    sa.Column("channel", sa.String(8), nullable=False, index=True),
    sa.Column("department", sa.String(128), nullable=False, index=True),
    sa.Column("confidence", sa.Float(), nullable=False),
    sa.Column("channel_confidence", sa.Float(), nullable=False),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("danger", sa.Boolean(), nullable=False),
    sa.Column("model_department", sa.String(128)),
    sa.Column("alternatives", sa.JSON(), nullable=False),
    sa.Column("reasons", sa.JSON(), nullable=False),
    sa.Column("model_version", sa.String(128)),
    sa.Column("feedback_channel", sa.String(8)),
    sa.Column("feedback_department", sa.String(128)),
    sa.Column("operator", sa.String(128)),
    sa.Column("created_at", TZ, nullable=False, index=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("decision", sa.String(16)),
    sa.Column("decided_channel", sa.String(8)),
    sa.Column("decided_department", sa.String(128)),
    sa.Column("comment", sa.Text()),
    sa.Column("decided_by", sa.String(64)),
    sa.Column("decided_at", TZ),
    sa.Column("department_names", sa.JSON()),
    sa.Column("text_hash", sa.String(64), index=True),
    sa.Column("claimed_by", sa.String(64)),
    sa.Column("claimed_until", TZ),
    sa.Index("ix_review_items_status_confidence", "status", "confidence"),
    sa.Index("ix_review_items_status_created", "status", "created_at"),
)
review_decisions = sa.Table(
    "review_decisions", meta,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("review_id", sa.Integer(), nullable=False, index=True),
    sa.Column("reviewer", sa.String(64), nullable=False),
    sa.Column("decided_by", sa.String(64)),
    sa.Column("decision", sa.String(16), nullable=False),
    sa.Column("channel", sa.String(8)),
    sa.Column("department", sa.String(128)),
    sa.Column("department_name", sa.String(128)),
    sa.Column("suggested_department", sa.String(128)),
    sa.Column("how", sa.String(16), nullable=False),
    sa.Column("comment", sa.Text()),
    sa.Column("decided_at", TZ, nullable=False, index=True),
    sa.Index("ix_review_decisions_reviewer_at", "reviewer", "decided_at"),
)
sa.Table(
    "reload_requests", meta,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("requested_at", TZ, nullable=False),
    sa.Column("requested_by", sa.String(64)),
)
sa.Table(
    "transfer_orders", meta,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("call_id", sa.String(128), nullable=False, unique=True),
    sa.Column("from_line", sa.String(8), nullable=False, index=True),
    sa.Column("to_line", sa.String(8), nullable=False, index=True),
    sa.Column("department", sa.String(128), nullable=False),
    sa.Column("urgency", sa.String(16), nullable=False),
    sa.Column("summary_masked", sa.Text(), nullable=False),
    sa.Column("decision", sa.JSON(), nullable=False),
    sa.Column("model_version", sa.String(128)),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("seq", sa.Integer(), nullable=False),
    sa.Column("return_reason", sa.Text()),
    sa.Column("result", sa.Text()),
    sa.Column("handled_department", sa.String(128)),
    sa.Column("created_by", sa.String(128), nullable=False),
    sa.Column("created_at", TZ, nullable=False, index=True),
    sa.Column("updated_at", TZ, nullable=False),
    sa.Column("due_at", TZ, nullable=False),
    sa.Index("ix_transfer_orders_state_due", "state", "due_at"),
)
sa.Table(
    "transfer_events", meta,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("order_id", sa.Integer(), sa.ForeignKey("transfer_orders.id"), nullable=False, index=True),
    sa.Column("seq", sa.Integer(), nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("from_state", sa.String(16)),
    sa.Column("to_state", sa.String(16), nullable=False),
    sa.Column("line", sa.String(8), nullable=False),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("detail", sa.JSON(), nullable=False),
    sa.Column("at", TZ, nullable=False),
    sa.UniqueConstraint("order_id", "seq", name="uq_transfer_events_order_seq"),
)
sa.Table(
    "outbox", meta,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(64), nullable=False, unique=True),
    sa.Column("line", sa.String(8), nullable=False),
    sa.Column("payload", sa.JSON(), nullable=False),
    sa.Column("created_at", TZ, nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("next_attempt_at", TZ, nullable=False),
    sa.Column("delivered_at", TZ),
    sa.Column("last_error", sa.String(200)),
    sa.Index("ix_outbox_due", "delivered_at", "next_attempt_at"),
)


def upgrade() -> None:
    conn = op.get_bind()
    had = set(sa.inspect(conn).get_table_names())
    for table in meta.sorted_tables:
        if table.name in had:
            _complete(conn, table)
        else:
            table.create(conn)  # with its indexes and constraints
    if "review_items" in had:
        _fill_text_hash(conn)
        if "review_decisions" not in had:
            _history_from_decided(conn)


def downgrade() -> None:
    meta.drop_all(op.get_bind())


def _complete(conn, table: sa.Table) -> None:
    """Add the columns an earlier version's ``table`` lacks (they must be nullable) and their indexes."""
    inspector = sa.inspect(conn)
    have = {c["name"] for c in inspector.get_columns(table.name)}
    for col in table.columns:
        if col.name in have:
            continue
        if not col.nullable:
            raise MigrationError(f"{table.name}.{col.name} is missing and not nullable: this is not a database of an earlier hotline-router version")
        op.add_column(table.name, sa.Column(col.name, col.type, nullable=True))
    indexes = {i["name"] for i in inspector.get_indexes(table.name)}
    for index in table.indexes:
        if index.name not in indexes:
            index.create(conn)


def _fill_text_hash(conn) -> None:
    """``text_hash`` (sha256 of the masked text) of review items written before the column existed."""
    if conn.dialect.name == "postgresql":  # in the server: one statement instead of a round trip per row
        conn.execute(sa.text("UPDATE review_items SET text_hash = encode(sha256(convert_to(text_masked, 'UTF8')), 'hex') WHERE text_hash IS NULL"))
        return
    rows = conn.execute(sa.select(review_items.c.id, review_items.c.text_masked).where(review_items.c.text_hash.is_(None))).all()
    if rows:
        conn.execute(review_items.update().where(review_items.c.id == sa.bindparam("rid")).values(text_hash=sa.bindparam("hash")),
                     [{"rid": rid, "hash": hashlib.sha256(masked.encode("utf-8")).hexdigest()} for rid, masked in rows])


def _history_from_decided(conn) -> None:
    """One ``review_decisions`` row per review item decided before the history table existed (the
    reviewer is what ``decided_by`` recorded), in one ``INSERT … SELECT``."""
    r = review_items.c
    conn.execute(review_decisions.insert().from_select(
        ["review_id", "reviewer", "decided_by", "decision", "channel", "department", "suggested_department", "how", "comment", "decided_at"],
        sa.select(r.id, sa.func.substr(sa.func.coalesce(r.decided_by, "anonymous"), 1, 64), r.decided_by, sa.func.coalesce(r.decision, "confirm"),
                  r.decided_channel, r.decided_department, r.department, sa.literal("single"), r.comment, r.decided_at)
        .where(r.status == "decided", r.decided_at.is_not(None)),
    ))
