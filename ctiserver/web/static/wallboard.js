/* The supervisor wallboard: tiles, inline-SVG charts, agents with state controls, overdue orders, alerts. */
"use strict";

const SVGNS = "http://www.w3.org/2000/svg";
const STATE_COLORS = { available: "#2e7d32", on_call: "#1565c0", ringing: "#42a5f5", reserved: "#90caf9",
                       wrap_up: "#6a1b9a", not_ready: "#ef6c00", logged_out: "#90a4ae" };
Object.assign(TEXTS, {
  title: ["班长监控", "Wallboard"], heading: ["95598 班长监控", "95598 Supervisor wallboard"],
  calls_waiting: ["排队", "Calls waiting"], callbacks_waiting: ["待回拨", "Callbacks waiting"],
  longest_wait: ["最长等待（秒）", "Longest wait (s)"], sl_today: ["今日服务水平", "Service level today"],
  ab_today: ["今日放弃率", "Abandon rate today"], per_queue: ["各队列排队", "Waiting per queue"],
  by_state: ["坐席状态", "Agents by state"], agents: ["坐席", "Agents"], th_agent: ["工号", "Agent"],
  th_state: ["状态", "State"], th_reason: ["原因", "Reason"], th_action: ["操作", "Action"],
  waiting_callers: ["排队来电", "Waiting callers"], th_caller: ["来电", "Caller"], th_queue: ["队列", "Queue"],
  th_wait: ["等待", "Wait"], th_priority: ["优先级", "Priority"], overdue_orders: ["超期工单", "Overdue work orders"],
  alerts: ["提醒", "Alerts"], st_available: ["就绪", "Ready"], st_on_call: ["通话", "On call"],
  st_ringing: ["振铃", "Ringing"], st_reserved: ["分配", "Reserved"], st_wrap_up: ["话后", "Wrap-up"],
  st_not_ready: ["未就绪", "Not ready"], st_logged_out: ["签出", "Logged out"],
  direct: ["非ACD通话", "Outside the ACD"],
  th_qc: ["质检均分", "QC avg"], listen_btn: ["监听", "Listen"], whisper_btn: ["密语", "Whisper"],
  barge_btn: ["强插", "Barge"], monitoring: ["{0}：正在呼叫您的话机", "{0}: ringing your phone"],
  th_name: ["姓名", "Name"], th_in_state: ["时长", "Time in state"], no_agents: ["没有坐席", "no agents"],
  no_agents_in: ["没有坐席签入", "no agent logged in"], no_alerts: ["暂无提醒", "no alerts"],
  no_overdue: ["没有超期工单", "no overdue work orders"], no_queues: ["没有队列", "no queues"], ready_btn: ["就绪", "Ready"], break_btn: ["小休", "Break"],
  priority_of: ["优先级 {0}", "priority {0}"], callback: [" · 回拨", " · callback"], ringing: [" · 振铃", " · ringing"],
  nobody_waiting: ["无人排队", "nobody waiting"], hours_over: ["超 {0} 小时", "{0} h over"],
  updated: ["更新 {0}", "updated {0}"], supervisor_needed: ["需要班长权限", "Supervisor role needed"],
  escalation: ["升级：{0} 通话 {1} {2}", "Escalation: {0} call {1} {2}"],
  understaffed: ["在岗不足：{0} 签出后 {1}/{2}", "Understaffed: {0} logged out, {1}/{2} left"],
  wo_open: ["待处理", "open"], wo_dispatched: ["已派单", "dispatched"], wo_resolved: ["已办结", "resolved"],
  wo_closed: ["已关闭", "closed"], wo_reopened: ["已重开", "reopened"],
  wo_overdue: ["工单超期：#{0} {1} {2}超期（{3}）", "Work order #{0} {1}: {2} overdue ({3})"],
  stage_dispatch: ["派单", "dispatch"], stage_reply: ["回复", "reply"],
  kpi_live: ["今日指标", "Today's KPIs"], th_scope: ["范围", "Scope"], th_offered: ["呼入", "Offered"],
  th_answered: ["接听", "Answered"], th_sl: ["服务水平", "Service level"], th_asa: ["平均应答（秒）", "ASA (s)"],
  th_ab: ["放弃率", "Abandon rate"], th_sl_hh: ["本半小时服务水平", "SL this half hour"], all_calls: ["全部", "All"],
  adherence: ["排班遵守度", "Schedule adherence"], no_roster: ["本周未排班", "no roster this week"],
  all_adherent: ["全部按排班", "everyone on schedule"], team_adh: ["{0} 班组 {1}", "team {0} {1}"],
  out_of_adh: ["{0}：排班 {1}，当前 {2}", "{0}: scheduled {1}, now {2}"],
});
const agents = new Map();
const board = { me: null, last: null, qc: {} };

function text(key, fallback) {
  return key in TEXTS ? t(key) : fallback;
}

function stateName(state) {
  return text(`st_${state}`, state);
}

function nameOf(table, code) {
  return label(((board.me || {})[table] || {})[code], code);
}

function tierName(tier) {
  return nameOf("tiers", tier);
}

/* A chart or list with nothing to show says so. */
function emptyBox(id, key) {
  const box = $(id);
  box.textContent = "";
  const p = document.createElement("p");
  p.className = "empty";
  p.textContent = t(key);
  box.append(p);
}

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
  board.last = w;
  const queues = w.queues || [];
  setText("t-waiting", queues.reduce((s, q) => s + (q.waiting || 0), 0));
  setText("t-callbacks", queues.reduce((s, q) => s + (q.callbacks || 0), 0));
  setText("t-longest", Math.round(Math.max(0, ...queues.map((q) => q.longest_wait_s || 0))));
  gauge("g-sl", w.service_level, 0.8, true);
  gauge("g-ab", w.abandon_rate, 0.05, false);
  if (queues.length) {
    bars("c-queues", queues.map((q) => [nameOf("queues", q.queue), q.waiting || 0,
                                        (q.waiting || 0) > 5 ? "#c62828" : "#1565c0"]));
  } else emptyBox("c-queues", "no_queues");
  const byState = w.agents || {};
  const states = Object.keys(STATE_COLORS).filter((s) => s in byState && s !== "logged_out" && byState[s]);
  if (states.length) bars("c-agents", states.map((s) => [stateName(s), byState[s], STATE_COLORS[s]]));
  else emptyBox("c-agents", "no_agents_in");
  const od = $("overdue");
  od.textContent = "";
  for (const o of w.overdue_workorders || []) {
    const li = document.createElement("li");
    li.className = "overdue";
    li.textContent = `#${o.id} ${nameOf("categories", o.category)} · ${text(`wo_${o.status}`, o.status)} · `
      + `${o.unit ? nameOf("units", o.unit) : "—"} · ${t("hours_over", Math.round(o.overdue_s / 3600))}`;
    od.append(li);
  }
  if (!od.children.length) emptyBox("overdue", "no_overdue");
  showWaiting(w.waiting_calls || [], w.tiers || []);
  setText("updated", t("updated", new Date().toLocaleTimeString()));
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
      for (const tier of tiers) sel.append(new Option(tierName(tier), tier));
      sel.onchange = () => setPriority(c.call_id, sel);
      td.append(sel);
      tr.append(td);
    }
    const [caller, queue, wait] = tr.children;
    caller.textContent = (c.caller || "—") + (c.callback ? t("callback") : "") + (c.ringing ? t("ringing") : "");
    queue.textContent = nameOf("queues", c.queue);
    wait.textContent = fmtDuration(c.wait_s);
    const sel = tr.querySelector("select");
    sel.setAttribute("aria-label", t("priority_of", c.caller || c.call_id));
    [...sel.options].forEach((o) => { o.textContent = tierName(o.value); });
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
    td.textContent = t("nobody_waiting");
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

async function monitor(agentNo, mode) {
  $("agent-err").textContent = "";
  const r = await api("POST", "/api/monitor", { agent: agentNo, mode });
  $("agent-err").textContent = r.ok ? t("monitoring", t(mode + "_btn")) : `${agentNo}: ${r.error}`;
}

/* This month's QC average per agent (the agent list's QC column), refreshed every 5 minutes. */
async function loadQc() {
  const d = new Date();
  const month = `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}`;
  const r = await api("GET", `/api/qc/figures?month=${month}`);
  if (r.ok) { board.qc = r.data.agents || {}; renderAgents(); }
}

async function setAgent(agentNo, action, reason) {
  $("agent-err").textContent = "";
  const r = await api("POST", `/api/agents/${encodeURIComponent(agentNo)}/state`,
                      reason ? { action, reason } : { action });
  if (!r.ok) $("agent-err").textContent = `${agentNo}: ${r.error}`;
}

/* An agent as the server sent them; `since` (this browser's clock) times their state from now on. */
function noteAgent(a, inState) {
  const old = agents.get(a.agent_id) || {};
  agents.set(a.agent_id, { ...old, ...a, since: Date.now() / 1000 - (inState || 0) });
}

function inState(a) {
  return a.state === "logged_out" ? "" : fmtDuration(Math.max(0, Date.now() / 1000 - a.since));
}

function renderAgents() {
  const tb = $("agents");
  tb.textContent = "";
  for (const a of [...agents.values()].sort((x, y) => x.agent_id.localeCompare(y.agent_id))) {
    const tr = document.createElement("tr");
    tr.dataset.agent = a.agent_id;
    const qc = board.qc[a.agent_id];
    const cells = [a.agent_id, a.name || "", stateName(a.state), inState(a),
                   a.reason && a.state === "not_ready" ? nameOf("reasons", a.reason)
                     : a.state === "on_call" && a.reason === "direct" ? t("direct") : "",
                   qc && qc.avg_score !== null ? `${qc.avg_score} (${qc.inspected})` : ""];
    for (const c of cells) { const td = document.createElement("td"); td.textContent = c; tr.append(td); }
    tr.children[3].className = "in-state";
    const td = document.createElement("td");
    const ready = document.createElement("button"); ready.textContent = t("ready_btn");
    ready.onclick = () => setAgent(a.agent_id, "ready");
    const brk = document.createElement("button"); brk.textContent = t("break_btn");
    brk.onclick = () => setAgent(a.agent_id, "not_ready", "break");
    td.append(ready, " ", brk);
    if (a.state === "on_call") {
      for (const mode of ["listen", "whisper", "barge"]) {  /* through the supervisor's own phone (docs/qc.md) */
        const b = document.createElement("button"); b.textContent = t(mode + "_btn"); b.dataset.monitor = mode;
        b.onclick = () => monitor(a.agent_id, mode);
        td.append(" ", b);
      }
    }
    tr.append(td); tb.append(tr);
  }
  if (!agents.size) {
    const tr = document.createElement("tr");
    tr.className = "empty";
    const td = document.createElement("td");
    td.colSpan = 7;
    td.textContent = t("no_agents");
    tr.append(td);
    tb.append(tr);
  }
}

/* Time in state ticks every second, in place (the rows and their buttons stay). */
function tickAgents() {
  for (const tr of $("agents").querySelectorAll("tr[data-agent]")) {
    const a = agents.get(tr.dataset.agent);
    if (a) tr.querySelector(".in-state").textContent = inState(a);
  }
}

function alert_(text) {
  $("alerts").querySelectorAll("li.empty").forEach((li) => li.remove());
  const li = document.createElement("li");
  li.className = "alert";
  li.textContent = `${new Date().toLocaleTimeString()} ${text}`;
  $("alerts").prepend(li);
  while ($("alerts").children.length > 20) $("alerts").lastChild.remove();
}

function noAlerts() {
  const list = $("alerts");
  list.querySelectorAll("li.empty").forEach((li) => li.remove());
  if (list.children.length) return;
  const li = document.createElement("li");
  li.className = "empty";
  li.textContent = t("no_alerts");
  list.append(li);
}

function pct(v) {
  return v === null || v === undefined ? "-" : `${(v * 100).toFixed(1)}%`;
}

/* Today's figures per tier and queue, pushed by the server as events change them ("kpi"). */
function showKpi(k) {
  const body = $("kpi-rows");
  body.textContent = "";
  const rows = [[t("all_calls"), k.today.total, k.halfhour.total]];
  for (const [tier, f] of Object.entries(k.today.tiers)) rows.push([tierName(tier), f, k.halfhour.tiers[tier]]);
  for (const [q, f] of Object.entries(k.today.queues)) rows.push([nameOf("queues", q), f, k.halfhour.queues[q]]);
  for (const [name, f, hh] of rows) {
    const tr = document.createElement("tr");
    for (const v of [name, f.calls_offered, f.answered, pct(f.service_level),
                     f.asa_s === null ? "-" : f.asa_s.toFixed(1), pct(f.abandon_rate), pct((hh || {}).service_level)]) {
      const td = document.createElement("td");
      td.textContent = v;
      tr.append(td);
    }
    body.append(tr);
  }
  if (board.last) {
    board.last.service_level = k.today.total.service_level || 0;
    board.last.abandon_rate = k.today.total.abandon_rate || 0;
    gauge("g-sl", board.last.service_level, 0.8, true);
    gauge("g-ab", board.last.abandon_rate, 0.05, false);
  }
}

function onPush(msg) {
  if (msg.type === "snapshot") {
    for (const a of msg.data.agents || []) noteAgent(a, a.in_state_s);
    renderAgents();
    showWallboard(msg.data.wallboard);
    if (msg.data.wallboard && msg.data.wallboard.kpi) showKpi(msg.data.wallboard.kpi);
  } else if (msg.type === "wallboard") {
    showWallboard(msg.data);
    if (msg.data.kpi) showKpi(msg.data.kpi);
  } else if (msg.type === "kpi") {
    showKpi(msg.data);
  } else if (msg.type === "agent_state") {
    noteAgent(msg.data, 0);  // a state change: its time starts now
    renderAgents();
  } else if (msg.type === "escalation") {
    alert_(t("escalation", msg.data.agent_id, msg.data.call_id, msg.data.note || ""));
  } else if (msg.type === "workorder_alert" && msg.data.action === "escalation") {
    alert_(t("wo_overdue", msg.data.id, nameOf("categories", msg.data.category),
             t(msg.data.stage === "dispatch" ? "stage_dispatch" : "stage_reply"),
             msg.data.unit ? nameOf("units", msg.data.unit) : "-"));
  } else if (msg.type === "staffing_warning") {
    alert_(t("understaffed", msg.data.agent_id, msg.data.logged_in, msg.data.minimum));
  }
}

function onConn(up) {
  showConn(up);
}

/* Schedule adherence from the roster (/api/wfm/adherence, docs/wfm.md): teams' figures and who is out
   of adherence now. Refreshed every minute; without a roster the card says so. */
async function showAdherence() {
  const r = await api("GET", "/api/wfm/adherence");
  const list = $("adh-out");
  list.textContent = "";
  if (!r.ok) { $("adh-teams").textContent = t("no_roster"); return; }
  $("adh-teams").textContent = Object.entries(r.data.teams)
    .map(([team, v]) => t("team_adh", team || "–", pct(v))).join("  ");
  const out = r.data.agents.filter((a) => a.now_in_adherence === false);
  const item = (textValue, agent) => {
    const li = document.createElement("li");
    li.textContent = textValue;
    if (agent) li.dataset.agent = agent;
    list.appendChild(li);
  };
  if (!out.length) { item(t("all_adherent")); return; }
  for (const a of out) {
    const now = a.now_reason ? `${stateName(a.now_state)} (${a.now_reason})` : stateName(a.now_state);
    item(t("out_of_adh", `${a.agent} ${a.name}`, a.now_activity, now), a.agent);
  }
}

async function start(me) {
  board.me = me;
  $("who").textContent = `${me.user.name} (${me.user.agent_no})`;
  wireSignOut();
  if (me.user.role === "agent") {
    $("login-box").classList.remove("hidden");
    $("login-err").dataset.t = "supervisor_needed";
    $("login-err").textContent = t("supervisor_needed");
    return;
  }
  onLang(() => { renderAgents(); showWallboard(board.last); noAlerts(); });
  renderAgents();
  noAlerts();
  setInterval(tickAgents, 1000);
  loadQc();
  setInterval(loadQc, 300000);
  $("board").classList.remove("hidden");
  const w = await api("GET", "/api/wallboard");
  if (w.ok) showWallboard(w.data);
  new Push(onPush, onConn);
  showAdherence();
  setInterval(showAdherence, 60000);
}

signIn(start);
