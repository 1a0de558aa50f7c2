"""Request and response models of ``/v1/transfers`` (documented in the OpenAPI for the pages and the partner)."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field

from serve.schemas import CallId, _In


def _not_blank(v: str) -> str:
    if not v.strip():
        raise ValueError("must not be empty or only whitespace")
    return v


Line = Annotated[str, Field(pattern=r"^[0-9]{3,5}$", examples=["110"], description="A hotline number: 110, 12345 (Settings.transfer_lines)")]
Urgency = Literal["110_first", "normal"]
State = Literal["sent", "accepted", "returned", "handled", "written_back", "closed"]
StepAction = Literal["accept", "return", "handle", "write_back", "close", "resend"]
Text = Annotated[str, Field(min_length=1, max_length=2000), AfterValidator(_not_blank)]


class RoutingDecision(BaseModel):
    """The routing decision that suggested the transfer (from ``POST /v1/route``)."""

    model_config = {"extra": "forbid"}
    action: Literal["110_first", "consult", "route"] | None = None
    department: str | None = Field(None, max_length=128)
    follow_up: dict[str, Any] | None = Field(None, description="The route answer's follow_up (department after 110 先行), as given")


class TransferCreate(_In):
    """A new transfer order. The same ``call_id`` again returns the existing order (200, not 201)."""

    model_config = {"extra": "forbid", "json_schema_extra": {"examples": [{
        "call_id": "C20261206-0001", "from_line": "12345", "to_line": "110", "department": "police_criminal", "urgency": "110_first",
        "summary": "来电人称楼下有人持刀打架", "decision": {"action": "110_first", "department": "police_criminal"}, "model_version": "v3"}]}}
    call_id: CallId
    from_line: Line
    to_line: Line
    department: str = Field(..., min_length=1, max_length=128, description="The department the order is for (served taxonomy)")
    urgency: Urgency = Field("normal", description="110_first (110 先行): 110 acts first; normal")
    summary: Text = Field(..., description="The call summary; masked before it is stored or sent")
    decision: RoutingDecision = Field(default_factory=RoutingDecision)
    model_version: str | None = Field(None, max_length=128)
    operator: str | None = Field(None, max_length=32, description="The call-taker's own id, recorded beside the key's role")


class TransferStep(_In):
    """One step. ``return`` needs ``reason`` (and may name the sending line's ``department``); ``write_back``
    needs ``result`` and ``handled_department``; ``close`` of a returned order may name ``department``."""

    model_config = {"extra": "forbid", "json_schema_extra": {"examples": [
        {"operator": "110-0032"}, {"reason": "不属于公安职责，请转住建部门", "operator": "110-0032"},
        {"result": "已到场处置，燃气公司已关阀", "handled_department": "utilities", "operator": "110-0032"},
        {"reason": "噪音扰民属城管职责", "department": "urban_management", "operator": "110-0032"}]}}
    reason: Text | None = Field(None, description="Why (return; optional on resend)")
    result: Text | None = Field(None, description="What was done (write_back)")
    handled_department: str | None = Field(None, min_length=1, max_length=128, description="The department that actually handled it (write_back)")
    department: str | None = Field(None, min_length=1, max_length=128, description=(
        "return (optional): the department of the SENDING line that should take the matter; close of a returned order (optional): "
        "the sending line's department that handled it. A department of the served taxonomy on the sending line's channel; "
        "becomes a labelled row for `hotline export-reviews` (source returned)"))
    operator: str | None = Field(None, max_length=32, description="The acting person's own id")


class TransferEventOut(BaseModel):
    seq: int
    action: str
    action_name: str
    from_state: State | None
    to_state: State
    line: str = Field(..., description="The side that acted")
    actor: str = Field(..., description="Operator, role and key fingerprint (never a key)")
    detail: dict[str, Any]
    at: datetime


class TransferOut(BaseModel):
    id: int
    call_id: str
    from_line: str
    to_line: str
    department: str
    urgency: Urgency
    summary: str = Field(..., description="Masked")
    decision: dict[str, Any]
    model_version: str | None
    state: State
    state_name: str
    return_reason: str | None
    result: str | None
    handled_department: str | None
    created_by: str
    created_at: datetime
    updated_at: datetime
    due_at: datetime
    overdue: bool
    allowed_actions: list[str] = Field(..., description="The steps the caller's side may take now")
    history: list[TransferEventOut] | None = Field(None, description="Every step, oldest first (GET /v1/transfers/{id} and step answers)")


class TransferList(BaseModel):
    items: list[TransferOut]
    total: int
    limit: int
    offset: int
    line: str | None = Field(None, description="The line the caller acts for (home_line for the platform's keys; the partner's line)")


class TransferConflict(BaseModel):
    """409: the step does not fit; the order's current state, in Chinese and as a code."""

    detail: str
    state: State
    state_name: str
    allowed_actions: list[str]


# -- Supervision (GET /v1/transfers/supervision) ----------------------------------------------------
class Count(BaseModel):
    key: str = Field(..., description="The department or urgency code")
    name: str | None = Field(None, description="Its Chinese name, where the server knows one (urgency)")
    count: int


class OverdueOrder(BaseModel):
    id: int
    call_id: str
    from_line: str
    to_line: str
    direction: str = Field(..., examples=["12345→110"])
    department: str
    urgency: Urgency
    urgency_name: str
    state: State
    state_name: str
    waiting_line: str = Field(..., description="The line whose turn it is: the receiver, or the sender for a returned order")
    created_at: datetime
    due_at: datetime
    minutes_overdue: float


class Overdue(BaseModel):
    total: int
    by_department: list[Count]
    by_urgency: list[Count]
    items: list[OverdueOrder] = Field(..., description="Most overdue first (at most `limit`)")


class ReasonCount(BaseModel):
    reason: str = Field(..., description="As the receiving side wrote it (masked)")
    count: int


class ReturnedOrder(BaseModel):
    order_id: int
    call_id: str
    from_line: str
    to_line: str
    direction: str
    department: str
    reason: str
    named_department: str | None = Field(None, description="The sending line's department the return named, if any")
    by_line: str
    at: datetime
    state: State = Field(..., description="The order's state now")
    state_name: str


class Returns(BaseModel):
    total: int
    by_reason: list[ReasonCount]
    by_department: list[Count]
    latest: list[ReturnedOrder] = Field(..., description="Newest first")


class Direction(BaseModel):
    from_line: str
    to_line: str
    label: str = Field(..., examples=["12345→110"])
    total: int


class DayVolume(BaseModel):
    day: str = Field(..., description="YYYY-MM-DD at utc_offset_h", examples=["2026-12-06"])
    counts: list[int] = Field(..., description="Orders sent that day, one per direction (in `directions` order)")
    total: int


class DepartmentVolume(BaseModel):
    key: str = Field(..., description="The department")
    counts: list[int] = Field(..., description="One per direction (in `directions` order)")
    total: int


class Volumes(BaseModel):
    directions: list[Direction]
    by_day: list[DayVolume] = Field(..., description="Every day of the window, oldest first (zeros included)")
    by_department: list[DepartmentVolume] = Field(..., description="Most orders first")


class ConsultDay(BaseModel):
    day: str = Field(..., description="YYYY-MM-DD at utc_offset_h")
    agreed: int = Field(..., description="Outcomes the lines agreed on")
    still_unclear: int = Field(..., description="Default outcomes: still unclear, the first line keeps the call")
    kept: list[int] = Field(..., description="Calls kept, one count per line (in `lines` order)")
    total: int


class LatestConsult(BaseModel):
    id: int
    call_id: str
    at: datetime
    outcome: Literal["agreed", "still_unclear"]
    from_line: str = Field(..., description="The first line (首接方)")
    with_line: str
    kept_by_line: str
    agreed_by: str | None = Field(None, description="Who on the other line agreed (masked)")
    reason: str = Field(..., description="Masked")
    department: str | None
    transfer_order_id: int | None


class Consults(BaseModel):
    """Three-way consults (三方通话) recorded in the window."""

    total: int
    by_outcome: dict[str, int] = Field(..., description="agreed, still_unclear", examples=[{"agreed": 3, "still_unclear": 1}])
    lines: list[str] = Field(..., description="The lines that can keep a call, the columns of by_day[].kept")
    by_line: list[Count] = Field(..., description="Calls kept by each line (in `lines` order)")
    by_day: list[ConsultDay] = Field(..., description="Every day of the window, oldest first (zeros included)")
    latest: list[LatestConsult] = Field(..., description="Newest first")


class SupervisionOut(BaseModel):
    """跟踪督办: overdue orders now; returns, volumes and three-way consults in the last ``days`` days."""

    now: datetime
    since: datetime = Field(..., description="Start of the window: local midnight days-1 days ago (UTC)")
    days: int
    utc_offset_h: int
    limits: dict[str, Any] = Field(..., description="The time limits in force (minutes): 110_first, normal, departments")
    limits_unknown_departments: list[str] = Field(..., description="Departments of the limits file that the served taxonomy does not have (a typo?)")
    overdue: Overdue
    returns: Returns
    volumes: Volumes
    consults: Consults
