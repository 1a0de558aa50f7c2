// Supervisor page (/review): the review queue (least confident first) with filters, text search and
// pages, identical summaries grouped into one row; one case in detail (masked text, suggestion,
// reasons, alternatives with their digit keys, what the model thought when a rule decided);
// keyboard-friendly confirm/correct (digits, or type part of a department's name or code);
// claims so two supervisors don't work on one case; bulk confirm; each reviewer's history; and two
// charts drawn as plain SVG (no library, nothing downloaded).
// Reviewer name: the key's name when HOTLINE_API_KEYS gives one (GET /v1/reviews/me), else the name
// the page asks for once and keeps in localStorage (sent as "operator").
// review-panels.js (loaded first) draws the read-only panels: the history and the two charts;
// review-work.js (loaded first) holds claims and bulk confirm.
// Plain JavaScript, no build step. All server text is inserted with textContent (never as HTML).
"use strict";

const LIMIT = 50;
const KEY_STORE = "hotline-supervisor-key";
const NAME_STORE = "hotline-reviewer-name";   // localStorage: asked once per browser
const SKIP_NAMES = { decided: "已复核", claimed: "他人处理中", not_found: "不存在", not_served: "建议部门已不在当前分类" };
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
let me = null;            // {reviewer, from_key, claim_minutes}
let askedName = false;
const checked = new Set();  // ids ticked for bulk confirm
let claimedId = null;     // the case this page holds a claim on
let claimBlocked = false; // the selected case is held by another reviewer
let targetCodes = [];     // the selected case's correction choices (served departments), most likely first

function apiKey() { return sessionStorage.getItem(KEY_STORE) || ""; }
function operatorId() { return localStorage.getItem(NAME_STORE) || ""; }
function pct(x) { return Math.round(x * 100) + "%"; }
function deptName(code) {
  const d = departments.find((x) => x.code === code);
  return d ? d.name : code;
}

async function api(path, body) { return request(path, body, apiKey()); }

function explain(err) {
  if (err.status === 401) { $("settings").hidden = false; return "需要有效的班长 API 密钥：请在“设置”中填写"; }
  if (err.status === 403) { $("settings").hidden = false; return "此密钥无权复核（需要班长或管理员密钥）"; }
  if (err.status === 409) return err.message.startsWith("该案例") ? err.message : "该案例已有复核结论：" + err.message;
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

async function loadMe() {
  const q = operatorId() ? "?operator=" + encodeURIComponent(operatorId()) : "";
  me = await api("/v1/reviews/me" + q);
  $("reviewer").textContent = "复核人：" + me.reviewer;
  $("operator-label").hidden = me.from_key;
  $("name-prompt").hidden = me.from_key || Boolean(operatorId());
  if (!$("name-prompt").hidden && !askedName) {   // ask once; the answer stays in this browser
    askedName = true;
    $("settings").hidden = false;
  }
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
  if ($("f-q").value.trim()) p.set("q", $("f-q").value.trim());
  if ($("f-group").checked) p.set("group", "true");
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
    await loadModelInfo();   // every time: after a promotion the served departments change
    if (!me) await loadMe();
    await Promise.all([loadQueue(keepIndex), loadStats(), loadHistory()]);
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

function heldByOther(it) {
  return it.status === "pending" && it.claimed_by && me && it.claimed_by !== me.reviewer && new Date(it.claimed_until) > new Date();
}

function renderQueue() {
  const tbody = $("queue").querySelector("tbody");
  tbody.textContent = "";
  const shown = new Set(items.map((it) => it.id));
  for (const id of [...checked]) if (!shown.has(id)) checked.delete(id);
  items.forEach((it, i) => {
    const tr = document.createElement("tr");
    tr.dataset.id = it.id;
    tr.dataset.group = it.group_size;
    cell(tr, it.source === "override" ? "规则" : pct(it.confidence), "conf");
    cell(tr, it.channel, "ch" + it.channel);
    cell(tr, it.department_name);
    cell(tr, TRIGGER_NAMES[it.trigger] || it.trigger);
    cell(tr, it.text_masked, "text");
    if (it.group_size > 1) {
      const badge = document.createElement("span");
      badge.className = "count";
      badge.textContent = "×" + it.group_size;
      badge.title = "相同摘要共 " + it.group_size + " 件";
      tr.lastChild.prepend(badge);
    }
    cell(tr, it.status === "decided" ? DECISION_NAMES[it.decision] || STATUS_NAMES.decided
      : heldByOther(it) ? it.claimed_by + " 处理中" : STATUS_NAMES.pending, heldByOther(it) ? "claimed" : "");
    const box = document.createElement("input");
    box.type = "checkbox";
    box.className = "pick";
    box.checked = checked.has(it.id);
    box.disabled = it.status !== "pending";
    box.setAttribute("aria-label", "勾选 #" + it.id);
    box.addEventListener("click", (e) => { e.stopPropagation(); toggleCheck(it.id, box.checked); });
    const td = document.createElement("td");
    td.appendChild(box);
    tr.appendChild(td);
    tr.addEventListener("click", () => select(i));
    tbody.appendChild(tr);
  });
  updateBulk();
  $("empty").hidden = items.length > 0;
  $("page-info").textContent = total === 0 ? "共 0 条" : "第 " + (offset + 1) + "–" + (offset + items.length) + " 条，共 " + total + " 条";
  $("prev").disabled = offset === 0;
  $("next").disabled = offset + items.length >= total;
}

function targets(it) {
  // Department choices for a correction, most likely first: the call-taker's, the alternatives, the
  // rest; only departments of the served taxonomy (a case routed with an earlier one may name others).
  const order = [];
  const served = new Set(departments.map((d) => d.code));
  const add = (code) => { if (code && served.has(code) && code !== it.department && !order.includes(code)) order.push(code); };
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
  if (i < 0) { $("detail").hidden = true; release(); return; }
  rows[i].scrollIntoView({ block: "nearest" });
  renderDetail(items[i]);
  claim(items[i]);
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
  // A danger rule's decision has no probability of its own: say so, and show what the model thought.
  $("d-confidence").textContent = it.source === "override" ? "规则判定（110 先行）" : "置信度 " + pct(it.confidence);
  $("d-source").textContent = SOURCE_NAMES[it.source] || it.source;
  const mv = $("d-model-view");
  const modelAlt = it.alternatives.find((a) => a.department === it.model_department);
  mv.hidden = !(it.model_department && it.model_department !== it.department);
  mv.textContent = mv.hidden ? "" : "模型认为：" + (it.model_department_name || it.model_department) + (modelAlt ? " " + pct(modelAlt.probability) : "");
  $("d-group").hidden = !(it.group_size > 1);
  $("d-group").textContent = it.group_size > 1 ? "相同摘要共 " + it.group_size + " 件待处理：确认或改判对整组生效" : "";
  $("d-old").hidden = it.served;
  $("d-old").textContent = it.served ? "" : "建议部门“" + it.department_name + "”属于此前的分类" + (it.model_version ? "（模型 " + it.model_version + "）" : "") +
    "，当前使用的分类中已没有：请改判为下列部门之一";
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
  targetCodes = targets(it);
  const tbody = $("d-alternatives").querySelector("tbody");
  tbody.textContent = "";
  for (const a of it.alternatives) {
    const tr = document.createElement("tr");
    const k = targetCodes.indexOf(a.department);
    cell(tr, k >= 0 && k < 9 ? String(k + 1) : "", "key");
    cell(tr, a.department_name + (k < 0 && !departments.some((d) => d.code === a.department) ? "（旧分类）" : ""));
    cell(tr, a.channel, "ch" + a.channel);
    cell(tr, pct(a.probability));
    tbody.appendChild(tr);
  }
  $("d-alternatives").hidden = it.alternatives.length === 0;

  $("d-search").value = "";
  fillTargets("", "");
  $("d-comment").value = "";
  renderDecided(it);
  setClaimBlock(heldByOther(it) ? "该案例正由 " + it.claimed_by + " 处理" : "");
}

// The correction list, narrowed to departments whose name or code contains ``filter``. No department
// is chosen until the supervisor chooses one: Enter on its own must never save a correction to
// whatever happens to be first (that label would flow into retraining). Digits keep their numbers.
function fillTargets(filter, keep) {
  const sel = $("d-target");
  const f = filter.trim().toLowerCase();
  sel.textContent = "";
  sel.appendChild(new Option(f ? "— 匹配“" + filter.trim() + "”的部门 —" : "— 按 1–9、t 查找或在此选择改判部门 —", ""));
  targetCodes.forEach((code, k) => {
    const name = deptName(code);
    if (f && !name.toLowerCase().includes(f) && !code.toLowerCase().includes(f)) return;
    const d = departments.find((x) => x.code === code);
    sel.appendChild(new Option((k < 9 ? (k + 1) + " · " : "") + name + (d ? "（" + d.channel + "）" : ""), code));
  });
  if (f) {
    sel.size = Math.min(8, Math.max(2, sel.options.length));   // shown as a list while filtering
    sel.selectedIndex = sel.options.length > 1 ? 1 : 0;
  } else {
    sel.removeAttribute("size");
    sel.value = keep || "";
  }
}

function chooseTarget(code) {
  const sel = $("d-target");
  $("d-search").value = "";
  fillTargets("", code);
  if (sel.value) $("action-status").textContent = "改判为：" + sel.options[sel.selectedIndex].textContent + "（按 Enter 保存）";
}

function onSearchKey(e) {
  if (e.isComposing) return;   // the input method is still composing Chinese characters
  const sel = $("d-target");
  if (e.key === "ArrowDown" || e.key === "ArrowUp") {
    e.preventDefault();
    const step = e.key === "ArrowDown" ? 1 : -1;
    sel.selectedIndex = Math.min(sel.options.length - 1, Math.max(sel.options.length > 1 ? 1 : 0, sel.selectedIndex + step));
  } else if (e.key === "Enter") {
    e.preventDefault();
    e.stopPropagation();
    if (!sel.value) { $("action-status").textContent = "没有匹配的部门"; return; }
    chooseTarget(sel.value);
    $("d-search").blur();   // back to the page: Enter now saves, j/k move
  } else if (e.key === "Escape") {
    e.stopPropagation();
    $("d-search").value = "";
    fillTargets("", "");
    $("d-search").blur();
  }
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
  if (claimBlocked) { $("action-status").textContent = $("d-claim").textContent; return; }
  if (body.decision === "confirm" && !it.served) { $("action-status").textContent = $("d-old").textContent; return; }
  if (it.group_size > 1 && !reopening) body.group = true;
  const comment = $("d-comment").value.trim();
  if (comment) body.comment = comment;
  if (operatorId()) body.operator = operatorId();
  if (reopening) body.reopen = true;
  busy = true;
  $("action-status").textContent = "保存中…";
  try {
    const out = await api("/v1/reviews/" + it.id, body);
    if (claimedId === it.id) claimedId = null;   // deciding ended the claim
    const keep = selected + ($("f-status").value === "pending" ? 0 : 1);   // pending: the next case moves up
    await refresh(keep);
    $("action-status").textContent = (out.decision === "confirm" ? "已确认建议：" : "已改判为：") + (out.decided_department_name || out.decided_department) +
      (out.group_decided.length ? "（同组另 " + out.group_decided.length + " 件）" : "");
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
  else if (e.key === "t") { e.preventDefault(); $("d-search").focus(); }
  else if (e.key === "x") { e.preventDefault(); if (selected >= 0 && items[selected].status === "pending") toggleCheck(items[selected].id, !checked.has(items[selected].id)); }
  else if (e.key === "/") { e.preventDefault(); $("f-status").focus(); }
}

function setup() {
  $("settings-toggle").addEventListener("click", () => { $("settings").hidden = !$("settings").hidden; });
  $("apikey").value = apiKey();
  $("operator").value = operatorId();
  $("save-key").addEventListener("click", () => {
    saveSettings(KEY_STORE, NAME_STORE);
    departments = [];
    me = null;
    refresh(0);
  });
  $("d-search").addEventListener("input", () => fillTargets($("d-search").value, ""));
  $("d-search").addEventListener("keydown", onSearchKey);
  $("d-target").addEventListener("change", () => { if (!$("d-search").value) return; chooseTarget($("d-target").value); });
  $("bulk-confirm").addEventListener("click", bulkConfirm);
  $("check-all").addEventListener("change", () => { for (const it of items) if (it.status === "pending") toggleCheck(it.id, $("check-all").checked); });
  $("h-reviewer").addEventListener("change", () => loadHistory().catch((e) => showError(explain(e))));
  $("f-group").addEventListener("change", () => { offset = 0; refresh(0); });
  window.addEventListener("pagehide", release);
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
  setInterval(() => {   // renew the claim on the open case well before it expires (checked every 15 s)
    const due = me ? Math.min(60000, me.claim_minutes * 30000) : 60000;
    if (claimedId && selected >= 0 && items[selected].id === claimedId && Date.now() - claimedAt >= due) claim(items[selected]);
  }, 15000);
}

document.addEventListener("DOMContentLoaded", setup);
