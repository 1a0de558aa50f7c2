// Supervisor page (/review), the 转办督办 panel: transfer orders past their time limit (most overdue
// first, with counts by department and urgency), returns with their reasons, and the orders sent per
// day each way and per department, and the three-way consults (三方通话) per day by outcome and by the
// line that kept the call, with the latest ones, from GET /v1/transfers/supervision. Refreshed every 30 s while the
// page is visible, when the window changes and when a key is saved. A click on an order's row shows
// its whole history (GET /v1/transfers/{id}). Loaded before review.js, whose
// helpers (api, cell, deptName, departments, loadModelInfo) it uses at run time. Its errors stay in
// the panel: the review queue keeps working when only this part fails.
"use strict";

const SUPERVISION_REFRESH_MS = 30000;
let supervisionBusy = false;

// "3 分钟", "2 小时 5 分", "1 天 4 小时"
function fmtMinutes(m) {
  if (m < 1) return "不足 1 分钟";
  const mins = Math.floor(m);
  if (mins < 60) return mins + " 分钟";
  if (mins < 1440) return Math.floor(mins / 60) + " 小时" + (mins % 60 ? " " + (mins % 60) + " 分" : "");
  const hours = Math.floor((mins % 1440) / 60);
  return Math.floor(mins / 1440) + " 天" + (hours ? " " + hours + " 小时" : "");
}

function fillRows(tableId, rows, emptyId) {
  const tbody = $(tableId).querySelector("tbody");
  tbody.textContent = "";
  for (const tr of rows) tbody.appendChild(tr);
  if (emptyId) $(emptyId).hidden = rows.length > 0;
}

function row(values, attrs) {
  const tr = document.createElement("tr");
  for (const [text, cls] of values) cell(tr, String(text), cls);
  for (const [k, v] of Object.entries(attrs || {})) tr.dataset[k] = v;
  return tr;
}

function head(trId, first, directions) {
  const tr = $(trId);
  tr.textContent = "";
  for (const label of [first, ...directions.map((d) => d.label), "合计"]) {
    const th = document.createElement("th");
    th.textContent = label;
    tr.appendChild(th);
  }
}

function renderOverdue(od) {
  $("s-overdue-total").textContent = od.total;
  const parts = od.by_urgency.map((u) => (u.name || u.key) + " " + u.count).concat(od.by_department.map((d) => deptName(d.key) + " " + d.count));
  $("s-overdue-by").textContent = od.total ? "按紧急程度 / 部门：" + parts.join("，") : "";
  fillRows("s-overdue", od.items.map((o) => row([
    ["#" + o.id, "id"], [o.direction, "dir"], [deptName(o.department), "dept"], [o.urgency_name, o.urgency === "110_first" ? "urgent" : ""],
    [o.state_name, "state"], [o.waiting_line, "waiting"], ["超时 " + fmtMinutes(o.minutes_overdue), "late"],
  ], { order: o.id })), "s-overdue-empty");
  $("s-overdue-more").hidden = od.items.length >= od.total;
  $("s-overdue-more").textContent = "另有 " + (od.total - od.items.length) + " 件未列出";
}

function renderReturns(rt, days) {
  $("s-returns-total").textContent = rt.total;
  fillRows("s-reasons", rt.by_reason.map((r) => row([[r.reason, "reason"], [r.count, "n"]])));
  fillRows("s-returns", rt.latest.map((r) => row([
    [new Date(r.at).toLocaleString("zh-CN"), ""], ["#" + r.order_id, "id"], [r.direction, "dir"], [deptName(r.department), "dept"],
    [r.reason, "reason"], [r.state_name, "state"], [r.named_department ? deptName(r.named_department) : "", "dept"],
  ], { order: r.order_id })), "s-returns-empty");
  $("s-returns-empty").textContent = "近 " + days + " 天没有退回的工单";
}

function renderVolumes(vol) {
  $("s-direction-totals").textContent = vol.directions.map((d) => d.label + " " + d.total).join("，");
  head("s-daily-head", "日期", vol.directions);
  fillRows("s-daily", vol.by_day.slice().reverse().map((d) => row([[d.day, "day"], ...d.counts.map((c) => [c, "n"]), [d.total, "n total"]], { day: d.day })));
  head("s-depts-head", "部门", vol.directions);
  fillRows("s-depts", vol.by_department.slice(0, 20).map((d) => row([[deptName(d.key), "dept"], ...d.counts.map((c) => [c, "n"]), [d.total, "n total"]], { dept: d.key })),
    "s-depts-empty");
}

const OUTCOME_NAMES = { agreed: "协商一致", still_unclear: "仍不明确，首接方保留" };

function renderConsults(c, days) {
  $("s-consults-total").textContent = c.total;
  $("s-consults-by").textContent = c.total ? "（协商一致 " + c.by_outcome.agreed + "，仍不明确 " + c.by_outcome.still_unclear + "；" +
    c.by_line.map((l) => l.key + " 受理 " + l.count).join("，") + "）" : "";
  const tr = $("s-consult-days-head");
  tr.textContent = "";
  for (const label of ["日期", "协商一致", "仍不明确", ...c.lines.map((l) => l + " 受理"), "合计"]) {
    const th = document.createElement("th");
    th.textContent = label;
    tr.appendChild(th);
  }
  fillRows("s-consult-days", c.by_day.slice().reverse().map((d) => row([
    [d.day, "day"], [d.agreed, "n"], [d.still_unclear, "n"], ...d.kept.map((k) => [k, "n"]), [d.total, "n total"],
  ], { day: d.day })));
  fillRows("s-consults", c.latest.map((x) => row([
    [new Date(x.at).toLocaleString("zh-CN"), ""], [x.from_line, ""], [x.kept_by_line, "kept"], [OUTCOME_NAMES[x.outcome] || x.outcome, "outcome"],
    [x.agreed_by || "", "who"], [x.department ? deptName(x.department) : "", "dept"], [x.reason, "reason"],
  ], { consult: x.id })), "s-consults-empty");
  $("s-consults-empty").textContent = "近 " + days + " 天没有三方通话";
}

function renderLimits(limits, unknown) {
  const special = Object.keys(limits.departments || {}).length;
  $("s-limits").textContent = "时限：110 先行 " + fmtMinutes(limits["110_first"]) + "，一般 " + fmtMinutes(limits.normal) +
    (special ? "（另有 " + special + " 个部门单独设定）" : "");
  $("s-limits-unknown").hidden = unknown.length === 0;
  $("s-limits-unknown").textContent = "时限文件中的部门不在当前分类中（请核对名称）：" + unknown.join("，");
}

// One order's whole history (全程可溯), opened by clicking its row in the overdue or returns table.
async function showOrder(id) {
  const box = $("s-order");
  try {
    const o = await api("/v1/transfers/" + encodeURIComponent(id));
    $("s-order-title").textContent = "工单 #" + o.id + " · " + o.from_line + "→" + o.to_line + " · " + deptName(o.department) + " · " +
      o.state_name + " · 期限 " + new Date(o.due_at).toLocaleString("zh-CN") + (o.overdue ? "（已超时）" : "");
    $("s-order-summary").textContent = o.summary;
    fillRows("s-history", o.history.map((e) => {
      const d = e.detail || {};
      const said = [d.reason, d.result, d.handled_department ? "实际承办：" + deptName(d.handled_department) : "",
        d.department ? "应由派出方：" + deptName(d.department) : ""].filter(Boolean).join("；");
      return row([[new Date(e.at).toLocaleString("zh-CN"), ""], [e.action_name, "action"], [e.line, ""], [e.actor, "who"], [said, "reason"]], { seq: e.seq });
    }));
    box.hidden = false;
  } catch (e) {
    $("s-error").textContent = "无法读取工单 #" + id + "：" + e.message;
    $("s-error").hidden = false;
  }
}

async function loadSupervision() {
  if (supervisionBusy) return;
  supervisionBusy = true;
  const days = $("s-days").value;
  try {
    if (departments.length === 0) await loadModelInfo().catch(() => {});   // department names; codes if the model is not there
    const r = await api("/v1/transfers/supervision?days=" + encodeURIComponent(days));
    renderOverdue(r.overdue);
    renderReturns(r.returns, r.days);
    renderVolumes(r.volumes);
    renderConsults(r.consults, r.days);
    renderLimits(r.limits, r.limits_unknown_departments);
    $("s-updated").textContent = "更新于 " + new Date().toLocaleTimeString("zh-CN");
    $("s-error").hidden = true;
  } catch (e) {
    $("s-error").textContent = e.status === 401 || e.status === 403 ? "转办督办需要班长或管理员密钥" : "转办督办数据暂不可用：" + e.message;
    $("s-error").hidden = false;
  } finally {
    supervisionBusy = false;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("s-days").addEventListener("change", loadSupervision);
  for (const id of ["s-overdue", "s-returns"]) {
    $(id).addEventListener("click", (e) => { const tr = e.target.closest("tr[data-order]"); if (tr) showOrder(tr.dataset.order); });
  }
  $("s-order-close").addEventListener("click", () => { $("s-order").hidden = true; });
  $("save-key").addEventListener("click", () => setTimeout(loadSupervision, 0));   // after review.js stored the key
  loadSupervision();
  setInterval(() => { if (document.visibilityState === "visible") loadSupervision(); }, SUPERVISION_REFRESH_MS);
});
