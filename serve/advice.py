"""Turn a router :class:`~model.router.Decision` into what a call-taker reads: transfer advice
(一键转接), "110 先行" when a danger rule fired, and the emergency lines to link in.

>>> from model.router import Router
>>> d = Router(None).route("小区门口有人拿刀砍人")
>>> t = transfer_advice(d, "12345", {"110": "110 报警服务台"})
>>> t.to_line, t.urgent, t.message
('110', True, '危险信号：请立即一键转接 110 报警服务台，110 先行处置')
"""
from __future__ import annotations

from model.router import Decision
from serve.schemas import AlternativeOut, LinkOut, RouteResponse, Transfer

LINK_NAMES = {"110": "报警服务台", "119": "消防救援", "120": "急救中心", "122": "交通事故报警"}
POLICE_FIRST = "危险信号：110 必须先行处置"
DEFAULT_CHANNEL_NAMES = {"110": "110 报警服务台", "12345": "12345 政务服务便民热线"}


def transfer_advice(d: Decision, received_on: str | None, channel_names: dict[str, str]) -> Transfer | None:
    """A transfer to the suggested line when the call came in on the other one, else None."""
    if received_on is None or received_on == d.channel:
        return None
    name = channel_names.get(d.channel) or DEFAULT_CHANNEL_NAMES[d.channel]
    urgent = d.channel == "110" and d.danger
    message = f"危险信号：请立即一键转接 {name}，110 先行处置" if urgent else f"建议一键转接至 {name}"
    return Transfer(from_line=received_on, to_line=d.channel, to_line_name=name, urgent=urgent, message=message)


def advice_lines(d: Decision, transfer: Transfer | None) -> list[str]:
    """Short instructions, most urgent first."""
    out = []
    if d.danger:
        out.append(POLICE_FIRST)
    if transfer is not None:
        out.append(transfer.message)
    if d.links:
        out.append("请联动 " + "、".join(f"{n} {LINK_NAMES.get(n, '')}".strip() for n in d.links))
    if d.needs_review:
        out.append("把握不大，请人工核实后再分派")
    return out


def to_response(
    d: Decision, *, channel_names: dict[str, str], received_on: str | None = None, call_id: str | None = None,
    queued: bool = False, latency_ms: float = 0.0,
) -> RouteResponse:
    """The API's answer for one decision."""
    transfer = transfer_advice(d, received_on, channel_names)
    return RouteResponse(
        channel=d.channel,
        channel_name=channel_names.get(d.channel) or DEFAULT_CHANNEL_NAMES[d.channel],
        department=d.department,
        department_name=d.department_name,
        confidence=d.confidence,
        channel_confidence=d.channel_confidence,
        needs_review=d.needs_review,
        source=d.source,
        reasons=d.reasons,
        alternatives=[AlternativeOut(**a.__dict__) for a in d.alternatives],
        links=[LinkOut(number=n, name=LINK_NAMES.get(n, n)) for n in d.links],
        danger=d.danger,
        police_first=d.danger,
        matched_rules=d.matched_rules,
        model_department=d.model_department,
        model_version=d.model_version,
        transfer=transfer,
        advice=advice_lines(d, transfer),
        call_id=call_id,
        queued_for_review=queued,
        latency_ms=round(latency_ms, 3),
    )
