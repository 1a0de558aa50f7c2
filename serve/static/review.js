// Supervisor page (/review): the review queue (least confident first) with filters and pages, one
// case in detail (masked text, suggestion, reasons, alternatives), keyboard-friendly confirm/correct,
// and two charts drawn as plain SVG (no library, nothing downloaded): the confidence histogram of
// the pending cases and the correction rate per suggested department.
// Plain JavaScript, no build step. All server text is inserted with textContent (never as HTML).
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const LIMIT = 50;
const KEY_STORE = "hotline-supervisor-key";
const OPERATOR_STORE = "hotline-supervisor-operator";
const TRIGGER_NAMES = { needs_review: "把握不大", override: "危险信号覆盖", feedback: "接线员改派" };
const SOURCE_NAMES = { model: "模型判断", rules: "规则判断", override: "危险信号覆盖" };
const STATUS_NAMES = { pending: "待复核", decided: "已复核" };
const DECISION_NAMES = { confirm: "确认建议", correct: "改判" };

let departments = [];     // the served taxonomy: [{code, name, channel}]
let items = [];           // the current page
let selected = -1;
let offset = 0;
let total = 0;
let reopening = false;    // the selected decided case was re-opened for a new decision
let busy = false;

function apiKey() { return sessionStorage.getItem(KEY_STORE) || ""; }
function operatorId() { return sessionStorage.getItem(OPERATOR_STORE) || ""; }
function pct(x) { return Math.round(x * 100) + "%"; }
function deptName(code) {
  const d = departments.find((x) => x.code === code);
  return d ? d.name : code;
}

async function api(path, body) { return request(path, body, apiKey()); }

function explain(err) {
  if (err.status === 401) { $("settings").hidden = false; return "需要有效的班长 API 密钥：请在“设置”中填写"; }
  if (err.status === 403) { $("settings").hidden = false; return "此密钥无权复核（需要班长或管理员密钥）"; }
  if (err.status === 409) return "该案例已有复核结论：" + err.message;
  if (err.status === 422) return "输入有误：" + err.message;
  return "服务暂时不可用：" + err.message;
}

// ------------------------------------------------------------------------------------------------
// Loading
// ------------------------------------------------------------------------------------------------
async function loadModelInfo() {
  const info = await api("/v1/model");
  departments = info.taxonomy.departments;
  const sel = $("f-department");
  const keep = sel.value;
  sel.textContent = "";
  sel.appendChild(new Option("全部", ""));
  for (const d of departments) sel.appendChild(new Option(d.name + "（" + d.channel + "）", d.code));
  sel.value = keep;
}

function localMidnight(dateValue, addDays) {
  const [y, m, d] = dateValue.split("-").map(Number);
  return new Date(y, m - 1, d + addDays).toISOString();   // the browser's own midnight, sent as UTC
}

function query() {
  const p = new URLSearchParams({ status: $("f-status").value, limit: String(LIMIT), offset: String(offset) });
  for (const [id, name] of [["f-channel", "channel"], ["f-department", "department"], ["f-trigger", "trigger"]]) {
    if ($(id).value) p.set(name, $(id).value);
  }
  if ($("f-min").value !== "") p.set("min_confidence", String(Number($("f-min").value) / 100));
  if ($("f-max").value !== "") p.set("max_confidence", String(Number($("f-max").value) / 100));
  if ($("f-from").value) p.set("created_from", localMidnight($("f-from").value, 0));
  if ($("f-to").value) p.set("created_to", localMidnight($("f-to").value, 1));   // the whole last day
  return p.toString();
}

async function loadQueue(keepIndex) {
  const page = await api("/v1/reviews?" + query());
  if (page.items.length === 0 && page.total > 0 && offset > 0) {   // the last page emptied: step back
    offset = Math.max(0, offset - LIMIT);
    return loadQueue(keepIndex);
  }
  items = page.items;
  total = page.total;
  renderQueue();
  select(items.length === 0 ? -1 : Math.min(Math.max(keepIndex, 0), items.length - 1));
}

async function loadStats() {
  const st = await api("/v1/reviews/stats");
  $("count-pending").textContent = st.pending;
  $("count-decided").textContent = st.decided;
  $("count-corrected").textContent = st.corrected;
  $("rate-corrected").textContent = st.decided ? "（" + pct(st.correction_rate) + "）" : "";
  $("count-channel").textContent = st.channel_changed;
  drawHistogram(st.pending_confidence_histogram);
  drawRates(st.by_department);
}

async function refresh(keepIndex) {
  try {
    if (departments.length === 0) await loadModelInfo();
    await Promise.all([loadQueue(keepIndex), loadStats()]);
    showError("");
  } catch (e) {
    showError(explain(e));
  }
}

// ------------------------------------------------------------------------------------------------
// The queue and one case
// ------------------------------------------------------------------------------------------------
function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  tr.appendChild(td);
}

function renderQueue() {
  const tbody = $("queue").querySelector("tbody");
  tbody.textContent = "";
  items.forEach((it, i) => {
    const tr = document.createElement("tr");
    tr.dataset.id = it.id;
    cell(tr, pct(it.confidence), "conf");
    cell(tr, it.channel, "ch" + it.channel);
    cell(tr, it.department_name);
    cell(tr, TRIGGER_NAMES[it.trigger] || it.trigger);
    cell(tr, it.text_masked, "text");
    cell(tr, it.status === "decided" ? DECISION_NAMES[it.decision] || STATUS_NAMES.decided : STATUS_NAMES.pending);
    tr.addEventListener("click", () => select(i));
    tbody.appendChild(tr);
  });
  $("empty").hidden = items.length > 0;
  $("page-info").textContent = total === 0 ? "共 0 条" : "第 " + (offset + 1) + "–" + (offset + items.length) + " 条，共 " + total + " 条";
  $("prev").disabled = offset === 0;
  $("next").disabled = offset + items.length >= total;
}

function targets(it) {
  // Department choices for a correction, most likely first: the call-taker's, the alternatives, the rest.
  const order = [];
  const add = (code) => { if (code && code !== it.department && !order.includes(code)) order.push(code); };
  add(it.feedback_department);
  for (const a of it.alternatives) add(a.department);
  for (const d of departments) add(d.code);
  return order;
}

function select(i) {
  selected = i;
  reopening = false;
  const rows = $("queue").querySelectorAll("tbody tr");
  rows.forEach((tr, k) => tr.classList.toggle("selected", k === i));
  if (i < 0) { $("detail").hidden = true; return; }
  rows[i].scrollIntoView({ block: "nearest" });
  renderDetail(items[i]);
}

function renderDetail(it) {
  $("detail").hidden = false;
  $("action-status").textContent = "";
  const trig = $("d-trigger");
  trig.textContent = TRIGGER_NAMES[it.trigger] || it.trigger;
  trig.className = "tag " + it.trigger;
  $("d-meta").textContent = "#" + it.id + (it.call_id ? " · 来电 " + it.call_id : "") + " · " + new Date(it.created_at).toLocaleString("zh-CN") +
    (it.model_version ? " · 模型 " + it.model_version : "");
  $("d-text").textContent = it.text_masked;
  const ch = $("d-channel");
  ch.textContent = it.channel;
  ch.className = "channel c" + it.channel;
  $("d-department").textContent = it.department_name;
  $("d-confidence").textContent = "置信度 " + pct(it.confidence);
  $("d-source").textContent = SOURCE_NAMES[it.source] || it.source;
  const fb = $("d-feedback");
  fb.hidden = !it.feedback_department;
  fb.textContent = it.feedback_department ? "接线员实际分派：" + (it.feedback_department_name || it.feedback_department) + "（" + it.feedback_channel + "）" +
    (it.operator ? " · " + it.operator : "") : "";

  const reasons = $("d-reasons");
  reasons.textContent = "";
  for (const r of it.reasons) {
    const li = document.createElement("li");
    li.textContent = r;
    reasons.appendChild(li);
  }
  const tbody = $("d-alternatives").querySelector("tbody");
  tbody.textContent = "";
  for (const a of it.alternatives) {
    const tr = document.createElement("tr");
    cell(tr, a.department_name);
    cell(tr, a.channel, "ch" + a.channel);
    cell(tr, pct(a.probability));
    tbody.appendChild(tr);
  }
  $("d-alternatives").hidden = it.alternatives.length === 0;

  const sel = $("d-target");
  sel.textContent = "";
  // No department is chosen until the supervisor chooses one: Enter on its own must never save a
  // correction to whatever happens to be first (that label would flow into retraining).
  sel.appendChild(new Option("— 按 1–9 或在此选择改判部门 —", ""));
  targets(it).forEach((code, k) => {
    const d = departments.find((x) => x.code === code);
    const label = (k < 9 ? (k + 1) + " · " : "") + deptName(code) + (d ? "（" + d.channel + "）" : "");
    sel.appendChild(new Option(label, code));
  });
  $("d-comment").value = "";
  renderDecided(it);
}

function renderDecided(it) {
  const decided = it.status === "decided";
  const box = $("d-decided");
  box.hidden = !decided;
  if (decided) {
    box.textContent = "已复核：" + (DECISION_NAMES[it.decision] || it.decision) + " → " + (it.decided_department_name || it.decided_department) +
      "（" + it.decided_channel + "）· " + (it.decided_by || "") + " · " + new Date(it.decided_at).toLocaleString("zh-CN") + (it.comment ? " · 备注：" + it.comment : "");
  }
  $("d-actions").hidden = decided && !reopening;
  $("reopen").hidden = !decided || reopening;
}

async function decide(body) {
  if (selected < 0 || busy) return;
  const it = items[selected];
  if (it.status === "decided" && !reopening) {
    $("action-status").textContent = "该案例已复核；如需修改，请先点“重新打开并修改”";
    return;
  }
  const comment = $("d-comment").value.trim();
  if (comment) body.comment = comment;
  if (operatorId()) body.operator = operatorId();
  if (reopening) body.reopen = true;
  busy = true;
  $("action-status").textContent = "保存中…";
  try {
    const out = await api("/v1/reviews/" + it.id, body);
    const keep = selected + ($("f-status").value === "pending" ? 0 : 1);   // pending: the next case moves up
    await refresh(keep);
    $("action-status").textContent = (out.decision === "confirm" ? "已确认建议：" : "已改判为：") + (out.decided_department_name || out.decided_department);
  } catch (e) {
    $("action-status").textContent = explain(e);
    if (e.status === 409) await refresh(selected);
  } finally {
    busy = false;
  }
}

function confirmSuggestion() { decide({ decision: "confirm" }); }
function saveCorrection() {
  const code = $("d-target").value;
  if (code) decide({ decision: "correct", department: code });
  else $("action-status").textContent = "请先按 1–9 或在列表中选择改判部门，再按 Enter";
}

// ------------------------------------------------------------------------------------------------
// Charts (plain SVG)
// ------------------------------------------------------------------------------------------------
function svgEl(name, attrs, text) {
  const el = document.createElementNS(SVG_NS, name);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

function drawHistogram(bins) {
  const svg = $("hist");
  svg.textContent = "";
  const W = 480, H = 200, left = 30, bottom = 24, top = 16;
  svg.setAttribute("viewBox", "0 0 " + W + " " + H);
  const max = Math.max(1, ...bins.map((b) => b.count));
  const bw = (W - left - 10) / bins.length;
  svg.appendChild(svgEl("line", { x1: left, y1: H - bottom, x2: W - 10, y2: H - bottom, stroke: "#90a4ae" }));
  bins.forEach((b, i) => {
    const h = (H - bottom - top) * b.count / max;
    const x = left + i * bw;
    const rect = svgEl("rect", { class: "bar", x: x + 2, y: H - bottom - h, width: bw - 4, height: h, "data-low": b.low, "data-count": b.count });
    rect.appendChild(svgEl("title", {}, Math.round(b.low * 100) + "–" + Math.round(b.high * 100) + "%：" + b.count + " 件"));
    svg.appendChild(rect);
    if (b.count > 0) svg.appendChild(svgEl("text", { x: x + bw / 2, y: H - bottom - h - 3, "text-anchor": "middle" }, b.count));
    svg.appendChild(svgEl("text", { x: x + bw / 2, y: H - 8, "text-anchor": "middle" }, Math.round(b.low * 100) + "%"));
  });
  svg.appendChild(svgEl("text", { x: 2, y: 12 }, "件数"));
}

function drawRates(groups) {
  const svg = $("rates");
  svg.textContent = "";
  $("rates-empty").hidden = groups.length > 0;
  const W = 480, row = 24, labelW = 120, valueW = 110;
  const H = Math.max(row, groups.length * row + 4);
  svg.setAttribute("viewBox", "0 0 " + W + " " + H);
  const barW = W - labelW - valueW;
  groups.forEach((g, i) => {
    const y = i * row + 4;
    svg.appendChild(svgEl("text", { x: labelW - 6, y: y + 13, "text-anchor": "end" }, g.name));
    svg.appendChild(svgEl("rect", { class: "track", x: labelW, y, width: barW, height: row - 8 }));
    const bar = svgEl("rect", { class: "bar rate", x: labelW, y, width: barW * g.correction_rate, height: row - 8, "data-key": g.key, "data-rate": g.correction_rate, "data-corrected": g.corrected, "data-decided": g.decided });
    bar.appendChild(svgEl("title", {}, g.name + "：改判 " + g.corrected + " / 已复核 " + g.decided));
    svg.appendChild(bar);
    svg.appendChild(svgEl("text", { x: labelW + barW + 6, y: y + 13 }, pct(g.correction_rate) + "（" + g.corrected + "/" + g.decided + "）"));
  });
}

// ------------------------------------------------------------------------------------------------
// Keyboard and wiring
// ------------------------------------------------------------------------------------------------
function onKey(e) {
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  const t = e.target;
  const typing = t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT");
  if (e.key === "Escape" && typing) { t.blur(); return; }
  if (e.key === "Enter" && (t.id === "d-comment" || t.id === "d-target")) { e.preventDefault(); saveCorrection(); return; }
  if (typing || (t.tagName === "BUTTON" && e.key === "Enter")) return;
  if (e.key === "j" || e.key === "ArrowDown") { e.preventDefault(); if (selected < items.length - 1) select(selected + 1); }
  else if (e.key === "k" || e.key === "ArrowUp") { e.preventDefault(); if (selected > 0) select(selected - 1); }
  else if (e.key === "c") { e.preventDefault(); confirmSuggestion(); }
  else if (/^[1-9]$/.test(e.key)) {
    const sel = $("d-target");
    const k = Number(e.key);   // option 0 is the "choose" placeholder
    if (k < sel.options.length) { sel.selectedIndex = k; $("action-status").textContent = "改判为：" + sel.options[k].textContent + "（按 Enter 保存）"; }
  }
  else if (e.key === "Enter") { e.preventDefault(); saveCorrection(); }
  else if (e.key === "/") { e.preventDefault(); $("f-status").focus(); }
}

function setup() {
  $("settings-toggle").addEventListener("click", () => { $("settings").hidden = !$("settings").hidden; });
  $("apikey").value = apiKey();
  $("operator").value = operatorId();
  $("save-key").addEventListener("click", () => {
    sessionStorage.setItem(KEY_STORE, $("apikey").value.trim());
    sessionStorage.setItem(OPERATOR_STORE, $("operator").value.trim());
    $("settings").hidden = true;
    departments = [];
    refresh(0);
  });
  $("filters").addEventListener("submit", (e) => { e.preventDefault(); offset = 0; refresh(0); });
  for (const id of ["f-status", "f-channel", "f-department", "f-trigger"]) $(id).addEventListener("change", () => { offset = 0; refresh(0); });
  $("reset").addEventListener("click", () => { $("filters").reset(); offset = 0; refresh(0); });
  $("prev").addEventListener("click", () => { offset = Math.max(0, offset - LIMIT); refresh(0); });
  $("next").addEventListener("click", () => { offset += LIMIT; refresh(0); });
  $("confirm").addEventListener("click", confirmSuggestion);
  $("save-correct").addEventListener("click", saveCorrection);
  $("reopen").addEventListener("click", () => { reopening = true; renderDecided(items[selected]); $("d-target").focus(); });
  document.addEventListener("keydown", onKey);
  checkHealth();
  refresh(0);
  setInterval(checkHealth, 30000);
  setInterval(() => { if (!busy && document.visibilityState === "visible") loadStats().catch(() => {}); }, 30000);
}

document.addEventListener("DOMContentLoaded", setup);
