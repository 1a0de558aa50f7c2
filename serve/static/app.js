// Call-taker page: routes the summary as it is typed (debounced previews), shows the suggestion,
// reasons, alternatives, lines to link in and transfer advice; records the final decision.
// Plain JavaScript, no build step. All server text is inserted with textContent (never as HTML).
"use strict";

const DEBOUNCE_MS = 300;
const SOURCE_NAMES = { model: "模型判断", rules: "规则判断", override: "危险信号覆盖" };
const ALT_SOURCE_NAMES = { model: "模型", rules: "规则", "model+rules": "模型+规则" };

let timer = null;
let inflight = null;
let seq = 0;
let last = null;          // the last suggestion shown
let callId = newCallId();
let departments = [];

function newCallId() {
  if (window.crypto && crypto.randomUUID) return "web-" + crypto.randomUUID();
  return "web-" + Date.now().toString(36) + "-" + Math.random().toString(36).slice(2, 10);
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
  // One action, never two banners: 110 先行 (red), 三方通话 (amber), or a plain transfer (orange).
  const act = $("action");
  let message = "";
  if (d.action === "110_first") message = "110 先行 · " + (d.transfer ? d.transfer.message : d.advice[0]);
  else if (d.action === "consult") message = "三方通话 · " + d.consult.message;
  else if (d.transfer) message = d.transfer.message;
  act.hidden = !message;
  act.textContent = message;
  act.className = "banner " + (d.action === "110_first" ? "danger" : d.action === "consult" ? "consult" : "transfer");
  act.dataset.action = d.action;

  const ch = $("channel");
  ch.textContent = d.channel;
  ch.className = "channel c" + d.channel;
  ch.title = d.channel_name;
  $("department").textContent = d.department_name;
  $("confidence").textContent = "部门把握 " + Math.round(d.department_confidence * 100) + "%";
  $("channel-confidence").textContent = "线路把握 " + Math.round(d.channel_confidence * 100) + "%";
  $("source").textContent = SOURCE_NAMES[d.source] || d.source;

  const links = $("links");
  links.textContent = "";
  for (const l of d.links) {
    const s = document.createElement("span");
    s.textContent = "联动 " + l.number + " " + l.name;
    links.appendChild(s);
  }
  links.hidden = d.links.length === 0;
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
  for (const a of d.alternatives) {
    const tr2 = document.createElement("tr");
    for (const v of [a.department_name, a.channel, Math.round(a.probability * 100) + "%", ALT_SOURCE_NAMES[a.source] || a.source]) {
      const td = document.createElement("td");
      td.textContent = v;
      tr2.appendChild(td);
    }
    tbody.appendChild(tr2);
  }
  $("alternatives").hidden = d.alternatives.length === 0;

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

async function finish(department, channel) {
  const text = $("summary").value;
  if (!text.trim() || !last) return;
  const status = $("action-status");
  status.textContent = "提交中…";
  try {
    const body = { text, call_id: callId };
    const line = $("received-on").value;
    if (line) body.received_on = line;
    await api("/v1/route", body);
    const fb = await api("/v1/feedback", { call_id: callId, final_channel: channel, final_department: department });
    status.textContent = fb.agrees_with_suggestion ? "已按建议分派并记录" : "已改派并记录，将由班长复核";
    callId = newCallId();
  } catch (e) {
    status.textContent = explain(e);
  }
}

function setup() {
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
  updateCounter();
  checkHealth();
  loadModelInfo();
  setInterval(checkHealth, 30000);
}

document.addEventListener("DOMContentLoaded", setup);
