/* The supervisor wallboard: tiles, inline-SVG charts, agents with state controls, overdue orders, alerts. */
"use strict";

const SVGNS = "http://www.w3.org/2000/svg";
const STATE_COLORS = { available: "#2e7d32", on_call: "#1565c0", ringing: "#42a5f5", reserved: "#90caf9",
                       wrap_up: "#6a1b9a", not_ready: "#ef6c00", logged_out: "#90a4ae" };
const STATE_LABELS = { available: "就绪 Ready", on_call: "通话 On call", ringing: "振铃 Ringing",
                       reserved: "分配 Reserved", wrap_up: "话后 Wrap-up", not_ready: "未就绪 Not ready",
                       logged_out: "签出 Logged out" };
const TIER_LABELS = { vip: "VIP 大客户", priority: "重要 Priority", normal: "普通 Normal", blacklist: "黑名单 Blacklist" };
const agents = new Map();

function el(name, attrs, text) {
  const e = document.createElementNS(SVGNS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

/* Horizontal bars: [[label, value, color]] */
function bars(targetId, rows) {
  const w = 560, rowH = 26, h = Math.max(rowH * rows.length + 6, 32);
  const max = Math.max(1, ...rows.map((r) => r[1]));
  const svg = el("svg", { viewBox: `0 0 ${w} ${h}`, width: "100%", height: h, role: "img" });
  rows.forEach(([label, value, color], i) => {
    const y = i * rowH + 4;
    svg.append(el("text", { x: 0, y: y + 15 }, label));
    const bw = Math.round((w - 200) * value / max);
    svg.append(el("rect", { x: 150, y, width: Math.max(bw, 2), height: rowH - 8, fill: color || "#1565c0", rx: 3 }));
    svg.append(el("text", { x: 156 + bw, y: y + 15 }, String(value)));
  });
  const box = document.getElementById(targetId);
  box.textContent = "";
  box.append(svg);
}

/* A half-ring gauge for a ratio 0..1; red when beyond `bad`. */
function gauge(targetId, ratio, bad, higherIsBetter) {
  const r = 50, cx = 70, cy = 62, v = Math.max(0, Math.min(1, ratio || 0));
  const a = Math.PI * (1 - v);
  const x = cx + r * Math.cos(a), y = cy - r * Math.sin(a);
  const worse = higherIsBetter ? v < bad : v > bad;
  const svg = el("svg", { viewBox: "0 0 140 76", width: 160, height: 88, role: "img" });
  svg.append(el("path", { d: `M ${cx - r} ${cy} A ${r} ${r} 0 0 1 ${cx + r} ${cy}`, stroke: "#dfe6ee",
                          "stroke-width": 14, fill: "none" }));
  if (v > 0) {
    svg.append(el("path", { d: `M ${cx - r} ${cy} A ${r} ${r} 0 0 1 ${x.toFixed(1)} ${y.toFixed(1)}`,
                            stroke: worse ? "#c62828" : "#2e7d32", "stroke-width": 14, fill: "none" }));
  }
  svg.append(el("text", { x: cx, y: cy - 4, "text-anchor": "middle", class: "gauge-value" },
                `${(v * 100).toFixed(1)}%`));
  const box = document.getElementById(targetId);
  box.textContent = "";
  box.append(svg);
}

function showWallboard(w) {
  if (!w) return;
  const queues = w.queues || [];
  setText("t-waiting", queues.reduce((s, q) => s + (q.waiting || 0), 0));
  setText("t-callbacks", queues.reduce((s, q) => s + (q.callbacks || 0), 0));
  setText("t-longest", Math.round(Math.max(0, ...queues.map((q) => q.longest_wait_s || 0))));
  gauge("g-sl", w.service_level, 0.8, true);
  gauge("g-ab", w.abandon_rate, 0.05, false);
  bars("c-queues", queues.map((q) => [q.queue, q.waiting || 0, (q.waiting || 0) > 5 ? "#c62828" : "#1565c0"]));
  const byState = w.agents || {};
  bars("c-agents", Object.keys(STATE_COLORS).filter((s) => s in byState)
    .map((s) => [STATE_LABELS[s], byState[s], STATE_COLORS[s]]));
  const od = $("overdue");
  od.textContent = "";
  for (const o of w.overdue_workorders || []) {
    const li = document.createElement("li");
    li.className = "overdue";
    li.textContent = `#${o.id} ${o.category} · ${o.status} · ${o.unit || "—"} · 超 ${Math.round(o.overdue_s / 3600)} h`;
    od.append(li);
  }
  if (!od.children.length) od.textContent = "无 none";
  showWaiting(w.waiting_calls || [], w.tiers || []);
  setText("updated", `更新 updated ${new Date().toLocaleTimeString()}`);
}

/* Waiting callers in serving order, each with a priority (tier) picker. Rows are updated in place, so a
   push arriving while the supervisor has a picker open does not close it. */
function showWaiting(calls, tiers) {
  const tb = $("waiting-calls");
  const rows = new Map([...tb.querySelectorAll("tr[data-call]")].map((tr) => [tr.dataset.call, tr]));
  tb.querySelectorAll("tr.empty").forEach((tr) => tr.remove());
  for (const c of calls) {
    let tr = rows.get(c.call_id);
    rows.delete(c.call_id);
    if (!tr) {
      tr = document.createElement("tr");
      tr.dataset.call = c.call_id;
      for (let i = 0; i < 3; i++) tr.append(document.createElement("td"));
      const td = document.createElement("td");
      const sel = document.createElement("select");
      sel.setAttribute("aria-label", `优先级 priority ${c.caller || c.call_id}`);
      for (const t of tiers) sel.append(new Option(TIER_LABELS[t] || t, t));
      sel.onchange = () => setPriority(c.call_id, sel);
      td.append(sel);
      tr.append(td);
    }
    const [caller, queue, wait] = tr.children;
    caller.textContent = (c.caller || "—") + (c.callback ? " · 回拨 callback" : "") + (c.ringing ? " · 振铃 ringing" : "");
    queue.textContent = c.queue;
    wait.textContent = fmtDuration(c.wait_s);
    const sel = tr.querySelector("select");
    tr.dataset.tier = c.tier;
    if (document.activeElement !== sel) sel.value = c.tier;
    tb.append(tr);  // appending an existing row moves it: the table follows the serving order
  }
  for (const tr of rows.values()) tr.remove();
  if (!calls.length) {
    const tr = document.createElement("tr");
    tr.className = "empty";
    const td = document.createElement("td");
    td.colSpan = 4;
    td.textContent = "无人排队 nobody waiting";
    tr.append(td);
    tb.append(tr);
  }
}

async function setPriority(callId, sel) {
  $("priority-err").textContent = "";
  const r = await api("POST", `/api/queue/${encodeURIComponent(callId)}/priority`, { tier: sel.value });
  if (!r.ok) {
    $("priority-err").textContent = `${callId}: ${r.error}`;
    sel.value = sel.closest("tr").dataset.tier;  // back to what the ACD has
  }
  sel.blur();
}

async function setAgent(agentNo, action, reason) {
  $("agent-err").textContent = "";
  const r = await api("POST", `/api/agents/${encodeURIComponent(agentNo)}/state`,
                      reason ? { action, reason } : { action });
  if (!r.ok) $("agent-err").textContent = `${agentNo}: ${r.error}`;
}

function renderAgents() {
  const tb = $("agents");
  tb.textContent = "";
  for (const a of [...agents.values()].sort((x, y) => x.agent_id.localeCompare(y.agent_id))) {
    const tr = document.createElement("tr");
    const cells = [a.agent_id, STATE_LABELS[a.state] || a.state, a.reason || ""];
    for (const c of cells) { const td = document.createElement("td"); td.textContent = c; tr.append(td); }
    const td = document.createElement("td");
    const ready = document.createElement("button"); ready.textContent = "就绪 Ready";
    ready.onclick = () => setAgent(a.agent_id, "ready");
    const brk = document.createElement("button"); brk.textContent = "小休 Break";
    brk.onclick = () => setAgent(a.agent_id, "not_ready", "break");
    td.append(ready, " ", brk); tr.append(td); tb.append(tr);
  }
}

function alert_(text) {
  const li = document.createElement("li");
  li.className = "alert";
  li.textContent = `${new Date().toLocaleTimeString()} ${text}`;
  $("alerts").prepend(li);
  while ($("alerts").children.length > 20) $("alerts").lastChild.remove();
}

function onPush(msg) {
  if (msg.type === "snapshot") {
    for (const a of msg.data.agents || []) agents.set(a.agent_id, a);
    renderAgents();
    showWallboard(msg.data.wallboard);
  } else if (msg.type === "wallboard") {
    showWallboard(msg.data);
  } else if (msg.type === "agent_state") {
    agents.set(msg.data.agent_id, msg.data);
    renderAgents();
  } else if (msg.type === "escalation") {
    alert_(`升级 Escalation: ${msg.data.agent_id} 通话 call ${msg.data.call_id} ${msg.data.note || ""}`);
  } else if (msg.type === "workorder_alert" && msg.data.action === "escalation") {
    const stage = msg.data.stage === "dispatch" ? "派单 dispatch" : "回复 reply";
    alert_(`工单超期 Work order #${msg.data.id} ${msg.data.category} ${stage} overdue (${msg.data.unit || "-"})`);
  } else if (msg.type === "staffing_warning") {
    alert_(`在岗不足 Understaffed: ${msg.data.agent_id} 签出后 ${msg.data.logged_in}/${msg.data.minimum}`);
  }
}

function onConn(up) {
  $("conn").className = up ? "conn" : "conn down";
  $("conn").textContent = up ? "● 已连接 online" : "● 重连中 reconnecting";
}

async function start(me) {
  $("who").textContent = `${me.user.name} (${me.user.agent_no})`;
  wireSignOut();
  if (me.user.role === "agent") {
    $("login-box").classList.remove("hidden");
    $("login-err").textContent = "需要班长权限 Supervisor role needed";
    return;
  }
  $("board").classList.remove("hidden");
  const w = await api("GET", "/api/wallboard");
  if (w.ok) showWallboard(w.data);
  new Push(onPush, onConn);
}

signIn(start);
