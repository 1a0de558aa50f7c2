// Call-taker page: routes the summary as it is typed (debounced previews), shows the suggestion,
// reasons, alternatives, lines to link in and transfer advice; records the final decision.
// 一键转接 creates a transfer order (POST /v1/transfers, orders.js), records the transfer as the call's
// final routing (POST /v1/route + /v1/feedback) and copies a transfer slip; on a 三方通话 decision the
// banner holds the consult form (orders.js); 下一个来电 (Alt+N) clears the page.
// Plain JavaScript, no build step. All server text is inserted with textContent (never as HTML).
"use strict";

const DEBOUNCE_MS = 300;
const SOURCE_NAMES = { model: "模型判断", rules: "规则判断", override: "危险信号覆盖" };
const ALT_SOURCE_NAMES = { model: "模型", rules: "规则", "model+rules": "模型+规则" };
const MIN_ALTERNATIVE = 0.01;     // alternatives under 1% only take room
const LINE_KEY = "hotline-line";  // the line this desk answers (本线路), remembered across reloads
// What a call-taker tells the line linked in (联动), besides the summary.
const LINK_GUIDE = {
  "119": "火情或险情位置、燃烧物/被困人数、周边危险源",
  "120": "详细地址、伤病员人数与伤情、来电人回拨电话",
  "122": "事故地点与方向、车辆与伤亡情况、是否阻断交通",
  "110": "案发地点、嫌疑人特征与去向、现场危险",
};

let timer = null;
let inflight = null;
let seq = 0;
let last = null;          // the last suggestion shown
let callId = newCallId();
let departments = [];

// A call id the API always accepts: letters only. The API refuses an id that looks like a phone, ID
// or card number, and about 1 random UUID in 90 has such a digit run ("4399-8910"); 20 letters from
// the browser's CSPRNG (about 94 bits) never do. getRandomValues works on plain http too.
function newCallId() {
  const bytes = crypto.getRandomValues(new Uint8Array(20));
  return "web-" + Array.from(bytes, (b) => String.fromCharCode(97 + (b % 26))).join("");
}

function apiKey() { return sessionStorage.getItem("hotline-api-key") || ""; }

async function api(path, body, signal) { return request(path, body, apiKey(), signal); }

function explain(err) {
  if (err.status === 401) { $("settings").hidden = false; return "需要有效的 API 密钥：请在“设置”中填写"; }
  if (err.status === 403) return "此密钥无权执行该操作";
  if (err.status === 422 || err.status === 413) return "输入有误：" + err.message;
  if (!err.status || err.status >= 500) {   // the server is down or failing: the suggestion on screen is stale
    outage();
    return "服务中断：" + err.message + "。当前建议已失效，请按应急流程人工分派";
  }
  return "服务暂时不可用：" + err.message;
}

// The server did not answer: say so at once and never let a call-taker act on a stale suggestion.
function outage() {
  const pill = $("status");
  pill.className = "pill down";
  pill.textContent = "服务中断";
  $("result").classList.add("stale");
  for (const id of ["accept", "correct"]) $(id).disabled = true;
}

async function loadModelInfo() {
  try {
    const info = await api("/v1/model");
    departments = info.taxonomy.departments;
    const max = info.limits.max_text_chars;
    $("summary").maxLength = max;
    updateCounter();
    const sel = $("final-department");
    sel.textContent = "";
    for (const d of departments) {
      const opt = document.createElement("option");
      opt.value = d.code;
      opt.dataset.channel = d.channel;
      opt.textContent = d.name + "（" + d.channel + "）";
      sel.appendChild(opt);
    }
  } catch (e) {
    if (e.status === 401) explain(e);
  }
}

// A probability as a percentage that never claims certainty it does not have: 0.998 is "99.8%", not
// "100%"; only 1 is "100%", and a non-zero value under 0.5% is "<1%", not "0%".
function pct(p) {
  if (p >= 1) return "100%";
  if (p <= 0) return "0%";
  const whole = Math.round(p * 100);
  if (whole >= 100) return (Math.floor(p * 1000) / 10).toFixed(1) + "%";
  if (whole === 0) return "<1%";
  return whole + "%";
}

function updateCounter() {
  const t = $("summary");
  $("counter").textContent = t.value.length + " / " + t.maxLength;
}

function schedule() {
  updateCounter();
  clearTimeout(timer);
  timer = setTimeout(preview, DEBOUNCE_MS);
}

async function preview() {
  const text = $("summary").value;
  if (!text.trim()) { $("result").hidden = true; showError(""); return; }
  if (inflight) inflight.abort();
  const ctrl = new AbortController();
  inflight = ctrl;
  const mine = ++seq;
  $("busy").hidden = false;
  try {
    const body = { text, preview: true };
    const line = $("received-on").value;
    if (line) body.received_on = line;
    const d = await api("/v1/route", body, ctrl.signal);
    if (mine !== seq) return;   // a newer request was sent meanwhile
    showError("");
    render(d);
  } catch (e) {
    if (e.name === "AbortError" || mine !== seq) return;
    showError(explain(e));
  } finally {
    if (mine === seq) $("busy").hidden = true;
  }
}

function render(d) {
  last = d;
  $("result").hidden = false;
  $("result").classList.remove("stale");
  for (const id of ["accept", "correct"]) $(id).disabled = false;
  // One action banner, never two: 110 先行 (red), 三方通话 (amber), or a plain transfer (orange); the
  // review note is a plain line below the buttons. 一键转接 is a button in the banner when the API advises it.
  const act = $("action");
  let message = "";
  if (d.action === "110_first") message = "110 先行 · " + (d.transfer ? d.transfer.message : d.advice[0]).replace(/[，,]\s*110 先行处置$/, "")
    + (d.follow_up ? "；" + d.follow_up.message : "");  // 先期处置后转办: who takes the ticket after 110
  else if (d.action === "consult") message = "三方通话 · " + d.consult.message;
  else if (d.transfer) message = d.transfer.message;
  act.hidden = !message;
  $("action-text").textContent = message;
  act.className = "banner " + (d.action === "110_first" ? "danger" : d.action === "consult" ? "consult" : "transfer");
  act.dataset.action = d.action;
  const tr = $("transfer");
  tr.hidden = !d.transfer;
  tr.disabled = false;
  tr.textContent = d.transfer ? "一键转接 " + d.transfer.to_line : "一键转接";
  showConsult(d);

  const ch = $("channel");
  ch.textContent = d.channel;
  ch.className = "channel c" + d.channel;
  ch.title = d.channel_name;
  $("department").textContent = d.department_name;
  $("confidence").textContent = "部门把握 " + pct(d.department_confidence);
  $("channel-confidence").textContent = "线路把握 " + pct(d.channel_confidence);
  $("source").textContent = SOURCE_NAMES[d.source] || d.source;

  const links = $("links");
  links.textContent = "";
  for (const l of d.links) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "link-line";
    b.dataset.number = l.number;
    b.setAttribute("aria-pressed", "false");
    b.textContent = "联动 " + l.number + " " + l.name;
    b.addEventListener("click", () => showLink(b, l));
    links.appendChild(b);
  }
  links.hidden = d.links.length === 0;
  if (!d.links.some((l) => l.number === $("link-detail").dataset.number)) $("link-detail").hidden = true;
  $("review-note").hidden = !d.review_note;
  $("review-note").textContent = d.review_note || "";

  const reasons = $("reasons");
  reasons.textContent = "";
  for (const r of d.reasons) {
    const li = document.createElement("li");
    li.textContent = r;
    reasons.appendChild(li);
  }

  const tbody = $("alternatives").querySelector("tbody");
  tbody.textContent = "";
  const alternatives = d.alternatives.filter((a) => a.probability >= MIN_ALTERNATIVE);
  for (const a of alternatives) {
    const tr2 = document.createElement("tr");
    for (const v of [a.department_name, a.channel, pct(a.probability), ALT_SOURCE_NAMES[a.source] || a.source]) {
      const td = document.createElement("td");
      td.textContent = v;
      tr2.appendChild(td);
    }
    tbody.appendChild(tr2);
  }
  $("alternatives").hidden = $("alternatives-title").hidden = alternatives.length === 0;

  const sel = $("final-department");
  if (sel.options.length === 0) {   // no /v1/model (e.g. no key yet): offer the suggestion and alternatives
    for (const x of [{ code: d.department, name: d.department_name, channel: d.channel }, ...d.alternatives.map((a) => ({ code: a.department, name: a.department_name, channel: a.channel }))]) {
      const opt = document.createElement("option");
      opt.value = x.code; opt.dataset.channel = x.channel; opt.textContent = x.name + "（" + x.channel + "）";
      sel.appendChild(opt);
    }
  }
  sel.value = d.department;
  $("meta").textContent = "耗时 " + d.latency_ms.toFixed(1) + " ms · " + (d.model_version ? "模型 " + d.model_version : "未加载模型（规则）");
}

// Store the call (route, not a preview) and what was done with it (feedback). Returns the feedback
// answer, or null after saying what went wrong.
async function record(department, channel) {
  const text = $("summary").value;
  const body = { text, call_id: callId };
  const line = $("received-on").value;
  if (line) body.received_on = line;
  try {
    await api("/v1/route", body);
    const fb = await api("/v1/feedback", { call_id: callId, final_channel: channel, final_department: department });
    callId = newCallId();
    return fb;
  } catch (e) {
    $("action-status").textContent = explain(e);
    return null;
  }
}

async function finish(department, channel) {
  if (!$("summary").value.trim() || !last) return;
  $("action-status").textContent = "提交中…";
  const fb = await record(department, channel);
  if (fb) $("action-status").textContent = fb.agrees_with_suggestion ? "已按建议分派并记录" : "已改派并记录，将由班长复核";
}

// Copy to the clipboard; false when the browser refuses (e.g. plain http to another host). The text
// is also shown on the page, so it can be copied by hand.
async function copyText(text) {
  try {
    if (navigator.clipboard && window.isSecureContext) { await navigator.clipboard.writeText(text); return true; }
  } catch (e) { /* fall through to the old way */ }
  const ta = document.createElement("textarea");
  ta.value = text;
  ta.setAttribute("readonly", "");
  ta.style.position = "fixed"; ta.style.opacity = "0";
  document.body.appendChild(ta);
  ta.select();
  let ok = false;
  try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
  ta.remove();
  $("summary").focus({ preventScroll: true });
  return ok;
}

// The transfer slip read to (or pasted for) the receiving line. It carries the summary as typed: it
// goes to the clipboard of this desk only, never to a log or the server.
function transferSlip(d, text) {
  const t = d.transfer;
  const lines = [
    "【转接单】" + new Date().toLocaleString("zh-CN", { hour12: false }),
    "由 " + t.from_line + " 转至 " + t.to_line_name + (t.urgent ? "（危险信号，110 先行处置）" : ""),
    "建议承办：" + d.department_name + "（" + d.channel + "）",
  ];
  if (d.links.length) lines.push("需联动：" + d.links.map((l) => l.number + " " + l.name).join("、"));
  if (d.reasons.length) lines.push("依据：" + d.reasons[0]);
  lines.push("来电摘要：" + text);
  return lines.join("\n");
}

// 一键转接: create the transfer order, record the call as routed to the other line, copy the slip, and
// confirm on the page. On an error nothing typed is lost and the button stays: a retry with the same
// call_id returns the same order (and the same feedback).
async function transfer() {
  const d = last;
  const text = $("summary").value;
  if (!d || !d.transfer || !text.trim()) return;
  const t = d.transfer;
  const slip = transferSlip(d, text);
  $("slip").textContent = slip;
  $("slip").hidden = false;
  const copied = await copyText(slip);
  $("transfer").disabled = true;
  $("action-status").textContent = "转接中…";
  let order;
  try {
    order = await createTransferOrder(d, text, callId);
  } catch (e) {
    $("action-status").textContent = orderError(e, "转办工单");
    $("transfer").disabled = false;
    return;
  }
  showOrder(order);
  const fb = await record(d.department, t.to_line);
  if (!fb) { $("transfer").disabled = false; return; }
  $("transfer").textContent = "已转接 " + t.to_line + " ✓";
  $("action-status").textContent = "已转接至 " + t.to_line_name + "并记录，转办工单 #" + order.id + "（" + order.state_name + "）；"
    + (copied ? "转接单已复制" : "复制失败，请手动复制下方转接单");
}

// 联动 119/120/122: say which line to bring in and what to tell it.
function showLink(button, l) {
  const detail = $("link-detail");
  const open = detail.hidden || detail.dataset.number !== l.number;
  for (const b of $("links").querySelectorAll("button")) b.setAttribute("aria-pressed", String(open && b === button));
  detail.hidden = !open;
  detail.dataset.number = open ? l.number : "";
  detail.textContent = open ? "请拨打 " + l.number + "（" + l.name + "）联动处置，告知：" + (LINK_GUIDE[l.number] || "地点与现场情况") + "。" : "";
}

// 下一个来电: forget this call (text, suggestion, notes) and put the cursor back in the text box.
function nextCall() {
  clearTimeout(timer);
  if (inflight) inflight.abort();
  seq++;
  last = null;
  callId = newCallId();
  $("summary").value = "";
  updateCounter();
  $("busy").hidden = true;
  $("result").hidden = true;
  for (const id of ["slip", "link-detail"]) { $(id).hidden = true; $(id).textContent = ""; }
  $("action-status").textContent = "";
  resetOrders();
  showError("");
  $("summary").focus();
}

function restoreLine() {
  const sel = $("received-on");
  const saved = localStorage.getItem(LINE_KEY);
  if (saved !== null && [...sel.options].some((o) => o.value === saved)) sel.value = saved;
  sel.addEventListener("change", () => localStorage.setItem(LINE_KEY, sel.value));
}

function setup() {
  restoreLine();
  $("summary").addEventListener("input", schedule);
  $("received-on").addEventListener("change", schedule);
  $("settings-toggle").addEventListener("click", () => { $("settings").hidden = !$("settings").hidden; });
  $("apikey").value = apiKey();
  $("save-key").addEventListener("click", () => {
    sessionStorage.setItem("hotline-api-key", $("apikey").value.trim());
    $("settings").hidden = true;
    loadModelInfo();
    schedule();
  });
  $("accept").addEventListener("click", () => { if (last) finish(last.department, last.channel); });
  $("correct").addEventListener("click", () => {
    const opt = $("final-department").selectedOptions[0];
    if (opt) finish(opt.value, opt.dataset.channel);
  });
  $("transfer").addEventListener("click", transfer);
  setupConsult();
  $("next-call").addEventListener("click", nextCall);
  document.addEventListener("keydown", (e) => {
    if (e.altKey && !e.ctrlKey && !e.metaKey && !e.isComposing && e.code === "KeyN") { e.preventDefault(); nextCall(); }
  });
  updateCounter();
  checkHealth();
  loadModelInfo();
  setInterval(checkHealth, 30000);
}

document.addEventListener("DOMContentLoaded", setup);
