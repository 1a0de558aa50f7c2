// Supervisor page (/review), its read-only panels: each reviewer's history (what they decided, when,
// how: single, group, bulk, re-opened) and two charts drawn as plain SVG (no library, nothing
// downloaded): the confidence histogram of the pending cases and the correction rate per suggested
// department. Loaded before review.js, whose helpers (api, cell, me, DECISION_NAMES) it uses at run time.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const HOW_NAMES = { single: "单件", group: "整组", bulk: "批量确认", reopen: "重新打开" };

// ------------------------------------------------------------------------------------------------
// History
// ------------------------------------------------------------------------------------------------
async function loadHistory() {
  const sel = $("h-reviewer");
  if (!sel.dataset.ready) { sel.dataset.ready = "1"; sel.appendChild(new Option("我（" + me.reviewer + "）", me.reviewer)); }
  const who = sel.value;
  const h = await api("/v1/reviews/history?limit=20" + (who ? "&reviewer=" + encodeURIComponent(who) : ""));
  sel.textContent = "";
  sel.appendChild(new Option("全部复核人", ""));
  const names = new Set(h.reviewers.map((r) => r.reviewer));
  if (!names.has(me.reviewer)) sel.appendChild(new Option(me.reviewer + "（0 件）", me.reviewer));
  for (const r of h.reviewers) sel.appendChild(new Option(r.reviewer + "（" + r.decided + " 件，改判 " + r.corrected + "）", r.reviewer));
  sel.value = who;
  $("h-summary").textContent = "共 " + h.total + " 条" + (h.total > h.items.length ? "，显示最近 " + h.items.length + " 条" : "");
  const tbody = $("h-table").querySelector("tbody");
  tbody.textContent = "";
  for (const d of h.items) {
    const tr = document.createElement("tr");
    tr.dataset.review = d.review_id;
    cell(tr, new Date(d.decided_at).toLocaleString("zh-CN"));
    cell(tr, d.reviewer, "who");
    cell(tr, DECISION_NAMES[d.decision] || d.decision, "decision");
    cell(tr, (d.department_name || d.department || "") + (d.channel ? "（" + d.channel + "）" : ""));
    cell(tr, HOW_NAMES[d.how] || d.how);
    cell(tr, d.text_masked || "", "text");
    tbody.appendChild(tr);
  }
  $("h-empty").hidden = h.items.length > 0;
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
