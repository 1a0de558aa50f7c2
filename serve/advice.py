"""Turn a router :class:`~model.router.Decision` into what a call-taker reads: one action (110 先行,
三方通话 or the suggestion), transfer advice (一键转接), the emergency lines to link in, and a review
note that says what is uncertain (the line, or only the department).

>>> from model.router import Router
>>> d = Router(None).route("小区门口有人拿刀砍人")
>>> t = transfer_advice(d, "12345", {"110": "110 报警服务台"})
>>> t.to_line, t.urgent, t.message
('110', True, '危险信号：请立即一键转接 110 报警服务台，110 先行处置')
"""
from __future__ import annotations

from model.danger import ACTION_NAMES
from model.router import Decision
from serve.schemas import AlternativeOut, Consult, FollowUp, LinkOut, RouteResponse, Transfer

LINK_NAMES = {"110": "报警服务台", "119": "消防救援", "120": "急救中心", "122": "交通事故报警"}
POLICE_FIRST = "危险信号：110 必须先行处置"
DEFAULT_CHANNEL_NAMES = {"110": "110 报警服务台", "12345": "12345 政务服务便民热线"}
SURE_CHANNEL = 0.9  # channel confidence at or above which only the department can be in doubt


def _name(channel: str, channel_names: dict[str, str]) -> str:
    return channel_names.get(channel) or DEFAULT_CHANNEL_NAMES[channel]


def transfer_advice(d: Decision, received_on: str | None, channel_names: dict[str, str]) -> Transfer | None:
    """A transfer to the suggested line when the call came in on the other one, else None. A consult
    comes before any transfer: the three-way call decides."""
    if received_on is None or received_on == d.channel or d.action == "consult":
        return None
    name = _name(d.channel, channel_names)
    urgent = d.action == "110_first"
    message = f"危险信号：请立即一键转接 {name}，110 先行处置" if urgent else f"建议一键转接至 {name}"
    return Transfer(from_line=received_on, to_line=d.channel, to_line_name=name, urgent=urgent, message=message)


def consult_advice(d: Decision, received_on: str | None, channel_names: dict[str, str]) -> Consult | None:
    """The three-way call for a ``consult`` decision: with 110, or with 12345 when the call came in on 110."""
    if d.action != "consult":
        return None
    other = "12345" if received_on == "110" else "110"
    name = _name(other, channel_names)
    return Consult(with_line=other, with_line_name=name,
                   message=f"请发起三方通话：接入 {name} 与来电人共同确认；仍不明确时由首接方受理")


def follow_up_advice(d: Decision) -> FollowUp | None:
    """After "110 先行", the 12345 department that takes the ticket once 110 has acted, or None."""
    if d.follow_up is None:
        return None
    name = d.follow_up_name or d.follow_up
    return FollowUp(department=d.follow_up, department_name=name, message=f"110 先期处置后，转{name}承办")


def review_note(d: Decision) -> str | None:
    """What is uncertain about the decision the call-taker must take, or None when review is not asked."""
    if not d.needs_review:
        return None
    if d.source == "override":
        return "危险信号改变了模型的建议，事后由班长复核"
    if d.channel_confidence >= SURE_CHANNEL:
        return f"线路明确（{d.channel}），部门把握不大：请核实承办部门"
    return "把握不大，请人工核实后再分派"


def advice_lines(d: Decision, transfer: Transfer | None, consult: Consult | None = None,
                 follow_up: FollowUp | None = None) -> list[str]:
    """Short instructions, most urgent first; one action, never two that contradict each other."""
    out = []
    if d.action == "110_first":
        out.append(transfer.message if transfer is not None else POLICE_FIRST)
        if follow_up is not None:
            out.append(follow_up.message)
    elif consult is not None:
        out.append(consult.message)
    elif transfer is not None:
        out.append(transfer.message)
    if d.links:
        out.append("请联动 " + "、".join(f"{n} {LINK_NAMES.get(n, '')}".strip() for n in d.links))
    note = review_note(d)
    if note:
        out.append(note)
    return out


def to_response(
    d: Decision, *, channel_names: dict[str, str], received_on: str | None = None, call_id: str | None = None,
    queued: bool = False, latency_ms: float = 0.0,
) -> RouteResponse:
    """The API's answer for one decision."""
    transfer = transfer_advice(d, received_on, channel_names)
    consult = consult_advice(d, received_on, channel_names)
    follow_up = follow_up_advice(d)
    return RouteResponse(
        channel=d.channel,
        channel_name=_name(d.channel, channel_names),
        department=d.department,
        department_name=d.department_name,
        action=d.action,
        action_name=ACTION_NAMES[d.action],
        consult=consult,
        follow_up=follow_up,
        confidence=d.confidence,
        department_confidence=d.confidence,
        channel_confidence=d.channel_confidence,
        needs_review=d.needs_review,
        review_note=review_note(d),
        source=d.source,
        reasons=d.reasons,
        alternatives=[AlternativeOut(**a.__dict__) for a in d.alternatives],
        links=[LinkOut(number=n, name=LINK_NAMES.get(n, n)) for n in d.links],
        danger=d.danger,
        police_first=d.action == "110_first",
        matched_rules=d.matched_rules,
        model_department=d.model_department,
        model_version=d.model_version,
        model_kind=d.model_kind,
        transfer=transfer,
        advice=advice_lines(d, transfer, consult, follow_up),
        call_id=call_id,
        queued_for_review=queued,
        latency_ms=round(latency_ms, 3),
    )
