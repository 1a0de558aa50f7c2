// Work-order desk (/orders, 工单台): the home line (Settings.home_line, e.g. 12345) acts on transfer
// orders. Two lists from GET /v1/transfers: 待我方处理 (orders to the home line that are sent, accepted
// or handled; overdue and 110 先行 first) and 我方派出 (the home line's open orders; returned ones first,
// highlighted with the reason and the department the other side named). Selecting an order shows its
// masked summary, its history (全程可溯) and one button per step the API allows now (allowed_actions);
// return, write back and close ask for what they need. A 409 says the order's state in Chinese and
// reloads it; 401/403/503 are said in Chinese; what was typed stays until the step succeeds.
// Refreshed every 15 s while visible. Operator: the key's owner (GET /v1/reviews/me, supervisor keys)
// or the name asked once and kept in this browser (sent as "operator").
"use strict";

const KEY_STORE = "hotline-desk-key";
const NAME_STORE = "hotline-desk-operator";   // localStorage: asked once per browser
const REFRESH_MS = 15000;
const INCOMING_STATES = ["sent", "accepted", "handled"];
const OUTGOING_STATES = ["returned", "written_back", "sent", "accepted", "handled"];
const PAGE = 100;
const ACTION_LABELS = { accept: "接收", return: "退回…", handle: "处置", write_back: "反馈回写…", close: "办结关闭…", resend: "重新派单" };
const FORMS = { return: "f-return", write_back: "f-write_back", close: "f-close" };
const URGENCY_NAMES = { "110_first": "110 先行", normal: "一般" };

let departments = [];   // the served taxonomy: [{code, name, channel}]
let homeLine = null;    // the line this key acts for (GET /v1/transfers answers it)
let me = null;          // {reviewer, from_key} when the key may ask /v1/reviews/me
let askedName = false;
let current = null;     // the selected order (with history)
let formFor = null;     // "<order id>:<action>" of the open form
let loading = false;
let acting = false;

// The desk's own key, else the key this tab already gave the call-taker or the supervisor page.
function apiKey() {
  return sessionStorage.getItem(KEY_STORE) || sessionStorage.getItem("hotline-api-key") || sessionStorage.getItem("hotline-supervisor-key") || "";
}
function operatorId() { return me && me.from_key ? me.reviewer : localStorage.getItem(NAME_STORE) || ""; }
async function api(path, body) { return request(path, body, apiKey()); }
function deptName(code) {
  const d = departments.find((x) => x.code === code);
  return d ? d.name : code;
}
function when(t) { return new Date(t).toLocaleString("zh-CN"); }

function explain(err) {
  if (err.status === 401) { $("settings").hidden = false; return "需要有效的 API 密钥：请在“设置”中填写"; }
  if (err.status === 403) { $("settings").hidden = false; return "此密钥无权办理工单（需要接线员、班长或管理员密钥）：" + err.message; }
  if (err.status === 404) return "没有这张工单，或此密钥无权查看";
  if (err.status === 422) return "输入有误：" + err.message;
  if (err.status === 503) return err.message.startsWith("数据库暂不可用") ? err.message : "服务暂时不可用：" + err.message;
  if (err.status === 0) return err.message;
  return "服务暂时不可用：" + err.message;
}

function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}

// ------------------------------------------------------------------------------------------------
// Lists
// ------------------------------------------------------------------------------------------------
async function fetchStates(dir, states) {
  const pages = await Promise.all(states.map((s) => api("/v1/transfers?" + dir + "=" + encodeURIComponent(homeLine) + "&state=" + s + "&limit=" + PAGE)));
  return { items: pages.flatMap((p) => p.items), total: pages.reduce((n, p) => n + p.total, 0), byState: Object.fromEntries(states.map((s, i) => [s, pages[i].total])) };
}

// Overdue first, then 110 先行, then the nearest time limit.
function urgencyOrder(a, b) {
  return (b.overdue - a.overdue) || ((b.urgency === "110_first") - (a.urgency === "110_first")) || (new Date(a.due_at) - new Date(b.due_at)) || (a.id - b.id);
}

function outgoingOrder(a, b) {
  const rank = (o) => (o.state === "returned" ? 0 : o.state === "written_back" ? 1 : 2);
  return (rank(a) - rank(b)) || urgencyOrder(a, b);
}

function dueText(o) {
  if (o.overdue) return "已超时（" + when(o.due_at) + "）";
  return ["sent", "accepted", "handled"].includes(o.state) ? when(o.due_at) : "";
}

function orderRow(o, note) {
  const tr = document.createElement("tr");
  tr.dataset.order = o.id;
  tr.dataset.state = o.state;
  if (o.state === "returned") tr.classList.add("returned");
  if (current && current.id === o.id) tr.classList.add("selected");
  cell(tr, "#" + o.id, "id");
  cell(tr, o.from_line + "→" + o.to_line, "dir");
  cell(tr, deptName(o.department), "dept");
  cell(tr, URGENCY_NAMES[o.urgency] || o.urgency, o.urgency === "110_first" ? "urgent" : "");
  cell(tr, o.state_name, "state");
  cell(tr, dueText(o), o.overdue ? "late" : "");
  cell(tr, note, "text").title = note;
  return tr;
}

function fill(id, rows) {
  const tbody = $(id).querySelector("tbody");
  tbody.textContent = "";
  for (const tr of rows) tbody.appendChild(tr);
  $(id + "-empty").hidden = rows.length > 0;
}

// The department a return named (in its history's return step), for the returned orders of the list.
async function namedDepartments(orders) {
  const named = {};
  await Promise.all(orders.filter((o) => o.state === "returned").slice(0, 20).map(async (o) => {
    const full = await api("/v1/transfers/" + o.id);
    const ret = full.history.filter((e) => e.action === "return").pop();
    if (ret && ret.detail.department) named[o.id] = ret.detail.department;
  }));
  return named;
}

function returnNote(o, named) {
  if (o.state === "written_back") return "对方已回写：" + (o.result || "") + (o.handled_department ? "（实际承办：" + deptName(o.handled_department) + "）" : "");
  if (o.state !== "returned") return o.summary;
  return "退回原因：" + (o.return_reason || "") + (named[o.id] ? "；对方指明应由：" + deptName(named[o.id]) : "");
}

async function loadLists() {
  if (loading) return;
  loading = true;
  try {
    if (departments.length === 0) departments = (await api("/v1/model")).taxonomy.departments;
    if (!homeLine) homeLine = (await api("/v1/transfers?limit=1")).line;
    if (me === null) await loadMe();
    const [inc, out] = await Promise.all([fetchStates("to_line", INCOMING_STATES), fetchStates("from_line", OUTGOING_STATES)]);
    const named = await namedDepartments(out.items);
    inc.items.sort(urgencyOrder);
    out.items.sort(outgoingOrder);
    fill("incoming", inc.items.map((o) => orderRow(o, o.summary)));
    fill("outgoing", out.items.map((o) => orderRow(o, returnNote(o, named))));
    $("count-incoming").textContent = inc.total;
    $("count-overdue").textContent = inc.items.filter((o) => o.overdue).length;
    $("count-outgoing").textContent = out.total;
    $("count-returned").textContent = out.byState.returned;
    $("updated").textContent = "更新于 " + new Date().toLocaleTimeString("zh-CN") + " · 本线路 " + homeLine;
    showError("");
  } catch (e) {
    showError("工单列表未能更新：" + explain(e));
  } finally {
    loading = false;
  }
}

// Who the steps are recorded under: the key's owner (supervisor keys that name one), else the name asked once.
async function loadMe() {
  try {
    me = await api("/v1/reviews/me");
  } catch (e) {
    me = { reviewer: "", from_key: false };   // a call-taker key may not ask: the page asks for the name
  }
  $("operator-label").hidden = me.from_key;
  $("who").textContent = operatorId() ? "操作人：" + operatorId() : "";
  $("name-prompt").hidden = me.from_key || Boolean(operatorId());
  if (!$("name-prompt").hidden && !askedName) {
    askedName = true;
    $("settings").hidden = false;
  }
}

// ------------------------------------------------------------------------------------------------
// One order
// ------------------------------------------------------------------------------------------------
function options(sel, codes, first) {
  const keep = sel.value;
  sel.textContent = "";
  if (first !== undefined) sel.appendChild(new Option(first, ""));
  for (const d of departments.filter((x) => codes.includes(x.channel))) sel.appendChild(new Option(d.name + "（" + d.code + "）", d.code));
  if ([...sel.options].some((o) => o.value === keep)) sel.value = keep;
}

function historyNote(e) {
  const d = e.detail || {};
  return [d.reason, d.result, d.handled_department ? "实际承办：" + deptName(d.handled_department) : "",
    d.department ? (e.action === "return" ? "应由派出方：" : "承办部门：") + deptName(d.department) : ""].filter(Boolean).join("；");
}

function renderOrder(o) {
  const changed = !current || current.id !== o.id;
  current = o;
  $("detail").hidden = false;
  $("detail").dataset.order = o.id;
  $("detail").dataset.state = o.state;
  $("o-title").textContent = "工单 #" + o.id + " · " + o.from_line + "→" + o.to_line + " · " + deptName(o.department) + " · " +
    (URGENCY_NAMES[o.urgency] || o.urgency) + " · " + o.state_name;
  $("o-meta").textContent = "来电编号 " + o.call_id + " · 派单 " + when(o.created_at) + " · 期限 " + when(o.due_at) + (o.overdue ? "（已超时）" : "");
  $("o-summary").textContent = o.summary;
  const ret = o.history.filter((e) => e.action === "return").pop();
  $("o-returned").hidden = o.state !== "returned";
  $("o-returned").textContent = ret ? "已被 " + ret.line + " 退回：" + (ret.detail.reason || "") +
    (ret.detail.department ? "；对方指明应由：" + deptName(ret.detail.department) : "") : "";
  $("o-written").hidden = !o.result;
  $("o-written").textContent = o.result ? "回写：" + o.result + "（实际承办：" + deptName(o.handled_department) + "）" : "";
  const tbody = $("o-history").querySelector("tbody");
  tbody.textContent = "";
  for (const e of o.history) {
    const tr = document.createElement("tr");
    tr.dataset.seq = e.seq;
    for (const [text, cls] of [[when(e.at), ""], [e.action_name, "action"], [e.line, ""], [e.actor, "who"], [historyNote(e), "reason"]]) cell(tr, text, cls);
    tbody.appendChild(tr);
  }
  const box = $("o-actions");
  box.textContent = "";
  for (const a of o.allowed_actions) {
    const b = document.createElement("button");
    b.type = "button";
    b.id = "act-" + a;
    b.dataset.action = a;
    b.textContent = ACTION_LABELS[a] || a;
    if (a === "accept" || a === "write_back") b.className = "primary";
    b.addEventListener("click", () => onAction(a));
    box.appendChild(b);
  }
  $("o-none").hidden = o.allowed_actions.length > 0;
  if (changed) clearForms();
  else if (formFor && !o.allowed_actions.includes(formFor.split(":")[1])) hideForms();   // the step is no longer possible
  options($("return-dept"), [o.from_line], "（不指定）");
  options($("wb-dept"), [o.to_line], "请选择实际承办部门");
  options($("close-dept"), [o.from_line], "（不指定）");
  $("close-dept-label").hidden = o.state !== "returned";
  for (const tr of document.querySelectorAll("#incoming tbody tr, #outgoing tbody tr")) tr.classList.toggle("selected", Number(tr.dataset.order) === o.id);
}

function hideForms() {
  for (const id of Object.values(FORMS)) $(id).hidden = true;
  formFor = null;
}

function clearForms() {
  hideForms();
  for (const id of ["return-reason", "wb-result"]) $(id).value = "";
  for (const id of ["return-dept", "wb-dept", "close-dept"]) $(id).value = "";
  status("");
}

function status(text, cls) {
  $("o-status").textContent = text;
  $("o-status").className = cls || "";
}

async function selectOrder(id) {
  try {
    renderOrder(await api("/v1/transfers/" + encodeURIComponent(id)));
  } catch (e) {
    showError("无法读取工单 #" + id + "：" + explain(e));
  }
}

// ------------------------------------------------------------------------------------------------
// Steps
// ------------------------------------------------------------------------------------------------
function onAction(action) {
  if (FORMS[action]) {   // asks for what the step needs first
    hideForms();
    $(FORMS[action]).hidden = false;
    formFor = current.id + ":" + action;
    status("");
    const first = { return: "return-reason", write_back: "wb-result", close: "close-dept" }[action];
    if (!$(first).closest("[hidden]")) $(first).focus();
    return;
  }
  takeStep(action, {});
}

function formBody(action) {
  if (action === "return") {
    const reason = $("return-reason").value.trim();
    if (!reason) return "请填写退回原因";
    return $("return-dept").value ? { reason, department: $("return-dept").value } : { reason };
  }
  if (action === "write_back") {
    const result = $("wb-result").value.trim();
    if (!result || !$("wb-dept").value) return "请填写处置结果并选择实际承办部门";
    return { result, handled_department: $("wb-dept").value };
  }
  return current.state === "returned" && $("close-dept").value ? { department: $("close-dept").value } : {};
}

async function takeStep(action, body) {
  if (acting || !current) return;
  const id = current.id;
  if (operatorId()) body.operator = operatorId();
  acting = true;
  for (const b of document.querySelectorAll("#detail button")) b.disabled = true;
  status("正在提交“" + ACTION_LABELS[action].replace("…", "") + "”…");
  try {
    const o = await api("/v1/transfers/" + id + "/" + action, body);
    clearForms();
    renderOrder(o);
    status("工单 #" + id + " 已" + ACTION_LABELS[action].replace("…", "") + "，当前状态：" + o.state_name, "ok");
    loadLists();
  } catch (e) {
    if (e.status === 409) {   // the other side (or a colleague) moved the order: say where it is now, reload it
      status("操作未完成：" + e.message + "。工单已刷新，已填写的内容仍保留。", "error");
      await selectOrder(id).catch(() => {});
      loadLists();
    } else {
      status("“" + ACTION_LABELS[action].replace("…", "") + "”未完成：" + explain(e) + "。已填写的内容仍保留，可重试。", "error");
    }
  } finally {
    acting = false;
    for (const b of document.querySelectorAll("#detail button")) b.disabled = false;
  }
}

function onSubmit(action, e) {
  e.preventDefault();
  const body = formBody(action);
  if (typeof body === "string") { status(body, "error"); return; }
  takeStep(action, body);
}

// ------------------------------------------------------------------------------------------------
// Wiring
// ------------------------------------------------------------------------------------------------
function refresh() {
  if (document.visibilityState !== "visible") return;
  loadLists();
  if (current && !acting) api("/v1/transfers/" + current.id).then((o) => { if (current && current.id === o.id) renderOrder(o); }).catch(() => {});
}

function setup() {
  $("settings-toggle").addEventListener("click", () => { $("settings").hidden = !$("settings").hidden; });
  $("apikey").value = apiKey();
  $("operator").value = localStorage.getItem(NAME_STORE) || "";
  $("save-key").addEventListener("click", () => {
    saveSettings(KEY_STORE, NAME_STORE);
    departments = [];
    homeLine = null;
    me = null;
    loadLists();
  });
  for (const id of ["incoming", "outgoing"]) {
    $(id).addEventListener("click", (e) => { const tr = e.target.closest("tr[data-order]"); if (tr) selectOrder(tr.dataset.order); });
  }
  for (const [action, id] of Object.entries(FORMS)) $(id).addEventListener("submit", (e) => onSubmit(action, e));
  for (const id of ["return-reason", "wb-result", "wb-dept"]) $(id).addEventListener("input", () => { if ($("o-status").className === "error") status(""); });
  checkHealth();
  loadLists();
  setInterval(checkHealth, 30000);
  setInterval(refresh, REFRESH_MS);
}

document.addEventListener("DOMContentLoaded", setup);
