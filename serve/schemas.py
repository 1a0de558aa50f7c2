"""The API contract: request and response models (OpenAPI at ``/docs``).

Requests refuse unknown fields and wrong types; text length limits come from ``Settings`` and are
checked by the route handlers (``Settings.max_text_chars``, ``Settings.max_batch``).

>>> RouteRequest(text="小区门口有人拿刀砍人", received_on=12345).received_on
'12345'
"""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import re
import unicodedata

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator

Channel = Literal["110", "12345"]
Source = Literal["model", "rules", "override"]
Action = Literal["110_first", "consult", "route"]


def _channel_str(v: Any) -> Any:
    """Accept 110 / 12345 as numbers too."""
    return str(v) if isinstance(v, int) and not isinstance(v, bool) else v


ChannelIn = Annotated[Channel, BeforeValidator(_channel_str)]
def _not_personal(v: str) -> str:
    from data.masking import looks_personal

    if looks_personal(v):
        raise ValueError("looks like a phone, ID or card number: use the call-taking system's own id, never the caller's data")
    return v


CallId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:\-]+$", description="The call-taking system's id for this call (never a phone or ID number)"),
                   AfterValidator(_not_personal)]


def _not_blank(v: str) -> str:
    if not v.strip():
        raise ValueError("must not be empty or only whitespace")
    return v


_UNSAFE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


def safe_str(v: Any) -> Any:
    """Refuse what no database stores and no reader sees: NUL and other C0 control characters (tab and
    newlines are fine) and unpaired surrogates (invalid Unicode). Other values pass through. One regex
    scan: every request string passes here."""
    if not isinstance(v, str) or (m := _UNSAFE.search(v)) is None:
        return v
    o = ord(m.group())
    if 0xD800 <= o <= 0xDFFF:
        raise ValueError("contains an unpaired surrogate (invalid Unicode): send UTF-8 text")
    raise ValueError(f"contains the control character U+{o:04X}")


def has_content(v: str) -> str:
    """A summary needs at least one letter or digit: zero-width characters, marks, a BOM or
    punctuation alone are not a call."""
    if not any(unicodedata.category(ch)[0] in "LN" for ch in v):
        raise ValueError("has no letters or digits (only spaces, punctuation or invisible characters)")
    return v


SafeStr = Annotated[str, AfterValidator(safe_str)]


class _In(BaseModel):
    """Every request model: unknown fields refused, every string checked by :func:`safe_str`."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _safe(cls, v: Any) -> Any:
        return safe_str(v)


# --------------------------------------------------------------------------------------------------
# Routing
# --------------------------------------------------------------------------------------------------
class RouteRequest(_In):
    """One call summary to route."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"text": "小区门口有人拿刀砍人，地上有血", "call_id": "C20261124-0001", "received_on": "12345"}]},
    )

    text: str = Field(..., description="The call summary (Chinese), 1 to Settings.max_text_chars characters")
    call_id: CallId | None = None
    received_on: ChannelIn | None = Field(None, description="The line the call came in on; a different suggestion means a transfer")
    preview: bool = Field(False, description="A draft while the call-taker types: route only, store nothing, queue nothing")

    _text_ok = field_validator("text")(_not_blank)
    _text_content = field_validator("text")(has_content)


class BatchRequest(_In):
    """Several summaries at once (back-office re-routing), at most Settings.max_batch."""

    items: list[RouteRequest] = Field(..., min_length=1)


class AlternativeOut(BaseModel):
    department: str
    department_name: str
    channel: Channel
    probability: float = Field(..., description="Model probability, or the rules' score when source is rules")
    source: str = Field("model", description="model | rules | model+rules")


class LinkOut(BaseModel):
    number: str = Field(..., examples=["120"])
    name: str = Field(..., examples=["急救中心"])


class Consult(BaseModel):
    """A three-way call (三方通话): the line is unclear or danger is only weakly signalled."""

    with_line: Channel = Field(..., description="The line to bring into the call")
    with_line_name: str
    message: str


class FollowUp(BaseModel):
    """After "110 先行": the department the ticket is handed to once 110 has acted (先期处置后转办)."""

    department: str = Field(..., examples=["utilities"])
    department_name: str = Field(..., examples=["水电气热"])
    message: str


class Transfer(BaseModel):
    """A suggested one-click transfer (一键转接) to the other line."""

    from_line: Channel
    to_line: Channel
    to_line_name: str
    urgent: bool = Field(..., description="A danger signal: transfer now, 110 acts first")
    message: str


class RouteResponse(BaseModel):
    """The router's full answer for one call summary."""

    channel: Channel
    channel_name: str
    department: str
    department_name: str
    action: Action = Field(..., description="What the call-taker does: 110_first (110 先行: transfer now), consult (三方通话 with the other line; the first line keeps the call if still unclear) or route (the suggestion)")
    action_name: str = Field(..., description="The action in Chinese: 110 先行 / 三方通话 / 按建议分派")
    consult: Consult | None = Field(None, description="Present when action is consult")
    follow_up: FollowUp | None = Field(None, description="Present on 110_first when the matter itself is a 12345 department's (a gas leak, a live wire): where the ticket goes after 110's first response")
    confidence: float = Field(..., description="Calibrated probability of the department (rules: the rules' score); the same as department_confidence")
    department_confidence: float = Field(..., description="Calibrated probability of the suggested department")
    channel_confidence: float = Field(..., description="Probability of the suggested line (110 or 12345)")
    needs_review: bool
    review_note: str | None = Field(None, description="Why the suggestion is uncertain, in Chinese: the line, or only the department")
    source: Source
    reasons: list[str]
    alternatives: list[AlternativeOut]
    links: list[LinkOut] = Field(..., description="Emergency lines to link in (119 fire, 120 ambulance, 122 traffic police)")
    danger: bool
    police_first: bool = Field(..., description="action is 110_first: 110 must act first")
    matched_rules: list[str]
    model_department: str | None = Field(None, description="The model's own department before a danger override")
    model_version: str | None
    model_kind: str | None = Field(None, description="Which model answered: 'linear', 'transformer', or 'linear (latency fallback)' when the "
                                   "transformer's queue would have broken HOTLINE_LATENCY_BUDGET_MS; None when the rules answered")
    transfer: Transfer | None = None
    advice: list[str] = Field(..., description="What the call-taker should do, in Chinese, most urgent first")
    call_id: str | None = None
    queued_for_review: bool = False
    latency_ms: float = Field(..., description="Server time for this request, milliseconds")


class BatchResponse(BaseModel):
    items: list[RouteResponse]
    model_version: str | None
    latency_ms: float


# --------------------------------------------------------------------------------------------------
# Feedback
# --------------------------------------------------------------------------------------------------
class FeedbackRequest(_In):
    """What the call-taker actually did with a routed call."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"call_id": "C20261124-0001", "final_channel": "110", "final_department": "police_criminal", "operator": "A017"}]},
    )

    call_id: CallId
    final_channel: ChannelIn
    final_department: str = Field(..., min_length=1, max_length=128)
    operator: str | None = Field(None, max_length=64)


class FeedbackResponse(BaseModel):
    id: int
    call_id: str
    agrees_with_suggestion: bool
    suggested_channel: Channel
    suggested_department: str
    queued_for_review: bool
    review_id: int | None = None


# --------------------------------------------------------------------------------------------------
# Model, admin, health
# --------------------------------------------------------------------------------------------------
class DepartmentOut(BaseModel):
    code: str
    name: str
    channel: Channel
    description: str = ""
    links: list[str] = []


class TaxonomyOut(BaseModel):
    name: str
    version: int
    channels: dict[str, str]
    departments: list[DepartmentOut]


class Thresholds(BaseModel):
    review: float = Field(..., description="Confidence below this goes to review")
    channel_110: float = Field(..., description="P(110) at or above this routes to 110")


class Limits(BaseModel):
    max_text_chars: int
    max_batch: int


class ModelInfo(BaseModel):
    """The model being served (or the rules, when degraded)."""

    version: str | None
    status: Literal["ok", "degraded"]
    reason: str | None
    source: Literal["model", "rules"]
    model_dir: str | None
    loaded_at: datetime
    load_seconds: float
    thresholds: Thresholds
    taxonomy: TaxonomyOut
    metrics: dict[str, Any]
    limits: Limits
    auth: bool = Field(..., description="Whether API keys are required")


class ReloadResponse(BaseModel):
    reloaded: bool
    previous_version: str | None
    version: str | None
    status: Literal["ok", "degraded"]
    reason: str | None = None
    load_seconds: float


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    reason: str | None = None
    model_version: str | None
    source: Literal["model", "rules"]
    backend: str | None = Field(None, description="How the served model computes: 'linear', or a transformer's inference backend "
                                "('torch', 'torch-bf16', 'onnx', 'onnx-int8'); None on rules only")
    model_kind: Literal["linear", "transformer"] | None = Field(None, description="Which kind of model serves; None on rules only")
    latency_budget_ms: float | None = Field(None, description="When set, a call whose wait for the transformer would break this p99 budget "
                                            "is answered by the folder's linear model (`hotline_latency_fallback_total` in /metrics); "
                                            "None: no fallback armed (a linear model, a zero budget, or a folder without a linear half)")


class Ready(BaseModel):
    ready: bool
    reason: str | None = None


class ErrorOut(BaseModel):
    """Every error: a clear message, and for invalid fields the list of what was wrong where."""

    detail: str
    errors: list[dict[str, Any]] | None = None


# --------------------------------------------------------------------------------------------------
# Supervisor review queue
# --------------------------------------------------------------------------------------------------
ReviewStatus = Literal["pending", "decided"]
Trigger = Literal["needs_review", "override", "feedback"]


class ReviewOut(BaseModel):
    """One case in the review queue (masked text only): the suggestion and, once decided, the decision."""

    id: int
    call_id: str | None
    trigger: Trigger = Field(..., description="needs_review: low confidence; override: a danger rule overruled the model; feedback: the call-taker did otherwise")
    text_masked: str = Field(..., description="The call summary with personal data replaced by placeholders ([手机号] …)")
    channel: Channel = Field(..., description="Suggested channel")
    department: str = Field(..., description="Suggested department")
    department_name: str
    confidence: float
    channel_confidence: float
    source: Source
    danger: bool
    model_department: str | None = Field(None, description="The model's own department before a danger override")
    reasons: list[str]
    alternatives: list[AlternativeOut]
    model_version: str | None
    feedback_channel: Channel | None = Field(None, description="The call-taker's route (trigger feedback)")
    feedback_department: str | None = None
    feedback_department_name: str | None = None
    operator: str | None = Field(None, description="The call-taker (trigger feedback)")
    created_at: datetime
    status: ReviewStatus
    decision: Literal["confirm", "correct"] | None = None
    decided_channel: Channel | None = None
    decided_department: str | None = None
    decided_department_name: str | None = None
    comment: str | None = None
    decided_by: str | None = Field(None, description="Operator and role of the deciding key (its fingerprint, never the key)")
    decided_at: datetime | None = None
    model_department_name: str | None = Field(None, description="Name of model_department (what the model thought before an override)")
    served: bool = Field(True, description="The suggested department is in the served taxonomy (else only a correction is possible)")
    group_size: int = Field(1, description="Grouped queue: how many matching cases have this masked text")
    claimed_by: str | None = Field(None, description="The reviewer working on it (while claimed_until is in the future)")
    claimed_until: datetime | None = None


class ReviewList(BaseModel):
    """A page of the queue, least confident first; ``total`` counts every item matching the filters."""

    items: list[ReviewOut]
    total: int
    limit: int
    offset: int


class ReviewDecisionRequest(_In):
    """A supervisor's decision on one review item.

    ``confirm``: the suggestion was right. ``correct``: the call belongs to ``department`` (of the
    served taxonomy; ``channel`` is derived from it and, if given, must match). A decided item is
    only changed with ``reopen: true`` (otherwise 409); the replaced decision is returned.
    """

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"decision": "correct", "department": "utilities", "comment": "停水属于供水", "operator": "S003"}, {"decision": "confirm"}]},
    )

    decision: Literal["confirm", "correct"]
    channel: ChannelIn | None = None
    department: str | None = Field(None, min_length=1, max_length=128)
    comment: str | None = Field(None, max_length=1000)
    operator: str | None = Field(None, max_length=32, description="The supervisor's own id, recorded in decided_by beside the key's role")
    reopen: bool = Field(False, description="Change a decision made earlier (without it a decided item answers 409)")
    group: bool = Field(False, description="Also give every other pending case with the same masked text this route")


class PastDecisionOut(BaseModel):
    decision: Literal["confirm", "correct"]
    channel: Channel | None
    department: str | None
    decided_by: str | None
    decided_at: datetime | None
    comment: str | None = None


class ReviewDecisionResponse(ReviewOut):
    replaced: PastDecisionOut | None = Field(None, description="The earlier decision this one replaced (reopen)")
    group_decided: list[int] = Field(default_factory=list, description="group: the other cases given the same route")


class CorrectionCounts(BaseModel):
    """Decided reviews of one suggested department or channel."""

    key: str = Field(..., description="Department code or channel")
    name: str
    decided: int
    corrected: int = Field(..., description="Decided 'correct': the supervisor changed the suggested department")
    correction_rate: float = Field(..., description="corrected / decided (0 when none decided)")
    channel_changed: int = Field(..., description="Of those, moved to the other channel (110 ↔ 12345)")


class HistogramBin(BaseModel):
    low: float
    high: float = Field(..., description="Exclusive, except for the last bin (1.0)")
    count: int


class ReviewStatsOut(BaseModel):
    """How often supervisors changed the suggestion, and how confident the pending items are."""

    pending: int
    decided: int
    corrected: int
    correction_rate: float
    channel_changed: int
    by_department: list[CorrectionCounts]
    by_channel: list[CorrectionCounts]
    pending_confidence_histogram: list[HistogramBin]
