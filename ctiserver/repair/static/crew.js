/* The crew's page: one repair order, its next deadline, the step buttons. */
"use strict";
const token = location.pathname.split("/").pop();
const $ = (id) => document.getElementById(id);
const NAMES = { dispatched: "已派单", acknowledged: "已接单", arrived: "已到达", reported: "已报告", restored: "已复电",
                cancelled: "已取消" };
const STEPS = { acknowledge: "接单", arrive: "到达", report: "30分钟报告", restore: "复电" };
function show(o) {
  $("oid").textContent = "#" + o.id; $("area").textContent = o.area; $("stage").textContent = NAMES[o.stage] || o.stage;
  $("stage").dataset.stage = o.stage;
  const d = o.deadlines[0];
  $("next").textContent = d ? `${STEPS[d.step]} ${new Date(d.due_ts * 1000).toLocaleTimeString()}${d.overdue ? "（已超时）" : ""}` : "—";
  $("ack").classList.toggle("hidden", o.stage !== "dispatched");
  $("arrive").classList.toggle("hidden", !["dispatched", "acknowledged"].includes(o.stage));
  $("report").classList.toggle("hidden", !["arrived", "reported"].includes(o.stage));
  $("restore").classList.toggle("hidden", !["arrived", "reported"].includes(o.stage));
}
async function call(method, path, body) {
  const r = await fetch(path, { method, headers: method === "GET" ? {} : { "Content-Type": "application/json" },
                                body: method === "GET" ? undefined : JSON.stringify(body || {}) });
  const data = await r.json();
  if (!r.ok) { $("err").textContent = data.error ? data.error.message : r.statusText; return null; }
  $("err").textContent = ""; return data;
}
async function step(name, body) { const o = await call("POST", `/api/crew/${token}/${name}`, body); if (o) show(o); }
for (const id of ["ack", "arrive"]) $(id).addEventListener("click", () => step(id));
$("restore").addEventListener("click", () => step("restore", { cause: $("cause").value }));
$("report").addEventListener("submit", (ev) => {
  ev.preventDefault();
  step("report", { cause: $("cause").value, location: $("location").value,
                   expected_ts: Date.now() / 1000 + Number($("minutes").value) * 60 });
});
call("GET", `/api/crew/${token}`).then((o) => { if (o) show(o); });
