// Shared by the call-taker page (/), the supervisor page (/review) and the work-order desk (/orders): element lookup, JSON requests
// with the page's API key, and the error banner. Plain JavaScript, no build step.
"use strict";

const $ = (id) => document.getElementById(id);

// The 设置 panel's 保存 (the review page and the work-order desk): the key for this tab, the operator's
// name for this browser (removed when left empty); the panel closes.
function saveSettings(keyStore, nameStore) {
  sessionStorage.setItem(keyStore, $("apikey").value.trim());
  const name = $("operator").value.trim();
  if (name) localStorage.setItem(nameStore, name);
  else localStorage.removeItem(nameStore);
  $("settings").hidden = true;
}

// GET when body is undefined, else POST the body as JSON. Throws an Error with .status on a non-2xx answer.
async function request(path, body, key, signal) {
  const headers = { "Content-Type": "application/json" };
  if (key) headers["Authorization"] = "Bearer " + key;
  let resp;
  try {
    resp = await fetch(path, { method: body === undefined ? "GET" : "POST", headers, body: body === undefined ? undefined : JSON.stringify(body), signal });
  } catch (e) {
    if (e.name === "AbortError") throw e;
    const err = new Error("无法连接服务器（网络或服务中断）");   // the browser's own text is English ("Failed to fetch")
    err.status = 0;
    throw err;
  }
  let data = null;
  try { data = await resp.json(); } catch (e) { data = null; }
  if (!resp.ok) {
    const err = new Error((data && data.detail) || ("HTTP " + resp.status));
    err.status = resp.status;
    throw err;
  }
  return data;
}

function showError(message) {
  const el = $("error");
  el.textContent = message || "";
  el.hidden = !message;
}

// Which model serves and how it computes (/health model_kind and backend), in the call-takers' words.
const MODEL_KINDS = { linear: "线性模型", transformer: "微调 Transformer" };
const BACKENDS = { torch: "PyTorch fp32", "torch-bf16": "PyTorch bf16", onnx: "ONNX fp32", "onnx-int8": "ONNX int8" };

function modelLabel(h) {
  const kind = MODEL_KINDS[h.model_kind] || h.model_kind || "模型";
  const backend = h.backend && h.backend !== h.model_kind ? "（" + (BACKENDS[h.backend] || h.backend) + "）" : "";
  return kind + backend + " · " + (h.model_version || "");
}

// The status pill: which model serves (kind, backend, version), or "degraded" (rules only), or no answer. /health needs no key.
async function checkHealth() {
  const pill = $("status");
  try {
    const h = await request("/health");
    pill.className = "pill " + h.status;
    pill.textContent = h.status === "ok" ? "模型正常 · " + modelLabel(h) : "降级运行：仅规则";
    pill.title = h.reason || "";
  } catch (e) {
    pill.className = "pill down";
    pill.textContent = "服务中断";
    pill.title = "";
  }
}
