// Call-taker page (/): transfer orders and three-way consult outcomes (issue 19).
// 一键转接 creates a transfer order (POST /v1/transfers) and shows its number and state; on a 三方通话
// decision the banner holds the consult form (POST /v1/consults): which line keeps the call, who on the
// other line agreed, why, the department; "仍不明确，首接方保留" records the default outcome in one click.
// When the other line keeps the call, the server makes its transfer order in the same request.
// Errors are said in Chinese and nothing typed is cleared. Uses $, request (common.js) and api,
// explain, callId, departments, last (app.js). All server text is inserted with textContent.
"use strict";

const LINE_NAMES = { "110": "110 报警服务台", "12345": "12345 政务服务便民热线" };

// A Chinese message for a failed order or consult request; what the call-taker typed stays on the page.
function orderError(e, what) {
  const kept = "（已填写内容已保留，可直接重试）";
  const chinese = (s) => /[\u4e00-\u9fff]/.test(s || "");
  if (e.status === 503) return what + "未保存：数据库暂不可用，请稍后重试" + kept;
  if (e.status === 409) return what + "与已有记录冲突：" + e.message + kept;
  if (e.status === 403) return what + "未完成：" + (chinese(e.message) ? e.message : "此密钥无权执行该操作") + kept;
  return explain(e) + kept;
}

// "转办工单 #12 · 已派出 → 110": the order the call became, on the page.
function showOrder(order) {
  const el = $("order");
  el.dataset.orderId = String(order.id);
  el.textContent = "转办工单 #" + order.id + " · " + order.state_name + " · " + order.from_line + " → " + order.to_line
    + (order.urgency === "110_first" ? "（110 先行）" : "");
  el.hidden = false;
}

// The first line of the call: the page's 本线路, else the line opposite the one the consult brings in.
function firstLine(d) {
  const line = $("received-on").value;
  if (line) return line;
  return d && d.consult && d.consult.with_line === "110" ? "12345" : "110";
}

function decisionOf(d) {
  return { action: d.action, department: d.department, follow_up: d.follow_up || null };
}

// 一键转接's order: POST /v1/transfers for this call (the same call_id again returns the same order).
async function createTransferOrder(d, text, id) {
  const t = d.transfer;
  return api("/v1/transfers", {
    call_id: id, from_line: t.from_line, to_line: t.to_line, department: d.department,
    urgency: d.action === "110_first" ? "110_first" : "normal", summary: text, decision: decisionOf(d),
    model_version: d.model_version || null,
  });
}

// -- the consult form (三方通话) -----------------------------------------------------------------

let consultFor = null;   // the consult decision the form is showing, or null
let consultFirst = null; // the first line as it was when that decision came (the options shown follow it)

function fillConsultDepartments() {
  const kept = $("consult-kept").value;
  const sel = $("consult-department");
  const before = sel.value;
  sel.textContent = "";
  const none = document.createElement("option");
  none.value = "";
  none.textContent = "（不指定，由受理方确定）";
  sel.appendChild(none);
  for (const dep of departments.filter((x) => x.channel === kept)) {
    const opt = document.createElement("option");
    opt.value = dep.code;
    opt.textContent = dep.name;
    sel.appendChild(opt);
  }
  sel.value = [...sel.options].some((o) => o.value === before) ? before : "";
  const urgentAllowed = kept === "110" && consultFirst !== "110";
  $("consult-urgent").disabled = !urgentAllowed;
  if (!urgentAllowed) $("consult-urgent").checked = false;
}

// Show the form for a consult decision; a new decision of the same call keeps what was typed.
function showConsult(d) {
  const form = $("consult-form");
  if (!d || d.action !== "consult" || !d.consult) { form.hidden = true; consultFor = null; return; }
  const first = firstLine(d);
  const sel = $("consult-kept");
  const chosen = sel.value;
  sel.textContent = "";
  for (const [line, label] of [[first, "首接方保留（" + first + "）"], [d.consult.with_line, "转由 " + (LINE_NAMES[d.consult.with_line] || d.consult.with_line) + " 受理"]]) {
    const opt = document.createElement("option");
    opt.value = line;
    opt.textContent = label;
    sel.appendChild(opt);
  }
  if ([...sel.options].some((o) => o.value === chosen)) sel.value = chosen;
  consultFor = d;
  consultFirst = first;
  fillConsultDepartments();
  form.hidden = false;
}

function setConsultBusy(busy) {
  for (const id of ["consult-save", "consult-default"]) $(id).disabled = busy;
}

// Record the outcome: the form's (agreed), or the default (still unclear: the first line keeps the call).
async function recordConsult(stillUnclear) {
  const d = consultFor;
  const text = $("summary").value;
  if (!d || !text.trim()) return;
  const first = consultFirst;
  const body = { call_id: callId, from_line: first, with_line: d.consult.with_line, summary: text, decision: decisionOf(d),
                 model_version: d.model_version || null };
  if (stillUnclear) {
    body.outcome = "still_unclear";
    const reason = $("consult-reason").value.trim();
    if (reason) body.reason = reason;
  } else {
    const agreed = $("consult-agreed").value.trim();
    const reason = $("consult-reason").value.trim();
    if (!agreed || !reason) {
      $("consult-status").textContent = "请填写对方同意人和原因；无法确定时请点“仍不明确，首接方保留”";
      ($("consult-agreed").value.trim() ? $("consult-reason") : $("consult-agreed")).focus();
      return;
    }
    Object.assign(body, { outcome: "agreed", kept_by_line: $("consult-kept").value, agreed_by: agreed, reason,
                          urgency: $("consult-urgent").checked ? "110_first" : "normal" });
    if ($("consult-department").value) body.department = $("consult-department").value;
  }
  setConsultBusy(true);
  $("consult-status").textContent = "提交中…";
  try {
    const c = await api("/v1/consults", body);
    let msg = "已记录三方通话结果 #" + c.id + "：" + (c.outcome === "still_unclear" ? "仍不明确，首接方（" + c.kept_by_line + "）保留"
      : "由 " + c.kept_by_line_name + " 受理" + (c.department_name ? "，" + c.department_name : ""));
    if (c.transfer) { showOrder(c.transfer); msg += "；已生成转办工单 #" + c.transfer.id; }
    $("consult-status").textContent = msg;
  } catch (e) {
    $("consult-status").textContent = orderError(e, "三方通话结果");
    setConsultBusy(false);
  }
}

// 下一个来电: an empty form, no order shown.
function resetOrders() {
  for (const id of ["consult-agreed", "consult-reason"]) $(id).value = "";
  $("consult-urgent").checked = false;
  $("consult-status").textContent = "";
  $("consult-form").hidden = true;
  setConsultBusy(false);
  consultFor = null;
  $("order").hidden = true;
  $("order").textContent = "";
  delete $("order").dataset.orderId;
}

function setupConsult() {
  $("consult-kept").addEventListener("change", fillConsultDepartments);
  $("consult-save").addEventListener("click", () => recordConsult(false));
  $("consult-default").addEventListener("click", () => recordConsult(true));
  for (const id of ["consult-agreed", "consult-reason"]) {   // typing answers the page's request for a field: the hint goes
    $(id).addEventListener("input", () => { if (!$("consult-save").disabled) $("consult-status").textContent = ""; });
  }
}
