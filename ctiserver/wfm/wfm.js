"use strict";
/* The /wfm page: the week's roster (adjust a shift: every rule is checked by the server), today's
   adherence per agent and team, and the half hours the roster leaves short. Loaded after
   /static/common.js (api, $, signIn, wireSignOut, t, TEXTS). */
Object.assign(TEXTS, {
  title: ["排班与遵守度", "Roster and adherence"], heading: ["排班", "Workforce"], week: ["周一", "Week of"],
  show: ["查看", "Show"], sec_roster: ["排班表", "Roster"], sec_adherence: ["今日遵守度", "Adherence today"],
  sec_coverage: ["覆盖不足的半小时", "Half hours short of the requirement"], off: ["休息", "off"],
  agent: ["坐席", "agent"], team: ["班组", "team"], adherence: ["遵守度", "adherence"],
  late: ["迟到（分）", "late (min)"], early: ["早退（分）", "left early (min)"], absent: ["缺勤", "absent"],
  now_act: ["排班要求", "scheduled now"], now_state: ["当前状态", "state now"], in_adh: ["当前遵守", "in adherence"],
  date: ["日期", "date"], time: ["时间", "time"], required: ["需要", "required"], rostered: ["已排", "rostered"],
  met_line: ["有来电的半小时中 {0}/{1} 达标（{2}）", "{0} of {1} half hours with calls covered ({2})"],
  saved: ["已保存", "saved"], yes: ["是", "yes"], no: ["否", "no"], loading: ["加载中…", "loading…"],
  error: ["出错：{0}", "error: {0}"], none: ["无", "none"],
});
let current = null;
const DAYS = ["一", "二", "三", "四", "五", "六", "日"];

function monday(d) {
  const x = new Date(d.getFullYear(), d.getMonth(), d.getDate());
  x.setDate(x.getDate() - ((x.getDay() + 6) % 7));
  return `${x.getFullYear()}-${String(x.getMonth() + 1).padStart(2, "0")}-${String(x.getDate()).padStart(2, "0")}`;
}
function cell(tr, text, tag) {
  const c = document.createElement(tag || "td");
  c.textContent = text === null || text === undefined ? "" : String(text);
  tr.appendChild(c);
  return c;
}
function pct(v) { return v === null || v === undefined ? "–" : `${(v * 100).toFixed(1)}%`; }

function optionsFor(data) {
  const opts = [["", t("off")]];
  for (const [name, vs] of Object.entries(data.patterns)) {
    for (const v of vs) opts.push([`${name}|${v.start}|${v.meal || ""}`, `${name} ${v.start}${v.meal ? " / " + v.meal : ""}`]);
  }
  return opts;
}

function drawRoster(data) {
  current = data;
  const r = data.roster;
  $("summary").textContent = t("met_line", r.met, r.counted, pct(r.met_share));
  const grid = $("grid");
  grid.textContent = "";
  const head = document.createElement("tr");
  cell(head, t("agent"), "th");
  cell(head, t("team"), "th");
  const week = new Date(r.week + "T00:00");
  for (let d = 0; d < 7; d++) {
    const day = new Date(week); day.setDate(day.getDate() + d);
    cell(head, `${DAYS[d]} ${day.getMonth() + 1}/${day.getDate()}`, "th");
  }
  grid.appendChild(head);
  const byKey = {};
  for (const a of r.assignments) byKey[`${a.agent}|${a.day}`] = `${a.pattern}|${a.start}|${a.meal || ""}`;
  const opts = optionsFor(data);
  for (const a of data.agents) {
    const tr = document.createElement("tr");
    cell(tr, `${a.id} ${a.name}`);
    cell(tr, a.team);
    for (let d = 0; d < 7; d++) {
      const td = cell(tr, "");
      const sel = document.createElement("select");
      sel.id = `shift-${a.id}-${d}`;
      sel.setAttribute("aria-label", `${a.id} ${DAYS[d]}`);
      for (const [value, text] of opts) {
        const o = document.createElement("option");
        o.value = value; o.textContent = text;
        sel.appendChild(o);
      }
      sel.value = byKey[`${a.id}|${d}`] || "";
      sel.addEventListener("change", () => setShift(a.id, d, sel.value));
      td.appendChild(sel);
    }
    grid.appendChild(tr);
  }
  const cov = $("coverage");
  cov.textContent = "";
  const h2 = document.createElement("tr");
  for (const k of ["date", "time", "required", "rostered"]) cell(h2, t(k), "th");
  cov.appendChild(h2);
  for (const row of data.coverage.filter((x) => !x.met)) {
    const tr = document.createElement("tr");
    tr.className = "out";
    for (const k of ["date", "time", "required", "rostered"]) cell(tr, row[k]);
    cov.appendChild(tr);
  }
}

async function setShift(agent, day, value) {
  $("edit-err").textContent = "";
  const [pattern, start, meal] = value ? value.split("|") : [null, null, null];
  const r = await api("POST", "/api/wfm/roster/shift",
                      { week: current.roster.week, agent, day, pattern, start, meal: meal || null });
  if (!r.ok) {
    $("edit-err").textContent = t("error", r.error);
    drawRoster(current);
    return;
  }
  $("status").textContent = t("saved");
  drawRoster(r.data);
}

async function loadRoster() {
  $("status").textContent = t("loading");
  const r = await api("GET", `/api/wfm/roster?week=${encodeURIComponent($("week").value)}`);
  $("status").textContent = r.ok ? "" : t("error", r.error);
  if (r.ok) drawRoster(r.data);
}

async function loadAdherence() {
  const r = await api("GET", "/api/wfm/adherence");
  const table = $("adherence");
  table.textContent = "";
  if (!r.ok) { $("teams").textContent = t("error", r.error); return; }
  $("teams").textContent = Object.entries(r.data.teams).map(([k, v]) => `${k || "–"}: ${pct(v)}`).join("  ");
  const head = document.createElement("tr");
  for (const k of ["agent", "team", "adherence", "late", "early", "absent", "now_act", "now_state", "in_adh"]) cell(head, t(k), "th");
  table.appendChild(head);
  for (const a of r.data.agents) {
    const tr = document.createElement("tr");
    tr.id = `adh-${a.agent}`;
    if (a.now_in_adherence === false) tr.className = "out";
    cell(tr, `${a.agent} ${a.name}`);
    cell(tr, a.team);
    cell(tr, pct(a.adherence));
    cell(tr, a.late_login_s === null ? "" : Math.round(a.late_login_s / 60));
    cell(tr, a.early_logout_s === null ? "" : Math.round(a.early_logout_s / 60));
    cell(tr, a.absent ? t("yes") : "");
    cell(tr, a.now_activity || "");
    cell(tr, a.now_reason ? `${a.now_state} (${a.now_reason})` : a.now_state);
    cell(tr, a.now_in_adherence === null ? "" : (a.now_in_adherence ? t("yes") : t("no")));
    table.appendChild(tr);
  }
}

(function init() {
  signIn((me) => {
    $("who").textContent = `${me.user.name} (${me.user.agent_no})`;
    wireSignOut();
    $("page").classList.remove("hidden");
    $("week").value = monday(new Date());
    $("load").addEventListener("click", loadRoster);
    loadRoster();
    loadAdherence();
    setInterval(loadAdherence, 30000);
  });
})();
