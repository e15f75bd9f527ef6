/* The agent desktop: state buttons, the screen pop, disposition and work-order forms. */
"use strict";

const desk = { me: null, call: null, customer: null, state: null };
const XFER_REASONS = { unreachable: "话机不可达 the phone is not reachable", busy: "忙 busy",
                       noanswer: "无人接听 no answer" };
const TIERS = { vip: "VIP 大客户", priority: "重要 Priority", normal: "普通 Normal", blacklist: "黑名单 Blacklist" };

function fillSelect(id, entries, withBlank) {
  const sel = $(id);
  sel.textContent = "";
  if (withBlank) sel.append(new Option("—", ""));
  for (const [value, label] of entries) sel.append(new Option(label, value));
}

function showState(st) {
  desk.state = st;
  const el = $("state");
  const name = st ? st.state : "logged_out";
  el.className = `badge state-${name}`;
  el.textContent = { available: "就绪 Ready", not_ready: "未就绪 Not ready", on_call: "通话 On call",
                     ringing: "振铃 Ringing", reserved: "分配中 Reserved", wrap_up: "话后 Wrap-up",
                     logged_out: "未签入 Logged out" }[name] || name;
  if (st && st.reason && name === "not_ready") el.textContent += ` (${st.reason})`;
  el.dataset.state = name;
}

async function changeState(action, reason) {
  $("state-err").textContent = "";
  const body = reason ? { action, reason } : { action };
  const r = await api("POST", `/api/agents/${encodeURIComponent(desk.me.user.agent_no)}/state`, body);
  if (!r.ok) { $("state-err").textContent = r.error; return; }
  showState(r.data);
}

function showPop(pop) {
  desk.call = pop;
  const c = pop.customer || {};
  desk.customer = c;
  $("pop").classList.remove("empty");
  const cb = pop.callback ? " · 回拨 callback" : "";
  setText("pop-phase", (pop.phase === "answer" ? "· 通话中 answered" : "· 振铃 ringing") + cb);
  setText("pop-number", pop.number);
  // a caller without a customer record: the CallerID name Asterisk gave, marked as such
  setText("pop-name", c.name || pop.caller_name || "未识别 Unknown caller");
  $("pop-name-src").textContent = !c.name && pop.caller_name ? "(来电显示 caller ID)" : "";
  setText("pop-account", c.account);
  // the tier the ACD routed on (tier rules, the IVR); the record's own tier too when it differs
  const routed = pop.tier || c.tier;
  const tier = $("pop-tier");
  tier.className = `badge tier-${routed || "normal"}`;
  tier.textContent = TIERS[routed] || routed || "—";
  const differs = Boolean(pop.tier && c.tier && c.tier !== pop.tier);
  $("pop-tier-record").classList.toggle("hidden", !differs);
  $("pop-tier-record").textContent = differs ? `档案 record: ${TIERS[c.tier] || c.tier}` : "";
  setText("pop-area", c.area);
  const out = c.outage;
  $("pop-outage").className = out ? "outage" : "";
  setText("pop-outage", out ? (typeof out === "string" ? out
    : [out.kind === "planned" ? "计划停电 planned" : "故障停电 fault", out.reason,
       out.expected_restore ? `预计恢复 ${out.expected_restore}` : ""].filter(Boolean).join(" · ")) : "无 none");
  setText("pop-arrears", c.arrears !== undefined && c.arrears !== null ? `¥ ${c.arrears}` : null);
  setText("pop-ivr", (pop.ivr_path || []).join(" → "));
  setText("pop-wait", fmtDuration(pop.wait_s));
  setText("pop-queue", pop.queue);
  const hist = $("pop-history");
  hist.textContent = "";
  for (const h of (c.history || []).slice(0, 8)) {
    const li = document.createElement("li");
    li.textContent = `${fmtTime(h.ts)}  ${h.category || ""}  ${h.note || ""}`;
    hist.append(li);
  }
  // prefill the after-call forms with the five key fields we already know
  $("wo-number").value = pop.number || "";
  $("wo-name").value = c.name || pop.caller_name || "";
  $("wo-account").value = c.account || "";
  for (const id of ["escalate", "hangup", "xfer-agent", "xfer-queue"]) $(id).disabled = false;
  loadWorkOrders();
}

function callEnded(callId) {
  if (desk.call && desk.call.call_id === callId) {
    setText("pop-phase", "· 已结束 ended");
    for (const id of ["escalate", "hangup", "xfer-agent", "xfer-queue"]) $(id).disabled = true;
  }
}

async function loadWorkOrders() {
  const list = $("wo-list");
  list.textContent = "";
  const account = desk.customer && desk.customer.account;
  if (!account) return;
  const r = await api("GET", `/api/workorders?account=${encodeURIComponent(account)}&limit=10`);
  if (!r.ok) return;
  for (const w of r.data) {
    const li = document.createElement("li");
    li.textContent = `#${w.id} ${w.category} · ${w.status} · 期限 due ${fmtTime(w.due_ts)}`
      + (w.overdue ? " · 超期 OVERDUE" : "") + ` · ${w.content.slice(0, 40)}`;
    if (w.overdue) li.className = "overdue";
    list.append(li);
  }
}

function onPush(msg) {
  if (msg.type === "snapshot") {
    showState(msg.data.state);
    if (msg.data.pop) showPop(msg.data.pop);
  } else if (msg.type === "pop") {
    showPop(msg.data);
  } else if (msg.type === "state") {
    showState(msg.data);
  } else if (msg.type === "call_end") {
    callEnded(msg.data.call_id);
  } else if (msg.type === "transfer_failed") {
    transferFailed(msg.data);
  } else if (msg.type === "workorder_alert") {
    const w = msg.data, li = document.createElement("li");
    const what = w.action === "escalation" ? "超期 OVERDUE" : "即将到期 due soon";
    li.textContent = `工单 #${w.id} ${w.category} · ${w.stage === "dispatch" ? "派单 dispatch" : "回复 reply"} `
      + `· ${what} · 期限 due ${fmtTime(w.due_ts)}`;
    if (w.action === "escalation") li.className = "overdue";
    $("wo-alerts").prepend(li);
    while ($("wo-alerts").children.length > 10) $("wo-alerts").lastChild.remove();
  }
}

/* A blind transfer that could not complete: why, and where the caller went (back to me, or my queue). */
function transferFailed(d) {
  const back = d.returned_to === "agent" ? "来电回到您 the caller is coming back to you"
    : d.returned_to === "queue" ? `来电回到队列 the caller is back in queue ${d.queue || ""}`
    : "来电进入备用队列 the caller is in the fallback queue";
  $("call-err").textContent = `转接 ${d.target} 失败 Transfer to ${d.target} failed: `
    + `${XFER_REASONS[d.reason] || d.reason}; ${back}`;
}

function transfer(targetKind) {
  const target = $("xfer-target").value.trim();
  if (target) callAction("transfer", { target_kind: targetKind, target, kind: "blind" });
}

function onConn(up) {
  const el = $("conn");
  el.className = up ? "conn" : "conn down";
  el.textContent = up ? "● 已连接 online" : "● 重连中 reconnecting";
}

async function submitDisposition(ev) {
  ev.preventDefault();
  $("disp-err").textContent = ""; $("disp-ok").textContent = "";
  const call = desk.call || {};
  const c = desk.customer || {};
  const body = { category: $("disp-category").value, note: $("disp-note").value,
                 resolved: $("disp-resolved").checked };
  if (call.call_id) body.call_id = call.call_id;
  if (call.number) body.caller_number = call.number;
  if (c.account) body.customer_account = c.account;
  const r = await api("POST", "/api/dispositions", body);
  if (!r.ok) { $("disp-err").textContent = r.error; return; }
  $("disp-ok").textContent = `已保存 Saved #${r.data.id}`;
  $("disp-note").value = "";
}

async function submitWorkOrder(ev) {
  ev.preventDefault();
  $("wo-err").textContent = ""; $("wo-ok").textContent = "";
  const call = desk.call || {};
  const body = { category: $("wo-category").value, incoming_number: $("wo-number").value.trim(),
                 customer_name: $("wo-name").value.trim(), content: $("wo-content").value,
                 anonymous: $("wo-anon").checked };
  if (call.call_id) body.call_id = call.call_id;
  const account = $("wo-account").value.trim();
  if (account) body.customer_account = account;
  if ($("wo-unit").value) body.unit = $("wo-unit").value;
  const r = await api("POST", "/api/workorders", body);
  if (!r.ok) { $("wo-err").textContent = r.error; return; }
  $("wo-ok").textContent = `工单 #${r.data.id} 已创建 created · 期限 due ${fmtTime(r.data.due_ts)}`;
  $("wo-content").value = "";
  loadWorkOrders();
}

async function callAction(path, body) {
  $("call-err").textContent = "";
  if (!desk.call) return;
  const r = await api("POST", `/api/calls/${encodeURIComponent(desk.call.call_id)}/${path}`, body);
  if (!r.ok) $("call-err").textContent = r.error;
}

function start(me) {
  desk.me = me;
  $("desk").classList.remove("hidden");
  $("who").textContent = `${me.user.name} (${me.user.agent_no})`;
  fillSelect("reason", Object.entries(me.not_ready_reasons));
  fillSelect("disp-category", Object.entries(me.categories));
  fillSelect("wo-category", me.workorder_categories.map((k) => [k, me.categories[k] || k]));
  fillSelect("wo-unit", me.units.map((u) => [u, u]), true);
  $("acd-login").addEventListener("click", () => changeState("login"));
  $("ready").addEventListener("click", () => changeState("ready"));
  $("not-ready").addEventListener("click", () => changeState("not_ready", $("reason").value));
  $("acd-logout").addEventListener("click", () => changeState("logout"));
  $("escalate").addEventListener("click", () => callAction("escalate", { note: "" }));
  $("hangup").addEventListener("click", () => callAction("hangup", {}));
  $("xfer-agent").addEventListener("click", () => transfer("agent"));
  $("xfer-queue").addEventListener("click", () => transfer("queue"));
  $("disp-form").addEventListener("submit", submitDisposition);
  $("wo-form").addEventListener("submit", submitWorkOrder);
  wireSignOut();
  desk.push = new Push(onPush, onConn);
}

signIn(start);
