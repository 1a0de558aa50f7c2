"""Request and response models of ``/v1/consults`` (三方通话 outcomes)."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from serve.schemas import CallId, _In
from serve.transfers.schemas import Line, RoutingDecision, Text, TransferOut, Urgency


class ConsultCreate(_In):
    """The outcome of a three-way consult. ``outcome: "still_unclear"`` is the default outcome (仍不明确，
    首接方保留): the first line keeps the call; ``agreed_by`` and ``reason`` may then be left out.
    ``outcome: "agreed"`` needs ``kept_by_line``, ``agreed_by`` and ``reason``. When the line that keeps
    the call is not the first line, the transfer order to it is created in the same request."""

    model_config = {"extra": "forbid", "json_schema_extra": {"examples": [
        {"call_id": "C20261206-0002", "outcome": "agreed", "from_line": "12345", "kept_by_line": "110", "agreed_by": "110 接警员 0032",
         "reason": "来电人确认对方手持刀具，110 受理", "department": "police_public_order", "urgency": "110_first",
         "summary": "邻居吵架，对方拿着刀在门口", "decision": {"action": "consult", "department": "housing"}, "model_version": "v3"},
        {"call_id": "C20261206-0003", "outcome": "still_unclear", "from_line": "12345", "summary": "工单回访，说之前有人打架"}]}}
    call_id: CallId
    outcome: Literal["agreed", "still_unclear"] = Field("agreed", description="agreed: the lines agreed who keeps it; still_unclear: the first line keeps it")
    from_line: Line | None = Field(None, description="The first line (首接方, the page's 本线路); default: the key's line (HOTLINE_HOME_LINE)")
    with_line: Line | None = Field(None, description="The line brought into the call; default: kept_by_line when it is not the first line, else 110 (12345 when the first line is 110)")
    kept_by_line: Line | None = Field(None, description="The line that keeps the call (from_line or with_line); still_unclear: from_line")
    agreed_by: str | None = Field(None, min_length=1, max_length=64, description="Who on the other line agreed: a name or number as typed (masked)")
    reason: Text | None = Field(None, description="Why (masked on storage)")
    department: str | None = Field(None, min_length=1, max_length=128, description="The department, if the line keeping the call names one (one of that line's)")
    urgency: Urgency = Field("normal", description="Of the transfer order when the call moves: 110_first (110 先行) or normal")
    summary: Text = Field(..., description="The call summary; masked before it is stored")
    decision: RoutingDecision = Field(default_factory=RoutingDecision, description="The routing answer that asked for the consult")
    model_version: str | None = Field(None, max_length=128)
    operator: str | None = Field(None, max_length=32, description="The call-taker's own id, recorded beside the key's owner and role")


class ConsultOut(BaseModel):
    id: int
    call_id: str
    outcome: Literal["agreed", "still_unclear"]
    from_line: str
    with_line: str
    kept_by_line: str
    kept_by_line_name: str
    agreed_by: str | None
    call_taker: str = Field(..., description="The key's owner (or the operator given) with role and key fingerprint, never a key")
    reason: str = Field(..., description="Masked")
    department: str | None
    department_name: str | None
    urgency: Urgency | None = Field(None, description="The transfer order's, when one was made")
    summary: str = Field(..., description="Masked")
    decision: dict[str, Any]
    model_version: str | None
    created_at: datetime
    transfer_order_id: int | None
    transfer: TransferOut | None = Field(None, description="The transfer order to the line that keeps the call, when it is not the first line")


class ConsultList(BaseModel):
    items: list[ConsultOut]
    total: int
    limit: int
    offset: int
