// Supervisor page (/review), working together: the open pending case is claimed (renewed while it is
// open, released when the supervisor moves on or leaves), a case another reviewer holds cannot be
// decided here; cases ticked in the queue are confirmed in bulk. Loaded before review.js, whose state
// and helpers (api, items, selected, operatorId, refresh) it uses at run time.
"use strict";

let claimedAt = 0;        // when the claim on claimedId was last taken or renewed (ms)

// ------------------------------------------------------------------------------------------------
// Claims: the open pending case is claimed (renewed while open, released when leaving it)
// ------------------------------------------------------------------------------------------------
function setClaimBlock(message) {
  claimBlocked = Boolean(message);
  $("d-claim").hidden = !message;
  $("d-claim").textContent = message || "";
  $("confirm").disabled = claimBlocked || (selected >= 0 && !items[selected].served);
  $("save-correct").disabled = claimBlocked;
}

function release() {
  if (!claimedId) return;
  const id = claimedId;
  claimedId = null;
  const q = operatorId() ? "?operator=" + encodeURIComponent(operatorId()) : "";
  const headers = apiKey() ? { Authorization: "Bearer " + apiKey() } : {};
  fetch("/v1/reviews/" + id + "/claim" + q, { method: "DELETE", headers, keepalive: true }).catch(() => {});
}

async function claim(it) {
  if (claimedId && claimedId !== it.id) release();
  if (it.status !== "pending") { setClaimBlock(""); return; }
  setClaimBlock(heldByOther(it) ? "该案例正由 " + it.claimed_by + " 处理" : "");
  try {
    const out = await api("/v1/reviews/" + it.id + "/claim", operatorId() ? { operator: operatorId() } : {});
    it.claimed_by = out.claimed_by;
    it.claimed_until = out.claimed_until;
    if (selected >= 0 && items[selected].id === it.id) { claimedId = it.id; claimedAt = Date.now(); setClaimBlock(""); }
    else release();   // the supervisor moved on meanwhile
  } catch (e) {
    if (selected >= 0 && items[selected].id === it.id) setClaimBlock(e.status === 409 ? e.message : "");
  }
}

// ------------------------------------------------------------------------------------------------
// Bulk confirm
// ------------------------------------------------------------------------------------------------
function toggleCheck(id, on) {
  if (on) checked.add(id); else checked.delete(id);
  const box = $("queue").querySelector('tr[data-id="' + id + '"] input.pick');
  if (box) box.checked = on;
  updateBulk();
}

function updateBulk() {
  $("bulk-count").textContent = checked.size;
  $("bulk-confirm").disabled = checked.size === 0 || busy;
}

async function bulkConfirm() {
  if (checked.size === 0 || busy) return;
  busy = true;
  $("bulk-status").textContent = "保存中…";
  try {
    const body = { ids: [...checked], decision: "confirm", group: $("f-group").checked };
    if (operatorId()) body.operator = operatorId();
    const out = await api("/v1/reviews/bulk", body);
    checked.clear();
    await refresh(0);
    const skipped = out.skipped.map((s) => "#" + s.id + " " + (SKIP_NAMES[s.reason] || s.reason));
    $("bulk-status").textContent = "已确认 " + (out.decided.length + out.group_decided.length) + " 件" +
      (out.group_decided.length ? "（含同组 " + out.group_decided.length + " 件）" : "") + (skipped.length ? "；未处理：" + skipped.join("，") : "");
  } catch (e) {
    $("bulk-status").textContent = explain(e);
  } finally {
    busy = false;
    updateBulk();
  }
}
