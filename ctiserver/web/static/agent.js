/* The agent desktop: state buttons, the screen pop, disposition and work-order forms. */
"use strict";

const desk = { me: null, call: null, customer: null, state: null, failed: null, outages: [] };
Object.assign(TEXTS, {
  title: ["坐席工作台", "Agent desktop"], heading: ["95598 坐席工作台", "95598 Agent desktop"],
  status: ["状态", "Status"], acd_login: ["签入", "Log in to queue"], ready: ["就绪", "Ready"],
  reason_aria: ["未就绪原因", "Not-ready reason"], not_ready: ["未就绪", "Not ready"],
  acd_logout: ["签出", "Log out of queue"], call: ["通话", "Call"], escalate: ["升级班长", "Escalate"],
  hangup: ["挂断", "Hang up"], xfer_target: ["转接目标", "Transfer target"],
  xfer_placeholder: ["工号/队列", "agent no. / queue"], xfer_agent: ["转坐席", "To agent"],
  xfer_queue: ["转队列", "To queue"], pop: ["来电弹屏", "Screen pop"], customer: ["客户", "Customer"],
  account: ["户号", "Account"], tier: ["等级", "Tier"], routing_tier: ["路由等级", "Routing tier"],
  caller_lang: ["语言", "Language"], area: ["台区", "Area"], outage: ["停电", "Outage"],
  arrears: ["欠费", "Arrears"], ivr_path: ["IVR 路径", "IVR path"], waited: ["等待", "Waited"],
  queue: ["队列", "Queue"], recent: ["近期联系", "Recent contacts"], work_orders: ["工单", "Work orders"],
  disposition: ["话后小结", "Disposition"], category: ["类别", "Category"], resolved: ["已解决", "Resolved"],
  note: ["备注", "Note"], save_disposition: ["提交小结", "Save disposition"],
  new_work_order: ["新建工单", "New work order"], number: ["来电号码", "Number"], name: ["客户姓名", "Name"],
  content: ["内容", "Content"], unit: ["责任单位", "Unit"], anonymous: ["匿名", "Anonymous"],
  create_work_order: ["创建工单", "Create work order"],
  st_available: ["就绪", "Ready"], st_not_ready: ["未就绪", "Not ready"], st_on_call: ["通话", "On call"],
  st_ringing: ["振铃", "Ringing"], st_reserved: ["分配中", "Reserved"], st_wrap_up: ["话后", "Wrap-up"],
  st_logged_out: ["未签入", "Logged out"], direct: ["非ACD通话", "outside the ACD"],
  no_recent: ["暂无近期联系", "no recent contacts"], no_work_orders: ["暂无工单", "no work orders"],
  not_an_agent: ["您不是排队坐席，没有坐席操作。", "You are not an ACD agent: no agent controls."],
  lang_zh: ["普通话", "Mandarin"], lang_en: ["英语", "English"],
  ph_answer: ["· 通话中", "· answered"], ph_offer: ["· 振铃", "· ringing"], ph_callback: [" · 回拨", " · callback"],
  ph_ended: ["· 已结束", "· ended"], unknown_caller: ["未识别", "Unknown caller"],
  caller_id: ["(来电显示)", "(caller ID)"], record_tier: ["档案：{0}", "record: {0}"],
  outage_planned: ["计划停电", "planned"], outage_fault: ["故障停电", "fault"],
  outage_reports: ["停电#{0}，已报修{1}次", "outage #{0}, {1} reports"],
  restore_by: ["预计恢复 {0}", "restore by {0}"], wo_ref: ["工单 #{0} ({1})", "work order #{0} ({1})"],
  due: ["期限 {0}", "due {0}"], overdue: ["超期", "OVERDUE"], due_soon: ["即将到期", "due soon"],
  wo_ref_short: ["工单 #{0}", "Work order #{0}"], stage_dispatch: ["派单", "dispatch"], stage_reply: ["回复", "reply"],
  wo_open: ["待处理", "open"], wo_dispatched: ["已派单", "dispatched"], wo_resolved: ["已办结", "resolved"],
  wo_closed: ["已关闭", "closed"], wo_reopened: ["已重开", "reopened"],
  saved: ["已保存 #{0}", "Saved #{0}"], wo_created: ["工单 #{0} 已创建 · 期限 {1}", "Work order #{0} created · due {1}"],
  xf_unreachable: ["话机不可达", "the phone is not reachable"], xf_busy: ["忙", "busy"],
  xf_noanswer: ["无人接听", "no answer"], xf_back_agent: ["来电回到您", "the caller is coming back to you"],
  xf_back_queue: ["来电回到队列 {0}", "the caller is back in queue {0}"],
  xf_fallback: ["来电进入备用队列", "the caller is in the fallback queue"],
  xf_failed: ["转接 {0} 失败：{1}；{2}", "Transfer to {0} failed: {1}; {2}"],
  attach_outage: ["关联停电", "Attach to outage"], no_outage: ["不关联", "none"],
  outage_option: ["#{0} {1} {2} · 已报修{3}次", "#{0} {1} {2} · {3} reports"],
  wo_attached: ["已关联停电 #{0}（报修{1}次）", "attached to outage #{0} ({1} reports)"],
});

/* A code's name from /api/me ({code: {zh, en}}) in the UI language; the code itself if it has none. */
function nameOf(table, code) {
  return label((table || {})[code], code);
}

function text(key, fallback) {
  return key in TEXTS ? t(key) : fallback;
}

function fillSelect(id, entries, withBlank) {
  const sel = $(id);
  const keep = sel.value;
  sel.textContent = "";
  if (withBlank) sel.append(new Option("—", ""));
  for (const [value, name] of entries) sel.append(new Option(name, value));
  if (keep) sel.value = keep;
}

function fillSelects() {
  const me = desk.me;
  fillSelect("reason", Object.keys(me.not_ready_reasons).map((k) => [k, nameOf(me.not_ready_reasons, k)]));
  fillSelect("disp-category", Object.keys(me.categories).map((k) => [k, nameOf(me.categories, k)]));
  fillSelect("wo-category", me.workorder_categories.map((k) => [k, nameOf(me.categories, k)]));
  fillSelect("wo-unit", Object.keys(me.units).map((k) => [k, nameOf(me.units, k)]), true);
}

function reasonName(reason) {
  return nameOf(desk.me && desk.me.reasons, reason);
}

function tierName(tier) {
  return nameOf(desk.me && desk.me.tiers, tier);
}

/* A list that says so when it is empty. */
function emptyNote(list, key) {
  if (list.children.length) return;
  const li = document.createElement("li");
  li.className = "empty";
  li.textContent = t(key);
  list.append(li);
}

function showState(st) {
  desk.state = st;
  const el = $("state");
  const name = st ? st.state : "logged_out";
  el.className = `badge state-${name}`;
  el.textContent = text(`st_${name}`, name);
  if (st && st.reason && name === "not_ready") el.textContent += ` (${reasonName(st.reason)})`;
  if (st && st.reason === "direct" && name === "on_call") el.textContent += ` (${text("direct", "direct")})`;
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
  const phase = pop.phase === "answer" ? "ph_answer" : "ph_offer";
  setText("pop-phase", t(phase) + (pop.callback ? t("ph_callback") : ""));
  setText("pop-number", pop.number);
  // a caller without a customer record: the CallerID name Asterisk gave, marked as such
  setText("pop-name", c.name || pop.caller_name || t("unknown_caller"));
  $("pop-name-src").textContent = !c.name && pop.caller_name ? t("caller_id") : "";
  setText("pop-account", c.account);
  // the tier the ACD routed on (tier rules, the IVR); the record's own tier too when it differs
  const routed = pop.tier || c.tier;
  const tier = $("pop-tier");
  tier.className = `badge tier-${routed || "normal"}`;
  tier.textContent = routed ? tierName(routed) : "—";
  const differs = Boolean(pop.tier && c.tier && c.tier !== pop.tier);
  $("pop-tier-record").classList.toggle("hidden", !differs);
  $("pop-tier-record").textContent = differs ? t("record_tier", tierName(c.tier)) : "";
  setText("pop-lang", pop.lang ? text(`lang_${pop.lang}`, pop.lang) : null);
  setText("pop-area", c.area);
  const out = c.outage;
  $("pop-outage").className = out ? "outage" : "";
  setText("pop-outage", out ? (typeof out === "string" ? out
    : [t(out.kind === "planned" ? "outage_planned" : "outage_fault"), out.reason,
       out.expected_restore ? t("restore_by", out.expected_restore) : "",
       out.id ? t("outage_reports", out.id, out.reports || 0) : ""].filter(Boolean).join(" · ")) : t("none"));
  setText("pop-arrears", c.arrears !== undefined && c.arrears !== null ? `¥ ${c.arrears}` : null);
  // the IVR steps by their names; unnamed lookups and branches are the tree's machinery, not steps
  const steps = pop.ivr_steps || (pop.ivr_path || []).map((id) => ({ id }));
  setText("pop-ivr", steps.filter((n) => n.name || !["lookup", "branch", "goto"].includes(n.kind))
    .map((n) => label(n.name, n.id)).join(" → "));
  setText("pop-wait", fmtDuration(pop.wait_s));
  setText("pop-queue", pop.queue ? nameOf(desk.me.queues, pop.queue) : null);
  const hist = $("pop-history");
  hist.textContent = "";
  for (const h of (c.history || []).slice(0, 8)) {
    const li = document.createElement("li");
    const what = h.workorder ? t("wo_ref", h.workorder, text(`wo_${h.status}`, h.status)) : (h.note || "");
    li.textContent = `${fmtTime(h.ts)}  ${nameOf(desk.me.categories, h.category || "")}  ${what}`;
    hist.append(li);
  }
  emptyNote(hist, "no_recent");
  // prefill the after-call forms with the five key fields we already know
  $("wo-number").value = pop.number || "";
  $("wo-name").value = c.name || pop.caller_name || "";
  $("wo-account").value = c.account || "";
  for (const id of ["escalate", "hangup", "xfer-agent", "xfer-queue"]) $(id).disabled = false;
  loadWorkOrders();
  loadOutages();
}

/* The outage form: the outages under way for the caller's area (or account; every one without a caller),
   the screen-pop's own outage chosen; a work order created with one chosen is attached to it. */
async function loadOutages() {
  const c = desk.customer || {};
  const q = new URLSearchParams({ status: "open", active: "true" });
  if (c.area) q.set("area", c.area);
  if (c.account) q.set("account", c.account);
  const r = await api("GET", `/api/outages?${q}`);
  const outages = r.ok ? r.data : [];
  desk.outages = outages;
  fillOutages();
}

function fillOutages() {
  const sel = $("wo-outage");
  const keep = sel.value;
  const popped = desk.customer && desk.customer.outage && desk.customer.outage.id;
  fillSelect("wo-outage", [["", t("no_outage")], ...(desk.outages || []).map((o) => [String(o.id),
    t("outage_option", o.id, t(o.kind === "planned" ? "outage_planned" : "outage_fault"), o.cause, o.reports)])]);
  const ids = (desk.outages || []).map((o) => String(o.id));
  sel.value = ids.includes(keep) ? keep : (popped && ids.includes(String(popped)) ? String(popped) : "");
}

function callEnded(callId) {
  if (desk.call && desk.call.call_id === callId) {
    desk.call = { ...desk.call, ended: true };
    setText("pop-phase", t("ph_ended"));
    for (const id of ["escalate", "hangup", "xfer-agent", "xfer-queue"]) $(id).disabled = true;
  }
}

async function loadWorkOrders() {
  const list = $("wo-list");
  list.textContent = "";
  const account = desk.customer && desk.customer.account;
  if (!account) { emptyNote(list, "no_work_orders"); return; }
  const r = await api("GET", `/api/workorders?account=${encodeURIComponent(account)}&limit=10`);
  if (!r.ok) return;
  for (const w of r.data) {
    const li = document.createElement("li");
    li.textContent = `#${w.id} ${nameOf(desk.me.categories, w.category)} · ${text(`wo_${w.status}`, w.status)}`
      + ` · ${t("due", fmtTime(w.due_ts))}` + (w.overdue ? ` · ${t("overdue")}` : "") + ` · ${w.content.slice(0, 40)}`;
    if (w.overdue) li.className = "overdue";
    list.append(li);
  }
  emptyNote(list, "no_work_orders");
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
    $("monitored").classList.add("hidden");
  } else if (msg.type === "monitored") {  /* only where recording.yaml monitoring.show_agent says so */
    $("monitored").textContent = LANG === "zh" ? "主管正在监听" : "being monitored";
    $("monitored").classList.remove("hidden");
  } else if (msg.type === "transfer_failed") {
    transferFailed(msg.data);
  } else if (msg.type === "workorder_alert") {
    const w = msg.data, li = document.createElement("li");
    const what = w.action === "escalation" ? t("overdue") : t("due_soon");
    li.textContent = `${t("wo_ref_short", w.id)} ${nameOf(desk.me.categories, w.category)} · `
      + `${t(w.stage === "dispatch" ? "stage_dispatch" : "stage_reply")} · ${what} · ${t("due", fmtTime(w.due_ts))}`;
    if (w.action === "escalation") li.className = "overdue";
    $("wo-alerts").prepend(li);
    while ($("wo-alerts").children.length > 10) $("wo-alerts").lastChild.remove();
  }
}

/* A blind transfer that could not complete: why, and where the caller went (back to me, or my queue). */
function transferFailed(d) {
  desk.failed = d;
  const back = d.returned_to === "agent" ? t("xf_back_agent")
    : d.returned_to === "queue" ? t("xf_back_queue", d.queue ? nameOf(desk.me.queues, d.queue) : "")
    : t("xf_fallback");
  $("call-err").textContent = t("xf_failed", d.target, text(`xf_${d.reason}`, d.reason), back);
}

function transfer(targetKind) {
  const target = $("xfer-target").value.trim();
  if (target) callAction("transfer", { target_kind: targetKind, target, kind: "blind" });
}

function onConn(up) {
  showConn(up);
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
  $("disp-ok").textContent = t("saved", r.data.id);
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
  $("wo-ok").textContent = t("wo_created", r.data.id, fmtTime(r.data.due_ts));
  $("wo-content").value = "";
  const outage = $("wo-outage").value;
  if (outage) {
    const a = await api("POST", `/api/outages/${encodeURIComponent(outage)}/reports`, {
      workorder_id: r.data.id, call_id: call.call_id || "", account: account, number: body.incoming_number });
    if (a.ok) $("wo-ok").textContent += " · " + t("wo_attached", a.data.outage, a.data.reports);
    else $("wo-err").textContent = a.error;
    loadOutages();
  }
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
  if (!me.acd_agent) {  // e.g. a supervisor's own login: the work-order forms only
    $("status-card").classList.add("hidden");
    $("call-card").classList.add("hidden");
    $("not-agent").classList.remove("hidden");
  }
  fillSelects();
  loadOutages();
  onLang(() => {  // everything drawn from data, again in the language just picked
    fillSelects();
    fillOutages();
    showState(desk.state);
    if (desk.call) {
      const ended = desk.call.ended;
      showPop(desk.call);
      if (ended) callEnded(desk.call.call_id);
    }
    if (desk.failed) transferFailed(desk.failed);
  });
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
