"use strict";
/* The /handover page: the outgoing shift leader sees what the shift hands over (from the store, now),
   adds a note and hands over; the incoming leader opens it and acknowledges; every handover is kept,
   searchable, printable and exportable as text. Loaded after /static/common.js. */
Object.assign(TEXTS, {
  title: ["交接班", "Shift handover"], heading: ["交接班", "Shift handover"], to_wfm: ["排班", "Roster"],
  sec_draft: ["本班交接（当前）", "This shift's handover (now)"], sec_list: ["交接记录", "Handovers"],
  note: ["交接说明（系统状态、事件、待跟进事项）", "Note (system state, incidents, what to chase)"],
  hand_over: ["交班", "Hand over"], search: ["查找", "Search"], ack: ["接班确认", "Acknowledge"],
  print: ["打印", "Print"], export: ["导出文本", "Export text"],
  shift_line: ["{0} 至 {1}　交班：{2}　接班：{3}", "{0} to {1}   outgoing: {2}   incoming: {3}"],
  summary: ["未办结工单 {0}，临期/超期 {1}（超期 {2}），停电 {3}（进行中 {4}），待回拨 {5}，重点来电 {6}",
            "open work orders {0}, due soon/overdue {1} (overdue {2}), outages {3} (active {4}), callbacks {5}, notable calls {6}"],
  orders: ["临期工单（接班结束前到期）", "Work orders due before the incoming shift ends"],
  outages: ["停电", "Outages"], callbacks: ["待回拨", "Callbacks to make"], notable: ["重点来电", "Notable calls"], system: ["系统状态", "System state"],
  id: ["编号", "id"], category: ["类别", "category"], status_: ["状态", "status"], due: ["时限", "due"],
  customer: ["客户", "customer"], content: ["内容", "content"], kind: ["类型", "kind"], cause: ["原因", "cause"],
  areas: ["区域", "areas"], start: ["开始", "start"], restore: ["预计恢复", "restore"], reports: ["报修", "reports"],
  number: ["号码", "number"], skill: ["技能", "skill"], tier: ["级别", "tier"], attempts: ["尝试", "attempts"],
  time: ["时间", "time"], what: ["事项", "what"], ref: ["关联", "ref"], agent: ["坐席", "agent"], detail: ["详情", "detail"],
  shift: ["交接时间", "shift change"], outgoing: ["交班人", "outgoing"], incoming: ["接班人", "incoming"],
  acked: ["接班确认", "acknowledged"], not_yet: ["未确认", "not yet"], open_: ["查看", "open"],
  handed: ["已交班", "handed over"], acknowledged: ["已确认接班", "acknowledged"], overdue: ["超期", "overdue"],
  active: ["进行中", "active"], coming: ["将开始", "coming"], one_title: ["交接 #{0}", "Handover #{0}"],
  by_at: ["{0}　{1}", "{0} at {1}"], error: ["出错：{0}", "error: {0}"],
});
let ME = null;

function cell(tr, text, tag) {
  const c = document.createElement(tag || "td");
  c.textContent = text === null || text === undefined ? "" : String(text);
  tr.appendChild(c);
  return c;
}
function table(title, cols, rows, rowId, isBad) {
  const box = document.createElement("div");
  const h = document.createElement("h3");
  h.textContent = `${t(title)} (${rows.length})`;
  box.appendChild(h);
  if (!rows.length) { const p = document.createElement("p"); p.textContent = t("none"); box.appendChild(p); return box; }
  const tab = document.createElement("table");
  const head = document.createElement("tr");
  for (const [key] of cols) cell(head, t(key), "th");
  tab.appendChild(head);
  for (const r of rows) {
    const tr = document.createElement("tr");
    if (rowId) tr.id = rowId(r);
    if (isBad ? isBad(r) : (r.overdue || r.dispatch_overdue || r.active)) tr.className = "out";
    for (const [, fn] of cols) cell(tr, fn(r));
    tab.appendChild(tr);
  }
  box.appendChild(tab);
  return box;
}
function drawContent(el, c, prefix) {
  el.textContent = "";
  const s = c.summary;
  const p = document.createElement("p");
  p.className = "summary";
  p.textContent = t("summary", s.open_orders, s.orders_due, s.overdue, s.outages, s.active_outages, s.callbacks, s.notable);
  el.appendChild(p);
  el.appendChild(table("orders", [["id", (o) => o.id], ["category", (o) => o.category], ["status_", (o) => o.status],
    ["due", (o) => fmtTime(o.dispatch_due_ts && o.dispatch_due_ts < o.due_ts ? o.dispatch_due_ts : o.due_ts)
      + (o.overdue || o.dispatch_overdue ? ` ${t("overdue")}` : "")],
    ["customer", (o) => o.customer], ["content", (o) => o.content]], c.orders, (o) => `${prefix}-order-${o.id}`));
  el.appendChild(table("outages", [["id", (o) => o.id], ["kind", (o) => `${o.kind} ${t(o.active ? "active" : "coming")}`],
    ["areas", (o) => o.areas.join(", ")], ["cause", (o) => o.cause], ["start", (o) => fmtTime(o.start_ts)],
    ["restore", (o) => fmtTime(o.expected_restore_ts)], ["reports", (o) => o.reports]], c.outages,
    (o) => `${prefix}-outage-${o.id}`));
  el.appendChild(table("callbacks", [["id", (x) => x.id], ["number", (x) => x.number], ["skill", (x) => x.skill],
    ["tier", (x) => x.tier], ["status_", (x) => x.status], ["attempts", (x) => x.attempts], ["due", (x) => fmtTime(x.due_ts)]],
    c.callbacks, (x) => `${prefix}-callback-${x.id}`));
  el.appendChild(table("system", [["what", (x) => x.what], ["status_", (x) => x.state]], c.system || [],
    (x) => `${prefix}-system-${x.what.replace(/[^A-Za-z0-9]+/g, "-")}`, (x) => !x.ok));
  el.appendChild(table("notable", [["time", (n) => fmtTime(n.ts)], ["what", (n) => n.what], ["ref", (n) => n.ref],
    ["agent", (n) => n.agent], ["detail", (n) => n.detail]], c.notable));
}
function shiftLine(b) {
  return t("shift_line", fmtTime(b.shift_start), fmtTime(b.at), b.outgoing.join(", ") || "—", b.incoming.join(", ") || "—");
}

async function loadDraft() {
  const r = await api("GET", "/api/wfm/handover/draft");
  $("draft-err").textContent = r.ok ? "" : t("error", r.error);
  $("hand-over").disabled = !r.ok;
  if (!r.ok) { $("draft").textContent = ""; $("draft-head").textContent = ""; return; }
  $("draft-head").textContent = shiftLine(r.data.boundary);
  drawContent($("draft"), r.data, "draft");
}

async function handOver() {
  $("draft-err").textContent = "";
  const r = await api("POST", "/api/wfm/handovers", { note: $("note").value });
  if (!r.ok) { $("draft-err").textContent = t("error", r.error); return; }
  $("note").value = "";
  $("status").textContent = t("handed");
  await loadList();
  showOne(r.data);
}

async function loadList() {
  const params = new URLSearchParams();
  if ($("q").value.trim()) params.set("q", $("q").value.trim());
  if ($("date").value) params.set("date", $("date").value);
  const r = await api("GET", `/api/wfm/handovers?${params}`);
  const tab = $("list");
  tab.textContent = "";
  if (!r.ok) { $("status").textContent = t("error", r.error); return; }
  const head = document.createElement("tr");
  for (const k of ["id", "shift", "outgoing", "incoming", "acked", "open_"]) cell(head, t(k), "th");
  tab.appendChild(head);
  for (const h of r.data) {
    const tr = document.createElement("tr");
    tr.id = `handover-${h.id}`;
    if (!h.acked_ts) tr.className = "out";
    cell(tr, h.id);
    cell(tr, fmtTime(h.boundary_ts));
    cell(tr, h.outgoing);
    cell(tr, h.incoming.join(", "));
    cell(tr, h.acked_ts ? t("by_at", h.acked_by, fmtTime(h.acked_ts)) : t("not_yet"));
    const b = document.createElement("button");
    b.textContent = t("open_");
    b.addEventListener("click", () => showOne(h));
    cell(tr, "").appendChild(b);
    tab.appendChild(tr);
  }
}

let shown = null;
function showOne(h) {
  shown = h;
  $("one-box").classList.remove("hidden");
  $("one-err").textContent = "";
  $("one-title").textContent = t("one_title", h.id);
  $("one-head").textContent = `${shiftLine(h.content.boundary)}  ${t("acked")}: ${
    h.acked_ts ? t("by_at", h.acked_by, fmtTime(h.acked_ts)) : t("not_yet")}`;
  $("one-note").textContent = h.note || "";
  $("export").href = `/api/wfm/handovers/${h.id}/text`;
  $("ack").classList.toggle("hidden", Boolean(h.acked_ts) || h.outgoing === ME.user.agent_no);
  drawContent($("one"), h.content, "one");
}

async function acknowledge() {
  const r = await api("POST", `/api/wfm/handovers/${shown.id}/ack`, {});
  if (!r.ok) { $("one-err").textContent = t("error", r.error); return; }
  $("status").textContent = t("acknowledged");
  showOne(r.data);
  await loadList();
}

async function checkLogout() {
  const r = await api("GET", "/api/wfm/handover/logout-check");
  $("logout-warning").textContent = r.ok && r.data.warning ? `${t("handover_warning")}: ${r.data.warning}` : "";
}

signIn((me) => {
  ME = me;
  $("who").textContent = `${me.user.name} (${me.user.agent_no})`;
  wireSignOut();
  $("page").classList.remove("hidden");
  $("hand-over").addEventListener("click", handOver);
  $("search").addEventListener("click", loadList);
  $("ack").addEventListener("click", acknowledge);
  $("print").addEventListener("click", () => window.print());
  loadDraft();
  loadList();
  checkLogout();
  setInterval(checkLogout, 60000);
});
