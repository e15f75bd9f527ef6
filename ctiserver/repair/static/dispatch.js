/* The dispatch board: every open repair order's stage and its next deadline, overdue ones marked. */
"use strict";

Object.assign(TEXTS, {
  title: ["抢修调度", "Dispatch board"], heading: ["95598 抢修调度", "95598 Dispatch board"],
  orders: ["抢修工单", "Repair orders"], th_crew: ["抢修队", "Crew"], th_area: ["区域", "Area"],
  th_stage: ["进度", "Stage"], th_next: ["下一时限", "Next deadline"], th_cause: ["原因", "Cause"],
  no_orders: ["暂无抢修工单", "no repair orders"], dispatcher_needed: ["需要调度权限", "Dispatcher role needed"],
  updated: ["更新 {0}", "updated {0}"], overdue: ["已超时", "overdue"],
  stage_dispatched: ["已派单", "dispatched"], stage_acknowledged: ["已接单", "acknowledged"],
  stage_arrived: ["已到达", "arrived"], stage_reported: ["已报告", "reported"], stage_restored: ["已复电", "restored"],
  stage_cancelled: ["已取消", "cancelled"], step_acknowledge: ["接单", "acknowledge"], step_arrive: ["到达", "arrive"],
  step_report: ["30分钟报告", "30-minute report"], step_restore: ["复电", "restore"],
});
let last = [];

function render() {
  const body = $("orders").querySelector("tbody");
  body.textContent = "";
  $("no-orders").classList.toggle("hidden", last.length > 0);
  for (const o of last) {
    const tr = document.createElement("tr");
    tr.dataset.order = o.id;
    tr.dataset.stage = o.stage;
    const next = o.deadlines[0];
    const cells = [String(o.id), `${o.team} (${o.crew_phone})`, o.area, t(`stage_${o.stage}`),
                   next ? `${t(`step_${next.step}`)} ${fmtTime(next.due_ts)}${next.overdue ? " · " + t("overdue") : ""}` : "—",
                   o.cause || ""];
    for (const c of cells) {
      const td = document.createElement("td");
      td.textContent = c;
      tr.append(td);
    }
    if (next && next.overdue) tr.classList.add("overdue");
    tr.dataset.overdue = next && next.overdue ? "1" : "0";
    body.append(tr);
  }
}

async function refresh() {
  const r = await api("GET", "/api/repair/orders");
  showConn(r.ok);
  if (!r.ok) return;
  last = r.data;
  render();
  $("updated").textContent = t("updated", fmtTime(Date.now() / 1000));
  $("board").dataset.loaded = String(Number($("board").dataset.loaded || 0) + 1);
}

async function start(me) {
  $("who").textContent = `${me.user.name} (${me.user.agent_no})`;
  wireSignOut();
  if (me.user.role === "agent") {
    $("login-box").classList.remove("hidden");
    $("login-err").textContent = t("dispatcher_needed");
    return;
  }
  onLang(render);
  $("board").classList.remove("hidden");
  await refresh();
  setInterval(refresh, 3000);
}

signIn(start);
